"""``shopkeep demo`` end to end on a small synthetic store, into a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopkeep.catalog import CatalogRepository
from shopkeep.cli.main import main
from shopkeep.events.log import EVENTS_LOG
from shopkeep.storage import open_store


def test_demo_ingests_trains_and_shows_recommendations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path}/demo.db"
    code = main(["demo", "--items", "400", "--shoppers", "300", "--days", "6", "--models", "pop,itemknn",
                 "--store", uri, "--no-serve"])
    out = capsys.readouterr().out
    assert code == 0
    assert "itemknn" in out and "Recommended for" in out and "demo finished" in out
    store = open_store(uri)
    try:
        assert CatalogRepository(store).count() == 400
        assert store.log_count(EVENTS_LOG) > 1000
    finally:
        store.close()


def test_demo_refuses_unknown_model_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--models", "pop,nope", "--store", f"sqlite:///{tmp_path}/d.db"]) == 2
    assert "--models='nope': unknown" in capsys.readouterr().err
    assert not (tmp_path / "d.db").exists()  # refused before anything was created

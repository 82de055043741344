"""``shopkeep ingest catalog`` end to end on temp files and a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopkeep.catalog import CatalogRepository
from shopkeep.cli.main import main
from shopkeep.storage import open_store

REPO = Path(__file__).resolve().parents[2]


def test_cli_reject_then_skip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "items.csv"
    csv.write_text("item_id,title,price\na,A,100\nb,,5\nc,C,-3\n", encoding="utf-8")
    uri = f"sqlite:///{tmp_path}/shop.db"
    assert main(["ingest", "catalog", str(csv), "--store", uri]) == 1
    out = capsys.readouterr().out
    assert "line 3: title=None: is required" in out and "line 4: price='-3': must be >= 0" in out
    assert "nothing stored" in out
    assert main(["ingest", "catalog", str(csv), "--store", uri, "--on-error", "skip"]) == 1
    store = open_store(uri)
    try:
        assert [i.item_id for i in CatalogRepository(store).iter_items()] == ["a"]
    finally:
        store.close()
    good = tmp_path / "good.csv"
    good.write_text("item_id,title\nd,D\n", encoding="utf-8")
    assert main(["ingest", "catalog", str(good), "--store", uri]) == 0
    assert "1 new" in capsys.readouterr().out


def test_cli_uses_config_store_and_mapping(tmp_path: Path, shared_data: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cfg.db"
    config = tmp_path / "shopkeep.toml"
    config.write_text(f'[storage]\nuri = "sqlite:///{db}"\n', encoding="utf-8")
    path = shared_data / "sephora-cosmetics" / "product_info_skincare_subset.csv"
    mapping = REPO / "examples" / "mappings" / "sephora_product_info.toml"
    assert main(["--config", str(config), "ingest", "catalog", str(path), "--mapping", str(mapping)]) == 0
    assert "257 new" in capsys.readouterr().out
    store = open_store(f"sqlite:///{db}")
    try:
        assert CatalogRepository(store).count() == 257
    finally:
        store.close()


def test_cli_bad_mapping_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.json").write_text('{"fields": {"colour": "C"}}')
    (tmp_path / "x.csv").write_text("C\nred\n")
    code = main(["ingest", "catalog", str(tmp_path / "x.csv"), "--mapping", str(tmp_path / "m.json"),
                 "--store", "memory://"])
    assert code == 2 and "mapping.fields.colour" in capsys.readouterr().err

"""Training sequences read back from the stored event log, with login stitching."""

from __future__ import annotations

from pathlib import Path

from shopkeep.pipeline.ingest import Ingestor
from shopkeep.pipeline.training import interaction_sequences
from shopkeep.storage import open_store


def _ev(i: int, kind: str, minute: int, **kw: str) -> dict[str, object]:
    return {"event_id": f"e{i}", "type": kind, "timestamp": f"2026-11-25T12:{minute:02d}:00Z", **kw}


def test_sequences_follow_event_time_and_stitch_logins(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/t.db")
    try:
        report = Ingestor(store).ingest_batch([
            _ev(1, "view", 3, anonymous_id="a1", item_id="i3"),
            _ev(2, "view", 1, anonymous_id="a1", item_id="i1"),  # arrives late, happened first
            _ev(3, "search", 2, anonymous_id="a1", query="serum"),  # not an item signal
            _ev(4, "login", 4, anonymous_id="a1", user_id="u1"),
            _ev(5, "add_to_cart", 5, anonymous_id="a1", user_id="u1", item_id="i2"),
            _ev(6, "view", 6, anonymous_id="a1", user_id="u1", item_id="i1"),  # repeat: dropped when unique
            _ev(7, "view", 1, anonymous_id="a2", item_id="i9"),
        ])
        assert report.accepted == 7
        seqs = interaction_sequences(store)
        assert seqs == {"u1": ["i1", "i3", "i2"], "anon:a2": ["i9"]}
        assert interaction_sequences(store, unique=False)["u1"] == ["i1", "i3", "i2", "i1"]
        assert interaction_sequences(store, signals=("add_to_cart",)) == {"u1": ["i2"]}
    finally:
        store.close()

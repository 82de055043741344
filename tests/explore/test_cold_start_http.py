"""Issue #7 over HTTP against a real ``shopkeep serve`` (SQLite store, itemknn + lookalike artifacts):
a session that diverges from a long beauty history gets a toys-dominated slate; the lookalike source
speaks for a shopper with 0-2 interactions and falls silent beyond; the experiments report endpoint."""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.serving.conftest import event, stop

from shopkeep.catalog import CatalogRepository
from shopkeep.cli.demo_service import free_port, start_server, wait_ready
from shopkeep.evaluation.experiments import ExperimentBook
from shopkeep.pipeline.artifacts import train_artifacts
from shopkeep.pipeline.ingest import Ingestor
from shopkeep.storage import open_store
from shopkeep.types import Item, Money

BEAUTY = [f"b-{i:03d}" for i in range(60)]
TOYS = [f"t-{i:03d}" for i in range(60)]


@dataclass
class Server:
    base: str
    read: str
    ingest: str
    experiments: str
    proc: Any

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {key}"}, timeout=30.0)


def _items() -> list[Item]:
    cats = {"b": ("Beauty", "Skincare", "Serum"), "t": ("Toys", "Puzzles", "Jigsaw")}
    return [Item(i, f"{'Serum' if i[0] == 'b' else 'Puzzle'} {i}", category=cats[i[0]],
                 brand=f"brand-{i[0]}{int(i[2:]) % 5}", price=Money(1000 + 10 * int(i[2:]), "USD"))
            for i in BEAUTY + TOYS]


def _history(rng: random.Random, start: datetime) -> list[dict[str, Any]]:
    """120 background shoppers: 60 beauty-only, 60 toys-only, 6-10 views each, days before now."""
    out = []
    for s in range(120):
        pool = BEAUTY if s % 2 else TOYS
        for n, item in enumerate(rng.sample(pool, rng.randint(6, 10))):
            ts = start + timedelta(hours=s, minutes=n)
            out.append({"event_id": f"bg-{s}-{n}", "type": "view", "anonymous_id": f"bg-{s}", "item_id": item,
                        "session_id": f"bg-s{s}", "timestamp": ts.isoformat().replace("+00:00", "Z")})
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("coldstart")
    uri = f"sqlite:///{folder}/store.db"
    store = open_store(uri)
    try:
        CatalogRepository(store).upsert_many(_items())
        Ingestor(store).ingest_batch(_history(random.Random(7), datetime.now(UTC) - timedelta(days=20)))
        train_artifacts(store, folder / "artifacts", ["itemknn", "lookalike"],
                        params={"lookalike": {"n_components": 8, "n_neighbors": 20}})
        book = ExperimentBook(store)
        book.define("home-slate", ["control", "lookalike"], "control", guardrails={"revenue": 0.05})
        units = [f"u-{i}" for i in range(400)]
        arms = book.expose("home-slate", units, datetime.now(UTC))
        rng = random.Random(3)
        book.record("home-slate", {u: {"conversion": float(rng.random() < (0.3 if a == "lookalike" else 0.1)),
                                       "revenue": rng.random() * 10} for u, a in zip(units, arms, strict=True)})
    finally:
        store.close()
    read, ingest, exp = (secrets.token_urlsafe(12) for _ in range(3))
    port = free_port()
    proc = start_server(uri, folder / "artifacts", port, keys=f"{read}:read,{ingest}:ingest,{exp}:experiments",
                        log_file=folder / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, 90.0, proc)
        yield Server(base, read, ingest, exp, proc)
    finally:
        stop(proc)


def _slate(c: httpx.Client, **params: Any) -> dict[str, Any]:
    r = c.get("/v1/recommendations", params={"k": 10, "explain": True, **params})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _toys_share(slate: dict[str, Any]) -> float:
    return sum(it["item_id"].startswith("t-") for it in slate["items"]) / len(slate["items"])


def test_a_toys_session_outweighs_a_long_beauty_history(server: Server) -> None:
    rng = random.Random(secrets.randbits(32))
    user, anon = f"long-{secrets.token_hex(3)}", f"a-{secrets.token_hex(3)}"
    past = []
    for day in range(30, 2, -3):  # ten past sessions, four beauty views each
        for n, item in enumerate(rng.sample(BEAUTY, 4)):
            past.append(event("view", anon, session=f"old-{user}-{day}", offset_s=-day * 86400 + n * 30,
                              item_id=item, user_id=user))
    with server.client(server.ingest) as c:
        assert c.post("/v1/events", json={"events": past}).json()["accepted"] == len(past)
    with server.client(server.read) as c:
        before = _slate(c, user_id=user, anonymous_id=anon)
    assert _toys_share(before) <= 0.2, before["items"]
    session = f"gift-{secrets.token_hex(3)}"
    toys = [event("view", anon, session=session, offset_s=i - 5, item_id=item, user_id=user)
            for i, item in enumerate(rng.sample(TOYS, 3))]
    with server.client(server.ingest) as c:
        assert c.post("/v1/events", json={"events": toys}).json()["accepted"] == 3
    with server.client(server.read) as c:
        after = _slate(c, user_id=user, anonymous_id=anon, session_id=session)
    assert _toys_share(after) >= 0.8, (after["items"], after["explain"]["affinities"])


def test_lookalike_speaks_only_for_short_histories(server: Server) -> None:
    rng = random.Random(secrets.randbits(32))
    shown: dict[int, set[str]] = {}
    for n in (1, 2, 5):
        anon, session = f"new-{secrets.token_hex(3)}", f"s-{secrets.token_hex(3)}"
        clicks = [event("view", anon, session=session, offset_s=i - 10, item_id=item)
                  for i, item in enumerate(rng.sample(TOYS, n))]
        with server.client(server.ingest) as c:
            assert c.post("/v1/events", json={"events": clicks}).json()["accepted"] == n
        with server.client(server.read) as c:
            slate = _slate(c, anonymous_id=anon, session_id=session)
        shown[n] = {s for it in slate["explain"]["items"] for s in it["sources"]}
        if n <= 2:
            assert _toys_share(slate) >= 0.8, slate["items"]
    assert "lookalike" in shown[1] and "lookalike" in shown[2], shown
    assert "lookalike" not in shown[5], shown


def test_experiment_report_endpoint(server: Server) -> None:
    with server.client(server.experiments) as c:
        r = c.get("/v1/experiments/home-slate/report")
        assert r.status_code == 200, r.text
        doc = r.json()
        assert sum(doc["exposures"].values()) == 400 and not doc["srm"]["mismatch"]
        conv = {m["arm"]: m for m in doc["metrics"] if m["metric"] == "conversion" and not m["cuped"]}
        assert conv["lookalike"]["diff_ci_low"] > 0 and conv["lookalike"]["p_value"] < 0.001
        assert {g["metric"] for g in doc["guardrails"]} == {"revenue"}
        missing = c.get("/v1/experiments/nope/report")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    with server.client(server.read) as c:
        assert c.get("/v1/experiments/home-slate/report").status_code == 403

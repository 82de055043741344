"""POST /v1/search against a real ``shopkeep serve`` process (hashing encoder, SQLite store)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shopkeep.cli.demo_service import free_port, wait_ready
from shopkeep.serving.auth import hash_entries

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from conftest import Service, build_store, stop  # type: ignore[import-not-found]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("search-serve")
    uri, artifacts, snapshot = build_store(folder, n_items=300)
    read = secrets.token_urlsafe(12)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPKEEP_")}
    env.update(PYTHONUNBUFFERED="1", SHOPKEEP_SERVING__API_KEYS=hash_entries(f"{read}:read+search"),
               SHOPKEEP_SEARCH_ENCODER="hashing",
               SHOPKEEP_CACHE_DIR=str(folder / "cache"))
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "shopkeep.cli.main", "serve", "--store", uri, "--artifacts",
                             str(artifacts), "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, 90.0, proc)
        yield Service(base, read, "", "", snapshot, uri, artifacts, proc)
    finally:
        stop(proc)


def test_search_answers_parsed_constraints_and_items(service: Service) -> None:
    with service.client(service.read) as c:
        r = c.post("/v1/search", json={"query": "fragrance-free moisturizer under $60", "anonymous_id": "a1",
                                       "k": 5, "explain": True})
        assert r.status_code == 200, r.text
        body = r.json()
        labels = {x["label"] for x in body["parsed"]["constraints"]}
        assert {"fragrance_free=true", "category=moisturizer", "price<=6000"} <= labels
        assert body["trace_id"] and body["relaxed"] == [] and "explain" in body
        snap = service.snapshot
        for it in body["items"]:
            item = snap.items[snap.index[it["item_id"]]]
            assert item.attributes.get("fragrance_free") is True
            assert "Moisturizer" in item.category and it["price"]["amount"] <= 6000


def test_search_relaxes_and_says_which(service: Service) -> None:
    with service.client(service.read) as c:
        r = c.post("/v1/search", json={"query": "sunscreen spf 95", "anonymous_id": "a2", "k": 3})
        body = r.json()
        assert r.status_code == 200 and [x["label"] for x in body["relaxed"]] == ["spf>=95"]
        assert body["items"], "a relaxed query with results must not answer nothing"


def test_search_errors_use_the_envelope(service: Service) -> None:
    with service.client(service.read) as c:
        assert c.post("/v1/search", json={"query": "", "anonymous_id": "a"}).status_code == 422
        r = c.post("/v1/search", json={"query": "dress", "anonymous_id": "a", "filters": {"colour": "red"}})
        assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "filters.colour"
    with httpx.Client(base_url=service.base) as anon:
        assert anon.post("/v1/search", json={"query": "dress", "anonymous_id": "a"}).status_code == 401

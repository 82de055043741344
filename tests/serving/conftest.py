"""A real ``shopkeep serve`` process on a free loopback port over a small synthetic store (SQLite file),
with trained artifacts and API keys for each scope; tests talk to it with httpx only."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopkeep.catalog import CatalogRepository
from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.cli.demo_service import free_port, start_server, wait_ready
from shopkeep.pipeline.artifacts import train_artifacts
from shopkeep.pipeline.ingest import Ingestor
from shopkeep.simulate import StoreConfig, event_to_wire, generate_store
from shopkeep.storage import open_store

#: The scopes of the "read" key: what a storefront calls (recommendations, search, concierge, offers, why).
STOREFRONT = "read+search+concierge+offers+transparency"


@dataclass
class Service:
    """A running server and what the tests need to talk to it."""

    base: str
    read: str
    ingest: str
    admin: str
    snapshot: CatalogSnapshot
    store_uri: str
    artifacts: Path
    proc: subprocess.Popen[bytes]

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30.0)


def build_store(folder: Path, *, n_items: int = 400, seed: int = 3) -> tuple[str, Path, CatalogSnapshot]:
    """A SQLite store with a synthetic catalog and event log, and trained artifacts beside it."""
    synthetic = generate_store(StoreConfig(n_items=n_items, n_shoppers=250, n_days=5, seed=seed))
    uri = f"sqlite:///{folder}/store.db"
    store = open_store(uri)
    try:
        CatalogRepository(store).upsert_many(synthetic.items)
        Ingestor(store).ingest_batch([event_to_wire(e) for e in synthetic.events])
        train_artifacts(store, folder / "artifacts", ["itemknn"])
        snapshot = CatalogSnapshot.from_items(synthetic.items)
    finally:
        store.close()
    return uri, folder / "artifacts", snapshot


def launch(folder: Path, uri: str, artifacts: Path, snapshot: CatalogSnapshot, *, workers: int = 1,
           online: str = "memory://") -> Service:
    """Start ``shopkeep serve`` with one key per scope and wait for /healthz."""
    read, ingest, admin = (secrets.token_urlsafe(12) for _ in range(3))
    port = free_port()
    proc = start_server(uri, artifacts, port, keys=f"{read}:{STOREFRONT},{ingest}:ingest,{admin}:admin",
                        workers=workers, online=online, log_file=folder / f"server-{port}.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, 90.0, proc, workers=workers)
    except BaseException:
        stop(proc)
        raise
    return Service(base, read, ingest, admin, snapshot, uri, artifacts, proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server and wait for it."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One server per test module (auth on, memory:// online state, one worker)."""
    folder = tmp_path_factory.mktemp("serve")
    uri, artifacts, snapshot = build_store(folder)
    svc = launch(folder, uri, artifacts, snapshot)
    try:
        yield svc
    finally:
        stop(svc.proc)


def now_iso(offset_s: float = 0.0) -> str:
    """Now (+ offset) as an ISO timestamp with Z."""
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


def event(kind: str, anon: str, *, session: str | None = None, offset_s: float = 0.0, **fields: Any) -> dict[str, Any]:
    """A wire event with a fresh id."""
    out: dict[str, Any] = {"event_id": f"t-{secrets.token_hex(8)}", "type": kind, "anonymous_id": anon,
                           "timestamp": now_iso(offset_s), **fields}
    if session is not None:
        out["session_id"] = session
    return out

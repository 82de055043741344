"""Serving worker processes: native thread pools (BLAS/OpenMP) capped so that workers do not oversubscribe the
cores; the heap loaded at start-up frozen out of the cyclic collector."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_limit_native_threads_caps_every_pool_in_the_process() -> None:
    # a fresh interpreter: the cap is process-wide and must not leak into this test process
    code = (
        "import numpy, lightgbm\n"
        "from threadpoolctl import threadpool_info\n"
        "from shopkeep.serving.asgi import limit_native_threads\n"
        "limit_native_threads(1)\n"
        "pools = threadpool_info()\n"
        "assert pools, 'no native thread pool found'\n"
        "print(sorted({p['num_threads'] for p in pools}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[1]", out.stdout + out.stderr


def test_a_started_app_freezes_the_heap_it_loaded(tmp_path: Path) -> None:
    # a fresh interpreter: gc.freeze is process-wide. The app's start-up moves what it loaded (the catalog
    # snapshot) out of the collector's generations, so a full collection no longer walks the catalog
    uri = f"sqlite:///{tmp_path}/s.db"
    code = (
        "import gc\n"
        "from fastapi.testclient import TestClient\n"
        "from shopkeep.catalog import CatalogRepository\n"
        "from shopkeep.config import load_config\n"
        "from shopkeep.serving.app import create_app\n"
        "from shopkeep.simulate import StoreConfig, generate_store\n"
        "from shopkeep.storage import open_store\n"
        f"store = open_store({uri!r})\n"
        "items = generate_store(StoreConfig(n_items=300, n_shoppers=20, n_days=1)).items\n"
        "CatalogRepository(store).upsert_many(items)\n"
        "store.close()\n"
        "assert gc.get_freeze_count() == 0\n"
        f"app = create_app(load_config(None, env={{'SHOPKEEP_STORAGE__URI': {uri!r}}}), auth=False)\n"
        "with TestClient(app) as client:\n"
        "    items = client.app.state.engine.read_view()[0].items\n"
        "    frozen = gc.get_freeze_count()\n"
        "    assert client.get('/healthz').status_code == 200\n"
        "young = {id(o) for o in gc.get_objects()}\n"
        "print(frozen, len(items), sum(id(it) in young for it in items))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    frozen, n_items, tracked = (int(v) for v in out.stdout.split())
    assert n_items == 300 and frozen > 10 * n_items, out.stdout
    assert tracked == 0, f"{tracked} of the snapshot's items are still in the collector's generations"

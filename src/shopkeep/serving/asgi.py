"""The ASGI entry point for ``uvicorn --factory`` (one call per worker process).

``shopkeep serve`` passes everything through the environment: ``SHOPKEEP_CONFIG_FILE`` (optional
TOML file), the usual ``SHOPKEEP_<SECTION>__<KEY>`` overrides, ``SHOPKEEP_ONLINE_URI`` (online state),
``SHOPKEEP_WATCH_S`` (how often to look for newer artifacts; 0 = never), ``SHOPKEEP_RETRIEVAL_K``
(candidates per request, default 500), ``SHOPKEEP_BLAS_THREADS`` (BLAS/OpenMP threads per worker,
default 1).
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from shopkeep.config import load_config
from shopkeep.pipeline.engine import RETRIEVAL_K, Engine
from shopkeep.serving.app import create_app

__all__ = ["app_from_env"]


def limit_native_threads(n: int) -> None:
    """Cap BLAS and OpenMP thread pools (numpy's OpenBLAS, LightGBM, faiss) at ``n`` in this process.

    A worker serves one request at a time per core; a BLAS pool of one thread per core on top of that
    oversubscribes the machine (measured here: a 1,700 x 384 matrix-vector product took 16 ms with
    OpenBLAS's pool on the loaded 2-core box, 0.2 ms in one thread)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # a dependency of implicit

    threadpool_limits(limits=n)


def app_from_env() -> FastAPI:
    """Build this worker's app and engine from the environment."""
    limit_native_threads(int(os.environ.get("SHOPKEEP_BLAS_THREADS", "1") or 1))
    config = load_config(os.environ.get("SHOPKEEP_CONFIG_FILE") or None)
    engine = Engine.open(config, online_uri=os.environ.get("SHOPKEEP_ONLINE_URI") or None,
                         retrieval_k=int(os.environ.get("SHOPKEEP_RETRIEVAL_K", RETRIEVAL_K)))
    if config.bus.uri:  # publish accepted events for `shopkeep worker` (pipeline/worker.py)
        from shopkeep.events.bus import open_bus
        from shopkeep.pipeline.worker import attach_publisher

        attach_publisher(engine, open_bus(config.bus.uri))
    watch = float(os.environ.get("SHOPKEEP_WATCH_S", "0") or 0)
    if watch > 0:
        engine.watch_artifacts(config.serving.artifacts_dir, interval_s=watch)
    return create_app(config, engine, owns_engine=True)

"""The ASGI entry point for ``uvicorn --factory`` (one call per worker process).

``shopkeep serve`` passes everything through the environment: ``SHOPKEEP_CONFIG_FILE`` (optional
TOML file), the usual ``SHOPKEEP_<SECTION>__<KEY>`` overrides, ``SHOPKEEP_ONLINE_URI`` (online state),
``SHOPKEEP_WATCH_S`` (how often to look for newer artifacts; 0 = never), ``SHOPKEEP_RETRIEVAL_K``
(candidates per request, default 500).
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from shopkeep.config import load_config
from shopkeep.pipeline.engine import RETRIEVAL_K, Engine
from shopkeep.serving.app import create_app

__all__ = ["app_from_env"]


def app_from_env() -> FastAPI:
    """Build this worker's app and engine from the environment."""
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

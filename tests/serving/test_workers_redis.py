"""Two worker processes sharing the real Redis: an event posted to one worker shows in the very next
recommendation, whichever worker answers it."""

from __future__ import annotations

import random
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.serving.conftest import Service, build_store, event, launch, stop
from tests.serving.test_behaviour_http import _attribute_values, _share

from shopkeep.cli.demo_service import wait_ready


def test_two_workers_share_hot_state_through_redis(tmp_path: Path, redis_uri: str) -> None:
    import redis

    prefix = f"t-{secrets.token_hex(6)}:"
    uri, artifacts, snap = build_store(tmp_path, n_items=300, seed=11)
    svc = launch(tmp_path, uri, artifacts, snap, workers=2, online=f"{redis_uri}?prefix={prefix}")
    try:
        # launch() waited until both workers answered /healthz, not only the first to finish loading
        assert wait_ready(svc.base, 10.0, workers=2) < 10.0
        with pytest.raises(TimeoutError, match="2 of 3 worker"):
            wait_ready(svc.base, 1.5, workers=3)
        pids = set()
        rng = random.Random(secrets.randbits(32))
        values = _attribute_values(snap)
        for trial in range(6):
            anon, session = f"w-{trial}-{secrets.token_hex(3)}", f"s-{secrets.token_hex(3)}"
            key, value = rng.choice(values)
            viewed = rng.choice(snap.item_ids)
            # a fresh connection per call: uvicorn's workers share the socket, so calls spread over both
            filters = [event("filter", anon, session=session, attribute=key, value=value, offset_s=j - 4)
                       for j in range(3)]
            assert _post(svc, filters) == 3
            mask = snap.attribute_mask(key, value)
            assert _share(snap, _items(_get(svc, anon, session)), mask) >= 0.7, (key, value)
            assert _post(svc, [event("view", anon, session=session, item_id=viewed)]) == 1
            assert viewed in _get(svc, anon, session)["explain"]["recent_items"]
        for _ in range(40):
            with httpx.Client(base_url=svc.base) as c:
                pids.add(c.get("/healthz").json()["worker_pid"])
        assert len(pids) == 2, f"both workers answer: {pids}"
    finally:
        stop(svc.proc)
        client = redis.Redis.from_url(redis_uri)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_serve_refuses_several_workers_on_memory_state(capsys: pytest.CaptureFixture[str]) -> None:
    from shopkeep.cli.main import main

    assert main(["serve", "--workers", "2", "--online", "memory://"]) == 2
    assert "needs a shared online state" in capsys.readouterr().err


def _post(svc: Service, events: list[dict[str, Any]]) -> int:
    with httpx.Client(base_url=svc.base, headers={"Authorization": f"Bearer {svc.admin}"}) as c:
        accepted: int = c.post("/v1/events", json={"events": events}).json()["accepted"]
        return accepted


def _get(svc: Service, anon: str, session: str) -> dict[str, Any]:
    with httpx.Client(base_url=svc.base, headers={"Authorization": f"Bearer {svc.admin}"}) as c:
        body: dict[str, Any] = c.get("/v1/recommendations", params={"anonymous_id": anon, "session_id": session,
                                                                    "k": 10, "explain": "true"}).json()
        return body


def _items(body: dict[str, Any]) -> list[str]:
    return [it["item_id"] for it in body["items"]]

"""Signed webhooks over a real ``shopkeep serve`` process: a correct HMAC signature stores the events,
anything else (wrong secret, tampered body, stale or missing timestamp) answers 401 in the error
envelope and stores nothing."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.serving.conftest import build_store, event, stop

from shopkeep.cli.demo_service import free_port, wait_ready
from shopkeep.config import Config, WebhooksConfig
from shopkeep.errors import ValidationError
from shopkeep.serving.routes_webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify
from shopkeep.storage import open_store

SECRET = "whsec-" + secrets.token_hex(16)


@dataclass
class Server:
    base: str
    store_uri: str
    proc: subprocess.Popen[bytes]


def launch_with_config(folder: Path, toml: str, *, online: str = "memory://", workers: int = 1,
                       n_items: int = 200) -> Server:
    """``shopkeep --config FILE serve`` (auth off, loopback) over a small synthetic store."""
    uri, artifacts, _ = build_store(folder, n_items=n_items)
    cfg = folder / "shopkeep.toml"
    cfg.write_text(toml, encoding="utf-8")
    port = free_port()
    cmd = [sys.executable, "-m", "shopkeep.cli.main", "--config", str(cfg), "serve", "--store", uri, "--artifacts",
           str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--online", online,
           "--no-auth"]
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPKEEP_")}
    log = (folder / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, 90.0, proc)
    except BaseException:
        stop(proc)
        raise
    return Server(base, uri, proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("webhooks")
    srv = launch_with_config(folder, f'[webhooks]\nsecret = "{SECRET}"\ntolerance_s = 120\n')
    try:
        yield srv
    finally:
        stop(srv.proc)


def _stored(srv: Server) -> int:
    store = open_store(srv.store_uri)
    try:
        return store.log_count("events")
    finally:
        store.close()


def _post(srv: Server, body: bytes, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=srv.base, timeout=30.0) as c:
        return c.post("/v1/webhooks/events", content=body, headers={"Content-Type": "application/json", **headers})


def _signed(body: bytes, *, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    return {SIGNATURE_HEADER: sign(secret.encode(), ts, body), TIMESTAMP_HEADER: str(ts)}


def _body(n: int = 3) -> tuple[bytes, list[dict[str, Any]]]:
    events = [event("view", f"wh-{secrets.token_hex(3)}", item_id=f"x{i}") for i in range(n)]
    return orjson.dumps({"events": events}), events


def test_a_correctly_signed_request_is_stored_and_a_replay_changes_nothing(server: Server) -> None:
    before = _stored(server)
    body, _ = _body(3)
    headers = _signed(body)
    r = _post(server, body, headers)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 3
    assert _stored(server) == before + 3
    again = _post(server, body, headers)  # the same request replayed inside the window
    assert again.status_code == 200 and again.json()["duplicates"] == 3 and again.json()["accepted"] == 0
    assert _stored(server) == before + 3


@pytest.mark.parametrize("case", ["wrong_secret", "tampered_body", "stale", "future", "no_signature",
                                  "no_timestamp", "not_sha256", "timestamp_moved"])
def test_a_bad_signature_is_refused_with_401_and_nothing_is_stored(server: Server, case: str) -> None:
    before = _stored(server)
    body, _ = _body(2)
    now = int(time.time())
    headers = _signed(body)
    if case == "wrong_secret":
        headers = _signed(body, secret=SECRET + "x")
    elif case == "tampered_body":
        body = body.replace(b'"view"', b'"purchase"', 1)
    elif case == "stale":
        headers = _signed(body, ts=now - 3600)
    elif case == "future":
        headers = _signed(body, ts=now + 3600)
    elif case == "no_signature":
        del headers[SIGNATURE_HEADER]
    elif case == "no_timestamp":
        del headers[TIMESTAMP_HEADER]
    elif case == "not_sha256":
        headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER].replace("sha256=", "md5=")
    elif case == "timestamp_moved":  # a stale signature with a fresh timestamp header
        headers = {**_signed(body, ts=now - 3600), TIMESTAMP_HEADER: str(now)}
    r = _post(server, body, headers)
    assert r.status_code == 401, r.text
    err = r.json()["error"]
    assert err["code"] == "unauthorized" and err["message"]
    assert _stored(server) == before


def test_a_signed_but_malformed_body_is_a_clear_422(server: Server) -> None:
    before = _stored(server)
    for body in (b"{not json", b'{"events": 5}', b'[1, 2]'):
        r = _post(server, body, _signed(body))
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_input"
    assert _stored(server) == before


def test_webhooks_are_off_without_a_secret() -> None:
    from fastapi.testclient import TestClient

    from shopkeep.pipeline.engine import Engine
    from shopkeep.serving.app import create_app
    from shopkeep.storage import open_online_state

    config = Config()
    engine = Engine(open_store("memory://"), open_online_state("memory://"), config)
    with TestClient(create_app(config, engine, auth=False, owns_engine=True)) as client:
        body = b'{"events": []}'
        r = client.post("/v1/webhooks/events", content=body, headers=_signed(body))
    assert r.status_code == 401 and "webhooks.secret" in r.json()["error"]["message"]


def test_verify_uses_the_window_edges() -> None:
    body = b"{}"
    ok = sign(b"k", 1000, body)
    verify(b"k", ok, "1000", body, tolerance_s=60, now_s=1060)
    with pytest.raises(Exception, match="replay window"):
        verify(b"k", ok, "1000", body, tolerance_s=60, now_s=1061)
    assert WebhooksConfig().secret == ""
    with pytest.raises(ValidationError):
        from shopkeep.serving.routes_webhooks import _events

        _events(b'{"events": [1]}')

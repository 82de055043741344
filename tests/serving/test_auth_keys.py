"""Keys stored hashed (plaintext refused outside the dev demo), a keys file, ``shopkeep keys create`` end to
end, CORS preflight from configured origins, and no key or shopper id in the log output of real requests."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shopkeep.cli.main import main
from shopkeep.config import Config
from shopkeep.errors import ConfigError
from shopkeep.pipeline.engine import Engine
from shopkeep.serving.app import create_app
from shopkeep.serving.auth import ApiKeys, hash_entries, hash_key
from shopkeep.simulate import StoreConfig, generate_store
from shopkeep.storage import open_online_state, open_store

from .conftest import event


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(open_store(f"sqlite:///{tmp_path}/s.db"), open_online_state("memory://"), Config())
    eng.upsert_items(list(generate_store(StoreConfig(n_items=100, n_shoppers=3, n_days=1, seed=2)).items))
    yield eng
    eng.close()


def _client(engine: Engine, **serving: object) -> TestClient:
    return TestClient(create_app(Config(serving=replace(Config().serving, **serving)), engine,  # type: ignore[arg-type]
                                 auth=True))


def test_plaintext_keys_are_refused_unless_the_dev_flag_is_on() -> None:
    with pytest.raises(ConfigError, match="entry 1 holds a plaintext key"):
        ApiKeys.parse("s3cret:read")
    assert ApiKeys.parse("s3cret:read", allow_plaintext=True).scopes_of("s3cret") == frozenset({"read"})
    hashed = ApiKeys.parse(hash_key("s3cret") + ":read+search")
    assert hashed.scopes_of("s3cret") == frozenset({"read", "search"}) and hashed.scopes_of("s3cret ") is None
    assert "s3cret" not in repr(hashed)
    two = hash_key("same"), hash_key("same")
    assert two[0] != two[1]  # salted: equal keys, different stored hashes
    with pytest.raises(ConfigError, match="64 hex digits"):
        ApiKeys.parse("sha256:salt:abc:read")
    with pytest.raises(ConfigError, match="unknown scopes"):
        ApiKeys.parse(hash_key("k") + ":reed")


def test_keys_create_prints_a_working_key_once(engine: Engine, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--scopes", "read,search", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    key, entry = made["key"], made["entry"]
    assert key.startswith("sk_") and len(key) > 40 and key not in entry and entry.endswith(":read+search")
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# storefront\n{entry}\n")
    with _client(engine, api_keys="", api_keys_file=str(keys_file)) as client:
        auth = {"Authorization": f"Bearer {key}"}
        assert client.get("/v1/policies", headers=auth).status_code == 200
        assert client.post("/v1/search", json={"query": "x", "anonymous_id": "a"}, headers=auth).status_code == 200
        assert client.get("/v1/audit/decisions", headers=auth).status_code == 403
        assert client.get("/v1/policies", headers={"X-API-Key": key + "x"}).status_code == 401
    assert main(["keys", "create", "--scopes", "read,nope"]) == 2


def test_cors_preflight_from_configured_origins_only(engine: Engine) -> None:
    entries = hash_entries("cors-key-0123456789:read")
    with _client(engine, api_keys=entries, cors_origins="https://shop.example, https://admin.example/") as client:
        pre = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
        ok = client.options("/v1/recommendations", headers={"Origin": "https://admin.example", **pre})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://admin.example"
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        bad = client.options("/v1/recommendations", headers={"Origin": "https://evil.example", **pre})
        assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers
        got = client.get("/v1/policies", headers={"Origin": "https://shop.example",
                                                  "Authorization": "Bearer cors-key-0123456789"})
        assert got.status_code == 200 and got.headers["access-control-allow-origin"] == "https://shop.example"
    with _client(engine, api_keys=entries) as client:  # no origins configured: no CORS headers at all
        r = client.options("/v1/recommendations", headers={"Origin": "https://shop.example", **pre})
        assert "access-control-allow-origin" not in r.headers


def test_no_key_or_shopper_id_in_the_logs(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    secret, stranger, user, anon = "log-key-Zx81kQ", "stranger-key-Pq55", "user-mail-7731@example.com", "anon-9931"
    item = engine.read_view()[0].items[0].item_id
    caplog.set_level(logging.DEBUG)
    with _client(engine, api_keys=hash_entries(f"{secret}:admin"), rate_limit_per_s=1000.0) as client:
        auth = {"Authorization": f"Bearer {secret}"}
        calls = [
            client.post("/v1/events", headers=auth, json={"events": [
                event("view", anon, user_id=user, item_id=item), event("nope", anon, user_id=user)]}),
            client.get("/v1/recommendations", headers=auth, params={"user_id": user, "anonymous_id": anon}),
            client.post("/v1/search", headers=auth, json={"query": "cream", "user_id": user}),
            client.get(f"/v1/users/{user}", headers=auth),
            client.put(f"/v1/transparency/settings/{user}", headers=auth, json={"personalization": "maybe"}),
            client.get("/v1/recommendations", headers={"Authorization": f"Bearer {stranger}"},
                       params={"user_id": user}),
            client.get(f"/v1/users/{user}", headers={"X-API-Key": stranger}),
            client.delete(f"/v1/users/{user}", headers=auth),
        ]
    assert [c.status_code for c in calls] == [200, 200, 200, 200, 422, 401, 401, 200]
    client_side = ("httpx", "httpx2", "httpcore")  # the test client's own request log, not the server's
    server = [r for r in caplog.records if not r.name.startswith(client_side)]
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in server)
    assert server, "the server logged nothing: the check would be vacuous"
    for needle in (secret, stranger, user, user.replace("@", "%40"), anon):
        assert needle not in text, f"{needle!r} appears in the log output"

"""Every route of the OpenAPI schema, called with a key of every scope (and none), answers exactly as the
declared table ``shopkeep.serving.auth.ROUTE_SCOPES`` says: allowed -> 2xx (or, for the few routes listed
in REACHED, the handler's own 404/409/422, never 401/403), refused -> 403 in the envelope naming the scope.

A route missing from ROUTE_SCOPES fails ``test_every_route_declares_its_scope`` (by name) and the walk;
a route whose guard differs from its declaration fails the walk. The MCP tools are walked the same way
through ``build_server`` over an authenticated client (their scope is that of the route they call).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shopkeep.config import Config
from shopkeep.pipeline.engine import Engine
from shopkeep.serving.app import create_app
from shopkeep.serving.auth import ADMIN_OR_SHOPPER, PUBLIC, ROUTE_SCOPES, SCOPES, SHOPPER, SIGNED, hash_entries
from shopkeep.simulate import StoreConfig, generate_store
from shopkeep.storage import open_online_state, open_store

from .conftest import event

KEYS = {scope: f"key-{scope}-0123456789" for scope in SCOPES}
#: Routes whose allowed call may answer the handler's own error (the example cannot make it succeed here).
REACHED = {"POST /v1/search/similar": (404, 422), "POST /v1/catalog/proposals/approve": (404,),
           "GET /v1/experiments/{experiment_id}/report": (404,),
           "POST /v1/operators/proposals/{proposal_id}/approve": (404, 409),
           "POST /v1/operators/proposals/{proposal_id}/reject": (404, 409),
           "GET /v1/operators/proposals/{proposal_id}": (404,)}


@dataclass
class Env:
    client: TestClient
    engine: Engine
    item: str
    trace_id: str = ""
    decision_id: str = ""


def _call(env: Env, route: str, key: str | None) -> Any:
    method, path = route.split(" ", 1)
    params, body = _example(env, route)
    for name, value in {"item_id": env.item, "trace_id": env.trace_id, "decision_id": env.decision_id,
                        "user_id": "walk-user", "experiment_id": "exp-none", "proposal_id": "prop-none"}.items():
        path = path.replace("{" + name + "}", value)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return env.client.request(method, path, params=params, json=body, headers=headers)


def _example(env: Env, route: str) -> tuple[dict[str, Any], Any]:
    """Query parameters and JSON body that make ``route`` succeed on the walk's store."""
    search = {"query": "cream", "anonymous_id": "walk-anon", "k": 3}
    offer = {"shopper_key": "psk-walk", "item": {"item_id": env.item, "price": {"amount": 4000, "currency": "USD"},
                                                 "cost": {"amount": 2000, "currency": "USD"}},
             "features": {"loyalty_member": 1, "deal_affinity": 1.0, "engagement": 0.0, "log_price": 3.7,
                          "offers_seen": 0}}
    examples: dict[str, tuple[dict[str, Any], Any]] = {
        "POST /v1/events": ({}, {"events": []}),
        "GET /v1/recommendations": ({"anonymous_id": "walk-anon", "k": 3}, None),
        "PUT /v1/items/{item_id}": ({}, env.engine.get_item(env.item)),
        "PUT /v1/policies": ({}, env.engine.policy_dict()),
        "POST /v1/search": ({}, search),
        "POST /v1/transparency/search": ({}, search),
        "GET /v1/transparency/recommendations": ({"anonymous_id": "walk-anon", "k": 3}, None),
        "GET /v1/transparency/offers/{decision_id}": ({"shopper_key": "psk-walk"}, None),
        "PUT /v1/transparency/settings/{user_id}": ({}, {"personalization": True}),
        "POST /v1/search/similar": ({}, {"item_id": env.item}),
        "POST /v1/concierge/messages": ({}, {"conversation_id": "walk-c", "message": "a gift",
                                             "anonymous_id": "walk-anon"}),
        "POST /v1/offers/decide": ({}, offer),
        "POST /v1/offers/whatif": ({}, {"seed": 1, "margin_weights": [0], "budgets": [0], "n_log": 300,
                                        "n_eval": 50}),
        "POST /v1/catalog/proposals/approve": ({}, {"ids": ["walk@none#1"]}),
        "GET /v1/agents/policy": ({"item_id": env.item}, None),
        "POST /v1/agents/offer-eligibility": ({}, {"user_id": "walk-user", "item_id": env.item}),
        "POST /v1/agents/grants": ({}, {"user_id": "walk-user", "scopes": ["orders"]}),
        "POST /v1/operators/proposals/{proposal_id}/approve": ({}, {"by": "walk"}),
        "POST /v1/operators/proposals/{proposal_id}/reject": ({}, {"by": "walk"}),
        "POST /v1/onboarding/next": ({}, {"anonymous_id": "walk-anon"}),
        "POST /v1/onboarding/answers": ({}, {"user_id": "walk-user", "answers": {}, "consent": True}),
    }
    return examples.get(route, ({}, None))


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    mp = pytest.MonkeyPatch()
    mp.setenv("SHOPKEEP_SEARCH_ENCODER", "hashing")
    items = list(generate_store(StoreConfig(n_items=120, n_shoppers=5, n_days=1, seed=5)).items)
    engine = Engine(open_store("memory://"), open_online_state("memory://"), Config())
    engine.upsert_items(items)
    keys = hash_entries(",".join(f"{key}:{scope}" for scope, key in KEYS.items()))
    config = Config(serving=replace(Config().serving, api_keys=keys))
    with TestClient(create_app(config, engine, auth=True)) as client:
        e = Env(client, engine, items[0].item_id)
        admin = {"Authorization": f"Bearer {KEYS['admin']}"}
        assert client.post("/v1/events", json={"events": [event("view", "walk-anon", item_id=e.item)]},
                           headers=admin).status_code == 200
        e.trace_id = client.get("/v1/recommendations", params={"anonymous_id": "walk-anon"},
                                headers=admin).json()["trace_id"]
        body = _example(e, "POST /v1/offers/decide")[1]
        e.decision_id = client.post("/v1/offers/decide", json=body, headers=admin).json()["decision_id"]
        yield e
    mp.undo()


def _routes(client: TestClient) -> list[str]:
    schema = client.get("/openapi.json").json()
    return [f"{method.upper()} {path}" for path, ops in schema["paths"].items() for method in ops]


def test_every_route_declares_its_scope(env: Env) -> None:
    missing = [r for r in _routes(env.client) if r not in ROUTE_SCOPES]
    assert not missing, f"routes without a declared scope: add them to shopkeep.serving.auth.ROUTE_SCOPES: {missing}"
    stale = sorted(set(ROUTE_SCOPES) - set(_routes(env.client)))
    assert not stale, f"ROUTE_SCOPES declares routes the app no longer has: {stale}"
    assert {s for s in ROUTE_SCOPES.values()} <= {*SCOPES, PUBLIC, SIGNED, SHOPPER, ADMIN_OR_SHOPPER}


def _expect_allowed(route: str, res: Any, who: str) -> None:
    ok = 200 <= res.status_code < 300 or res.status_code in REACHED.get(route, ())
    assert ok, f"{route} with {who}: expected success, got {res.status_code} {res.text[:300]}"


def test_every_route_with_every_scope(env: Env) -> None:
    checked = 0
    for route in _routes(env.client):
        guard = ROUTE_SCOPES.get(route)
        assert guard is not None, f"{route} has no declared scope in shopkeep.serving.auth.ROUTE_SCOPES"
        anonymous = _call(env, route, None)
        if guard == PUBLIC:
            _expect_allowed(route, anonymous, "no key")
        else:
            assert anonymous.status_code == 401, (route, anonymous.status_code)
            assert anonymous.json()["error"]["code"] == "unauthorized"
        for scope, key in KEYS.items():
            res = _call(env, route, key)
            if guard == PUBLIC or (guard in SCOPES and scope in (guard, "admin")) or \
                    (guard == ADMIN_OR_SHOPPER and scope == "admin"):
                _expect_allowed(route, res, f"a {scope!r} key")
            elif guard in (SIGNED, SHOPPER, ADMIN_OR_SHOPPER):
                assert res.status_code == 401, (route, scope, res.status_code)  # a key is not a signature/token
            else:
                assert res.status_code == 403, f"{route} with a {scope!r} key: expected 403, got {res.status_code}"
                assert res.json()["error"] == {"code": "forbidden", "message": f"this API key lacks the {guard!r} "
                                               "scope", "details": {"scope": guard}}
            checked += 1
    assert checked == len(_routes(env.client)) * len(KEYS) and len(_routes(env.client)) >= 49


def test_mcp_tools_forward_the_key_and_obey_its_scopes(env: Env) -> None:
    import httpx

    from shopkeep.serving.mcp_server import TOOL_ROUTES, build_server

    async def walk() -> dict[tuple[str, str], bool]:
        out = {}
        for scope, key in KEYS.items():
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=env.client.app), base_url="http://t",
                                       headers={"Authorization": f"Bearer {key}"})
            server = build_server(client)
            tools = {t.name for t in await server.list_tools()}
            assert tools == set(TOOL_ROUTES), f"MCP tools without a declared route: {tools - set(TOOL_ROUTES)}"
            for tool, (route, args) in TOOL_ROUTES.items():
                if ROUTE_SCOPES[route] == SHOPPER:
                    continue  # a shopper token, not the key (tests/mcp covers it)
                call = {k: (env.item if v == "{item}" else v) for k, v in args.items()}
                try:
                    await server.call_tool(tool, call)
                    out[(tool, scope)] = True
                except Exception as exc:  # the SDK raises ToolError with the envelope's code
                    assert "forbidden" in str(exc), (tool, scope, str(exc))
                    out[(tool, scope)] = False
            await client.aclose()
        return out

    outcome = asyncio.run(walk())
    assert any(outcome.values()) and not all(outcome.values())
    for (tool, scope), allowed in outcome.items():
        route = TOOL_ROUTES[tool][0]
        assert allowed == (scope in (ROUTE_SCOPES[route], "admin")), (tool, scope, route)

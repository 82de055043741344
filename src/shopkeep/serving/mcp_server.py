"""An MCP server (official ``mcp`` SDK, ``MCPServer``) exposing shopkeep to AI shopping agents.

Every tool is one request to the shopkeep HTTP API and answers its JSON unchanged, so an agent only
ever sees governed data (catalog, inventory, policy, the engine's slates), never invented facts:

* ``search_products(query, k)`` → ``POST /v1/search``
* ``get_product(item_id)`` → ``GET /v1/agents/products/{id}``
* ``check_availability(item_id, location)`` → ``GET /v1/agents/availability/{id}``
* ``get_policy(item_id, region)`` → ``GET /v1/agents/policy``
* ``recommend(user_id | anonymous_id, surface, item_id, k)`` → ``GET /v1/recommendations``
* ``get_offer(user_id, item_id)`` → ``POST /v1/agents/offer-eligibility``
* ``explain_recommendation(trace_id)`` → ``GET /v1/agents/explanations/{trace_id}``; without a trace id, the
  request (user/anonymous id, surface, item) is answered by ``GET /v1/recommendations?explain=true``
* ``get_my_context(shopper_token)`` → ``GET /v1/agents/me/context`` (a token the shopper granted)

:func:`remote_client` talks to a running service (``shopkeep mcp --api URL --api-key K``): every tool call
carries the key, so the service's scopes apply to the agent exactly as to any client (``search_products``
needs ``search``, the others ``read``; see :data:`TOOL_ROUTES`). :func:`local_client` serves the same routes
in-process over an :class:`Engine` with auth off (``shopkeep mcp`` without ``--api``: whoever runs it
already holds the store).
An API error becomes a tool error carrying the error envelope's code and message.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from shopkeep import __version__
from shopkeep.config import Config
from shopkeep.pipeline.engine import Engine

__all__ = ["TOOL_ROUTES", "build_server", "local_client", "remote_client"]

_INSTRUCTIONS = ("shopkeep answers from the merchant's governed catalog, inventory and policy. Quote prices as "
                 "display_price (never below MAP); every item, price and reason comes from the tool results.")


#: The route each tool calls (its scope is that route's in ``serving.auth.ROUTE_SCOPES``: with ``--api`` the
#: forwarded key must carry it) and example arguments (``{item}`` = a catalog item id) for the scope walk test.
TOOL_ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "search_products": ("POST /v1/search", {"query": "cream", "k": 3}),
    "get_product": ("GET /v1/agents/products/{item_id}", {"item_id": "{item}"}),
    "check_availability": ("GET /v1/agents/availability/{item_id}", {"item_id": "{item}"}),
    "get_policy": ("GET /v1/agents/policy", {"item_id": "{item}"}),
    "recommend": ("GET /v1/recommendations", {"k": 3}),
    "get_offer": ("POST /v1/agents/offer-eligibility", {"user_id": "mcp-user", "item_id": "{item}"}),
    "explain_recommendation": ("GET /v1/recommendations", {"k": 3}),
    "get_my_context": ("GET /v1/agents/me/context", {"shopper_token": "skt_none"}),
}


def remote_client(api: str, api_key: str | None = None, *, timeout_s: float = 30.0) -> httpx.AsyncClient:
    """An HTTP client for a running shopkeep service at ``api`` (Bearer ``api_key`` when given)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.AsyncClient(base_url=api.rstrip("/"), headers=headers, timeout=timeout_s)


def local_client(engine: Engine, config: Config | None = None) -> httpx.AsyncClient:
    """An HTTP client that serves the shopkeep app in-process over ``engine`` (auth off: the caller owns the store)."""
    from shopkeep.serving.app import create_app

    app = create_app(config or engine.config, engine, auth=False)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shopkeep.local", timeout=60.0)


async def _call(client: httpx.AsyncClient, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    query = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        res = await client.request(method, path, params=query, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise ToolError(f"shopkeep service unreachable: {exc}") from exc
    try:
        data = res.json()
    except ValueError as exc:
        raise ToolError(f"shopkeep answered HTTP {res.status_code} without JSON") from exc
    if res.status_code >= 400:
        err = data.get("error", {}) if isinstance(data, dict) else {}
        raise ToolError(f"{err.get('code', res.status_code)}: {err.get('message', res.text[:200])}")
    if not isinstance(data, dict):
        raise ToolError("shopkeep answered a non-object JSON document")
    return data


def build_server(client: httpx.AsyncClient) -> MCPServer:
    """The MCP server whose tools call the shopkeep API through ``client``."""
    server: MCPServer = MCPServer("shopkeep", instructions=_INSTRUCTIONS, version=__version__)
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=read_only)
    async def search_products(query: str, k: int = 10, user_id: str | None = None,
                              store: str | None = None) -> dict[str, Any]:
        """Search the catalog: constraints parsed from the text (price, attributes, availability) are hard filters."""
        body = {"query": query, "k": k, "store": store,
                **({"user_id": user_id} if user_id else {"anonymous_id": "mcp-agent"})}
        return await _call(client, "POST", "/v1/search", body={k_: v for k_, v in body.items() if v is not None})

    @server.tool(annotations=read_only)
    async def get_product(item_id: str) -> dict[str, Any]:
        """Catalog facts of one product: price, MAP-safe display price, attributes, rating."""
        return await _call(client, "GET", f"/v1/agents/products/{item_id}")

    @server.tool(annotations=read_only)
    async def check_availability(item_id: str, location: str | None = None) -> dict[str, Any]:
        """Units by location, ship SLA and same-day pickup stores (with ``location``: that store's answer)."""
        return await _call(client, "GET", f"/v1/agents/availability/{item_id}", params={"location": location})

    @server.tool(annotations=read_only)
    async def get_policy(item_id: str, region: str | None = None) -> dict[str, Any]:
        """The merchant rules that apply to an item in a region (regulated/age gates, exclusions, promotions)."""
        return await _call(client, "GET", "/v1/agents/policy", params={"item_id": item_id, "region": region})

    @server.tool(annotations=read_only)
    async def recommend(user_id: str | None = None, anonymous_id: str | None = None,
                        surface: Literal["home", "pdp", "cart"] = "home", item_id: str | None = None,
                        k: int = 10) -> dict[str, Any]:
        """A ranked, policy-checked slate with reasons and a trace_id (item_id is required for surface=pdp)."""
        params = {"user_id": user_id, "anonymous_id": anonymous_id if (anonymous_id or user_id) else "mcp-agent",
                  "surface": surface, "item_id": item_id, "k": k}
        return await _call(client, "GET", "/v1/recommendations", params=params)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))  # audited
    async def get_offer(user_id: str, item_id: str, region: str | None = None) -> dict[str, Any]:
        """Price, MAP and the bounded offer decision (if any) for this shopper and item."""
        body = {"user_id": user_id, "item_id": item_id, **({"region": region} if region else {})}
        return await _call(client, "POST", "/v1/agents/offer-eligibility", body=body)

    @server.tool(annotations=read_only)
    async def explain_recommendation(trace_id: str | None = None, user_id: str | None = None,
                                     anonymous_id: str | None = None,
                                     surface: Literal["home", "pdp", "cart"] = "home", item_id: str | None = None,
                                     k: int = 10) -> dict[str, Any]:
        """Why a slate was served: by ``trace_id`` the logged slate (items, sources, propensities); else the
        slate for this request with the engine's explanation (sources, scores, rules that fired)."""
        if trace_id:
            return await _call(client, "GET", f"/v1/agents/explanations/{trace_id}")
        params = {"user_id": user_id, "anonymous_id": anonymous_id if (anonymous_id or user_id) else "mcp-agent",
                  "surface": surface, "item_id": item_id, "k": k, "explain": "true"}
        return await _call(client, "GET", "/v1/recommendations", params=params)

    @server.tool(annotations=read_only)
    async def get_my_context(shopper_token: str) -> dict[str, Any]:
        """The shopper's own recent orders and stated preferences, as far as the token they granted allows."""
        return await _call(client, "GET", "/v1/agents/me/context", headers={"X-Shopper-Token": shopper_token})

    return server

"""``shopkeep mcp`` driven by the official SDK's own client over stdio (and streamable HTTP): against a
real ``shopkeep serve`` process (``--api``) and in-process over the same SQLite store (no ``--api``)."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.client.stdio import StdioServerParameters
from tests.serving.conftest import Service, build_store, stop

from mcp import Client
from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.cli.demo_service import free_port, wait_ready
from shopkeep.serving.auth import hash_entries

TOOLS = {"search_products", "get_product", "check_availability", "get_policy", "recommend", "get_offer",
         "explain_recommendation", "get_my_context"}


def _env(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPKEEP_")}
    env.update(PYTHONUNBUFFERED="1", SHOPKEEP_SEARCH_ENCODER="hashing", SHOPKEEP_CACHE_DIR=str(folder / "cache"),
               **extra)
    return env


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("mcp-serve")
    uri, artifacts, snapshot = build_store(folder, n_items=300)
    read, admin = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    port = free_port()
    log = (folder / "server.log").open("wb")
    keys = hash_entries(f"{read}:read+search,{admin}:admin")
    proc = subprocess.Popen([sys.executable, "-m", "shopkeep.cli.main", "serve", "--store", uri, "--artifacts",
                             str(artifacts), "--host", "127.0.0.1", "--port", str(port)],
                            env=_env(folder, SHOPKEEP_SERVING__API_KEYS=keys), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, 90.0, proc)
        yield Service(base, read, "", admin, snapshot, uri, artifacts, proc)
    finally:
        stop(proc)
        log.close()


def _stdio(args: list[str], folder: Path) -> Client:
    params = StdioServerParameters(command=sys.executable, args=["-m", "shopkeep.cli.main", "mcp", *args],
                                   env=_env(folder))
    return Client(params, read_timeout_seconds=60.0)


async def _data(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    res = await client.call_tool(tool, args)
    assert not res.is_error, (tool, res.content)
    data = res.structured_content
    assert isinstance(data, dict), res
    return data


async def _exercise(client: Client, snapshot: CatalogSnapshot, token: str) -> None:
    """List the tools and check each answer against the catalog the store was built from."""
    listed = {t.name for t in (await client.list_tools()).tools}
    assert listed >= TOOLS, listed
    item = next(it for it in snapshot.items if any(o.kind == "pickup" for o in it.fulfillment)
                and any(it.inventory.get(o.location or "", 0) > 0 for o in it.fulfillment if o.kind == "pickup"))
    product = await _data(client, "get_product", {"item_id": item.item_id})
    assert product["title"] == item.title and product["price"] == item.price.to_dict()  # type: ignore[union-attr]
    assert product["brand"] == item.brand and set(product["attributes"]) == set(item.attributes)

    store = next(o.location for o in item.fulfillment if o.kind == "pickup" and item.inventory.get(o.location or "", 0))
    avail = await _data(client, "check_availability", {"item_id": item.item_id, "location": store})
    assert avail["inventory"] == dict(item.inventory)
    assert avail["location"]["units"] == item.inventory[store] and avail["location"]["pickup"]

    found = await _data(client, "search_products", {"query": f"{item.brand} {item.title}", "k": 5})
    assert found["items"], found
    for hit in found["items"]:
        known = snapshot.items[snapshot.index[hit["item_id"]]]
        assert hit["title"] == known.title and hit["brand"] == known.brand
    assert item.item_id in [h["item_id"] for h in found["items"]]

    slate = await _data(client, "recommend", {"anonymous_id": "mcp-test", "surface": "pdp", "item_id": item.item_id,
                                              "k": 5})
    assert 0 < len(slate["items"]) <= 5 and slate["trace_id"]
    assert all(it["item_id"] in snapshot.index and it["item_id"] != item.item_id for it in slate["items"])
    for it in slate["items"]:
        known = snapshot.items[snapshot.index[it["item_id"]]]
        assert it["price"]["amount"] >= known.price.amount  # type: ignore[union-attr]  # never below list/MAP

    why = await _data(client, "explain_recommendation", {"trace_id": slate["trace_id"]})
    assert list(why["items"]) == [it["item_id"] for it in slate["items"]]

    explained = await _data(client, "explain_recommendation", {"anonymous_id": "mcp-test", "k": 3})
    assert explained["explain"] and len(explained["items"]) <= 3

    offer = await _data(client, "get_offer", {"user_id": "mcp-u1", "item_id": item.item_id})
    assert offer["price"] == item.price.to_dict() and offer["offer"]["decision_id"]  # type: ignore[union-attr]

    mine = await _data(client, "get_my_context", {"shopper_token": token})
    assert mine["user_id"] == "mcp-u1" and mine["scopes"] == ["orders"] and "preferences" not in mine
    forged = await client.call_tool("get_my_context", {"shopper_token": "skt_forged"})
    assert forged.is_error and "unauthorized" in str(forged.content)

    policy = await _data(client, "get_policy", {"item_id": item.item_id, "region": "US-CA"})
    assert policy["item_id"] == item.item_id and isinstance(policy["eligible"], bool)

    missing = await client.call_tool("get_product", {"item_id": "no-such-item"})
    assert missing.is_error and "not_found" in str(missing.content)


def _grant(service: Service) -> str:
    with service.client(service.admin) as c:
        res = c.post("/v1/agents/grants", json={"user_id": "mcp-u1", "scopes": ["orders"], "ttl_s": 600})
        assert res.status_code == 200, res.text
        token: str = res.json()["token"]
        return token


def test_stdio_over_a_running_service(service: Service, tmp_path: Path) -> None:
    token = _grant(service)

    async def go() -> None:
        async with _stdio(["--api", service.base, "--api-key", service.read], tmp_path) as client:
            await _exercise(client, service.snapshot, token)

    asyncio.run(go())


def test_stdio_with_a_wrong_key_answers_tool_errors(service: Service, tmp_path: Path) -> None:
    async def go() -> None:
        async with _stdio(["--api", service.base, "--api-key", "wrong"], tmp_path) as client:
            res = await client.call_tool("get_product", {"item_id": service.snapshot.item_ids[0]})
            assert res.is_error and "unauthorized" in str(res.content)

    asyncio.run(go())


def test_stdio_in_process_over_the_store(service: Service, tmp_path: Path) -> None:
    token = _grant(service)  # granted through the service, stored in the shared store

    async def go() -> None:
        # the same SQLite file the service uses; WAL lets both read it
        args = ["--store", service.store_uri]
        params = StdioServerParameters(command=sys.executable, args=["-m", "shopkeep.cli.main", "mcp", *args],
                                       env=_env(tmp_path, SHOPKEEP_SERVING__ARTIFACTS_DIR=str(service.artifacts)))
        async with Client(params, read_timeout_seconds=60.0) as client:
            await _exercise(client, service.snapshot, token)

    asyncio.run(go())


def test_streamable_http(service: Service, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "mcp-http.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "shopkeep.cli.main", "mcp", "--api", service.base, "--api-key",
                             service.read, "--http", "--port", str(port)], env=_env(tmp_path), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1.0)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "mcp-http.log").read_text()
                time.sleep(0.2)

        async def go() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=60.0) as client:
                item = service.snapshot.items[3]
                product = await _data(client, "get_product", {"item_id": item.item_id})
                assert product["title"] == item.title

        asyncio.run(go())
    finally:
        stop(proc)  # type: ignore[arg-type]
        log.close()

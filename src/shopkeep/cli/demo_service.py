"""The service phase of ``shopkeep demo``: train artifacts, then serve (or, with ``--check``, start the
service as a real subprocess, call every endpoint once over HTTP and exit 0 when all answered right)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import webbrowser
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopkeep.errors import ValidationError

__all__ = ["check_service", "free_port", "start_server", "train_for_demo", "wait_ready"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def train_for_demo(console: Any, store_uri: str, root: Path, models: tuple[str, ...] = ("itemknn",)) -> str:
    """Fresh artifacts under ``root`` from the demo store's event log; returns the version."""
    from shopkeep.pipeline.artifacts import train_artifacts
    from shopkeep.storage import open_store

    shutil.rmtree(root, ignore_errors=True)
    store = open_store(store_uri)
    try:
        with console.status("training serving artifacts ...") as status:
            manifest = train_artifacts(store, root, models, progress=lambda msg: status.update(msg))
    finally:
        store.close()
    console.print(f"artifacts {manifest.version} ({', '.join(manifest.models)}) in {root}")
    return manifest.version


def wait_ready(base: str, timeout_s: float = 60.0, proc: subprocess.Popen[bytes] | None = None, *,
               workers: int = 1) -> float:
    """Poll ``base``/healthz until ``workers`` distinct worker processes (its ``worker_pid``) have answered
    200; returns the seconds waited (TimeoutError otherwise, naming how many answered).

    With several uvicorn workers the first 200 comes from whichever worker started first while the
    others may still be loading the catalog; counting pids makes "ready" mean every worker serves. Each
    poll sends ``2 * workers`` requests at once on fresh connections so that the kernel hands them to
    different workers."""
    import httpx

    if workers < 1:
        raise ValidationError("workers", workers, "must be >= 1")

    def probe() -> object | None:
        try:
            r = httpx.get(f"{base}/healthz", timeout=2.0)
        except httpx.HTTPError:
            return None
        return r.json().get("worker_pid", "?") if r.status_code == 200 else None

    seen: set[object] = set()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2 * workers) as pool:
        while time.perf_counter() - start < timeout_s:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the service exited with code {proc.returncode} before it was ready")
            seen.update(pid for pid in pool.map(lambda _: probe(), range(2 * workers))
                        if pid is not None)
            if len(seen) >= workers:
                return time.perf_counter() - start
            time.sleep(0.1)
    raise TimeoutError(f"{base}/healthz: {len(seen)} of {workers} worker(s) answered 200 within {timeout_s:.0f} s")


def start_server(store_uri: str, artifacts: Path, port: int, *, keys: str | None, workers: int = 1,
                 online: str = "memory://", log_file: Path | None = None,
                 extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """``shopkeep serve`` as a child process on 127.0.0.1:``port`` (auth on when ``keys`` is given: plaintext
    ``KEY:scope+scope`` entries, handed to the server hashed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPKEEP_")}
    env["PYTHONUNBUFFERED"] = "1"
    if keys is not None:
        from shopkeep.serving.auth import hash_entries

        env["SHOPKEEP_SERVING__API_KEYS"] = hash_entries(keys)  # config holds hashes only
    cmd = [sys.executable, "-m", "shopkeep.cli.main", "serve", "--store", store_uri, "--artifacts", str(artifacts),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--online", online]
    if keys is None:
        cmd.append("--no-auth")
    cmd.extend(extra)
    out = log_file.open("wb") if log_file is not None else subprocess.DEVNULL
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


@dataclass(frozen=True)
class _Step:
    name: str
    ok: bool
    detail: str


def _steps(base: str, read: str, ingest: str, admin: str, anon: str, item_id: str) -> list[Callable[[], _Step]]:
    import httpx

    client = httpx.Client(base_url=base, timeout=10.0)

    def auth(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def step(name: str, check: Callable[[], tuple[bool, str]]) -> Callable[[], _Step]:
        def run() -> _Step:
            try:
                ok, detail = check()
            except Exception as exc:  # a failed call is reported, not raised
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            return _Step(name, ok, detail)
        return run

    def events() -> tuple[bool, str]:
        good = {"event_id": f"check-{secrets.token_hex(4)}", "type": "view", "anonymous_id": anon,
                "item_id": item_id, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        r = client.post("/v1/events", json={"events": [good, {"event_id": "bad", "type": "nope"}]},
                        headers=auth(ingest))
        body = r.json()
        return r.status_code == 200 and body["accepted"] == 1 and body["rejected"] == 1, str(
            {k: body.get(k) for k in ("accepted", "rejected")})

    def recs() -> tuple[bool, str]:
        r = client.get("/v1/recommendations", params={"anonymous_id": anon, "k": 5, "explain": "true"},
                       headers=auth(read))
        body = r.json()
        return r.status_code == 200 and len(body["items"]) == 5 and bool(body["trace_id"]), \
            f"{len(body.get('items', []))} items, sources {sorted({s for i in body['items'] for s in i['sources']})}"

    def put_item() -> tuple[bool, str]:
        new = {"item_id": "check-new-item", "title": "Demo check item", "category": ["Demo"],
               "price": {"amount": 1234, "currency": "USD"}, "inventory": {"warehouse": 5}}
        r = client.put("/v1/items/check-new-item", json=new, headers=auth(admin))
        got = client.get("/v1/items/check-new-item", headers=auth(read))
        return r.status_code == 200 and got.status_code == 200, f"PUT {r.status_code}, GET {got.status_code}"

    def policies() -> tuple[bool, str]:
        r = client.get("/v1/policies", headers=auth(read))
        bad = client.put("/v1/policies", json={"rules": [{"kind": "no-such-rule"}]}, headers=auth(admin))
        return r.status_code == 200 and bad.status_code == 422 and "error" in bad.json(), \
            f"GET {r.status_code}, invalid PUT {bad.status_code}"

    return [
        step("GET /healthz", lambda: (client.get("/healthz").status_code == 200, "200")),
        step("GET /openapi.json", lambda: (("/v1/recommendations" in client.get("/openapi.json").json()["paths"]),
                                           "paths listed")),
        step("no key -> 401 envelope", lambda: ((r := client.get("/v1/recommendations",
                                                                 params={"anonymous_id": anon})).status_code == 401
                                                and r.json()["error"]["code"] == "unauthorized", "401 unauthorized")),
        step("POST /v1/events", events),
        step("GET /v1/recommendations", recs),
        step("GET /v1/items/{id}", lambda: ((r := client.get(f"/v1/items/{item_id}", headers=auth(read))).status_code
                                            == 200, r.json().get("title", ""))),
        step("PUT /v1/items/{id}", put_item),
        step("GET/PUT /v1/policies", policies),
        step("GET /metrics", lambda: ("shopkeep_http_requests_total" in client.get("/metrics", headers=auth(read)).text,
                                      "prometheus text")),
    ]


def check_service(console: Any, store_uri: str, artifacts: Path, anon: str, item_id: str) -> bool:
    """Start ``shopkeep serve`` as a subprocess with API keys, call every endpoint once, stop it."""
    from rich.table import Table

    read, ingest, admin = (secrets.token_urlsafe(16) for _ in range(3))
    keys = f"{read}:read,{ingest}:ingest,{admin}:admin"
    port = free_port()
    log_file = artifacts.parent / "demo-check-server.log"
    proc = start_server(store_uri, artifacts, port, keys=keys, log_file=log_file)
    base = f"http://127.0.0.1:{port}"
    try:
        waited = wait_ready(base, 90.0, proc)
        console.print(f"service ready on {base} after {waited:.1f} s (pid {proc.pid})")
        results = [run() for run in _steps(base, read, ingest, admin, anon, item_id)]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    table = Table(title="demo --check: every endpoint once over HTTP")
    for col in ("endpoint", "ok", "detail"):
        table.add_column(col)
    for r in results:
        table.add_row(r.name, "[green]ok[/green]" if r.ok else "[red]FAIL[/red]", r.detail)
    console.print(table)
    if not all(r.ok for r in results):
        console.print(f"server log: {log_file}")
    return all(r.ok for r in results)


def serve_demo(console: Any, args: Any, store_uri: str, artifacts: Path) -> None:
    """Serve the demo store until Ctrl-C; prints 'ready' once /healthz answers 200."""
    from shopkeep.cli.serve import serve
    from shopkeep.serving.auth import hash_entries

    host, port = "127.0.0.1", args.port
    keys = None
    if args.auth:
        read, admin = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        keys = f"{read}:read+ingest+search+concierge+offers+transparency,{admin}:admin"
        console.print(f"API keys ON: storefront key [bold]{read}[/bold], admin key [bold]{admin}[/bold]")
    else:
        console.print("[yellow]API keys are OFF[/yellow] (demo on loopback; pass --auth to require keys)")
    base = f"http://{host}:{port}"

    def announce() -> None:
        try:
            wait_ready(base, 120.0, workers=args.workers)
        except (TimeoutError, RuntimeError) as exc:
            console.print(f"[red]{exc}[/red]")
            return
        url = f"{base}/v1/recommendations?anonymous_id=demo-shopper&k=5&explain=true"
        console.print(f"[bold green]ready[/bold green]: storefront {base}/  console {base}/console  "
                      f"API {base}/docs  (try: curl '{url}'; Ctrl-C stops)")
        if not args.no_browser:
            webbrowser.open(f"{base}/")

    threading.Thread(target=announce, daemon=True).start()
    serve(config_file=None, store=store_uri, online=args.online, host=host, port=port, workers=args.workers,
          artifacts=str(artifacts), auth=keys is not None, watch_s=5.0,
          api_keys=None if keys is None else hash_entries(keys))

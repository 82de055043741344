"""A lean HTTP/1.1 keep-alive client for the load benchmarks, and CPU accounting of processes.

The load generator shares the two cores with the service it measures, so its own cost is part of the
result: httpx spent ~1 ms of CPU per request here, as much as a slate itself. :class:`RawClient` speaks
just enough HTTP/1.1 for loopback benchmarks (keep-alive, Content-Length bodies, a connection pool) at
a fraction of that, with the subset of the httpx interface the scripts use (``get``/``post`` returning
an object with ``status_code`` and ``json()``). :func:`cpu_seconds` reads a process tree's CPU time from
/proc, so a run can report CPU milliseconds per request — a figure that, unlike latency, does not
depend on what else the machine is doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

__all__ = ["RawClient", "RawResponse", "cpu_seconds", "process_tree"]


class _Stale(ConnectionError):
    """The connection closed before any byte of the answer: the server dropped an idle keep-alive."""


class RawResponse:
    """Status code and body of one response."""

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.content = body

    def json(self) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.content)


class RawClient:
    """Keep-alive HTTP/1.1 client over ``max_connections`` pooled asyncio connections (loopback only)."""

    def __init__(self, base_url: str, max_connections: int = 64, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"base_url must be http://host:port, got {base_url!r}")
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection."""
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()

    async def get(self, path: str, params: dict[str, Any] | None = None) -> RawResponse:
        """GET ``path`` with ``params`` as the query string."""
        if params:
            path = f"{path}?{urlencode({k: v for k, v in params.items() if v is not None})}"
        return await self.request("GET", path, None)

    async def post(self, path: str, json: Any = None) -> RawResponse:
        """POST ``json`` (serialized) to ``path``."""
        return await self.request("POST", path, jsonlib.dumps(json).encode())

    async def request(self, method: str, path: str, body: bytes | None) -> RawResponse:
        """One request on a pooled connection. A kept-alive connection the server closed while idle
        (uvicorn: after 5 s) fails before any byte of the answer and is replaced, as httpx does; a failure
        on a fresh connection, or after part of the answer, is raised (ConnectionError or TimeoutError)."""
        async with self._slots:
            while self._idle:
                try:
                    return await self._send(self._idle.pop(), method, path, body)
                except _Stale:
                    continue
            conn = await asyncio.open_connection(self.host, self.port)
            try:
                return await self._send(conn, method, path, body)
            except _Stale as exc:
                raise ConnectionError(str(exc)) from None

    async def _send(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], method: str, path: str,
                    body: bytes | None) -> RawResponse:
        reader, writer = conn
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        try:
            writer.write(head.encode() + b"\r\n" + (body or b""))
            await writer.drain()
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.timeout)
        except (OSError, asyncio.IncompleteReadError) as exc:
            writer.close()
            if isinstance(exc, OSError) or not exc.partial:
                raise _Stale(type(exc).__name__) from None
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from None
        except BaseException:
            writer.close()
            raise
        try:
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            data = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), self.timeout)
        except (OSError, asyncio.IncompleteReadError, KeyError, ValueError) as exc:
            writer.close()
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from None
        except BaseException:
            writer.close()
            raise
        if headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self._idle.append(conn)
        return RawResponse(status, data)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's supervisor and its worker processes)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (processes that ended count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")

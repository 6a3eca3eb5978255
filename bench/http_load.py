"""A light HTTP/1.1 load generator: GETs over a few keep-alive connections, timed one by one.

httpx costs ~1 ms of CPU per request, as much as the routes it would measure; this client
writes the request line and reads the status line, headers and `Content-Length` body, and
nothing else (the servers under test answer with a length, never chunked).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import urlsplit

TIMEOUT = 30.0


class HttpLoadError(Exception):
    """An answer that is not a 200 with a body, or that `check` refused."""


async def get_all(base_url: str, paths: list[str], connections: int,
                  check: Callable[[bytes], None] = lambda body: None) -> list[float]:
    """GET each of `paths` from `base_url`, `connections` requests in flight (one per
    keep-alive connection); each answer's body goes to `check`. Returns ms per request."""
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    todo = iter(paths)
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for path in todo:  # one iterator shared by all connections: each path once
                started = time.perf_counter()
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode())
                body = await asyncio.wait_for(_answer(reader), TIMEOUT)
                latencies.append((time.perf_counter() - started) * 1000)
                check(body)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(min(connections, len(paths)))))
    return latencies


async def _answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    status, *headers = head.decode("latin-1").split("\r\n")
    if status.split(" ", 2)[1:2] != ["200"]:
        raise HttpLoadError(f"answered {status!r}")
    for header in headers:
        name, _, value = header.partition(":")
        if name.strip().lower() == "content-length":
            return await reader.readexactly(int(value))
    raise HttpLoadError("an answer without Content-Length")

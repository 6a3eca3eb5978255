"""A thin client of LND's REST API (the grpc-gateway of lnrpc/routerrpc), with httpx.

It knows credentials, transport and error shapes, nothing about invoices or payments:
the macaroon goes in `Grpc-Metadata-macaroon`, streamed calls answer newline-delimited JSON
objects `{"result": …}` or `{"error": {"code", "message"}}`. Transport failures and refused
credentials become `WalletUnavailable`; LND's own refusals become `LndError`.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from strom.config import LndSettings
from strom.lightning.wallet import WalletConfigError, WalletError, WalletUnavailable

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
NOT_FOUND = 5  # gRPC status code
_CREDENTIAL_HINTS = ("macaroon", "verification failed", "permission denied")


class LndError(WalletError):
    """LND answered, and refused: `code` is the gRPC status code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(f"lnd: {message}")
        self.code = code
        self.lnd_message = message


def _credentials(settings: LndSettings) -> str:
    """The macaroon as hex, from `macaroon_hex` or the file at `macaroon_path`."""
    if settings.macaroon_hex:
        text = settings.macaroon_hex.strip()
        try:
            bytes.fromhex(text)
        except ValueError:
            raise WalletConfigError("[lightning.lnd] macaroon_hex is not hex") from None
        return text
    if settings.macaroon_path:
        path = Path(settings.macaroon_path).expanduser()
        try:
            return path.read_bytes().hex()
        except OSError as exc:
            raise WalletConfigError(f"[lightning.lnd] macaroon_path: cannot read {path}: "
                                    f"{exc.strerror}") from None
    raise WalletConfigError("[lightning.lnd] needs macaroon_hex or macaroon_path "
                            "(an invoice+offchain macaroon of your node)")


def _verify(settings: LndSettings) -> ssl.SSLContext | bool:
    parts = urlsplit(settings.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WalletConfigError(f"[lightning.lnd] url must be https://host:port, got "
                                f"{settings.url!r}")
    if parts.scheme == "http":
        if parts.hostname not in LOOPBACK:
            # The macaroon would cross the network in clear.
            raise WalletConfigError("[lightning.lnd] url: plain http is allowed for 127.0.0.1 "
                                    "only; use https with tls_cert")
        return False
    if not settings.tls_cert:
        return True
    cert = Path(settings.tls_cert).expanduser()
    try:
        return ssl.create_default_context(cafile=str(cert))
    except (OSError, ssl.SSLError) as exc:
        raise WalletConfigError(f"[lightning.lnd] tls_cert: cannot load {cert}: {exc}") from None


class LndRest:
    """`await open()`, then `get`/`post`/`stream`; `on_reachable(bool, reason)` hears changes."""

    def __init__(self, settings: LndSettings, *, timeout: float = 15.0,
                 on_reachable: Callable[[bool, str], None] | None = None) -> None:
        self.url = settings.url.rstrip("/")
        self._settings = settings
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._on_reachable = on_reachable or (lambda up, reason: None)

    async def open(self) -> None:
        """Read the macaroon and TLS certificate (off the loop) and build the HTTP client."""
        macaroon, verify = await asyncio.to_thread(
            lambda: (_credentials(self._settings), _verify(self._settings)))
        self._client = httpx.AsyncClient(
            base_url=self.url, verify=verify, timeout=self._timeout,
            headers={"Grpc-Metadata-macaroon": macaroon})

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise WalletUnavailable("lnd wallet is not started")
        return self._client

    async def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._unary("GET", path, params=params)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._unary("POST", path, body=body)

    async def _unary(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                     body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = await self._http().request(method, path, params=params, json=body)
        except httpx.HTTPError as exc:
            raise self._down(exc) from None
        data = _json(response.content)
        self._check(response.status_code, data)
        self._on_reachable(True, "")
        return data

    @asynccontextmanager
    async def stream(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                     body: dict[str, Any] | None = None,
                     ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """A streamed call: yields an iterator of the `result` objects as they arrive.

        An `{"error": …}` line raises LndError; a broken connection raises WalletUnavailable.
        """
        timeout = httpx.Timeout(self._timeout, read=None)
        try:
            async with self._http().stream(method, path, params=params, json=body,
                                           timeout=timeout) as response:
                if response.status_code != 200:
                    self._check(response.status_code, _json(await response.aread()))
                self._on_reachable(True, "")
                yield self._results(response)
        except httpx.HTTPError as exc:
            raise self._down(exc) from None

    async def _results(self, response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            data = _json(line.encode())
            if "error" in data:
                error = data["error"] if isinstance(data["error"], dict) else {"message": data}
                self._check(500, error)
            yield data.get("result", data)

    def _down(self, exc: httpx.HTTPError) -> WalletUnavailable:
        reason = f"cannot reach lnd at {self.url} ({type(exc).__name__}: {exc or 'no detail'})"
        self._on_reachable(False, reason)
        return WalletUnavailable(reason)

    def _check(self, status: int, data: dict[str, Any]) -> None:
        """Raise for an error answer: refused credentials → WalletUnavailable, else LndError."""
        if status == 200 and not ("code" in data and "message" in data):
            return
        message = str(data.get("message") or data.get("error") or f"HTTP {status}")
        if status in (401, 403) or any(h in message.lower() for h in _CREDENTIAL_HINTS):
            reason = f"lnd at {self.url} refused our macaroon (HTTP {status}: {message})"
            self._on_reachable(False, reason)
            raise WalletUnavailable(reason)
        if status >= 502:
            reason = f"lnd at {self.url} is not ready (HTTP {status}: {message})"
            self._on_reachable(False, reason)
            raise WalletUnavailable(reason)
        code = data.get("code")
        raise LndError(message, int(code) if isinstance(code, int) else
                       NOT_FOUND if status == 404 else 2)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {"message": raw[:200].decode("utf-8", "replace") or "empty answer"}
    return data if isinstance(data, dict) else {"message": f"unexpected answer {str(data)[:80]}"}

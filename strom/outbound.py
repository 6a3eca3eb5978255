"""Fenced outbound fetches: every request strom makes for outsiders or for its config.

Lightning addresses and their LNURL callbacks come from payers, zap relays from zap requests,
tariff feeds from the config. Each may point anywhere, stall or flood, so every fetch here:

- resolves the host once and refuses it when any address is not public (loopback, private,
  link-local, unspecified, multicast, reserved…) unless `[outbound] allow_private`, and always
  refuses strom's own listen and public addresses (a refund to itself would loop);
- connects to the addresses it checked (the URL names the IP, `Host` and TLS SNI name the
  host), so a DNS answer that changes between the check and the connection (rebinding) is
  not used;
- follows at most `MAX_REDIRECTS` redirects by hand, fencing each hop like the first;
- reads the body as a stream and stops past a size cap;
- ends after a total deadline (`asyncio.timeout` around everything, not a per-read timeout);
- runs at most `[outbound] concurrency` fetches at once.

Every request carries `X-Strom-Outbound` with a secret of this process, so strom's own LNURL
endpoints can tell a request that strom itself made through some other name.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json as jsonlib
import secrets
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from strom.config import OutboundSettings

MARKER_HEADER = "X-Strom-Outbound"
MAX_REDIRECTS = 3
_REDIRECTS = {301, 302, 303, 307, 308}
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_ssl_context: ssl.SSLContext | None = None

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundError(Exception):
    """A fetch that failed: refused, unreachable, too slow or too large (one line)."""


class OutboundRefused(OutboundError):
    """The target is fenced: not a public address, or strom itself."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked destination: connect to one of `ips` at `port`, speak to `host`."""

    scheme: str
    host: str
    ips: tuple[str, ...]
    port: int

    @property
    def ip(self) -> str:
        return self.ips[0]


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    body: bytes


def netloc_key(host: str, port: int | None, scheme: str = "http") -> tuple[str, int]:
    """(lower-case host, port) with the scheme's default port filled in."""
    return host.lower().strip("[]"), port or _DEFAULT_PORTS.get(scheme, 80)


def is_public(ip: IPAddress) -> bool:
    """Only globally routable unicast addresses are public (IPv4-mapped IPv6 as IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass
class Outbound:
    """The one way out. Build once per process; `own` is filled in once strom has bound."""

    settings: OutboundSettings
    own: set[tuple[str, int]] = field(default_factory=set)
    marker: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    _slots: asyncio.Semaphore | None = field(default=None, repr=False)

    def is_marked(self, headers: Mapping[str, str]) -> bool:
        """Whether a request to strom came from this process's own outbound fetches."""
        given = headers.get(MARKER_HEADER, "").encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, self.marker.encode())  # bytes: any header is fine

    def is_own(self, url: str) -> bool:
        """Whether `url` names one of strom's own addresses (checked before any lookup)."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            return False
        return netloc_key(parts.hostname or "", port, parts.scheme) in self.own

    async def check(self, url: str) -> Target:
        """Resolve `url`'s host and fence it; the `Target` is where to connect."""
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        if scheme not in _DEFAULT_PORTS or not host:
            raise OutboundRefused(f"not an http(s) or ws(s) URL: {_shown(url)}")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise OutboundRefused(f"bad port in {_shown(url)}") from None
        if self.is_own(url):
            raise OutboundRefused(f"{host}:{port} is strom itself")
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise OutboundError(f"cannot resolve {host}") from None
        ips = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not ips:
            raise OutboundError(f"cannot resolve {host}")
        if not self.settings.allow_private and not all(is_public(ip) for ip in ips):
            raise OutboundRefused(f"{host} is not a public address "
                                  "(set [outbound] allow_private to reach it)")
        if any(netloc_key(str(ip), port) in self.own for ip in ips) or (
                any(ip.is_loopback or ip.is_unspecified for ip in ips)
                and port in self._own_ports()):
            raise OutboundRefused(f"{host}:{port} is strom itself")
        return Target(scheme, host, tuple(dict.fromkeys(str(ip) for ip in ips)), port)

    def _own_ports(self) -> set[int]:
        return {port for host, port in self.own
                if host in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::")}

    async def get(self, url: str, *, params: Mapping[str, str] | None = None,
                  headers: Mapping[str, str] | None = None, max_bytes: int | None = None,
                  deadline: float | None = None) -> Fetched:
        """GET `url` (query `params` merged into its own) within the fence, deadline and cap."""
        return await self.send("GET", httpx.URL(url).copy_merge_params(params or {}),
                               headers=headers, max_bytes=max_bytes, deadline=deadline)

    async def send(self, method: str, url: str | httpx.URL, *, json: object = None,
                   headers: Mapping[str, str] | None = None, max_bytes: int | None = None,
                   deadline: float | None = None) -> Fetched:
        """`method` `url` with a JSON body (OCPI pushes: PUT, PATCH, POST) within the same
        fence, deadline and cap as `get`. Redirects are followed only for GET."""
        deadline = deadline or self.settings.timeout_seconds
        cap = max_bytes or self.settings.max_bytes
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.concurrency)
        body = None if json is None else jsonlib.dumps(json, allow_nan=False).encode()
        try:
            async with asyncio.timeout(deadline), self._slots:
                return await self._follow(method, httpx.URL(url), dict(headers or {}), cap, body)
        except TimeoutError:
            raise OutboundError(f"no complete answer from {_shown(str(url))} within "
                                f"{deadline:g} s") from None

    async def _follow(self, method: str, url: httpx.URL, headers: dict[str, str], cap: int,
                      content: bytes | None) -> Fetched:
        for _ in range(MAX_REDIRECTS + 1):
            target = await self.check(str(url))
            status, location, body = await self._fetch_once(method, url, target, headers, cap,
                                                            content)
            if status not in _REDIRECTS or location is None or method != "GET":
                return Fetched(status, body)
            url = url.join(location)
        raise OutboundError(f"more than {MAX_REDIRECTS} redirects from {_shown(str(url))}")

    async def _fetch_once(self, method: str, url: httpx.URL, target: Target,
                          headers: dict[str, str], cap: int,
                          content: bytes | None) -> tuple[int, str | None, bytes]:
        request_headers = {**headers, "Host": url.netloc.decode("ascii"),
                           "Accept-Encoding": "identity", MARKER_HEADER: self.marker}
        if content is not None:
            request_headers["Content-Type"] = "application/json"
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        # No proxies from the environment: they would connect to a name we did not check.
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                     verify=_ssl(), timeout=None) as client:
            for ip in target.ips:  # each one checked; the next only if this one refused
                request = client.build_request(method, url.copy_with(host=ip), content=content,
                                               headers=request_headers, extensions=extensions)
                try:
                    return await _read(client, request, cap, _shown(str(url)))
                except httpx.ConnectError:
                    if ip == target.ips[-1]:
                        raise OutboundError(f"cannot fetch {_shown(str(url))} (ConnectError)") from None
                except httpx.HTTPError as exc:
                    raise OutboundError(f"cannot fetch {_shown(str(url))} "
                                        f"({type(exc).__name__})") from None
        raise AssertionError("a target has at least one address")


async def _read(client: httpx.AsyncClient, request: httpx.Request, cap: int,
                shown: str) -> tuple[int, str | None, bytes]:
    """Status, redirect location and body, reading no more than `cap` bytes."""
    response = await client.send(request, stream=True)
    try:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > cap:
                raise OutboundError(f"{shown} sent more than {cap} bytes")
        return response.status_code, response.headers.get("location"), bytes(body)
    finally:
        await response.aclose()


def _ssl() -> ssl.SSLContext:
    """One default TLS context for all fetches (building one costs milliseconds)."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


def _shown(url: str) -> str:
    """A URL as logs may show it: scheme, host and path, no query (it may carry a key)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"[:120]

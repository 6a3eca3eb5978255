"""The operator console's only way into strom: its admin REST API (httpx) and its SSE stream.

Failures become three exceptions with a message for a person: `ServerUnreachable` (nothing
listens at the URL), `Unauthorized` (wrong token) and `ApiError` (the server said no, and why).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx


class ApiError(Exception):
    """The server refused a request; `str()` is its reason."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ServerUnreachable(ApiError):
    pass


class Unauthorized(ApiError):
    pass


def not_running(url: str) -> str:
    return f"strom is not reachable at {url}; is it running? (start it with `strom run`)"


WRONG_TOKEN = ("the server refused the admin token; use the one in <data-dir>/admin.token "
               "of that server (or --token)")


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return f"HTTP {response.status_code}"


class StromClient:
    """Admin API calls; every method returns the decoded JSON answer."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 40.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                       headers={"Authorization": f"Bearer {token}"})

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError:
            raise ServerUnreachable(not_running(self.base_url)) from None
        if response.status_code == 401:
            raise Unauthorized(WRONG_TOKEN, 401)
        if response.status_code >= 400:
            raise ApiError(_reason(response), response.status_code)
        return response.json() if response.content else None

    async def check(self) -> None:
        """Raise unless the server answers and accepts the token."""
        await self._call("GET", "/api/v1/charge-points", params={"limit": 1})

    async def health(self) -> dict[str, Any]:
        """`/healthz`: the server's parts, the nostr relays' publishing state among them."""
        return dict(await self._call("GET", "/healthz"))

    async def _all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = await self._call("GET", path, params={**params, "limit": 500,
                                                         "offset": len(items)})
            items += page["items"]
            if not page["items"] or len(items) >= page["total"]:
                return items

    # --- charge points, tariffs, commands ---------------------------------------------------

    async def charge_points(self) -> list[dict[str, Any]]:
        return await self._all("/api/v1/charge-points")

    async def charge_point(self, cp_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/v1/charge-points/{cp_id}")

    async def set_tariff(self, cp_id: str, override: dict[str, int]) -> dict[str, Any]:
        return await self._call("PUT", f"/api/v1/tariffs/{cp_id}", json=override)

    async def command(self, cp_id: str, name: str, body: dict[str, Any]) -> str:
        """`reset`, `unlock`, `trigger` or `availability`; returns the charger's answer."""
        answer = await self._call("POST", f"/api/v1/commands/{cp_id}/{name}", json=body)
        return str(answer["status"])

    async def firmware_report(self, cp_id: str) -> dict[str, list[dict[str, Any]]]:
        """A charger's latest firmware updates, diagnostics requests and security events."""
        params = {"cp_id": cp_id, "limit": 5}
        return {
            "updates": (await self._call("GET", "/api/v1/firmware/updates",
                                         params=params))["items"],
            "diagnostics": (await self._call("GET", "/api/v1/diagnostics",
                                             params=params))["items"],
            "security_events": (await self._call(
                "GET", f"/api/v1/charge-points/{cp_id}/security-events",
                params={"limit": 10}))["items"]}

    # --- sessions and money -----------------------------------------------------------------

    async def sessions(self, *, state: str | None = None, cp_id: str | None = None,
                       limit: int = 100, offset: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if state:
            params["state"] = state
        if cp_id:
            params["cp_id"] = cp_id
        return await self._call("GET", "/api/v1/sessions", params=params)

    async def session(self, session_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/v1/sessions/{session_id}")

    async def stop_session(self, session_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/api/v1/sessions/{session_id}/stop")

    async def sites(self) -> dict[str, Any]:
        return await self._call("GET", "/api/v1/sites")

    async def ledger(self) -> dict[str, Any]:
        return await self._call("GET", "/api/v1/ledger")

    async def ledger_check(self) -> dict[str, Any]:
        """The check's report, also when it found problems (HTTP 409)."""
        try:
            response = await self._http.get("/api/v1/ledger/check")
        except httpx.TransportError:
            raise ServerUnreachable(not_running(self.base_url)) from None
        if response.status_code == 401:
            raise Unauthorized(WRONG_TOKEN, 401)
        if response.status_code not in (200, 409):
            raise ApiError(_reason(response), response.status_code)
        return dict(response.json())

    # --- owner cards ------------------------------------------------------------------------

    async def cards(self) -> list[dict[str, Any]]:
        return await self._all("/api/v1/cards")

    async def card_accounts(self) -> list[dict[str, Any]]:
        return await self._all("/api/v1/card-accounts")

    async def local_list(self) -> dict[str, Any]:
        return await self._call("GET", "/api/v1/local-list")

    async def add_card(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/api/v1/cards", json=body)

    async def remove_card(self, id_tag: str) -> bool:
        await self._call("DELETE", f"/api/v1/cards/{quote(id_tag, safe='')}")
        return True

    async def top_up(self, account_id: str, amount_msat: int) -> dict[str, Any]:
        """Add to an account (negative: take back); an unknown account is opened with it."""
        try:
            return await self._call("POST", f"/api/v1/card-accounts/{quote(account_id, safe='')}"
                                    "/adjust", json={"amount_msat": amount_msat})
        except ApiError as exc:
            if "unknown account" not in str(exc):
                raise
        return await self._call("POST", "/api/v1/card-accounts",
                                json={"id": account_id, "balance_msat": amount_msat})

    # --- OCPI parties (roaming) -------------------------------------------------------------

    async def ocpi_parties(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/api/v1/ocpi/parties"))["items"])

    async def add_ocpi_party(self, name: str) -> dict[str, Any]:
        """A pending party: `{party, token_a, versions_url}` (the token is never shown again)."""
        return await self._call("POST", "/api/v1/ocpi/parties", json={"name": name})

    async def remove_ocpi_party(self, party_id: int) -> bool:
        await self._call("DELETE", f"/api/v1/ocpi/parties/{party_id}")
        return True

    # --- keys -------------------------------------------------------------------------------

    async def keys(self) -> list[dict[str, Any]]:
        return await self._all("/api/v1/keys")

    async def key(self, cp_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/v1/keys/{cp_id}")

    async def key_action(self, cp_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """`generate`, `import`, `encrypt` or `rotate` (see the API for each body)."""
        return await self._call("POST", f"/api/v1/keys/{cp_id}/{action}", json=body)

    # --- live -------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The server-sent events of `/api/v1/stream` as (name, data), until the stream ends."""
        name: str | None = None
        try:
            async with self._http.stream("GET", "/api/v1/stream",
                                         timeout=httpx.Timeout(10.0, read=None)) as response:
                if response.status_code == 401:
                    raise Unauthorized(WRONG_TOKEN, 401)
                if response.status_code != 200:
                    raise ApiError(f"live updates refused: HTTP {response.status_code}",
                                   response.status_code)
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: ") and name is not None:
                        yield name, json.loads(line[6:])
                        name = None
        except httpx.TransportError:
            raise ServerUnreachable(not_running(self.base_url)) from None

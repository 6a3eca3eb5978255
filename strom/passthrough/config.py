"""A charger's `upstream`: the backend it stays connected to through strom, and how to log in."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SUBPROTOCOLS = ("ocpp1.6", "ocpp2.0.1")  # the charger's own: strom relays, never translates
MAX_URL = 2000


class UpstreamError(ValueError):
    """An upstream setting that cannot work; one line naming the field."""


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """`url` is the backend's full OCPP URL for this charger (ws:// or wss://, with the
    charger's id as the backend knows it). `password` is sent as HTTP Basic auth with the
    charger's own id as user (OCPP 1.6 security profile 1/2); `client_cert`/`client_key`
    name PEM files for a TLS client certificate (profile 3). `lightning` false makes strom a
    pure proxy for this charger: no lightning sessions, no calls of strom's own."""

    url: str
    password: str | None = None
    subprotocol: str = "ocpp1.6"
    client_cert: str | None = None
    client_key: str | None = None
    lightning: bool = True

    def __post_init__(self) -> None:
        try:
            parts = urlsplit(self.url)
            parts.port  # noqa: B018  (raises for a port out of range)
        except (ValueError, TypeError, AttributeError):
            raise UpstreamError("upstream url: not a URL") from None
        if len(self.url) > MAX_URL or parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise UpstreamError("upstream url: give a ws:// or wss:// URL of the backend")
        if parts.username or parts.password:
            raise UpstreamError("upstream url: put the password in upstream password, "
                                "not in the URL (URLs end up in logs)")
        if self.subprotocol not in SUBPROTOCOLS:
            raise UpstreamError(f"upstream subprotocol: one of {', '.join(SUBPROTOCOLS)}")
        if self.password is not None and not 1 <= len(self.password) <= 200:
            raise UpstreamError("upstream password: 1 to 200 characters")
        if bool(self.client_cert) != bool(self.client_key):
            raise UpstreamError("upstream client_cert and client_key: give both or neither")
        if self.client_cert and parts.scheme != "wss":
            raise UpstreamError("upstream client_cert: needs a wss:// URL")
        for name in ("client_cert", "client_key"):
            path = getattr(self, name)
            try:
                found = not path or Path(path).is_file()
            except (OSError, ValueError):
                found = False
            if not found:
                raise UpstreamError(f"upstream {name}: no such file")
        if not isinstance(self.lightning, bool):
            raise UpstreamError("upstream lightning: true or false")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UpstreamConfig:
        """From the store or the API; unknown keys are refused by the dataclass."""
        try:
            return cls(**data)
        except TypeError as exc:
            raise UpstreamError(f"upstream: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        """For the store (with the password: strom must present it)."""
        return asdict(self)

    def public_json(self) -> dict[str, Any]:
        """For the API and the CLI: never the password."""
        shown = asdict(self)
        shown["has_password"] = shown.pop("password") is not None
        return shown


def public_upstream(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored upstream as the API and the CLI show it (no password), None without one."""
    if not stored:
        return None
    try:
        return UpstreamConfig.from_json(stored).public_json()
    except UpstreamError as exc:  # a certificate file gone since: say so, never the password
        return {"url": stored.get("url"), "error": str(exc)}


def merged_upstream(given: dict[str, Any] | None,
                    stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """A new upstream from the API or CLI, checked; without a password it keeps the stored
    one, but only for the same URL (a password never follows to another host)."""
    if given is None:
        return None
    data = {k: v for k, v in given.items() if v is not None}
    if "password" not in data and stored and stored.get("url") == data.get("url"):
        data["password"] = stored.get("password")
    return UpstreamConfig.from_json(data).to_json()

"""The OCPI response envelope and status codes (OCPI 2.2.1 part 4 "Transport and format").

Every answer is `{data, status_code, status_message, timestamp}`. 1xxx: success; 2xxx: the
client's error; 3xxx: the server's. Client errors go out with HTTP 200 or 4xx; strom never
answers a 500 with a traceback.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from strom.timeutil import iso

M = TypeVar("M", bound=BaseModel)

SUCCESS = 1000
CLIENT_ERROR = 2000
INVALID_PARAMETERS = 2001
NOT_ENOUGH_INFORMATION = 2002
UNKNOWN_LOCATION = 2003
UNKNOWN_TOKEN = 2004
SERVER_ERROR = 3000
UNABLE_TO_USE_CLIENT_API = 3001
UNSUPPORTED_VERSION = 3002
NO_MATCHING_ENDPOINTS = 3003


class OcpiError(Exception):
    """An OCPI error answer: `status_code` in the envelope, `http_status` on the wire."""

    def __init__(self, status_code: int, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.http_status = http_status


class Unauthorized(OcpiError):
    """No token, or one strom does not know (HTTP 401, as the spec says)."""

    def __init__(self, message: str = "unknown or missing token") -> None:
        super().__init__(CLIENT_ERROR, message, 401)


def validated(model: type[M], body: Any, what: str) -> M:
    """`body` as a `model`, or OCPI 2001 naming the first thing wrong (`what: where: why`)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise OcpiError(INVALID_PARAMETERS, f"{what}: {where}: {first['msg']}") from None


def envelope(data: Any = None, status_code: int = SUCCESS,
             status_message: str | None = None) -> dict[str, Any]:
    """The OCPI envelope around `data`."""
    body: dict[str, Any] = {"status_code": status_code, "timestamp": iso()}
    if data is not None:
        body["data"] = data
    if status_message is not None:
        body["status_message"] = status_message
    return body

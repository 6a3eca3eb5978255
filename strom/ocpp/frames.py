"""Checks on raw OCPP-J frames before the ocpp library sees them.

The ocpp library stays silent on malformed JSON, a non-array or a bad MessageTypeId (it only
logs). OCPP-J 1.6 §4.2 wants a CALLERROR, so every frame passes `parse_frame` first; a frame
without a usable unique id is answered with the id "-1". The error's `kind` says what was wrong,
so each protocol answers in its own codes (1.6: FormationViolation; 2.0.1: RpcFrameworkError,
MessageTypeNotSupported).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_UNIQUE_ID = 36  # OCPP-J 1.6 §4.1.3


class FrameError(Exception):
    """A frame that cannot be routed; `code` is an OCPP 1.6 CALLERROR code, `kind` is
    "type" for an unknown MessageTypeId and "rpc" for anything else."""

    def __init__(self, code: str, description: str, unique_id: str = "-1",
                 kind: str = "rpc") -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.unique_id = unique_id
        self.kind = kind

    def to_json(self, code: str | None = None) -> str:
        return json.dumps([CALLERROR, self.unique_id, code or self.code, self.description, {}])


@dataclass(frozen=True, slots=True)
class Frame:
    message_type: int
    unique_id: str
    action: str | None
    payload: Any
    error: tuple[str, str, Any] | None = None  # (code, description, details) of a CALLERROR


def parse_frame(raw: str | bytes) -> Frame:
    """Parse and check the envelope of one OCPP-J message; raise FrameError if it is unusable."""
    if isinstance(raw, bytes):
        raise FrameError("FormationViolation", "binary frames are not OCPP-J; send text frames")
    try:
        data = json.loads(raw)
    except ValueError:
        raise FrameError("FormationViolation", "message is not valid JSON") from None
    if not isinstance(data, list) or not data:
        raise FrameError("FormationViolation", "an OCPP-J message is a non-empty JSON array")
    unique_id = data[1] if len(data) > 1 and _is_unique_id(data[1]) else "-1"
    kind = data[0]
    if isinstance(kind, bool) or kind not in (CALL, CALLRESULT, CALLERROR):
        raise FrameError("FormationViolation",
                         f"MessageTypeId must be 2, 3 or 4, not {kind!r}", unique_id, "type")
    if unique_id == "-1":
        raise FrameError("FormationViolation",
                         f"UniqueId must be a string of 1-{MAX_UNIQUE_ID} characters", unique_id)
    if kind == CALL:
        if len(data) != 4 or not isinstance(data[2], str) or not isinstance(data[3], dict):
            raise FrameError("FormationViolation",
                             "a CALL is [2, UniqueId, Action, {payload}]", unique_id)
        return Frame(CALL, unique_id, data[2], data[3])
    if kind == CALLRESULT:
        if len(data) != 3 or not isinstance(data[2], dict):
            raise FrameError("FormationViolation", "a CALLRESULT is [3, UniqueId, {payload}]",
                             unique_id)
        return Frame(CALLRESULT, unique_id, None, data[2])
    if (len(data) != 5 or not isinstance(data[2], str) or not isinstance(data[3], str)
            or not isinstance(data[4], dict)):
        raise FrameError("FormationViolation",
                         "a CALLERROR is [4, UniqueId, ErrorCode, Description, {details}]",
                         unique_id)
    return Frame(CALLERROR, unique_id, None, None, (data[2], data[3], data[4]))


def _is_unique_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_UNIQUE_ID

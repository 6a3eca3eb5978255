"""OCPP payload validation: the ocpp library's own JSON schemas, compiled once by fastjsonschema.

The ocpp library checks each payload with jsonschema in a thread of the default executor
(`ocpp.messages.ASYNC_VALIDATION`): two thread hand-offs per message, the largest share of
strom's CPU per OCPP message (docs/performance.md). Here each schema is compiled to a Python
function once and run on the loop. A payload it accepts is one the library accepts
(tests/ocpp/test_validation.py checks them side by side); one it refuses goes on to the
library's `validate_payload`, so the peer gets the library's OCPP error as before
(FormatViolation, TypeConstraintViolation, ProtocolError …). Schemas the library reads with
Decimal floats (multipleOf), and any schema the compiler does not take, always go to the
library.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import fastjsonschema
from ocpp.messages import Call, CallResult, get_validator, validate_payload

Check = Callable[[Any], Any]
DRAFT_4 = "http://json-schema.org/draft-04/schema#"  # the library's Draft4Validator, always

# The schemas the library reads with Decimal floats (ocpp.messages._validate_payload). Its cache
# of validators does not key on the float parser: asking for one of these first with plain
# floats would break the library's own check of them.
_DECIMAL = {(2, "SetChargingProfile", "1.6"), (2, "RemoteStartTransaction", "1.6"),
            (3, "GetCompositeSchedule", "1.6")}

_compiled: dict[tuple[int, str, str], Check | None] = {}


def compiled(message_type_id: int, action: str, ocpp_version: str) -> Check | None:
    """The compiled check of a message's schema, or None where the library must decide."""
    key = (message_type_id, action, ocpp_version)
    if key not in _compiled:
        _compiled[key] = _compile(*key)
    return _compiled[key]


def _compile(message_type_id: int, action: str, ocpp_version: str) -> Check | None:
    if (message_type_id, action, ocpp_version) in _DECIMAL:
        return None
    try:
        schema = get_validator(message_type_id, action, ocpp_version).schema
    except Exception:  # no schema for the action: the library answers that
        return None
    if "multipleOf" in json.dumps(schema):  # float precision: jsonschema and the compiler differ
        return None
    try:
        # No defaults filled in (the payload stays as sent); formats unchecked, as jsonschema
        # does without a format checker.
        return fastjsonschema.compile({**schema, "$schema": DRAFT_4}, use_default=False,
                                      use_formats=False)
    except Exception:
        return None


async def validate(message: Call | CallResult, ocpp_version: str) -> None:
    """Raise the ocpp library's OCPPError for a payload its schema refuses."""
    check = compiled(message.message_type_id, message.action, ocpp_version)
    if check is not None:
        try:
            check(message.payload)
            return
        except fastjsonschema.JsonSchemaException:
            pass  # the library says why, in its words
    await validate_payload(message, ocpp_version)

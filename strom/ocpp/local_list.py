"""OCPP 1.6 Local Auth List Management in the words of `strom.chargers.control`: what the
configuration keys say of a charger's list, and a card as a SendLocalList entry.

A charger tells whether it has the profile in `SupportedFeatureProfiles`; one that does not say
is asked GetLocalListVersion (-1: no list), and one that says it has it may still answer
SendLocalList NotSupported (the list switched off in its own settings).
"""

from __future__ import annotations

from typing import Any

from strom.chargers.control import ControlResult, ListEntry, LocalListSettings, Outcome
from strom.ocpp.profiles import PROFILES_KEY, lacks

PROFILE = "LocalAuthListManagement"
KEYS = [PROFILES_KEY, "LocalAuthListEnabled", "LocalAuthListMaxLength",
        "SendLocalListMaxLength"]


def list_settings(values: dict[str, str | None]) -> LocalListSettings:
    """The local list as GetConfiguration's values (of `KEYS`) describe it."""
    config = {key.lower(): value for key, value in values.items()}
    profiles = lacks(values, PROFILE)
    if profiles is not None:
        return LocalListSettings(ControlResult(
            Outcome.NOT_SUPPORTED, reason=f"{PROFILES_KEY} ({profiles}) lacks {PROFILE}"))
    enabled = (config.get("localauthlistenabled") or "").strip().lower()
    return LocalListSettings(
        ControlResult(Outcome.ACCEPTED, "Accepted"),
        enabled={"true": True, "false": False}.get(enabled),
        max_entries=_positive(config.get("localauthlistmaxlength")),
        per_message=_positive(config.get("sendlocallistmaxlength")))


def list_entry(entry: ListEntry) -> dict[str, Any]:
    """A SendLocalList entry; a card to delete goes without idTagInfo (OCPP 1.6 §5.15)."""
    if entry.status is None:
        return {"idTag": entry.id_tag}
    return {"idTag": entry.id_tag, "idTagInfo": {"status": entry.status}}


def _positive(value: str | None) -> int | None:
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number > 0 else None

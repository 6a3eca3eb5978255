"""OCPP 1.6 feature profiles: what a charger's `SupportedFeatureProfiles` says it has."""

from __future__ import annotations

PROFILES_KEY = "SupportedFeatureProfiles"


def lacks(values: dict[str, str | None], profile: str) -> str | None:
    """The charger's `SupportedFeatureProfiles` (from GetConfiguration `values`) when it lists
    profiles without `profile`; None when it has it or does not say. Names are compared
    without case or spaces: chargers write them as they like."""
    listed = next((value for key, value in values.items()
                   if key.lower() == PROFILES_KEY.lower()), None)
    if listed is None:
        return None
    if profile.lower() in {p.strip().lower() for p in listed.split(",")}:
        return None
    return listed[:200]

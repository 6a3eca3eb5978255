"""The charge point's configuration keys (OCPP 1.6 §9.1): a small, realistic Core set.

Keys are case-insensitive, as CiString keys are in OCPP. GetConfiguration reports unknown keys
in `unknownKey`; ChangeConfiguration answers `NotSupported` for them and `Rejected` for a
read-only key or a value of the wrong type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ACCEPTED = "Accepted"
REJECTED = "Rejected"
NOT_SUPPORTED = "NotSupported"


def _int_at_least(low: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        return value.strip().lstrip("-").isdigit() and int(value) >= low
    return check


def _is_bool(value: str) -> bool:
    return value.strip().lower() in ("true", "false")


# What this charge point can measure, in the order it reports them.
MEASURANDS = ("Energy.Active.Import.Register", "Power.Active.Import", "SoC")


def _measurands(value: str) -> bool:
    """A comma-separated list of measurands this charger can sample (at most all of them)."""
    listed = [part.strip() for part in value.split(",") if part.strip()]
    return len(listed) <= len(MEASURANDS) and set(listed) <= set(MEASURANDS)


@dataclass
class _Key:
    name: str
    value: str
    # None: read-only, ChangeConfiguration is rejected.
    valid: Callable[[str], bool] | None = None

    @property
    def readonly(self) -> bool:
        return self.valid is None


class KeyStore:
    """The key/value store behind GetConfiguration and ChangeConfiguration."""

    def __init__(self, *, connectors: int, heartbeat_interval: int, meter_interval: float) -> None:
        rw_int0, rw_int1, rw_bool = _int_at_least(0), _int_at_least(1), _is_bool
        keys = [
            _Key("AuthorizeRemoteTxRequests", "false", rw_bool),
            _Key("ConnectionTimeOut", "60", rw_int1),
            _Key("GetConfigurationMaxKeys", "50"),
            _Key("HeartbeatInterval", str(heartbeat_interval), rw_int1),
            # No local authorization list or cache here: every idTag goes to the central system.
            _Key("LocalAuthorizeOffline", "false"),
            _Key("LocalPreAuthorize", "false"),
            # Tests start with sub-second intervals; a central system may only set whole seconds.
            _Key("MeterValueSampleInterval", f"{meter_interval:g}", rw_int1),
            _Key("MeterValuesSampledData", ",".join(MEASURANDS), _measurands),
            _Key("MeterValuesSampledDataMaxLength", str(len(MEASURANDS))),
            _Key("NumberOfConnectors", str(connectors)),
            _Key("StopTransactionOnEVSideDisconnect", "true"),
            _Key("StopTransactionOnInvalidId", "true", rw_bool),
            _Key("StopTxnSampledData", MEASURANDS[0], _measurands),
            _Key("StopTxnSampledDataMaxLength", str(len(MEASURANDS))),
            _Key("SupportedFeatureProfiles", "Core,RemoteTrigger"),
            _Key("TransactionMessageAttempts", "3", rw_int1),
            _Key("TransactionMessageRetryInterval", "10", rw_int0),
        ]
        self._keys = {k.name.lower(): k for k in keys}

    def get(self, keys: list[str] | None) -> tuple[list[dict[str, object]], list[str]]:
        """Return (configurationKey entries, unknown keys) for the given keys, or all of them."""
        if not keys:
            return [self._entry(k) for k in self._keys.values()], []
        known: list[dict[str, object]] = []
        unknown: list[str] = []
        for name in keys:
            found = self._keys.get(name.lower())
            if found is None:
                unknown.append(name)
            else:
                known.append(self._entry(found))
        return known, unknown

    def change(self, name: str, value: str) -> str:
        """Apply ChangeConfiguration; return its status."""
        found = self._keys.get(name.lower())
        if found is None:
            return NOT_SUPPORTED
        if found.valid is None or not found.valid(value):
            return REJECTED
        found.value = value.strip().lower() if found.valid is _is_bool else value.strip()
        return ACCEPTED

    def set(self, name: str, value: str) -> None:
        """Set a key from inside the charge point (e.g. the interval a BootNotification returned)."""
        self._keys[name.lower()].value = value

    def number(self, name: str) -> float:
        return float(self._keys[name.lower()].value)

    def flag(self, name: str) -> bool:
        return self._keys[name.lower()].value == "true"

    def measurands(self, name: str) -> frozenset[str]:
        """The measurands a comma-separated key lists."""
        return frozenset(part.strip() for part in self._keys[name.lower()].value.split(","))

    @staticmethod
    def _entry(key: _Key) -> dict[str, object]:
        return {"key": key.name, "readonly": key.readonly, "value": key.value}

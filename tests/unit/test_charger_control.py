"""`ControlDispatcher`: each call goes to the adapter the charger is connected through, so an
OCPP 2.0.1 adapter can sit beside the 1.6 one; a charger connected through none is
`not_connected`, whatever the operation. And the 1.6 adapter gives every status word OCPP 1.6
has its outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from ocpp.v16 import call
from ocpp.v16.enums import (
    AvailabilityStatus,
    CancelReservationStatus,
    ClearCacheStatus,
    ClearChargingProfileStatus,
    ConfigurationStatus,
    RemoteStartStopStatus,
    ReservationStatus,
    ResetStatus,
    TriggerMessageStatus,
    UnlockStatus,
    UpdateStatus,
)

from strom.chargers.control import (
    ConfigurationResult,
    ControlDispatcher,
    ControlResult,
    ListEntry,
    LocalListSettings,
    LocalListVersion,
    Outcome,
    StillWanted,
    Trigger,
)
from strom.ocpp.control import Ocpp16Control


@dataclass
class Adapter:
    """A protocol adapter that answers Accepted for its own chargers and records the calls."""

    protocol: str
    chargers: set[str]
    calls: list[tuple[str, str]] = field(default_factory=list)

    def is_connected(self, cp_id: str) -> bool:
        return cp_id in self.chargers

    def _yes(self, name: str, cp_id: str) -> ControlResult:
        self.calls.append((name, cp_id))
        return ControlResult(Outcome.ACCEPTED, f"{self.protocol}:{name}")

    async def start(self, cp_id: str, connector_id: int, id_tag: str, *,
                    still_wanted: StillWanted | None = None) -> ControlResult:
        return self._yes("start", cp_id)

    async def stop(self, cp_id: str, transaction_id: int) -> ControlResult:
        return self._yes("stop", cp_id)

    async def unlock(self, cp_id: str, connector_id: int) -> ControlResult:
        return self._yes("unlock", cp_id)

    async def set_availability(self, cp_id: str, connector_id: int,
                               operative: bool) -> ControlResult:
        return self._yes("availability", cp_id)

    async def set_power_limit(self, cp_id: str, connector_id: int,
                              watts: float | None) -> ControlResult:
        return self._yes("limit", cp_id)

    async def reset(self, cp_id: str, *, hard: bool = False) -> ControlResult:
        return self._yes("reset", cp_id)

    async def trigger(self, cp_id: str, message: Trigger,
                      connector_id: int | None = None) -> ControlResult:
        return self._yes("trigger", cp_id)

    async def get_configuration(self, cp_id: str,
                                keys: list[str] | None = None) -> ConfigurationResult:
        return ConfigurationResult(self._yes("get_configuration", cp_id))

    async def change_configuration(self, cp_id: str, key: str, value: str) -> ControlResult:
        return self._yes("change_configuration", cp_id)

    async def local_list_settings(self, cp_id: str) -> LocalListSettings:
        return LocalListSettings(self._yes("local_list_settings", cp_id))

    async def enable_local_list(self, cp_id: str) -> ControlResult:
        return self._yes("enable_local_list", cp_id)

    async def local_list_version(self, cp_id: str) -> LocalListVersion:
        return LocalListVersion(self._yes("local_list_version", cp_id), 1)

    async def send_local_list(self, cp_id: str, version: int, entries: Sequence[ListEntry], *,
                              full: bool) -> ControlResult:
        return self._yes("send_local_list", cp_id)

    async def clear_cache(self, cp_id: str) -> ControlResult:
        return self._yes("clear_cache", cp_id)

    async def reserve_now(self, cp_id: str, connector_id: int, *, expiry: datetime,
                          id_tag: str, reservation_id: int) -> ControlResult:
        return self._yes("reserve_now", cp_id)

    async def cancel_reservation(self, cp_id: str, reservation_id: int) -> ControlResult:
        return self._yes("cancel_reservation", cp_id)

    async def reservations_supported(self, cp_id: str) -> ControlResult:
        return self._yes("reservations_supported", cp_id)


async def every_operation(control: ControlDispatcher, cp_id: str) -> list[ControlResult]:
    return [await control.start(cp_id, 1, "TAG"), await control.stop(cp_id, 7),
            await control.unlock(cp_id, 1), await control.set_availability(cp_id, 0, False),
            await control.set_power_limit(cp_id, 1, 7400.0), await control.reset(cp_id),
            await control.trigger(cp_id, Trigger.STATUS, 1),
            (await control.get_configuration(cp_id)).result,
            await control.change_configuration(cp_id, "K", "V"),
            (await control.local_list_settings(cp_id)).result,
            await control.enable_local_list(cp_id),
            (await control.local_list_version(cp_id)).result,
            await control.send_local_list(cp_id, 3, [ListEntry("TAG", "Accepted")], full=True),
            await control.clear_cache(cp_id),
            await control.reserve_now(cp_id, 1, expiry=datetime.now(UTC), id_tag="TAG",
                                      reservation_id=5),
            await control.cancel_reservation(cp_id, 5),
            await control.reservations_supported(cp_id)]


async def test_each_charger_is_served_by_its_own_protocol() -> None:
    old = Adapter("ocpp1.6", {"a"})
    new = Adapter("ocpp2.0.1", {"b"})
    control = ControlDispatcher(old)
    control.register(new)
    assert (control.protocol("a"), control.protocol("b"), control.protocol("c")) == (
        "ocpp1.6", "ocpp2.0.1", None)
    assert all(r.status and r.status.startswith("ocpp1.6:")
               for r in await every_operation(control, "a"))
    assert all(r.status and r.status.startswith("ocpp2.0.1:")
               for r in await every_operation(control, "b"))
    assert {cp for _, cp in old.calls} == {"a"} and {cp for _, cp in new.calls} == {"b"}
    assert len(old.calls) == len(new.calls) == 17
    # A charger that moves to the other protocol (a firmware update) follows at once.
    old.chargers.discard("a")
    new.chargers.add("a")
    assert (await control.reset("a")).status == "ocpp2.0.1:reset"


async def test_a_charger_connected_through_none_is_not_connected() -> None:
    control = ControlDispatcher(Adapter("ocpp1.6", {"a"}))
    results = await every_operation(control, "gone")
    assert {r.outcome for r in results} == {Outcome.NOT_CONNECTED}
    assert all(r.reason == "charge point gone is not connected" and not r.ok
               and not r.answered for r in results)
    assert not control.is_connected("gone") and control.is_connected("a")


class Answering:
    """A connection whose charger answers every call with `status`."""

    def __init__(self) -> None:
        self.status = "Accepted"

    async def call(self, payload: object, **_: object) -> SimpleNamespace:
        return SimpleNamespace(status=self.status)

    async def call_payload(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"status": self.status}


# Every status word OCPP 1.6 has for the answers the adapter reads, and what it means.
OCPP16_ANSWERS = {
    "start": (RemoteStartStopStatus, {"Accepted": Outcome.ACCEPTED,
                                      "Rejected": Outcome.REJECTED}),
    "unlock": (UnlockStatus, {"Unlocked": Outcome.ACCEPTED, "UnlockFailed": Outcome.REJECTED,
                              "NotSupported": Outcome.NOT_SUPPORTED}),
    "availability": (AvailabilityStatus, {"Accepted": Outcome.ACCEPTED,
                                          "Rejected": Outcome.REJECTED,
                                          "Scheduled": Outcome.SCHEDULED}),
    "reset": (ResetStatus, {"Accepted": Outcome.ACCEPTED, "Rejected": Outcome.REJECTED}),
    "trigger": (TriggerMessageStatus, {"Accepted": Outcome.ACCEPTED, "Rejected": Outcome.REJECTED,
                                       "NotImplemented": Outcome.NOT_SUPPORTED}),
    "configuration": (ConfigurationStatus, {"Accepted": Outcome.ACCEPTED,
                                            "Rejected": Outcome.REJECTED,
                                            "RebootRequired": Outcome.SCHEDULED,
                                            "NotSupported": Outcome.NOT_SUPPORTED}),
    "clear_limit": (ClearChargingProfileStatus, {"Accepted": Outcome.ACCEPTED,
                                                 "Unknown": Outcome.ACCEPTED}),
    "send_local_list": (UpdateStatus, {"Accepted": Outcome.ACCEPTED, "Failed": Outcome.REJECTED,
                                       "NotSupported": Outcome.NOT_SUPPORTED,
                                       "VersionMismatch": Outcome.REJECTED}),
    "clear_cache": (ClearCacheStatus, {"Accepted": Outcome.ACCEPTED,
                                       "Rejected": Outcome.REJECTED}),
    "reserve": (ReservationStatus, {"Accepted": Outcome.ACCEPTED, "Faulted": Outcome.REJECTED,
                                    "Occupied": Outcome.REJECTED, "Rejected": Outcome.REJECTED,
                                    "Unavailable": Outcome.REJECTED}),
    "cancel_reservation": (CancelReservationStatus, {"Accepted": Outcome.ACCEPTED,
                                                     "Rejected": Outcome.REJECTED}),
}


async def test_every_ocpp16_status_word_has_its_outcome() -> None:
    conn = Answering()
    control = Ocpp16Control(lambda cp_id: conn, 1.0)  # type: ignore[arg-type, return-value]
    operations = {
        "start": lambda: control.start("a", 1, "T"), "unlock": lambda: control.unlock("a", 1),
        "availability": lambda: control.set_availability("a", 1, True),
        "reset": lambda: control.reset("a"),
        "trigger": lambda: control.trigger("a", Trigger.STATUS),
        "configuration": lambda: control.change_configuration("a", "K", "V"),
        "clear_limit": lambda: control.set_power_limit("a", 1, None),
        "send_local_list": lambda: control.send_local_list("a", 1, [], full=True),
        "clear_cache": lambda: control.clear_cache("a"),
        "reserve": lambda: control.reserve_now("a", 1, expiry=datetime.now(UTC), id_tag="T",
                                               reservation_id=1),
        "cancel_reservation": lambda: control.cancel_reservation("a", 1),
    }
    for name, (enum, meaning) in OCPP16_ANSWERS.items():
        assert {word.value for word in enum} == set(meaning), name  # none left out
        for word, outcome in meaning.items():
            conn.status = word
            result = await operations[name]()
            assert (result.outcome, result.status) == (outcome, word), (name, word)
            assert result.answered and bool(result.reason) != result.ok


class Listing:
    """A connection whose charger answers GetLocalListVersion with `version` and
    GetConfiguration with `values`."""

    def __init__(self, version: int, values: dict[str, str]) -> None:
        self.version, self.values = version, values

    async def call(self, payload: object, **_: object) -> SimpleNamespace:
        assert isinstance(payload, call.GetLocalListVersion)
        return SimpleNamespace(list_version=self.version)

    async def call_payload(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        assert action == "GetConfiguration"
        return {"unknownKey": [], "configurationKey": [
            {"key": key, "value": value, "readonly": True} for key, value in self.values.items()]}


async def test_the_ocpp16_local_list_in_control_words() -> None:
    conn = Listing(-1, {"SupportedFeatureProfiles": "Core,LocalAuthListManagement",
                        "LocalAuthListEnabled": "False", "LocalAuthListMaxLength": "500",
                        "SendLocalListMaxLength": "many"})
    control = Ocpp16Control(lambda cp_id: conn, 1.0)  # type: ignore[arg-type, return-value]
    none = await control.local_list_version("a")
    assert none.result.outcome == Outcome.NOT_SUPPORTED and none.version is None
    assert "-1" in none.result.reason
    conn.version = 4
    held = await control.local_list_version("a")
    assert held.result.ok and held.version == 4
    assert await control.local_list_settings("a") == LocalListSettings(
        ControlResult(Outcome.ACCEPTED, "Accepted"), enabled=False, max_entries=500,
        per_message=None)  # a value that is no number is not a limit
    conn.values = {"SupportedFeatureProfiles": "Core,FirmwareManagement"}  # Grizzl-e Smart v2
    lacking = await control.local_list_settings("a")
    assert lacking.result.outcome == Outcome.NOT_SUPPORTED
    assert "FirmwareManagement" in lacking.result.reason


async def test_the_201_adapter_sends_no_local_list_frames() -> None:
    """A 2.0.1 charger is never sent 1.6's SendLocalList: it is reported as keeping no list."""
    from strom.ocpp.v201.control import Ocpp201Control

    def no_connection(cp_id: str) -> None:
        raise AssertionError("no call may reach the charger")

    control = Ocpp201Control(no_connection, 1.0, None, None)  # type: ignore[arg-type]
    assert (await control.local_list_version("cp")).result.outcome is Outcome.NOT_SUPPORTED
    assert (await control.local_list_settings("cp")).result.outcome is Outcome.NOT_SUPPORTED
    assert (await control.send_local_list("cp", 1, [], full=True)).outcome is Outcome.NOT_SUPPORTED
    assert (await control.clear_cache("cp")).outcome is Outcome.NOT_SUPPORTED


async def test_reading_a_limit_back_where_the_protocol_cannot() -> None:
    """An adapter without `read_power_limit` answers NOT_SUPPORTED, never an exception."""
    control = ControlDispatcher(Adapter("ocpp2.0.1", {"b"}))
    reading = await control.read_power_limit("b", 1)
    assert reading.result.outcome == Outcome.NOT_SUPPORTED and reading.watts is None
    assert (await control.read_power_limit("gone", 1)).result.outcome == Outcome.NOT_CONNECTED

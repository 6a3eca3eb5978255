"""Charger control: what strom asks of a charger, whatever protocol it speaks.

Sessions, operator commands and every interface call `ChargerControl` only; a protocol adapter
(`strom.ocpp.control.Ocpp16Control` for OCPP 1.6J, an OCPP 2.0.1 one beside it) translates each
operation into its protocol's call and the answer into a `ControlResult`. `ControlDispatcher`
holds the adapters and sends each operation to the one the charger is connected through.

Every operation ends in a result, never an exception: the charger's answer, or why there was
none (not connected, no answer in time, a protocol error). Transaction ids are strom's integer
ids whatever the protocol (an adapter whose protocol names transactions otherwise maps them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable


class Outcome(StrEnum):
    """What became of one operation, in words every protocol's answers map onto."""

    ACCEPTED = "accepted"  # the charger does it (or did it)
    SCHEDULED = "scheduled"  # accepted, applied later (after the running transaction, a reboot)
    REJECTED = "rejected"  # the charger answered no
    NOT_SUPPORTED = "not_supported"  # the charger or its protocol does not have this operation
    NOT_CONNECTED = "not_connected"  # no connection to the charger, or it closed meanwhile
    TIMEOUT = "timeout"  # no answer within the call timeout
    ERROR = "error"  # the charger answered with a protocol error, or an answer that does not fit
    NOT_SENT = "not_sent"  # withdrawn while it waited for its turn (`still_wanted`): not sent


@dataclass(frozen=True, slots=True)
class ControlResult:
    """The outcome of one operation, the charger's own word and, when it failed, why."""

    outcome: Outcome
    status: str | None = None  # the charger's answer as it said it ("Accepted", "Unlocked", …)
    reason: str = ""  # a sentence for people when the outcome is not accepted
    code: str | None = None  # the protocol's error code when the charger answered an error

    @property
    def ok(self) -> bool:
        """The charger took the operation on (now or scheduled)."""
        return self.outcome in (Outcome.ACCEPTED, Outcome.SCHEDULED)

    @property
    def answered(self) -> bool:
        """The charger gave a regular answer (yes, later, no, or "I can't")."""
        return self.code is None and self.outcome in (
            Outcome.ACCEPTED, Outcome.SCHEDULED, Outcome.REJECTED, Outcome.NOT_SUPPORTED)


# Asked just before a call that waited for its turn is sent: is it still wanted?
StillWanted = Callable[[], Awaitable[bool]]


def not_connected(cp_id: str) -> ControlResult:
    """The result of any operation on a charger no adapter has a connection to."""
    return ControlResult(Outcome.NOT_CONNECTED, reason=f"charge point {cp_id} is not connected")


@dataclass(frozen=True, slots=True)
class ConfigurationResult:
    """`get_configuration`: the values read, the read-only keys and the keys the charger does
    not know; `result` says whether reading worked at all."""

    result: ControlResult
    values: dict[str, str | None] = field(default_factory=dict)
    readonly: frozenset[str] = frozenset()
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One card of a charger's local authorization list."""

    id_tag: str
    status: str | None  # what the charger answers for it ("Accepted", "Blocked"); None: delete


@dataclass(frozen=True, slots=True)
class LocalListSettings:
    """`local_list_settings`: whether the charger keeps a local list and how big. NOT_SUPPORTED:
    it has none (`result.reason` says how that showed); None: the charger did not say."""

    result: ControlResult
    enabled: bool | None = None  # False: the list is switched off (`enable_local_list`)
    max_entries: int | None = None  # the most cards the list holds
    per_message: int | None = None  # the most entries one `send_local_list` may carry


@dataclass(frozen=True, slots=True)
class LocalListVersion:
    """`local_list_version`: the version of the list the charger holds (0: none yet).
    NOT_SUPPORTED: it keeps no local list."""

    result: ControlResult
    version: int | None = None


@dataclass(frozen=True, slots=True)
class PowerReading:
    """`read_power_limit`: the power the charger says it allows now (None: no limit)."""

    result: ControlResult
    watts: float | None = None


class Trigger(StrEnum):
    """Messages a charger can be asked to send now. The values are the words of the admin
    API (OCPP 1.6's names); each adapter maps them to its protocol's."""

    BOOT = "BootNotification"
    DIAGNOSTICS_STATUS = "DiagnosticsStatusNotification"  # 2.0.1: LogStatusNotification
    FIRMWARE_STATUS = "FirmwareStatusNotification"
    HEARTBEAT = "Heartbeat"
    LOG_STATUS = "LogStatusNotification"  # 1.6: by ExtendedTriggerMessage (security extensions)
    METER_VALUES = "MeterValues"
    SIGN_CERTIFICATE = "SignChargePointCertificate"  # 1.6: by ExtendedTriggerMessage
    STATUS = "StatusNotification"


@dataclass(frozen=True, slots=True)
class FirmwareRequest:
    """Install the firmware at `location` (fetched at `retrieve_at` or later). With a signing
    certificate and signature it is a signed update (1.6 security whitepaper, 2.0.1)."""

    location: str
    retrieve_at: datetime
    request_id: int  # strom's id of the update; protocols that name requests send it back
    retries: int | None = None
    retry_interval: int | None = None  # seconds
    signing_certificate: str | None = None  # PEM
    signature: str | None = None  # base64

    @property
    def signed(self) -> bool:
        return self.signing_certificate is not None


@dataclass(frozen=True, slots=True)
class UploadRequest:
    """Upload diagnostics (`log` None) or one of the security extensions' logs
    ("DiagnosticsLog", "SecurityLog") to `location`."""

    location: str
    request_id: int
    log: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    retries: int | None = None
    retry_interval: int | None = None


@dataclass(frozen=True, slots=True)
class UploadResult:
    """`request_upload`: the answer, and the name of the file the charger will upload (None:
    it has nothing to upload, or did not say)."""

    result: ControlResult
    file_name: str | None = None


class ChargerControl(Protocol):
    """Everything strom asks of a charger. Connector 0 means the whole charger where an
    operation allows it (availability, trigger, power limit)."""

    def is_connected(self, cp_id: str) -> bool: ...

    async def start(self, cp_id: str, connector_id: int, id_tag: str, *,
                    still_wanted: StillWanted | None = None) -> ControlResult:
        """Start a transaction for `id_tag` on a connector (RemoteStart).

        OCPP sends one call at a time, so the RemoteStart may wait for its turn behind another
        call. If it did wait, `still_wanted` is asked once it has its turn, just before it is
        sent: False withdraws it (`Outcome.NOT_SENT`: the charger heard nothing)."""
        ...

    async def stop(self, cp_id: str, transaction_id: int) -> ControlResult:
        """Stop one of strom's transactions (RemoteStop)."""
        ...

    async def unlock(self, cp_id: str, connector_id: int) -> ControlResult: ...

    async def set_availability(self, cp_id: str, connector_id: int,
                               operative: bool) -> ControlResult: ...

    async def set_power_limit(self, cp_id: str, connector_id: int,
                              watts: float | None) -> ControlResult:
        """Cap the power strom's sessions may draw; None lifts strom's cap."""
        ...

    async def reset(self, cp_id: str, *, hard: bool = False) -> ControlResult: ...

    async def trigger(self, cp_id: str, message: Trigger,
                      connector_id: int | None = None) -> ControlResult: ...

    async def get_configuration(self, cp_id: str,
                                keys: list[str] | None = None) -> ConfigurationResult:
        """Read settings; keys are the protocol's own names."""
        ...

    async def change_configuration(self, cp_id: str, key: str, value: str) -> ControlResult:
        """Change one setting (the protocol's own name); SCHEDULED: after a reboot."""
        ...

    async def local_list_settings(self, cp_id: str) -> LocalListSettings:
        """Whether the charger keeps a local authorization list, switched on, and its sizes."""
        ...

    async def enable_local_list(self, cp_id: str) -> ControlResult:
        """Switch the charger's local authorization list on."""
        ...

    async def local_list_version(self, cp_id: str) -> LocalListVersion: ...

    async def send_local_list(self, cp_id: str, version: int, entries: Sequence[ListEntry], *,
                              full: bool) -> ControlResult:
        """Full: the list becomes `entries`; else they are added, changed or (status None)
        deleted. REJECTED with the charger's word (`Failed`, `VersionMismatch`) otherwise."""
        ...

    async def clear_cache(self, cp_id: str) -> ControlResult:
        """Empty the charger's authorization cache (a removed card is not remembered there)."""
        ...

    async def update_firmware(self, cp_id: str, request: FirmwareRequest) -> ControlResult:
        """Have the charger download and install firmware; NOT_SUPPORTED without sending when
        the charger says it lacks firmware management."""
        ...

    async def request_upload(self, cp_id: str, request: UploadRequest) -> UploadResult:
        """Have the charger upload its diagnostics or a log to `request.location`."""
        ...

    async def send_certificate(self, cp_id: str, chain: str) -> ControlResult:
        """Install the certificate chain (PEM) a CA signed for the charger's own CSR."""
        ...

    async def reserve_now(self, cp_id: str, connector_id: int, *, expiry: datetime,
                          id_tag: str, reservation_id: int) -> ControlResult:
        """Hold a connector for `id_tag` until `expiry` (REJECTED with the charger's word:
        `Occupied`, `Faulted`, `Unavailable`, `Rejected`)."""
        ...

    async def cancel_reservation(self, cp_id: str, reservation_id: int) -> ControlResult:
        """Release a reservation before its expiry."""
        ...

    async def reservations_supported(self, cp_id: str) -> ControlResult:
        """ACCEPTED when the charger holds reservations, NOT_SUPPORTED when it says it
        cannot (what strom offers drivers follows this)."""
        ...


@runtime_checkable
class PowerReadback(Protocol):
    """An adapter that can read back the limit a charger applies (where its protocol can)."""

    async def read_power_limit(self, cp_id: str, connector_id: int) -> PowerReading:
        """The limit in force on a connector now, from the charger's own schedule."""
        ...


class ProtocolAdapter(ChargerControl, Protocol):
    """One protocol's implementation; `is_connected` is true only for chargers connected
    through this protocol."""

    protocol: str  # "ocpp1.6", "ocpp2.0.1", …


class ControlDispatcher:
    """`ChargerControl` over all protocols: each call goes to the adapter the charger is
    connected through; a charger connected through none gets `not_connected`."""

    def __init__(self, *adapters: ProtocolAdapter) -> None:
        self._adapters: list[ProtocolAdapter] = list(adapters)

    def register(self, adapter: ProtocolAdapter) -> None:
        """Add a protocol; chargers connected through it can be controlled from now on."""
        self._adapters.append(adapter)

    def adapter(self, cp_id: str) -> ProtocolAdapter | None:
        """The adapter `cp_id` is connected through now, if any."""
        return next((a for a in self._adapters if a.is_connected(cp_id)), None)

    def protocol(self, cp_id: str) -> str | None:
        """The protocol `cp_id` is connected with now (None: not connected)."""
        adapter = self.adapter(cp_id)
        return adapter.protocol if adapter else None

    def is_connected(self, cp_id: str) -> bool:
        return self.adapter(cp_id) is not None

    async def start(self, cp_id: str, connector_id: int, id_tag: str, *,
                    still_wanted: StillWanted | None = None) -> ControlResult:
        a = self.adapter(cp_id)
        return await a.start(cp_id, connector_id, id_tag, still_wanted=still_wanted) if a \
            else not_connected(cp_id)

    async def stop(self, cp_id: str, transaction_id: int) -> ControlResult:
        a = self.adapter(cp_id)
        return await a.stop(cp_id, transaction_id) if a else not_connected(cp_id)

    async def unlock(self, cp_id: str, connector_id: int) -> ControlResult:
        a = self.adapter(cp_id)
        return await a.unlock(cp_id, connector_id) if a else not_connected(cp_id)

    async def set_availability(self, cp_id: str, connector_id: int,
                               operative: bool) -> ControlResult:
        a = self.adapter(cp_id)
        return (await a.set_availability(cp_id, connector_id, operative) if a
                else not_connected(cp_id))

    async def set_power_limit(self, cp_id: str, connector_id: int,
                              watts: float | None) -> ControlResult:
        a = self.adapter(cp_id)
        return (await a.set_power_limit(cp_id, connector_id, watts) if a
                else not_connected(cp_id))

    async def read_power_limit(self, cp_id: str, connector_id: int) -> PowerReading:
        """The limit a charger applies now; NOT_SUPPORTED when its adapter cannot read it."""
        a = self.adapter(cp_id)
        if a is None:
            return PowerReading(not_connected(cp_id))
        if not isinstance(a, PowerReadback):
            return PowerReading(ControlResult(
                Outcome.NOT_SUPPORTED, reason=f"{a.protocol} cannot read back a power limit"))
        return await a.read_power_limit(cp_id, connector_id)

    async def reset(self, cp_id: str, *, hard: bool = False) -> ControlResult:
        a = self.adapter(cp_id)
        return await a.reset(cp_id, hard=hard) if a else not_connected(cp_id)

    async def trigger(self, cp_id: str, message: Trigger,
                      connector_id: int | None = None) -> ControlResult:
        a = self.adapter(cp_id)
        return await a.trigger(cp_id, message, connector_id) if a else not_connected(cp_id)

    async def get_configuration(self, cp_id: str,
                                keys: list[str] | None = None) -> ConfigurationResult:
        a = self.adapter(cp_id)
        return (await a.get_configuration(cp_id, keys) if a
                else ConfigurationResult(not_connected(cp_id)))

    async def change_configuration(self, cp_id: str, key: str, value: str) -> ControlResult:
        a = self.adapter(cp_id)
        return (await a.change_configuration(cp_id, key, value) if a
                else not_connected(cp_id))

    async def local_list_settings(self, cp_id: str) -> LocalListSettings:
        a = self.adapter(cp_id)
        return (await a.local_list_settings(cp_id) if a
                else LocalListSettings(not_connected(cp_id)))

    async def enable_local_list(self, cp_id: str) -> ControlResult:
        a = self.adapter(cp_id)
        return await a.enable_local_list(cp_id) if a else not_connected(cp_id)

    async def local_list_version(self, cp_id: str) -> LocalListVersion:
        a = self.adapter(cp_id)
        return (await a.local_list_version(cp_id) if a
                else LocalListVersion(not_connected(cp_id)))

    async def send_local_list(self, cp_id: str, version: int, entries: Sequence[ListEntry], *,
                              full: bool) -> ControlResult:
        a = self.adapter(cp_id)
        return (await a.send_local_list(cp_id, version, entries, full=full) if a
                else not_connected(cp_id))

    async def clear_cache(self, cp_id: str) -> ControlResult:
        a = self.adapter(cp_id)
        return await a.clear_cache(cp_id) if a else not_connected(cp_id)

    async def update_firmware(self, cp_id: str, request: FirmwareRequest) -> ControlResult:
        a = self.adapter(cp_id)
        return await a.update_firmware(cp_id, request) if a else not_connected(cp_id)

    async def request_upload(self, cp_id: str, request: UploadRequest) -> UploadResult:
        a = self.adapter(cp_id)
        return (await a.request_upload(cp_id, request) if a
                else UploadResult(not_connected(cp_id)))

    async def send_certificate(self, cp_id: str, chain: str) -> ControlResult:
        a = self.adapter(cp_id)
        return await a.send_certificate(cp_id, chain) if a else not_connected(cp_id)

    async def reserve_now(self, cp_id: str, connector_id: int, *, expiry: datetime,
                          id_tag: str, reservation_id: int) -> ControlResult:
        a = self.adapter(cp_id)
        return (await a.reserve_now(cp_id, connector_id, expiry=expiry, id_tag=id_tag,
                                    reservation_id=reservation_id) if a
                else not_connected(cp_id))

    async def cancel_reservation(self, cp_id: str, reservation_id: int) -> ControlResult:
        a = self.adapter(cp_id)
        return await a.cancel_reservation(cp_id, reservation_id) if a else not_connected(cp_id)

    async def reservations_supported(self, cp_id: str) -> ControlResult:
        a = self.adapter(cp_id)
        return await a.reservations_supported(cp_id) if a else not_connected(cp_id)

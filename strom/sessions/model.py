"""The session record and its states (contract §6)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from strom.tariffs.model import Tariff


class State(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    # A reservation fee is paid: the connector is held for the payer (issue 21).
    RESERVED = "reserved"
    STARTING = "starting"
    CHARGING = "charging"
    STOPPING = "stopping"
    # The stop was asked for but the charger has not confirmed it (offline, silent, rejected):
    # part of the payment is held for the energy it may still deliver (contract extension).
    STOPPING_UNCONFIRMED = "stopping_unconfirmed"
    STOPPED = "stopped"
    REFUNDED = "refunded"
    SETTLED = "settled"
    FAILED = "failed"


# A connector is taken while a session is in one of these states.
ACTIVE_STATES = (State.STARTING, State.CHARGING, State.STOPPING, State.STOPPING_UNCONFIRMED)
# A connector is held for its session in these (a new payer is refused there).
HOLDING_STATES = (State.RESERVED, *ACTIVE_STATES)
# Charging is over in these (the charger may yet show otherwise: see strom/sessions/states.py).
ENDED_STATES = (State.STOPPED, State.FAILED, State.REFUNDED, State.SETTLED)
# The payer may withdraw `refundable_msat` in these: what is surely theirs.
REFUNDABLE_STATES = (*ENDED_STATES, State.STOPPING_UNCONFIRMED)
# A charger's meter readings and StopTransaction are billed in these.
METERED_STATES = (State.CHARGING, State.STOPPING, State.STOPPING_UNCONFIRMED)


@dataclass(slots=True)
class Session:
    id: str
    token: str
    cp_id: str
    connector_id: int | None
    active_connector_id: int | None
    id_tag: str
    state: State
    tariff: Tariff
    paid_msat: int
    consumed_msat: int
    refunded_msat: int
    forfeited_msat: int
    energy_wh: float
    power_w: float | None
    soc_percent: float | None
    meter_start_wh: float | None
    transaction_id: int | None
    payer_pubkey: str | None
    payer_lud16: str | None
    comment: str | None
    created_at: str
    paid_at: str | None
    start_requested_at: str | None
    started_at: str | None
    stopped_at: str | None
    stop_reason: str | None
    failure_reason: str | None
    updated_at: str
    # Slot-by-slot billing (tariff.lock == "slot"): the price of the slot the session is in
    # (None = the tariff's), the energy when it began, and what the energy before that cost.
    rate_msat_per_kwh: int | None = None
    rate_since_wh: float = 0.0
    rated_msat: int = 0
    # Issue 17 (migration 0009): what an unconfirmed stop holds back, what the payment could
    # not cover, and what the worst case until the next reading is computed from.
    held_msat: int = 0
    unbilled_msat: int = 0
    max_power_w: float | None = None
    last_reading_at: str | None = None
    # Separate rights, separate tokens (issue 16): `token` is the payer's (view, stop, refund);
    # `view_token` only reads the session, `topup_token` only pays into it.
    view_token: str | None = None
    topup_token: str | None = None
    # Paid reservations (issue 21, migration 0021): the fee paid to hold the connector (0: a
    # plain session), the charger's reservation id, and until when it holds.
    reservation_fee_msat: int = 0
    reservation_id: int | None = None
    reserved_until: str | None = None

    @property
    def refundable_msat(self) -> int:
        """The invariant, solved for what is surely the payer's.

        paid = consumed + refunded + forfeited + held + refundable, where `held` covers the
        energy an unconfirmed stop may still deliver.
        """
        return (self.paid_msat - self.consumed_msat - self.refunded_msat - self.forfeited_msat
                - self.held_msat)

    @property
    def stop_requested(self) -> bool:
        """A stop was asked while the charger had not started yet (`starting`, RemoteStart
        out): the payment is held, not refundable, until the charger's answer decides what is
        billed (see strom/sessions/states.py)."""
        return self.state == State.STARTING and self.stop_reason is not None

    @property
    def left_msat(self) -> int:
        """What energy may still be billed to: the payment not yet withdrawn or forfeited."""
        return self.paid_msat - self.refunded_msat - self.forfeited_msat

    @property
    def unbilled_wh(self) -> float:
        """The energy equivalent of `unbilled_msat` at the session's price per kWh."""
        price = self.tariff.price_msat_per_kwh
        return round(self.unbilled_msat * 1000 / price, 3) if price > 0 else 0.0

    @property
    def connector(self) -> int | None:
        return self.active_connector_id or self.connector_id

    def public_json(self, *, lnurlw: str | None, url: str,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The session JSON of contract §6; only the payer's carries the stop/refund link."""
        return {
            "id": self.id, "cp_id": self.cp_id, "connector_id": self.connector,
            "state": self.state.value, "paid_msat": self.paid_msat,
            "consumed_msat": self.consumed_msat, "refunded_msat": self.refunded_msat,
            "forfeited_msat": self.forfeited_msat, "held_msat": self.held_msat,
            "refundable_msat": self.refundable_msat, "unbilled_msat": self.unbilled_msat,
            "unbilled_wh": self.unbilled_wh,
            "energy_wh": round(self.energy_wh, 3), "power_w": self.power_w,
            "soc_percent": self.soc_percent, "created_at": self.created_at,
            "paid_at": self.paid_at, "started_at": self.started_at, "stopped_at": self.stopped_at,
            "stop_reason": self.stop_reason, "failure_reason": self.failure_reason,
            "stop_requested": self.stop_requested,
            "reservation_fee_msat": self.reservation_fee_msat,
            "reserved_until": self.reserved_until,
            "tariff": self.tariff.to_json(), "lnurlw": lnurlw, "url": url, **(extra or {}),
        }

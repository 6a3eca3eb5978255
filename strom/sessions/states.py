"""The one session state machine: every allowed transition and what triggers it. No I/O.

`SessionRepository.update` checks every write of `state` against `TRANSITIONS`; a write that is
not in the table raises `IllegalTransition`: a wrong transition is a bug, never a user error.
docs/architecture.md draws this table as a diagram.
"""

from __future__ import annotations

from strom.sessions.model import State

S = State

# state → {next state: what makes it happen}
TRANSITIONS: dict[State, dict[State, str]] = {
    S.PENDING_PAYMENT: {
        S.PAID: "the invoice is paid",
        S.FAILED: "no invoice could be made, or the connector a reservation was paid for was"
                  " taken meanwhile",
        S.RESERVED: "a reservation fee is paid",
    },
    S.RESERVED: {
        S.PAID: "the reserver pays to charge in time: the fee is part of the budget",
        S.FAILED: "the charger refused the reservation, the operator cancelled it, or it "
                  "expired or was cancelled with the fee refundable",
        S.SETTLED: "expired or cancelled by the payer, the fee kept",
    },
    S.PAID: {
        S.STARTING: "a connector is reserved; RemoteStartTransaction goes out",
        S.CHARGING: "StartTransaction with the session's idTag before `starting` was recorded",
        S.FAILED: "no free connector, or stopped before charging",
    },
    # A stop asked during `starting` is recorded (`stop_reason`, `Session.stop_requested`) and
    # holds the payment until the charger's answer: its StartTransaction (→ stopping, billed
    # at StopTransaction) or none in time (→ failed, all refundable).
    S.STARTING: {
        S.CHARGING: "StartTransaction with the session's idTag",
        S.STOPPING: "StartTransaction for a session whose stop was asked while starting:"
                    " RemoteStop at once",
        S.FAILED: "RemoteStart rejected, charger offline, or start_timeout (also after a stop"
                  " asked while starting)",
    },
    S.CHARGING: {
        S.STOPPING: "driver, operator, budget nearly used, or no meter readings (watchdog)",
        S.STOPPED: "StopTransaction the charger decided on (unplugged, local stop), money left",
        S.SETTLED: "StopTransaction the charger decided on, nothing left",
    },
    S.STOPPING: {
        S.STOPPED: "StopTransaction, money left",
        S.SETTLED: "StopTransaction, nothing left",
        S.STOPPING_UNCONFIRMED: "no StopTransaction within stop_timeout, or RemoteStop"
                                " rejected",
    },
    S.STOPPING_UNCONFIRMED: {
        S.STOPPED: "the final reading (StopTransaction, or the connector shows the transaction"
                   " ended), money left",
        S.REFUNDED: "the final reading, nothing left and refunds paid",
        S.SETTLED: "the final reading, nothing left",
    },
    S.STOPPED: {
        S.REFUNDED: "the whole refundable amount is paid out",
        S.SETTLED: "refund unclaimed past refund_expiry_days (forfeited)",
        S.STOPPING_UNCONFIRMED: "the charger shows the transaction still running",
    },
    S.FAILED: {
        S.REFUNDED: "the whole payment is paid back",
        S.SETTLED: "refund unclaimed past refund_expiry_days (forfeited)",
        S.STOPPING_UNCONFIRMED: "a late StartTransaction, or the charger shows the transaction"
                                " still running",
    },
    S.REFUNDED: {
        S.STOPPED: "a top-up invoice paid after the end",
        S.STOPPING_UNCONFIRMED: "the charger shows the transaction still running",
    },
    S.SETTLED: {
        S.STOPPED: "a top-up invoice paid after the end",
        S.STOPPING_UNCONFIRMED: "the charger shows the transaction still running",
    },
}


class IllegalTransition(RuntimeError):
    """A write of a session state that the table does not allow (a bug)."""


def allowed(current: State, new: State) -> bool:
    """True when `current → new` is in the table."""
    return new in TRANSITIONS.get(current, {})


def check(current: State, new: State) -> None:
    """Raise `IllegalTransition` unless `current → new` is in the table."""
    if not allowed(current, new):
        raise IllegalTransition(f"session state {current.value} → {new.value} is not allowed")

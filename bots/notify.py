"""Session notifications to the payer: started, progress, budget nearly used, stopped."""

from __future__ import annotations

from dataclasses import dataclass

from strom.lnurl.codec import lnurl_encode
from strom.sessions.model import Session, State

NEARLY_USED = 0.8  # share of the budget after which the payer is told to top up


@dataclass
class _Seen:
    state: State
    kwh_step: int = 0
    warned: bool = False


class Notifier:
    """Decides which session changes are worth a DM; remembers what it already said."""

    def __init__(self, public_url: str, every_kwh: float) -> None:
        self._public_url = public_url
        self._every_kwh = every_kwh
        self._seen: dict[str, _Seen] = {}

    def message(self, session: Session, state: State) -> str | None:
        """The DM for `session` having reached `state`, or None if there is nothing new."""
        seen = self._seen.get(session.id)
        if seen is None:
            seen = self._seen[session.id] = _Seen(State.PENDING_PAYMENT)
        page = f"{self._public_url}/s/{session.token}"
        text: str | None = None
        if state != seen.state:
            seen.state = state
            text = self._on_state(session, state, page)
            if state in (State.REFUNDED, State.SETTLED):
                del self._seen[session.id]
        elif state == State.CHARGING:
            step = int(session.energy_wh / 1000 / self._every_kwh)
            if session.paid_msat and not seen.warned and \
                    session.consumed_msat >= NEARLY_USED * session.paid_msat:
                seen.warned = True
                text = (f"Your prepayment is nearly used ({session.consumed_msat // 1000:,} of "
                        f"{session.paid_msat // 1000:,} sat). Zap me again to keep charging.")
            elif step > seen.kwh_step:
                seen.kwh_step = step
                text = (f"Charging: {session.energy_wh / 1000:.1f} kWh, "
                        f"{session.consumed_msat // 1000:,} sat used, "
                        f"{session.refundable_msat // 1000:,} sat left.")
        return text

    def refunded_to(self, session: Session, address: str) -> str:
        """The end-of-session message when the refund went to the payer's lightning address."""
        return (f"Stopped ({session.stop_reason or session.failure_reason or 'done'}): "
                f"{session.energy_wh / 1000:.2f} kWh for {session.consumed_msat // 1000:,} sat. "
                f"Your refund of {session.refundable_msat // 1000:,} sat is on its way to "
                f"{address}.")

    def address_refund_abandoned(self, session: Session, address: str, attempts: int) -> str:
        """strom gave up sending the refund to the payer's lightning address."""
        tries = "once" if attempts == 1 else f"{attempts} times"
        return (f"Your refund of {session.refundable_msat // 1000:,} sat could not be sent to "
                f"{address} (tried {tries}). Withdraw it with this link instead: "
                f"lightning:{self._withdraw_link(session)}")

    def _withdraw_link(self, session: Session) -> str:
        return lnurl_encode(f"{self._public_url}/lnurlw/{session.token}")

    def _on_state(self, session: Session, state: State, page: str) -> str | None:
        refund = self._withdraw_link(session)
        match state:
            case State.RESERVED:
                return (f"Reservation fee of {session.paid_msat // 1000:,} sat received: "
                        f"connector {session.active_connector_id} is held for you. Zap me again "
                        "to charge (the fee counts toward it), or DM `cancel`. " + page)
            case State.PAID:
                return f"Payment of {session.paid_msat // 1000:,} sat received, starting. {page}"
            case State.CHARGING:
                return (f"Charging started. Follow it at {page} — DM `stop` to stop, "
                        "unused sats come back to you.")
            case State.STOPPED:
                return (f"Stopped ({session.stop_reason or 'done'}): "
                        f"{session.energy_wh / 1000:.2f} kWh for {session.consumed_msat // 1000:,}"
                        f" sat. Refund of {session.refundable_msat // 1000:,} sat: "
                        f"lightning:{refund}")
            case State.FAILED:
                return (f"Charging could not start ({session.failure_reason}). Your "
                        f"{session.refundable_msat // 1000:,} sat are refundable: "
                        f"lightning:{refund}")
            case State.REFUNDED:
                return f"Refund of {session.refunded_msat // 1000:,} sat paid. Thank you!"
            case State.STOPPING_UNCONFIRMED:
                return (f"Stopped, but the charger has not confirmed it yet. "
                        f"{session.refundable_msat // 1000:,} sat are refundable now: "
                        f"lightning:{refund} — {session.held_msat // 1000:,} sat are held "
                        "until the charger reports its final reading.")
        return None

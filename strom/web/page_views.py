"""What the public pages say, as text: the HTML and its live updates use the same words.

The session page is rendered once on the server (readable without JavaScript) and then kept
current from `/s/{token}/events`, whose frames carry a `view` made here: the script copies
texts into elements by id and shows or hides sections, so no wording lives in JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strom.timeutil import parse_iso, utcnow

STATE_WORDS = {
    "pending_payment": "Waiting for your payment", "paid": "Paid, starting the charger",
    "starting": "Starting the charger", "charging": "Charging", "stopping": "Stopping",
    "stopped": "Stopped", "refunded": "Finished and refunded", "settled": "Finished",
    "failed": "Did not start", "reserved": "Reserved for you",
    "stopping_unconfirmed": "Stopped, waiting for the charger to confirm",
}
# While a session is in one of these the charger may still draw from the budget.
RUNNING = ("paid", "starting", "charging", "stopping")
# The payer can take their refund in these (all but a held part while a stop is unconfirmed).
ENDED = ("stopped", "refunded", "settled", "failed", "stopping_unconfirmed")
# A charger takes a new payer on a connector in one of these (see SessionService.free_connector).
FREE = ("Available", "Preparing")


def sat(msat: int | float) -> str:
    """Whole satoshis with thousands separators; a fraction of a sat is not shown."""
    return f"{int(msat) // 1000:,} sat"


def price(msat: int | float) -> str:
    """A price in sat, keeping fractions that matter for small unit prices."""
    value = msat / 1000
    return f"{value:,.0f} sat" if value == int(value) else f"{value:,.3f} sat"


def clock(moment: str | None) -> str:
    """`14:03 UTC`, or a dash when the moment has not come yet."""
    return parse_iso(moment).strftime("%H:%M UTC") if moment else "–"


def hms(seconds: float) -> str:
    """`h:mm:ss`; static/session.js ticks the same format while charging."""
    whole = max(int(seconds), 0)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def elapsed(started: str | None, stopped: str | None, now: datetime | None = None) -> str:
    """How long the car has been charging (or charged, once stopped)."""
    if not started:
        return "–"
    end = parse_iso(stopped) if stopped else (now or utcnow())
    return hms((end - parse_iso(started)).total_seconds())


def refund_words(s: dict[str, Any]) -> str:
    """Where the payer's money stands after the end of a session."""
    if s["refundable_msat"] > 0 and not s.get("lnurlw"):  # the read-only view
        return f"{sat(s['refundable_msat'])} are waiting for the payer."
    held = (f" {sat(s['held_msat'])} are held until the charger confirms the stop."
            if s.get("held_msat") else "")
    if s["refundable_msat"] > 0:
        return (f"{sat(s['refundable_msat'])} are waiting for you: scan the refund code "
                f"above with your wallet.{held}")
    if held:
        return held.strip()
    if s["refunded_msat"] > 0:
        return f"{sat(s['refunded_msat'])} refunded to your wallet."
    if s.get("forfeited_msat"):
        return f"{sat(s['forfeited_msat'])} were not claimed in time."
    return "Nothing to refund: the whole payment was used for charging."


# A stop asked while the charger had not started yet (`stop_requested`): no refund offered yet.
STOP_HELD_WORDS = ("Stopping: the charger has not answered the start yet. Your refund is "
                   "offered here once it has.")


def end_words(s: dict[str, Any]) -> str:
    if s["state"] == "failed":
        return f"The charger did not start ({s.get('failure_reason') or 'no reason given'})."
    reason = s.get("stop_reason")
    return f"Charging ended: {reason}." if reason else "Charging ended."


@dataclass(slots=True)
class SessionView:
    """Element id → text, section id → shown, progress id → (value, max)."""

    state: str
    texts: dict[str, str] = field(default_factory=dict)
    shown: dict[str, bool] = field(default_factory=dict)
    bars: dict[str, tuple[int, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "texts": self.texts, "shown": self.shown,
                "bars": {k: list(v) for k, v in self.bars.items()}}


def session_view(s: dict[str, Any], now: datetime | None = None) -> SessionView:
    """The session page's wording for the session JSON `s` (contract §6)."""
    state = s["state"]
    held = bool(s.get("stop_requested"))  # the outcome decides the refund: nothing to scan yet
    running = state in RUNNING and not held
    power = s.get("power_w")
    soc = s.get("soc_percent")
    view = SessionView(state)
    view.texts = {
        "state": STOP_HELD_WORDS if held else STATE_WORDS.get(state, state),
        "energy": f"{s['energy_wh'] / 1000:.2f}",
        "power": f"{power / 1000:.1f}" if power is not None and state == "charging" else "–",
        "soc": f"{soc:.0f}" if soc is not None else "–",
        "paid": sat(s["paid_msat"]), "consumed": sat(s["consumed_msat"]),
        "charged": sat(s["consumed_msat"]),
        "refundable": sat(s["refundable_msat"]), "refunded": sat(s["refunded_msat"]),
        "elapsed": elapsed(s.get("started_at"), s.get("stopped_at"), now),
        "started": clock(s.get("started_at")), "stopped": clock(s.get("stopped_at")),
        "budget-words": f"{sat(s['consumed_msat'])} of {sat(s['paid_msat'])} used",
        "stop-title": "Stop and refund" if running else "Get your refund",
        "end-words": end_words(s) if state in ENDED else "",
        "refund-words": refund_words(s) if state in ENDED else "",
        "reserved-until": clock(s.get("reserved_until")),
    }
    view.shown = {
        # Only the payer's JSON carries the stop & refund link (`lnurlw`).
        "stop-section": bool(s.get("lnurlw")) and not held
        and (running or s["refundable_msat"] > 0),
        # A reservation is started by paying to charge: the top-up, with the fee in it.
        "topup-section": state in ("reserved", "paid", "starting", "charging") and not held,
        "reserve-section": state == "reserved",
        "receipt-section": state in ENDED,
        "waiting-section": state == "pending_payment",
    }
    view.bars = {"budget": (s["consumed_msat"], max(s["paid_msat"], 1))}
    return view


def availability(cp: dict[str, Any]) -> str:
    """Whether a driver can pay at this charger now, for the charger page."""
    if cp["status"] == "Offline":
        return "The charger is offline: paying is not possible right now."
    free = sum(1 for c in cp["connectors"] if c["status"] in FREE)
    total = len(cp["connectors"])
    if free == 0:
        return "No connector is free right now."
    if total == 1:
        return "The connector is free: scan the code to pay and start charging."
    return f"{free} of {total} connectors are free: scan the code to pay and start charging."

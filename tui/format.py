"""Numbers and words as the operator console shows them."""

from __future__ import annotations

from typing import Any

from rich.text import Text

REFUND_WORDS = {
    "refunded": "refund paid", "settled": "nothing left to refund",
    "pending_payment": "not paid", "paid": "paid, not started",
}


def sat(msat: int | None) -> str:
    """Millisatoshi as whole satoshi with thousands separators: 1,234,567 msat → `1,235 sat`."""
    if msat is None:
        return "-"
    return f"{round(msat / 1000):,} sat"


def kw(power_w: float | None) -> str:
    return "-" if not power_w else f"{power_w / 1000:.1f} kW"


def kwh(energy_wh: float | None) -> str:
    return "-" if energy_wh is None else f"{energy_wh / 1000:.2f} kWh"


def plain(value: Any) -> Text:
    """User-supplied text (names, reasons) shown as is: no markup is interpreted."""
    return Text("-" if value is None or value == "" else str(value))


STATUS_STYLE = {
    "Available": "green", "Charging": "bold cyan", "Preparing": "cyan", "Finishing": "cyan",
    "SuspendedEV": "yellow", "SuspendedEVSE": "yellow", "Reserved": "yellow",
    "Unavailable": "red", "Faulted": "bold red", "Offline": "dim",
}


def status(word: str) -> Text:
    return Text(word, style=STATUS_STYLE.get(word, ""))


def refund_state(session: dict[str, Any]) -> str:
    """Where the payer's money stands, in words."""
    if session["refundable_msat"] > 0 and session["state"] in ("stopped", "failed",
                                                               "stopping_unconfirmed"):
        return f"{sat(session['refundable_msat'])} waiting for the payer to claim"
    if session.get("forfeited_msat"):
        return f"{sat(session['forfeited_msat'])} forfeited (not claimed in time)"
    if session["refunded_msat"]:
        return f"{sat(session['refunded_msat'])} refunded"
    return REFUND_WORDS.get(session["state"], "charging: refund after the stop")

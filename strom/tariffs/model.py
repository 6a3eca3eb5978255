"""The tariff model and the one cost function every part of strom uses."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Literal

from strom.timeutil import iso


@dataclass(frozen=True, slots=True)
class Tariff:
    """Prices in msat. A session stores the tariff it was sold under, unchanged to its end.

    `valid_until` says how long this price is offered to new payers (a dynamic price changes
    when its spot slot ends). Once paid, `lock` says how it holds: "session" = this price for
    all the session's energy; "slot" = energy in a later slot at that slot's price from
    `later_prices` ([start, end, msat per kWh], as published when paid, already capped at this
    price), this price where none was published. `basis` records the facts a price was made
    from: for a dynamic price the spot EUR/MWh, the BTC/EUR rate and the feeds' ages; for a
    static fallback, why.
    """

    price_msat_per_kwh: int
    session_fee_msat: int = 0
    price_msat_per_minute: int = 0
    grace_minutes: int = 0
    min_prepay_msat: int = 1_000_000
    max_prepay_msat: int = 100_000_000
    source: Literal["static", "dynamic"] = "static"
    valid_until: str | None = None
    basis: dict[str, Any] | None = None
    lock: Literal["session", "slot"] = "session"
    later_prices: list[list[Any]] | None = None
    # The slow rate (chosen when paying): the session charges at most this many W, and its
    # price is the cheaper one. None: the normal rate, at whatever power the site allows.
    max_power_w: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["currency"] = "msat"
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tariff:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def min_sendable_msat(self) -> int:
        # A payment must at least cover the session fee and leave something to charge with.
        return max(self.min_prepay_msat, self.session_fee_msat + 1000)


def cost_msat(tariff: Tariff, energy_wh: float, minutes: float) -> int:
    """What `energy_wh` over `minutes` costs under `tariff` (rounded up to the msat)."""
    energy = math.ceil(tariff.price_msat_per_kwh * max(energy_wh, 0.0) / 1000.0)
    billable_minutes = max(0.0, minutes - tariff.grace_minutes)
    time = math.ceil(tariff.price_msat_per_minute * billable_minutes)
    return tariff.session_fee_msat + energy + time


def energy_rate(tariff: Tariff, moment: datetime) -> int:
    """The energy price a paid session pays at `moment` under its tariff's `lock` rule."""
    at = iso(moment)
    for start, end, price in tariff.later_prices or ():
        if start <= at < end:  # ISO 8601 UTC text in one format sorts like the times
            return min(int(price), tariff.price_msat_per_kwh)
    return tariff.price_msat_per_kwh


@dataclass(frozen=True, slots=True)
class Rating:
    """Where slot-by-slot billing of a session stands (kept with the session)."""

    rate_msat_per_kwh: int | None = None  # the slot price in force; None = the tariff's price
    since_wh: float = 0.0  # the session's energy when that price began
    rated_msat: int = 0  # what the energy before `since_wh` cost


def cost_under_lock(tariff: Tariff, rating: Rating, energy_before_wh: float, energy_wh: float,
                    minutes: float, at: datetime) -> tuple[int, Rating]:
    """What a session owes after a reading at `at`, under its tariff's `lock`, and the rating.

    "session": `cost_msat`. "slot": the energy since the last reading (`energy_before_wh`) at
    the price of the slot `at` falls in, earlier energy as rated before; never more than the
    "session" cost, so a driver never pays above the price the wallet showed.
    """
    locked = cost_msat(tariff, energy_wh, minutes)
    if tariff.lock != "slot":
        return locked, rating
    rate = energy_rate(tariff, at)
    current = tariff.price_msat_per_kwh if rating.rate_msat_per_kwh is None \
        else rating.rate_msat_per_kwh
    if rate != current:
        rating = Rating(rate, energy_before_wh, rating.rated_msat
                        + math.ceil(current * (energy_before_wh - rating.since_wh) / 1000.0))
    energy = rating.rated_msat + math.ceil(rate * max(energy_wh - rating.since_wh, 0.0) / 1000.0)
    fee_and_time = cost_msat(replace(tariff, price_msat_per_kwh=0), 0.0, minutes)
    return min(locked, fee_and_time + energy), rating


def _sat(msat: int) -> str:
    sat = msat / 1000
    return f"{sat:,.0f} sat" if sat == int(sat) else f"{sat:,.3f} sat"


def _basis_words(tariff: Tariff) -> str:
    basis = tariff.basis or {}
    if tariff.source == "dynamic" and "spot_eur_per_mwh" in basis:
        until = f", until {tariff.valid_until[11:16]} UTC" if tariff.valid_until else ""
        return (f" (dynamic: spot {basis['spot_eur_per_mwh']:.2f} EUR/MWh at "
                f"{basis['btc_eur']:,.0f} EUR/BTC{until})")
    if basis.get("fallback"):
        return f" (fixed price: {basis['fallback']})"
    return ""


def lock_words(tariff: Tariff) -> str:
    """How a paid price holds for the session's later energy (drivers read it before paying)."""
    if tariff.lock == "slot":
        return ("Energy in later hours at each hour's own price, never above this one "
                "(slot by slot, this price as a cap).")
    return "This energy price is locked for your whole session."


def slow_words(tariff: Tariff) -> str:
    """What the slow rate promises (empty for the normal rate)."""
    if tariff.max_power_w is None:
        return ""
    return f"Slow rate: charging at most {tariff.max_power_w / 1000:.1f} kW. "


def describe_slow(tariff: Tariff) -> str:
    """The slow rate in a few words, where the normal price names it."""
    return f"at most {(tariff.max_power_w or 0) / 1000:.1f} kW for " \
        f"{_sat(tariff.price_msat_per_kwh)} per kWh"


def describe(tariff: Tariff) -> str:
    """The tariff in words, as wallets show it before the driver pays."""
    parts = [f"{slow_words(tariff)}{_sat(tariff.price_msat_per_kwh)} per kWh"
             f"{_basis_words(tariff)}"]
    parts.append(f"session fee {_sat(tariff.session_fee_msat)}" if tariff.session_fee_msat
                 else "no session fee")
    if tariff.price_msat_per_minute:
        parts.append(f"{_sat(tariff.price_msat_per_minute)} per minute after "
                     f"{tariff.grace_minutes} min")
    return f"{', '.join(parts)}. {lock_words(tariff)} Unused prepayment is refunded."

"""Dynamic prices: spot EUR/MWh and BTC/EUR → msat per kWh, the schedule, and when to fall back.

Everything here is a pure function of the feed data, the settings and the time, so the
service, the pages and the tests compute the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from strom.config import TariffSettings
from strom.tariffs.feeds import SpotSlot
from strom.tariffs.model import Tariff
from strom.timeutil import iso

MSAT_PER_BTC = 100_000_000_000


@dataclass(frozen=True, slots=True)
class FeedData:
    """What is known of both feeds: the last good values, when they came, the last error."""

    slots: tuple[SpotSlot, ...] = ()
    spot_fetched_at: datetime | None = None
    spot_error: str | None = None
    btc_eur: float | None = None
    btc_fetched_at: datetime | None = None
    btc_error: str | None = None


@dataclass(frozen=True, slots=True)
class PriceSlot:
    """The energy price a driver would lock in during one spot slot, at today's BTC/EUR rate."""

    start: datetime
    end: datetime
    spot_eur_per_mwh: float
    price_msat_per_kwh: int
    bound: str | None  # "floor" or "ceiling" when the formula's result was cut off

    def to_json(self) -> dict[str, Any]:
        return {"start": iso(self.start), "end": iso(self.end),
                "spot_eur_per_mwh": self.spot_eur_per_mwh,
                "price_msat_per_kwh": self.price_msat_per_kwh, "bound": self.bound}


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """The feeds as an operator or driver should see them: ages, errors, fallback and why."""

    mode: str
    fallback: bool
    reason: str | None  # with the feeds' last errors, which name their sources: operators only
    public_reason: str | None  # the same without errors, for drivers
    spot_age_seconds: float | None
    btc_age_seconds: float | None
    spot_error: str | None
    btc_error: str | None
    btc_eur: float | None

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "fallback": self.fallback, "reason": self.reason,
                "spot_age_seconds": _rounded(self.spot_age_seconds),
                "btc_age_seconds": _rounded(self.btc_age_seconds),
                "spot_error": self.spot_error, "btc_error": self.btc_error,
                "btc_eur": self.btc_eur}

    def public_json(self) -> dict[str, Any]:
        """What drivers may see (pages, nostr): no feed errors, which name internal sources."""
        return {**self.to_json(), "reason": self.public_reason,
                "spot_error": _failing(self.spot_error), "btc_error": _failing(self.btc_error)}

    def ages_in_words(self) -> str:
        """E.g. "spot prices 3 min old, BTC/EUR 3 min old"."""
        return (f"spot prices {age_words(self.spot_age_seconds)}, "
                f"BTC/EUR {age_words(self.btc_age_seconds)}")


def _failing(error: str | None) -> str | None:
    return None if error is None else "failing"


def _rounded(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds)


def duration_words(seconds: float) -> str:
    """A duration for people: "40 s", "3 min", "2 h 5 min"."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def age_words(seconds: float | None) -> str:
    """A feed's age: "never fetched" or "3 min old"."""
    return "never fetched" if seconds is None else f"{duration_words(seconds)} old"


def energy_price(spot_eur_per_mwh: float, btc_eur: float,
                 settings: TariffSettings) -> tuple[int, str | None, float]:
    """(msat per kWh, bound applied or None, EUR per kWh before conversion) for one spot price."""
    dyn = settings.dynamic
    eur_per_kwh = ((spot_eur_per_mwh / 1000.0) * dyn.markup + dyn.fixed_eur_per_kwh) \
        * (1 + dyn.tax_percent / 100.0)
    msat = round(eur_per_kwh / btc_eur * MSAT_PER_BTC)
    if msat < dyn.floor_msat_per_kwh:
        return dyn.floor_msat_per_kwh, "floor", eur_per_kwh
    if msat > dyn.ceiling_msat_per_kwh:
        return dyn.ceiling_msat_per_kwh, "ceiling", eur_per_kwh
    return msat, None, eur_per_kwh


def slot_at(slots: tuple[SpotSlot, ...], moment: datetime) -> SpotSlot | None:
    """The slot whose price applies at `moment`."""
    return next((s for s in slots if s.start <= moment < s.end), None)


def _stale(what: str, fetched_at: datetime | None, error: str | None, now: datetime,
           max_age: float, detail: bool) -> str | None:
    last_error = f" (last error: {error})" if error and detail else ""
    if fetched_at is None:
        return f"no {what} fetched yet{last_error}"
    age = (now - fetched_at).total_seconds()
    if age > max_age:
        return f"{what} not updated for {duration_words(age)}{last_error}"
    return None


def fallback_reason(data: FeedData, settings: TariffSettings, now: datetime, *,
                    detail: bool = True) -> str | None:
    """Why the dynamic price cannot be computed now, or None when it can.

    With `detail` the feeds' last errors are named; they may contain a feed's URL or path, so
    whatever drivers see (tariff basis, pages, nostr, LNURL metadata) is made without it.
    """
    max_age = settings.feeds.max_age_seconds
    reason = _stale("spot price", data.spot_fetched_at, data.spot_error, now, max_age, detail)
    if reason is None and slot_at(data.slots, now) is None:
        ends = max(s.end for s in data.slots)
        reason = (f"spot feed has no price for now (its prices end {iso(ends)[:16]} UTC)"
                  if ends <= now else "spot feed has no price for now")
    return reason or _stale("BTC/EUR rate", data.btc_fetched_at, data.btc_error, now, max_age,
                            detail)


def feed_status(data: FeedData, settings: TariffSettings, now: datetime) -> FeedStatus:
    """The feeds' state for pages, nostr status and the API."""
    def age(at: datetime | None) -> float | None:
        return None if at is None else (now - at).total_seconds()

    dynamic = settings.mode == "dynamic"
    reason = fallback_reason(data, settings, now) if dynamic else None
    public = fallback_reason(data, settings, now, detail=False) if dynamic else None
    return FeedStatus(mode=settings.mode, fallback=reason is not None, reason=reason,
                      public_reason=public,
                      spot_age_seconds=age(data.spot_fetched_at),
                      btc_age_seconds=age(data.btc_fetched_at), spot_error=data.spot_error,
                      btc_error=data.btc_error, btc_eur=data.btc_eur)


def dynamic_tariff(base: Tariff, data: FeedData, settings: TariffSettings,
                   now: datetime) -> Tariff:
    """`base` with the energy price of this moment; with a fallback note when there is none.

    The note is the reason without the feeds' errors: a tariff is shown to drivers.
    """
    reason = fallback_reason(data, settings, now, detail=False)
    if reason is not None:
        return replace(base, source="static", basis={"fallback": reason})
    slot = slot_at(data.slots, now)
    assert slot is not None and data.btc_eur is not None  # fallback_reason checked both
    assert data.spot_fetched_at is not None and data.btc_fetched_at is not None
    price, bound, eur_per_kwh = energy_price(slot.eur_per_mwh, data.btc_eur, settings)
    later = None
    if settings.price_lock == "slot":
        later = [[iso(s.start), iso(s.end), min(price, energy_price(s.eur_per_mwh, data.btc_eur,
                                                                    settings)[0])]
                 for s in data.slots if s.start >= slot.end]
    return replace(base, price_msat_per_kwh=price, source="dynamic", valid_until=iso(slot.end),
                   lock=settings.price_lock, later_prices=later,
                   basis={"spot_eur_per_mwh": slot.eur_per_mwh, "btc_eur": data.btc_eur,
                          "eur_per_kwh": round(eur_per_kwh, 6), "bound": bound,
                          "slot_start": iso(slot.start), "slot_end": iso(slot.end),
                          "spot_age_seconds": int((now - data.spot_fetched_at).total_seconds()),
                          "btc_age_seconds": int((now - data.btc_fetched_at).total_seconds())})


def price_schedule(data: FeedData, settings: TariffSettings, now: datetime,
                   hours: float) -> list[PriceSlot]:
    """Prices from the current slot to `hours` ahead; empty while the fallback applies."""
    if fallback_reason(data, settings, now) is not None:
        return []
    assert data.btc_eur is not None
    until = now + timedelta(hours=hours)
    shown = []
    for slot in data.slots:
        if slot.end > now and slot.start < until:
            price, bound, _ = energy_price(slot.eur_per_mwh, data.btc_eur, settings)
            shown.append(PriceSlot(slot.start, slot.end, slot.eur_per_mwh, price, bound))
    return shown


def schedule_lines(schedule: list[PriceSlot], limit: int = 12) -> list[str]:
    """The next slots as short lines for LNURL metadata and nostr: "14:00-15:00 UTC 312 sat/kWh"."""
    return [f"{iso(s.start)[11:16]}-{iso(s.end)[11:16]} UTC "
            f"{s.price_msat_per_kwh / 1000:,.0f} sat/kWh" for s in schedule[:limit]]

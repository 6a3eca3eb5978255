"""The tariff service: the current price of a charge point, from whichever source applies.

In `dynamic` mode an APScheduler job fetches the spot and BTC/EUR feeds every
`[tariff.feeds] interval_seconds` and caches them in the store, so a restart has prices at
once; with `follow_btc` (OCPI in EUR) a static tariff fetches the BTC/EUR feed alone. `current()` stays synchronous: it only reads what the last fetch left in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from strom.config import TariffSettings
from strom.outbound import Outbound
from strom.store.charge_points import ChargerRecord
from strom.store.db import Database
from strom.store.tariff_feeds import TariffFeedRepository
from strom.tariffs.dynamic import (
    FeedData,
    FeedStatus,
    PriceSlot,
    dynamic_tariff,
    feed_status,
    price_schedule,
)
from strom.tariffs.feeds import FeedError, SpotSlot, fetch_btc, fetch_spot, shown_source
from strom.tariffs.model import Tariff
from strom.tariffs.quotes import Quote, QuoteBook
from strom.tariffs.slow import NORMAL, SLOW, SlowRate, slow_rate, slowed
from strom.tariffs.static import static_tariff
from strom.timeutil import iso, parse_iso, utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BtcRate:
    """EUR per BTC as the feed gave it, and when it came."""

    eur_per_btc: float
    at: datetime

# A quote lives this long unless told otherwise (`[lightning] invoice_expiry` in the app).
DEFAULT_QUOTE_SECONDS = 600.0
# Spot slots older than this are dropped from the cache; the newest one is always kept.
_KEEP_PAST = timedelta(days=1)


class TariffService:
    """Prices for drivers. `await start()` before use in dynamic mode, `await close()` after."""

    def __init__(self, default: TariffSettings, db: Database | None = None, *,
                 outbound: Outbound, clock: Callable[[], datetime] = utcnow,
                 quote_seconds: float = DEFAULT_QUOTE_SECONDS, follow_btc: bool = False) -> None:
        """`follow_btc`: fetch the BTC/EUR rate even for a static tariff (see `btc_rate`)."""
        self._default = default
        self._follow_btc = follow_btc
        self._repo = TariffFeedRepository(db) if db is not None else None
        self._clock = clock
        self._data = FeedData()
        self._quotes = QuoteBook(timedelta(seconds=quote_seconds), clock)
        self._outbound = outbound
        self._scheduler: AsyncIOScheduler | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[FeedStatus]] = set()
        self._closing = False
        self._fallback: str | None = None

    @property
    def dynamic(self) -> bool:
        return self._default.mode == "dynamic"

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load cached feed values, then fetch now and every `interval_seconds` (dynamic, or
        `follow_btc`)."""
        if not self.dynamic and not self._follow_btc:
            return
        await self._load_cache()
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_job(
            self._scheduled_refresh, "interval", id="tariff-feeds",
            seconds=self._default.feeds.interval_seconds, next_run_time=datetime.now(UTC),
            max_instances=1, coalesce=True, misfire_grace_time=None)
        self._scheduler.start()
        log.info("%s BTC/EUR from %s, every %d s",
                 f"dynamic tariff: spot prices from {shown_source(self._default.feeds.spot_url)},"
                 if self.dynamic else "static tariff:",
                 shown_source(self._default.feeds.btc_url), self._default.feeds.interval_seconds)

    async def close(self) -> None:
        """Stop the schedule and any fetch under way."""
        self._closing = True
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _scheduled_refresh(self) -> None:
        # The fetch runs as its own task so close() can cancel it without APScheduler
        # logging the cancellation as a failed job.
        task = asyncio.ensure_future(self.refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            await task
        except asyncio.CancelledError:
            if not self._closing:
                raise

    # --- prices -----------------------------------------------------------------------------

    def is_dynamic(self, cp: ChargerRecord) -> bool:
        """Whether this charge point's price follows the feeds (no fixed price of its own)."""
        return self.dynamic and "price_msat_per_kwh" not in cp.tariff

    def current(self, cp: ChargerRecord) -> Tariff:
        """The price a driver would lock in by paying now.

        A charge point with its own `price_msat_per_kwh` keeps that fixed price in both modes.
        """
        base = static_tariff(self._default, cp)
        if not self.is_dynamic(cp):
            return base
        tariff = dynamic_tariff(base, self._data, self._default, self._clock())
        self._note_fallback((tariff.basis or {}).get("fallback"))
        return tariff

    def power_ceiling_w(self, cp: ChargerRecord) -> int | None:
        """The most a session of `cp` may draw now because energy is expensive (None: no
        ceiling): `[tariff.dynamic] expensive_max_power_w` while the charger's dynamic price is
        above `expensive_above_msat_per_kwh`. What drivers pay is unchanged (their price is
        locked); the operator draws less from the grid while it costs most."""
        dynamic = self._default.dynamic
        if not dynamic.expensive_above_msat_per_kwh or not self.is_dynamic(cp):
            return None
        if self.current(cp).price_msat_per_kwh <= dynamic.expensive_above_msat_per_kwh:
            return None
        return dynamic.expensive_max_power_w

    def slow_rate(self, cp: ChargerRecord) -> SlowRate | None:
        """The charge point's slow rate (`[tariff.slow_rate]` and its overrides), if any."""
        return slow_rate(self._default, cp)

    def rated(self, cp: ChargerRecord, rate: str = NORMAL) -> Tariff:
        """The current tariff at `rate` ("normal" or "slow"; ask only for a rate it has)."""
        return self.at_rate(self.current(cp), cp, rate)

    def at_rate(self, tariff: Tariff, cp: ChargerRecord, rate: str) -> Tariff:
        """`tariff` (a normal price of `cp`) at `rate`."""
        slow = self.slow_rate(cp) if rate == SLOW else None
        return slowed(tariff, slow) if slow is not None else tariff

    def quote(self, cp: ChargerRecord, rate: str = NORMAL) -> tuple[Tariff, str]:
        """The current tariff at `rate` and an id that `quoted()` turns back into it, once,
        while it holds: the rate is locked with the price."""
        tariff = self.rated(cp, rate)
        quote_id, _ = self._quotes.issue(cp.id, tariff,
                                         self.at_rate(static_tariff(self._default, cp), cp, rate))
        return tariff, quote_id

    def quoted(self, cp: ChargerRecord, quote_id: str | None,
               rate: str = NORMAL) -> QuotedPrice:
        """The price for one invoice: the quote's, if it still holds, else a fresh one.

        A quote holds until its lifetime or its spot slot ends, the operator changes the
        charge point's prices (its slow rate included) or cancels quotes, or (for a fallback
        price) the feeds recover; it is taken by the first invoice, and only for the rate it
        was issued at. Otherwise the current price at `rate` is quoted afresh, and `shown`
        says what the wallet was shown, when that is still remembered.
        """
        def still_holds(quote: Quote) -> bool:
            if quote.base != self.at_rate(static_tariff(self._default, cp), cp, rate):
                return False  # the operator changed this charge point's prices, or another rate
            fallback = "fallback" in (quote.tariff.basis or {})
            return not fallback or "fallback" in (self.current(cp).basis or {})

        quote, taken = self._quotes.take(cp.id, quote_id, still_holds) if quote_id \
            else (None, False)
        now = self._clock()
        if quote is not None and taken:
            return QuotedPrice(quote.tariff, (quote.ends_at - now).total_seconds(), None)
        tariff = self.rated(cp, rate)
        return QuotedPrice(tariff, (self._quotes.ends_at(tariff) - now).total_seconds(),
                           quote.tariff if quote is not None else None)

    def cancel_quotes(self, cp_id: str | None = None) -> int:
        """End the open quotes of one charge point (or all); returns how many were open."""
        cancelled = self._quotes.cancel(cp_id)
        log.info("cancelled %d open price quote(s)%s", cancelled, f" of {cp_id}" if cp_id else "")
        return cancelled

    def schedule(self, cp: ChargerRecord, hours: float = 12) -> list[PriceSlot]:
        """The energy price of each spot slot from now to `hours` ahead (empty if not dynamic)."""
        if not self.is_dynamic(cp):
            return []
        return price_schedule(self._data, self._default, self._clock(), hours)

    def btc_rate(self) -> BtcRate | None:
        """The last BTC/EUR rate while it is younger than `[tariff.feeds] max_age_seconds`
        (None: never fetched, or too old to convert prices with)."""
        data = self._data
        if data.btc_eur is None or data.btc_fetched_at is None:
            return None
        age = (self._clock() - data.btc_fetched_at).total_seconds()
        return BtcRate(data.btc_eur, data.btc_fetched_at) \
            if age <= self._default.feeds.max_age_seconds else None

    def status(self) -> FeedStatus:
        """Feed ages, last errors, and whether (and why) the static fallback applies."""
        return feed_status(self._data, self._default, self._clock())

    # --- feeds ------------------------------------------------------------------------------

    def _sources(self) -> tuple[str, str]:
        feeds = self._default.feeds
        return feeds.spot_url, f"{feeds.btc_url} @ {feeds.btc_json_path}"

    async def refresh(self) -> FeedStatus:
        """Fetch both feeds now, keep and cache what came, and return the resulting status."""
        async with self._lock:
            if self._closing:
                return self.status()
            feeds = self._default.feeds
            spot, btc = await asyncio.gather(
                _attempt(fetch_spot(feeds, self._outbound)) if self.dynamic else _skipped(),
                _attempt(fetch_btc(feeds, self._outbound)))
            now = self._clock()
            spot_source, btc_source = self._sources()
            data = self._data
            if isinstance(spot, list):
                kept = [s for s in spot if s.end > now - _KEEP_PAST] or spot[-1:]
                data = replace(data, slots=tuple(kept), spot_fetched_at=now, spot_error=None)
                await self._record("spot", spot_source, [s.to_json() for s in kept], None, now)
            elif spot is not None:  # None: a static tariff follows the BTC/EUR rate only
                data = replace(data, spot_error=spot.error)
                await self._record("spot", spot_source, None, spot.error, now)
            if isinstance(btc, float):
                data = replace(data, btc_eur=btc, btc_fetched_at=now, btc_error=None)
                await self._record("btc", btc_source, {"btc_eur": btc}, None, now)
            else:
                data = replace(data, btc_error=btc.error)
                await self._record("btc", btc_source, None, btc.error, now)
            self._data = data
        status = self.status()
        self._note_fallback(status.reason)
        return status

    async def _record(self, name: str, source: str, payload: object, error: str | None,
                      now: datetime) -> None:
        if error is not None:
            log.warning("tariff feed %s: %s", name, error)
        if self._repo is None:
            return
        if error is None:
            await self._repo.record_success(name, source, payload, iso(now))
        else:
            await self._repo.record_failure(name, source, error, iso(now))

    async def _load_cache(self) -> None:
        if self._repo is None:
            return
        cached = await self._repo.load()
        spot_source, btc_source = self._sources()
        data = self._data
        try:
            if (spot := cached.get("spot")) is not None and spot.source == spot_source:
                data = replace(data, slots=tuple(SpotSlot.from_json(s) for s in spot.payload or []),
                               spot_fetched_at=_when(spot.fetched_at), spot_error=spot.error)
            if (btc := cached.get("btc")) is not None and btc.source == btc_source:
                data = replace(data, btc_eur=float(btc.payload["btc_eur"]) if btc.payload else None,
                               btc_fetched_at=_when(btc.fetched_at), btc_error=btc.error)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            log.warning("tariff feed cache unreadable, fetching afresh: %s", exc)
            return
        self._data = data

    def _note_fallback(self, reason: str | None) -> None:
        """Log when the static fallback starts, changes reason, or ends."""
        if reason == self._fallback:
            return
        if reason is not None:
            log.warning("dynamic tariff falls back to the static price: %s", reason)
        else:
            log.info("dynamic tariff: feeds are fresh again, prices follow the spot market")
        self._fallback = reason


@dataclass(frozen=True, slots=True)
class QuotedPrice:
    """The tariff for one invoice, until when it is offered, and what the wallet was shown."""

    tariff: Tariff
    seconds_left: float  # an invoice at this price should not be payable much longer
    shown: Tariff | None  # the ended quote's tariff, when the wallet came with one


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


async def _skipped() -> None:
    return None


async def _attempt(fetch: Awaitable[T]) -> T | _Failed:
    """The fetch's result, or why it failed; a feed must never stop the schedule."""
    try:
        return await fetch
    except FeedError as exc:
        return _Failed(str(exc))
    except Exception as exc:  # a feed's oddity is not ours to crash on; it is logged
        log.exception("unexpected error reading a tariff feed")
        return _Failed(f"unexpected error ({type(exc).__name__})")


def _when(text: str | None) -> datetime | None:
    return parse_iso(text) if text else None

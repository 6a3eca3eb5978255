"""Sessions started by an owner's card: accepted over OCPP, metered, billed to the card's rule.

A card session is its own kind, beside the lightning sessions (`strom/sessions/`): nobody paid
an invoice for it. A free card's energy is recorded at no cost; an account card's energy is
drawn from the prepaid account at the tariff the charger had when the card started, reading by
reading, and when the account runs low the session is stopped the way a prepaid lightning
session is (RemoteStop until the charger confirms). Energy an empty account cannot cover is
`unbilled_msat` on the card session, never anybody else's money.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from strom.cards.model import shown_tag
from strom.chargers.control import ChargerControl
from strom.config import SessionSettings
from strom.events import (
    ChargePointConnected,
    EventBus,
    MeterSample,
    TransactionStarted,
    TransactionStopped,
    of_transactions,
)
from strom.sessions.holds import worst_case_msat
from strom.sessions.lifecycle import SessionService
from strom.store.cards import CardRepository, CardSession, Rule
from strom.tariffs.model import Rating, Tariff, cost_under_lock
from strom.tasks import Tasks
from strom.timeutil import iso, parse_iso, utcnow

log = logging.getLogger(__name__)

MAX_STOP_BACKOFF = 300.0
# Time passes even when a charger sends nothing: per-minute prices and the stop check follow.
TICK_SECONDS = 15.0


class CardCharging:
    """Authorizes cards and accounts for their sessions; one instance per server."""

    def __init__(self, *, repo: CardRepository, bus: EventBus, chargers: ChargerControl,
                 tariff_of: Callable[[str], Awaitable[Tariff | None]],
                 settings: SessionSettings, meter_interval: float,
                 on_list_change: Callable[[], None] | None = None) -> None:
        """`tariff_of(cp_id)`: the price a card starting there now pays (None: unknown
        charger, charged at no cost but recorded). `on_list_change`: a balance ran out or came
        back, so account cards' list status changed."""
        self._repo = repo
        self._db = repo.db
        self._bus = bus
        self._chargers = chargers
        self._tariff_of = tariff_of
        self._settings = settings
        self._meter_interval = meter_interval
        self._on_list_change = on_list_change
        self._open: set[int] = set()  # OCPP transactions with an open card session
        self._stoppers: set[str] = set()
        self._woken: dict[str, asyncio.Event] = {}
        self._tasks = Tasks()

    async def start(self) -> None:
        self._bus.subscribe(self._on_event, TransactionStarted, MeterSample, TransactionStopped,
                            ChargePointConnected, durable=True, when=of_transactions)
        for session in await self._repo.open_sessions():
            self._open.add(session.transaction_id)
            if session.state == "stopping":
                self._ensure_stopping(session)
        self._tasks.spawn(self._tick(), "cards:tick")

    async def close(self) -> None:
        await self._tasks.close()

    async def _on_event(self, event: object) -> None:
        match event:
            case TransactionStarted():
                await self.on_started(event)
            case MeterSample() if event.transaction_id in self._open:
                await self._bill(event.transaction_id, register_wh=event.energy_wh,
                                 power_w=event.power_w, at=event.timestamp)
            case TransactionStopped() if event.transaction_id in self._open:
                await self._bill(event.transaction_id, register_wh=event.meter_stop_wh,
                                 power_w=None, at=event.timestamp, stop_reason=event.reason)
            case ChargePointConnected():
                if (woken := self._woken.get(event.cp_id)) is not None:
                    woken.set()

    # --- OCPP Authorize / StartTransaction --------------------------------------------------

    async def authorize(self, cp_id: str, connector_id: int | None, id_tag: str) -> str | None:
        """A registered card's status (Blocked: its account is empty); None for other tags."""
        card = await self._repo.card(id_tag)
        if card is None:
            return None
        if card.rule == Rule.FREE:
            return "Accepted"
        account = await self._repo.account(card.account_id or "")
        return "Accepted" if account is not None and account.balance_msat > 0 else "Blocked"

    async def on_started(self, event: TransactionStarted) -> None:
        """A transaction a card started (also one started offline, arriving late): its session.

        A card removed since, or an empty account, gets its session stopped at once; what was
        delivered meanwhile is still accounted.
        """
        card = await self._repo.card(event.id_tag, removed=True)
        if card is None:
            return
        tariff = await self._tariff_of(event.cp_id)
        now = iso()
        session = CardSession(
            id=secrets.token_hex(8), cp_id=event.cp_id, connector_id=event.connector_id,
            transaction_id=event.transaction_id, id_tag=card.id_tag, rule=card.rule,
            account_id=card.account_id, state="charging",
            tariff=(tariff or Tariff(price_msat_per_kwh=0)).to_json(),
            meter_start_wh=event.meter_start_wh, energy_wh=0.0, consumed_msat=0,
            unbilled_msat=0, rate_msat_per_kwh=None, rate_since_wh=0.0, rated_msat=0,
            power_w=None, max_power_w=None, last_reading_at=None,
            started_at=iso(min(event.timestamp, utcnow())), stopped_at=None, stop_reason=None,
            updated_at=now)
        async with self._db.transaction() as conn:
            if not await self._repo.insert_session(conn, session):
                return
        self._open.add(event.transaction_id)
        log.info("card %s started transaction %d on %s/%d (%s)", shown_tag(card.id_tag),
                 event.transaction_id, event.cp_id, event.connector_id, card.rule.value)
        why = None
        if not card.active:
            why = "the card was removed"
        elif card.rule == Rule.ACCOUNT and (await self.authorize(
                event.cp_id, None, card.id_tag)) != "Accepted":
            why = "the account is empty"
        # The session fee (if any) is due at the start, like a lightning session's.
        await self._bill(event.transaction_id, register_wh=None, power_w=None,
                         at=event.timestamp, stop_now=why)

    # --- metering and money -----------------------------------------------------------------

    async def _bill(self, transaction_id: int, *, register_wh: float | None,
                    power_w: float | None, at: datetime, stop_reason: str | None = None,
                    stop_now: str | None = None) -> None:
        """Bill a reading; `stop_reason` is the charger's StopTransaction (final), `stop_now`
        a reason for strom to stop the session itself."""
        final = stop_reason is not None
        changed = 0
        async with self._db.transaction() as conn:
            session = await self._repo.session_in(conn, transaction_id)
            if session is None or session.state == "stopped":
                return
            now = utcnow()
            energy = session.energy_wh
            if register_wh is not None:
                energy = max(energy, register_wh - session.meter_start_wh)
            tariff = Tariff.from_json(session.tariff)
            started = parse_iso(session.started_at)
            owed, rating = cost_under_lock(
                tariff, Rating(session.rate_msat_per_kwh, session.rate_since_wh,
                               session.rated_msat),
                session.energy_wh, energy, (now - started) / timedelta(minutes=1),
                min(max(at, started), now))
            fields: dict[str, object] = {
                "energy_wh": energy, "rate_msat_per_kwh": rating.rate_msat_per_kwh,
                "rate_since_wh": rating.since_wh, "rated_msat": rating.rated_msat}
            if register_wh is not None or power_w is not None:
                fields["last_reading_at"] = iso(now)
            if power_w is not None:
                fields["power_w"] = power_w
                fields["max_power_w"] = max(power_w, session.max_power_w or 0.0)
            left = None
            if session.rule == Rule.ACCOUNT and session.account_id is not None:
                account = await self._repo.account_in(conn, session.account_id)
                balance = account.balance_msat if account else 0
                draw = max(0, min(owed - session.consumed_msat, balance))
                consumed = session.consumed_msat + draw
                fields.update(consumed_msat=consumed, unbilled_msat=max(0, owed - consumed))
                await self._repo.move(conn, session.account_id, -draw, kind="card_energy",
                                      card_session_id=session.id)
                changed = await self._repo.follow_balances(conn) if draw else 0
                left = balance - draw
            if final:
                fields.update(state="stopped", stopped_at=iso(min(at, now)),
                              stop_reason=session.stop_reason or stop_reason)
            elif session.state == "charging" and stop_now is not None:
                fields.update(state="stopping", stop_reason=f"stopped: {stop_now}")
            elif session.state == "charging" and left is not None \
                    and left <= self._room(session, tariff, now, power_w):
                fields.update(state="stopping", stop_reason="account balance used up")
            if (unbilled := fields.get("unbilled_msat", 0)) and unbilled != session.unbilled_msat:
                log.warning("card session %s: %s msat of energy beyond account %s's balance",
                            session.id, unbilled, session.account_id)
            await self._repo.update_session(conn, session.id, **fields)
            session = await self._repo.session_in(conn, transaction_id)
        assert session is not None
        if changed and self._on_list_change is not None:
            self._on_list_change()
        if session.state == "stopped":
            self._open.discard(transaction_id)
            log.info("card session %s stopped: %.0f Wh, %d msat (%s)", session.id,
                     session.energy_wh, session.consumed_msat, session.stop_reason)
        elif session.state == "stopping":
            self._ensure_stopping(session)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            for transaction_id in list(self._open):
                try:
                    await self._bill(transaction_id, register_wh=None, power_w=None,
                                     at=utcnow())
                except Exception:
                    log.exception("card session of transaction %d: tick failed", transaction_id)

    def _room(self, session: CardSession, tariff: Tariff, now: datetime,
              power_w: float | None) -> int:
        """What to keep in the account before stopping: the worst case until the charger's
        next reading (as a lightning session keeps), plus the safety margin."""
        interval = self._meter_interval
        if session.last_reading_at or session.started_at:
            since = parse_iso(session.last_reading_at or session.started_at)
            interval = min(max((now - since).total_seconds(), 1.0),
                           self._meter_interval * self._settings.watchdog_intervals)
        power = max(self._settings.max_power_w, session.max_power_w or 0.0, power_w or 0.0)
        return worst_case_msat(tariff, power, interval) + self._settings.safety_margin_msat

    # --- stopping ---------------------------------------------------------------------------

    def _ensure_stopping(self, session: CardSession) -> None:
        if session.id in self._stoppers:
            return
        self._stoppers.add(session.id)
        log.info("card session %s: stopping (%s)", session.id, session.stop_reason)
        self._tasks.spawn(self._stop_until_confirmed(session), f"card-stop:{session.id}")

    async def _stop_until_confirmed(self, session: CardSession) -> None:
        """RemoteStop until the charger's StopTransaction arrives: again after 2 s, 4 s, … 5 min,
        and at once when the charger reconnects."""
        delay = 2.0
        woken = self._woken.setdefault(session.cp_id, asyncio.Event())
        try:
            while session.transaction_id in self._open:
                if self._chargers.is_connected(session.cp_id):
                    result = await self._chargers.stop(session.cp_id, session.transaction_id)
                    if not result.ok:  # offline, refused, timeout: asked again later
                        log.warning("card session %s: stop not taken: %s", session.id,
                                    result.reason or result.outcome.value)
                woken.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await woken.wait()
                delay = min(delay * 2, MAX_STOP_BACKOFF)
        finally:
            self._stoppers.discard(session.id)


class CardsBesideSessions:
    """The OCPP authorizer: a lightning session's own idTag first, then the owner's cards;
    any other tag stays refused (`Invalid`)."""

    def __init__(self, sessions: SessionService, cards: CardCharging) -> None:
        self._sessions = sessions
        self._cards = cards

    async def authorize(self, cp_id: str, connector_id: int | None, id_tag: str) -> str:
        status = await self._sessions.authorize(cp_id, connector_id, id_tag)
        if status != "Invalid":
            return status
        return await self._cards.authorize(cp_id, connector_id, id_tag) or status

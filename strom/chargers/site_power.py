"""Site power: a site's limit shared among its running sessions, kept shared as they come and go.

When a transaction starts or stops on a site's charger (bus events), the site is re-balanced:
the rule of `strom.chargers.power` gives each running session its watts, each charger gets them
as a power limit per connector (`ChargerControl.set_power_limit`: over OCPP 1.6 a
TxDefaultProfile), the limit is read back where the charger can tell (GetCompositeSchedule),
and a connector whose session ended has strom's limit lifted (ClearChargingProfile). A
charger's own cap (`max_w`) is its whole-charger limit (ChargePointMaxProfile), sent when it
connects or the cap changes.

A charger that refuses limits (Rejected, NotSupported, no SmartCharging among its
SupportedFeatureProfiles, a CALLERROR) is reported (audit entry `power_limit_refused`, a log
line, the API) and its sessions charge on untouched: strom counts them at their full maximum,
so the others still share only what is left under the site's limit. A charger that is offline
or slow keeps the limit it had and is asked again at the next re-balance.

A session may have a limit of its own (the slow rate its driver paid for, `Tariff.max_power_w`):
it is that session's maximum in the sharing rule. A charger in no site with such a session is
balanced as a site of its own (`SOLO` + charger id, no limit but the sessions' own), so the
limit is sent at start and lifted at the end the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from strom.chargers.control import ControlDispatcher, ControlResult, Outcome
from strom.chargers.power import MAX_SITE_W, Demand, allocate
from strom.events import (
    ChargePointBooted,
    ChargePointConnected,
    EventBus,
    SessionChanged,
    TransactionStarted,
    TransactionStopped,
)
from strom.store.charge_points import ChargePointRepository, ChargerRecord
from strom.store.event_log import EventLogRepository
from strom.store.sites import OpenTransaction, Site, SiteCharger, SiteRepository
from strom.tasks import Tasks

log = logging.getLogger(__name__)

# How often every site is re-balanced even without a start or stop: changes made with the CLI
# (which writes the store only) take effect, and chargers that were away are asked again.
SWEEP_SECONDS = 60.0

# How long chargers' connects and boots gather before their sites are looked up together.
ARRIVALS_WINDOW = 0.1
Key = tuple[str, int]  # (charger, connector)
# The id under which a charger in no site is balanced when a session there has its own limit.
SOLO = "charger:"


@dataclass(frozen=True, slots=True)
class ConnectorPower:
    """What strom gave one running session and what the charger made of it."""

    cp_id: str
    connector_id: int
    transaction_id: int
    watts: int  # strom's allocation (0: waiting for its minimum)
    waiting: bool = False  # its minimum did not fit under the site's limit
    outcome: str | None = None  # the charger's answer to the limit (`Outcome`), None: not sent
    reason: str = ""
    read_back_w: float | None = None  # the limit the charger says it applies

    @property
    def applied(self) -> bool:
        return self.outcome in (Outcome.ACCEPTED, Outcome.SCHEDULED)


def _refusal(result: ControlResult) -> bool:
    """The charger will not take limits (as opposed to being away or slow)."""
    return result.outcome in (Outcome.REJECTED, Outcome.NOT_SUPPORTED, Outcome.ERROR)


class SitePower:
    """Keeps every site's sessions within the site's limit."""

    def __init__(self, *, sites: SiteRepository, chargers: ControlDispatcher, bus: EventBus,
                 audit: EventLogRepository, charge_points: ChargePointRepository,
                 connector_max_w: float, sweep_seconds: float = SWEEP_SECONDS,
                 ceiling: Callable[[ChargerRecord], int | None] | None = None) -> None:
        """`connector_max_w`: the most one session draws where its charger has no cap of its
        own (`[sessions] max_power_w`). `ceiling`: the most a charger's sessions may draw now
        (expensive hours of a dynamic tariff), None: no ceiling; the sweep follows it."""
        self._sites = sites
        self._chargers = chargers
        self._bus = bus
        self._audit = audit
        self._connector_max_w = int(connector_max_w)
        self._state: dict[str, dict[Key, ConnectorPower]] = {}  # site → its running sessions
        self._refusing: dict[str, str] = {}  # charger → why it takes no limits
        self._caps: dict[str, int] = {}  # charger → the whole-charger cap it accepted
        self._sending: dict[Key, int] = {}  # limits on their way to the charger
        self._locks: dict[str, asyncio.Lock] = {}
        self._sweep_seconds = sweep_seconds
        self._ceiling = ceiling
        self._charge_points = charge_points
        self._dirty: set[str] = set()
        self._charging: set[str] = set()  # sessions seen charging (each asks for one balance)
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._tasks = Tasks()  # the runners and the sweep

    async def start(self) -> None:
        """Follow starts and stops; re-balance every site once (a restart may have missed some)."""
        self._bus.subscribe(self._on_event, TransactionStarted, TransactionStopped,
                            durable=True)
        # A charger that (re)connects gets its cap again: not urgent, so a boot storm's chargers
        # are looked up together (one read per batch instead of one per event).
        self._bus.subscribe_batches(self._on_arrivals, ChargePointConnected, ChargePointBooted,
                                    window=ARRIVALS_WINDOW, durable=True)
        # A session binds its transaction in a handler of its own, maybe after the start was
        # balanced: once it charges, its own limit (the slow rate) is known. Missed: the sweep.
        self._bus.subscribe(self._on_session, SessionChanged)
        await self.sweep()
        self._tasks.spawn(self._sweep_forever(), "site-power-sweep")

    async def close(self) -> None:
        await self._tasks.close()

    # --- what the rest of strom reads ------------------------------------------------------

    def allocations(self, site_id: str) -> list[ConnectorPower]:
        """The site's running sessions as last balanced, oldest first."""
        return sorted(self._state.get(site_id, {}).values(), key=lambda p: p.transaction_id)

    def refusing(self) -> dict[str, str]:
        """Chargers that refused a limit, and why."""
        return dict(self._refusing)

    def takes_limits(self, cp_id: str) -> bool:
        """False for a charger that refused a limit (until it boots again)."""
        return cp_id not in self._refusing

    def cap_w(self, cp_id: str, connector_id: int) -> float | None:
        """The limit a connector's charger accepted for its session (None: none in force).
        Sessions bound their worst case with it (`strom.sessions.holds`): while a higher one
        is on its way, the charger may already apply it, so that one counts."""
        key = (cp_id, connector_id)
        for powers in self._state.values():
            power = powers.get(key)
            if power is not None and power.applied:
                return float(max(power.watts, self._sending.get(key, 0)))
        return None

    # --- the operator's changes (admin API, TUI) --------------------------------------------

    async def sites(self) -> list[Site]:
        return await self._sites.list()

    async def site(self, site_id: str) -> Site | None:
        return await self._sites.get(site_id)

    async def define(self, site_id: str, *, name: str, limit_w: int, min_w: int) -> Site:
        """Define a site or change its limit, and share it anew at once."""
        await self._sites.put(site_id, name=name, limit_w=limit_w, min_w=min_w)
        return await self._balanced(site_id)

    async def remove(self, site: Site) -> None:
        """Remove a site: its sessions' limits and its chargers' caps are lifted."""
        await self._sites.remove(site.id)
        await self.rebalance(site.id)
        for charger in site.chargers:
            await self.charger_left(charger.cp_id)

    async def join(self, site_id: str, cp_id: str, max_w: int | None) -> Site:
        """Put a charger in a site (out of any other), with its own cap or none."""
        before = await self._sites.site_of(cp_id)
        await self._sites.add_charger(site_id, cp_id, max_w)
        if before is not None and before.id != site_id:
            await self.rebalance(before.id)  # its sessions leave the old site's share
        return await self._balanced(site_id)

    async def leave(self, site_id: str, cp_id: str) -> bool:
        """Take a charger out of a site; False when it was not in it."""
        if not await self._sites.remove_charger(site_id, cp_id):
            return False
        await self.rebalance(site_id)
        await self.charger_left(cp_id)
        return True

    async def _balanced(self, site_id: str) -> Site:
        await self.rebalance(site_id)
        site = await self._sites.get(site_id)
        assert site is not None
        return site

    # --- re-balancing ----------------------------------------------------------------------

    async def _on_event(self, event: TransactionStarted | TransactionStopped) -> None:
        site_id = (await self._sites.site_ids_of([event.cp_id])).get(event.cp_id)
        self.request(site_id if site_id is not None else SOLO + event.cp_id)

    async def _on_arrivals(self, events: list[ChargePointConnected | ChargePointBooted]) -> None:
        for event in events:
            if isinstance(event, ChargePointBooted):
                self._refusing.pop(event.cp_id, None)  # new firmware, perhaps: ask it again
            self._caps.pop(event.cp_id, None)  # send its cap again: it may have lost it
        for site_id in set((await self._sites.site_ids_of(e.cp_id for e in events)).values()):
            self.request(site_id)

    async def _on_session(self, event: object) -> None:
        if not isinstance(event, SessionChanged):
            return
        if event.state != "charging":
            self._charging.discard(event.session_id)
        elif event.session_id not in self._charging:
            self._charging.add(event.session_id)
            site = await self._sites.site_of(event.cp_id)
            self.request(site.id if site is not None else SOLO + event.cp_id)

    async def sweep(self) -> None:
        """Re-balance every site (and the ones that are gone), lift the caps of chargers that
        left their site."""
        solo = {SOLO + cp_id for cp_id in await self._sites.limited_chargers()}
        for site_id in {s.id for s in await self._sites.list()} | set(self._state) | solo:
            self.request(site_id)
        for cp_id in list(self._caps):
            if await self._sites.site_of(cp_id) is None:
                await self.charger_left(cp_id)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_seconds)
            try:
                await self.sweep()
            except Exception:
                log.exception("site power: the sweep failed")

    def request(self, site_id: str) -> None:
        """Re-balance `site_id` soon; requests while one runs make one more run, not many."""
        self._dirty.add(site_id)
        if site_id not in self._runners:
            self._runners[site_id] = self._tasks.spawn(self._run(site_id),
                                                       f"site-power:{site_id}")

    async def _run(self, site_id: str) -> None:
        try:
            while site_id in self._dirty:
                self._dirty.discard(site_id)
                try:
                    await self.rebalance(site_id)
                except Exception:
                    log.exception("site %s: re-balancing failed", site_id)
        finally:
            self._runners.pop(site_id, None)

    async def charger_left(self, cp_id: str) -> None:
        """A charger left its site (or the site is gone): its cap, if any, is lifted."""
        if cp_id in self._caps:
            await self.lift_charger_cap(cp_id)

    async def lift_charger_cap(self, cp_id: str) -> ControlResult:
        """Lift strom's whole-charger cap (ClearChargingProfile of strom's max profile)."""
        result = await self._chargers.set_power_limit(cp_id, 0, None)
        if result.ok or result.outcome == Outcome.NOT_SUPPORTED:
            self._caps.pop(cp_id, None)
        return result

    async def _apply_caps(self, site: Site) -> None:
        """Send each charger its whole-charger cap (ChargePointMaxProfile) when it changed."""
        for member in site.chargers:
            if member.cp_id in self._refusing or self._caps.get(member.cp_id) == member.max_w:
                continue
            if member.max_w is None:
                await self.lift_charger_cap(member.cp_id)
                continue
            result = await self._chargers.set_power_limit(member.cp_id, 0, member.max_w)
            await self._note(member.cp_id, result)
            if result.ok:
                self._caps[member.cp_id] = member.max_w

    async def rebalance(self, site_id: str) -> list[ConnectorPower]:
        """Share the site's limit among its running sessions now and tell the chargers."""
        async with self._locks.setdefault(site_id, asyncio.Lock()):
            return await self._rebalance(site_id)

    async def _rebalance(self, site_id: str) -> list[ConnectorPower]:
        if site_id.startswith(SOLO):
            return await self._rebalance_solo(site_id)
        site = await self._sites.get(site_id)
        if site is not None:
            await self._apply_caps(site)
        running = [] if site is None else \
            [t for t in await self._sites.open_transactions(site_id)
             if site.charger(t.cp_id) is not None]
        return await self._share(site_id, site, running)

    async def _rebalance_solo(self, site_id: str) -> list[ConnectorPower]:
        """A charger in no site: only its sessions with a limit of their own are limited."""
        cp_id = site_id.removeprefix(SOLO)
        if await self._sites.site_of(cp_id) is not None:
            # It joined a site, which now limits its sessions (the same profiles): hand over.
            self._state.pop(site_id, None)
            return []
        site = Site(site_id, cp_id, MAX_SITE_W, 0, "", (SiteCharger(cp_id, None),))
        return await self._share(site_id, site, await self._sites.limited_transactions(cp_id))

    async def _share(self, site_id: str, site: Site | None,
                     running: list[OpenTransaction]) -> list[ConnectorPower]:
        before = dict(self._state.get(site_id, {}))
        # What the chargers hold, kept true while limits change (sessions read it: `cap_w`).
        current = self._state.setdefault(site_id, {})
        refusing = set(self._refusing)
        plan: dict[Key, ConnectorPower] = {}
        if site is not None and running:
            plan = self._plan(site, running, before, await self._ceilings(running))
        for key, old in before.items():
            if key not in plan and old.applied and old.cp_id not in self._refusing:
                # The session ended (or its charger left the site): strom's limit goes too.
                await self._chargers.set_power_limit(old.cp_id, old.connector_id, None)
            if key not in plan:
                current.pop(key, None)

        def change(item: tuple[Key, ConnectorPower]) -> int:
            last = before.get(item[0])
            return item[1].watts - (last.watts if last is not None and last.applied else 0)

        # Lowered limits first, so the sum stays under the site's limit while they change.
        for key, power in sorted(plan.items(), key=change):
            last = before.get(key)
            if power.cp_id in self._refusing:
                plan[key] = replace(power, outcome=Outcome.REJECTED.value,
                                    reason=self._refusing[power.cp_id])
            elif last is not None and last.applied and last.watts == power.watts \
                    and last.transaction_id == power.transaction_id:
                plan[key] = replace(power, outcome=last.outcome, read_back_w=last.read_back_w)
            else:
                self._sending[key] = power.watts  # the charger may apply it before it answers
                try:
                    plan[key] = await self._send(power)
                finally:
                    del self._sending[key]
            current[key] = plan[key]
        if not current:
            self._state.pop(site_id, None)
        if site is not None and set(self._refusing) - refusing:
            self.request(site_id)  # a charger just refused: share again, counting it at max
        return self.allocations(site_id)

    async def _ceilings(self, running: list[OpenTransaction]) -> dict[str, int | None]:
        if self._ceiling is None:
            return {}
        found = {}
        for cp_id in {t.cp_id for t in running}:
            cp = await self._charge_points.get(cp_id)
            found[cp_id] = self._ceiling(cp) if cp is not None else None
        return found

    def _plan(self, site: Site, running: list[OpenTransaction],
              before: dict[Key, ConnectorPower], ceilings: dict[str, int | None]
              ) -> dict[Key, ConnectorPower]:
        def most(cp_id: str, *, obeys: bool = True) -> int:
            member = site.charger(cp_id)
            cap = member.max_w if member and member.max_w else site.limit_w
            ceiling = ceilings.get(cp_id) if obeys else None
            return min(cap, self._connector_max_w, site.limit_w, ceiling or site.limit_w)

        # Sessions on chargers that take no limits draw their full maximum: the rest is shared.
        untouched = [t for t in running if t.cp_id in self._refusing]
        controlled = [t for t in running if t.cp_id not in self._refusing]
        left = max(0, site.limit_w - sum(most(t.cp_id, obeys=False) for t in untouched))

        def own(t: OpenTransaction) -> int:  # a session's own limit (its slow rate) bounds it
            return min(most(t.cp_id), t.max_w) if t.max_w is not None else most(t.cp_id)

        shared = allocate(left, [Demand((t.cp_id, t.connector_id), own(t),
                                        min(site.min_w, own(t))) for t in controlled])
        plan: dict[Key, ConnectorPower] = {}
        for t in running:
            key = (t.cp_id, t.connector_id)
            watts = shared.watts.get(key, most(t.cp_id, obeys=False))
            waiting = key in shared.waiting
            if waiting and not (before.get(key) and before[key].waiting):
                log.warning("site %s: session on %s connector %d waits: its minimum %d W does"
                            " not fit under the limit of %d W", site.id, t.cp_id,
                            t.connector_id, site.min_w, site.limit_w)
            plan[key] = ConnectorPower(t.cp_id, t.connector_id, t.transaction_id, watts, waiting)
        return plan

    async def _send(self, power: ConnectorPower) -> ConnectorPower:
        result = await self._chargers.set_power_limit(power.cp_id, power.connector_id,
                                                      power.watts)
        await self._note(power.cp_id, result)
        read_back = None
        if result.ok:
            reading = await self._chargers.read_power_limit(power.cp_id, power.connector_id)
            read_back = reading.watts
            if read_back is not None and read_back > power.watts + 1:
                log.warning("charger %s connector %d applies %.0f W, strom asked for %d W",
                            power.cp_id, power.connector_id, read_back, power.watts)
        return replace(power, outcome=result.outcome.value, reason=result.reason,
                       read_back_w=read_back)

    async def _note(self, cp_id: str, result: ControlResult) -> None:
        """Report a charger that refuses limits, once until it reconnects."""
        if not _refusal(result) or cp_id in self._refusing:
            return
        self._refusing[cp_id] = result.reason or f"charge point {cp_id} refused a power limit"
        log.warning("charger %s takes no power limits: %s; its sessions charge unlimited and"
                    " count at their maximum", cp_id, self._refusing[cp_id])
        await self._audit.append("power_limit_refused", {
            "outcome": result.outcome.value, "status": result.status, "code": result.code,
            "reason": self._refusing[cp_id]}, cp_id=cp_id)

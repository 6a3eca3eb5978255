"""`SitePower` against the store and a charger control double: what sessions may count on
(`cap_w`) while limits change, and what a charger's silence leaves them."""

from __future__ import annotations

import asyncio

from strom.chargers.control import ControlResult, Outcome, PowerReading
from strom.chargers.site_power import SitePower
from strom.events import EventBus
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.store.event_log import EventLogRepository
from strom.store.sites import SiteRepository
from strom.store.transactions import TransactionRepository
from strom.timeutil import iso


class Chargers:
    """Accepts every limit; `gate` (when set) holds back the answer to each limit set (not
    lifted); `silent` times out."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, float | None]] = []
        self.gate: asyncio.Event | None = None
        self.silent = False
        self.held = asyncio.Event()  # a limit waits at the gate

    async def set_power_limit(self, cp_id: str, connector_id: int,
                              watts: float | None) -> ControlResult:
        self.sent.append((cp_id, connector_id, watts))
        if self.gate is not None and watts is not None:
            self.held.set()
            await self.gate.wait()
        if self.silent:
            return ControlResult(Outcome.TIMEOUT, reason="no answer")
        return ControlResult(Outcome.ACCEPTED, "Accepted")

    async def read_power_limit(self, cp_id: str, connector_id: int) -> PowerReading:
        return PowerReading(ControlResult(Outcome.NOT_SUPPORTED))


async def _site(db: Database, ceilings: dict[str, int] | None = None
                ) -> tuple[SitePower, Chargers, TransactionRepository]:
    """Two chargers on a 22 kW site; `ceilings`: the expensive hours' ceiling per charger."""
    ceilings = ceilings or {}
    for cp_id in ("cp-a", "cp-b"):
        await ChargePointRepository(db).add(cp_id, name=cp_id, lat=0, lon=0)
    sites = SiteRepository(db)
    await sites.put("home", name="home", limit_w=22_000, min_w=1_380)
    for cp_id in ("cp-a", "cp-b"):
        await sites.add_charger("home", cp_id, None)
    chargers = Chargers()
    power = SitePower(sites=sites, chargers=chargers,  # type: ignore[arg-type]
                      bus=EventBus(), audit=EventLogRepository(db),
                      charge_points=ChargePointRepository(db), connector_max_w=22_000,
                      ceiling=lambda cp: ceilings.get(cp.id))
    return power, chargers, TransactionRepository(db)


async def _start(txs: TransactionRepository, cp_id: str) -> int:
    tx, _ = await txs.start(cp_id, connector_id=1, id_tag="T", meter_start_wh=0,
                            started_at=iso(), auth_status="Accepted")
    return tx.id


async def test_a_raised_limit_counts_from_the_moment_it_is_sent(db: Database) -> None:
    power, chargers, txs = await _site(db)
    await _start(txs, "cp-a")
    b = await _start(txs, "cp-b")
    await power.rebalance("home")
    assert (power.cap_w("cp-a", 1), power.cap_w("cp-b", 1)) == (11_000.0, 11_000.0)
    await txs.stop("cp-b", b, meter_stop_wh=0, stopped_at=iso(), reason="Local", id_tag=None)
    chargers.gate = asyncio.Event()
    raising = asyncio.create_task(power.rebalance("home"))
    await asyncio.wait_for(chargers.held.wait(), 5)
    assert chargers.sent[-1] == ("cp-a", 1, 22_000)
    # The charger may apply 22 kW before it answers: a session's worst case counts it now.
    assert power.cap_w("cp-a", 1) == 22_000.0
    chargers.gate.set()
    await raising
    assert power.cap_w("cp-a", 1) == 22_000.0 and power.cap_w("cp-b", 1) is None
    assert ("cp-b", 1, None) in chargers.sent  # the ended session's limit was lifted


async def test_a_silent_charger_leaves_no_cap_to_count_on(db: Database) -> None:
    power, chargers, txs = await _site(db)
    await _start(txs, "cp-a")
    await power.rebalance("home")
    assert power.cap_w("cp-a", 1) == 22_000.0
    await _start(txs, "cp-b")
    chargers.silent = True  # did it take 11 kW? strom cannot know: no cap to count on
    await power.rebalance("home")
    assert power.cap_w("cp-a", 1) is None and power.cap_w("cp-b", 1) is None
    chargers.silent = False
    await power.rebalance("home")  # asked again (the sweep does this every minute)
    assert power.cap_w("cp-a", 1) == 11_000.0
    assert [a.outcome for a in power.allocations("home")] == ["accepted", "accepted"]


async def test_expensive_hours_lower_a_chargers_sessions_and_the_others_get_the_rest(
        db: Database) -> None:
    ceilings = {"cp-a": 3_680}
    power, chargers, txs = await _site(db, ceilings)
    await _start(txs, "cp-a")
    await _start(txs, "cp-b")
    await power.rebalance("home")
    assert [(a.cp_id, a.watts) for a in power.allocations("home")] == [
        ("cp-a", 3_680), ("cp-b", 18_320)]
    ceilings.clear()  # the expensive hour is over: the next sweep shares evenly again
    await power.rebalance("home")
    assert [a.watts for a in power.allocations("home")] == [11_000, 11_000]

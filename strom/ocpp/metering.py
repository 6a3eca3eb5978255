"""Checked meter rows → one cumulative energy estimate per transaction, whatever the style.

Chargers meter in several valid ways; sessions want one number: the energy register in Wh, on
the same origin as StartTransaction's meterStart, never running backwards (`MeterSample`).
Per reading (all rows with one timestamp), the first that applies wins:

1. **register** `Energy.Active.Import.Register` at the best location: Outlet, none, Inlet,
   Cable, EV, Body. The location first used stays the transaction's while the charger sends it,
   so a register never jumps between two meters.
2. **interval** `Energy.Active.Import.Interval`, summed onto meterStart. Only one stream is
   summed (the context of the first interval: Sample.Periodic, Sample.Clock or none, plus
   Transaction.End), and a timestamp counts once (the last 16 are remembered), so a charger's
   retried MeterValues and overlapping clock-aligned and sampled intervals are not billed twice,
   and a clock that jumps does not stop the counting.
3. **power** `Power.Active.Import`, integrated over the charger's timestamps when the
   transaction has reported no energy at all: trapezoids, because power ramps up and down
   (a left rectangle bills a ramp-up too little and a ramp-down too much, the trapezoid is
   exact for a linear ramp). One step covers at most `MAX_STEP_SECONDS` (15 min; strom asks
   for a sample every 30 s): a longer gap, or a clock that jumps ahead, bills no more than
   that. A timestamp seen lately is a retry and counts once; an older one that is not (a clock
   set back) starts the next step.

Totals never count twice: a value without a phase wins; else L1, L2 and L3 are summed (`L1-N`
stands in for a missing `L1`). The estimate only grows. All of this is pure; `MeterBook` keeps
one `TransactionMeter` per open transaction and rebuilds it from the stored rows after a
restart (the rows are the whole history, so no table of its own is needed).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from strom.events import MeterSample
from strom.ocpp.meter import ENERGY, ENERGY_INTERVAL, POWER, SOC
from strom.store.transactions import MeterRow
from strom.timeutil import parse_iso

LOCATIONS = ("Outlet", None, "Inlet", "Cable", "EV", "Body")
PERIODIC = ("Sample.Periodic", "Sample.Clock", None)
END = "Transaction.End"
BEGIN = "Transaction.Begin"
MAX_STEP_SECONDS = 900.0
RECENT = 16  # timestamps remembered per transaction and style: a retried reading counts once
_LINES = {"L1": "L1", "L2": "L2", "L3": "L3", "L1-N": "L1", "L2-N": "L2", "L3-N": "L3"}


@dataclass
class Reading:
    """What one timestamp's rows say, before the transaction's history is applied."""

    energy_wh: float | None
    source: str | None
    power_w: float | None
    soc_percent: float | None


@dataclass
class TransactionMeter:
    """The running estimate of one transaction's energy register."""

    meter_start_wh: float
    energy_wh: float = 0.0
    has_energy: bool = False  # a register or an interval was seen: power is not integrated
    register_location: str | None = None
    register_located: bool = False
    interval_context: str | None = None
    interval_wh: float = 0.0
    counted: deque[str] | None = None  # interval timestamps counted lately
    power_at: str | None = None
    integrated: deque[str] | None = None  # power timestamps integrated lately
    power_w: float = 0.0
    power_wh: float = 0.0

    def __post_init__(self) -> None:
        self.energy_wh = max(self.energy_wh, self.meter_start_wh)

    def add(self, at: str, rows: list[MeterRow]) -> Reading:
        """Apply the rows of one timestamp; the reading's energy is the new estimate or None."""
        power = _power(rows)
        soc = next((r.value for r in rows if r.measurand == SOC), None)
        candidate, source = self._register(rows), "register"
        if candidate is None:
            candidate, source = self._interval(at, rows), "interval"
        if candidate is None and power is not None and not self.has_energy:
            candidate, source = self._integrate(at, power), "power"
        if candidate is None:
            return Reading(None, None, power, soc)
        self.energy_wh = max(self.energy_wh, candidate)
        return Reading(self.energy_wh, source, power, soc)

    def _register(self, rows: list[MeterRow]) -> float | None:
        rows = [r for r in rows if r.measurand == ENERGY]
        if not rows:
            return None
        order = ((self.register_location, *LOCATIONS) if self.register_located else LOCATIONS)
        for location in order:
            value = _total(rows, ENERGY, location)
            if value is not None:
                if not self.register_located:
                    self.register_location, self.register_located = location, True
                self.has_energy = True
                return value
        return None

    def _interval(self, at: str, rows: list[MeterRow]) -> float | None:
        chosen = [r for r in rows if r.measurand == ENERGY_INTERVAL and r.context in PERIODIC]
        if chosen and self.interval_context is None:
            self.interval_context = chosen[0].context or ""
        stream = [r for r in rows if r.measurand == ENERGY_INTERVAL and (
            r.context == END or (r.context or "") == self.interval_context)]
        value = _best(stream, ENERGY_INTERVAL)
        if value is None:
            return None
        self.has_energy = True
        self.counted = self.counted or deque(maxlen=RECENT)
        if at not in self.counted:
            self.interval_wh += value
            self.counted.append(at)
        return self.meter_start_wh + self.interval_wh

    def _integrate(self, at: str, power_w: float) -> float:
        self.integrated = self.integrated or deque(maxlen=RECENT)
        if at in self.integrated:
            return self.meter_start_wh + self.power_wh  # a retried reading
        self.integrated.append(at)
        if self.power_at is not None and at > self.power_at:
            seconds = (parse_iso(at) - parse_iso(self.power_at)).total_seconds()
            self.power_wh += (self.power_w + power_w) / 2 * min(seconds, MAX_STEP_SECONDS) / 3600
        # Older than the last one and no retry: a clock set back, integration goes on from here.
        self.power_at, self.power_w = at, power_w
        return self.meter_start_wh + self.power_wh


def readings(meter: TransactionMeter, rows: Iterable[MeterRow]) -> list[tuple[MeterRow, Reading]]:
    """Apply `rows` in timestamp groups; one (first row, reading) per group, in order."""
    groups: dict[tuple[str, int], list[MeterRow]] = {}
    for row in rows:
        groups.setdefault((row.at, row.connector_id), []).append(row)
    return [(group[0], meter.add(at, group)) for (at, _), group in sorted(groups.items())]


def first_register(rows: Iterable[MeterRow]) -> float | None:
    """The energy register of the earliest reading in `rows` (the Transaction.Begin one when
    there is one) at the best location: an OCPP 2.0.1 transaction's meterStart."""
    rows = list(rows)
    begin = [r for r in rows if r.context == BEGIN and r.measurand == ENERGY]
    registers = begin or [r for r in rows if r.measurand == ENERGY]
    if not registers:
        return None
    first = min(r.at for r in registers)
    return _best([r for r in registers if r.at == first], ENERGY)


def _power(rows: list[MeterRow]) -> float | None:
    value = _best(rows, POWER)
    return None if value is None else max(0.0, value)


def _best(rows: list[MeterRow], measurand: str) -> float | None:
    rows = [r for r in rows if r.measurand == measurand]  # then each location looks at these
    if not rows:
        return None
    for location in LOCATIONS:
        value = _total(rows, measurand, location)
        if value is not None:
            return value
    return None


def _total(rows: list[MeterRow], measurand: str, location: str | None) -> float | None:
    """The total of `measurand` at `location`: the phase-less value, else L1 + L2 + L3."""
    here = [r for r in rows if r.measurand == measurand and r.location == location]
    if not here:
        return None
    whole = [r for r in here if not r.phase]
    if whole:
        return _pick(whole)
    lines: dict[str, list[MeterRow]] = {}
    for row in here:
        line = _LINES.get(row.phase or "")
        if line is not None:
            lines.setdefault(line, []).append(row)
    # "L1" itself rather than "L1-N" when a charger sends both.
    return sum(_pick([r for r in group if r.phase == line] or group)
               for line, group in lines.items()) if lines else None


def _pick(rows: list[MeterRow]) -> float:
    """One value of several for the same measurand, location and phase in one reading.

    Chargers put the transaction's first reading (Transaction.Begin) next to the current one
    into every sample: a register takes the larger (it only grows), anything else the last
    value that is not the beginning's.
    """
    if rows[0].measurand == ENERGY:
        return max(r.value for r in rows)
    return ([r for r in rows if r.context != BEGIN] or rows)[-1].value


TransactionLookup = Callable[[int], Awaitable[tuple[float, list[MeterRow]] | None]]


class MeterBook:
    """One `TransactionMeter` per transaction in use, rebuilt from the store when missing.

    `lookup(transaction_id)` gives (meterStart, stored rows) of this charger's transaction, or
    None for a transaction strom does not know. At most `capacity` meters stay in memory;
    an evicted one is rebuilt from its rows the next time it is needed.
    """

    def __init__(self, capacity: int = 20_000) -> None:
        self._meters: OrderedDict[int, TransactionMeter] = OrderedDict()
        self._capacity = capacity

    def started(self, transaction_id: int, meter_start_wh: float) -> None:
        self._keep(transaction_id, TransactionMeter(meter_start_wh))

    def forget(self, transaction_id: int) -> None:
        self._meters.pop(transaction_id, None)

    async def samples(self, cp_id: str, transaction_id: int | None, rows: list[MeterRow],
                      lookup: TransactionLookup) -> list[MeterSample]:
        """The `MeterSample`s of new rows (one per timestamp), energy as the transaction's
        cumulative estimate; rows of no known transaction only pass their register on."""
        meter = None if transaction_id is None else await self._meter(transaction_id, lookup)
        known = meter is not None
        # Without a transaction's history only a register means anything.
        result = readings(meter or TransactionMeter(0.0, has_energy=True), rows)
        return [MeterSample(cp_id=cp_id, connector_id=first.connector_id,
                            transaction_id=transaction_id, timestamp=parse_iso(first.at),
                            energy_wh=reading.energy_wh if known or reading.source == "register"
                            else None,
                            power_w=reading.power_w, soc_percent=reading.soc_percent,
                            source=reading.source if known or reading.source == "register"
                            else None)
                for first, reading in result]

    async def energy(self, transaction_id: int, lookup: TransactionLookup) -> float | None:
        """The transaction's estimate so far; None for a transaction strom does not know."""
        meter = await self._meter(transaction_id, lookup)
        return meter.energy_wh if meter else None

    async def _meter(self, transaction_id: int,
                     lookup: TransactionLookup) -> TransactionMeter | None:
        meter = self._meters.get(transaction_id)
        if meter is None:
            return await self._rebuild(transaction_id, lookup)
        self._meters.move_to_end(transaction_id)
        return meter

    async def _rebuild(self, transaction_id: int,
                       lookup: TransactionLookup) -> TransactionMeter | None:
        found = await lookup(transaction_id)
        if found is None:
            return None
        meter = TransactionMeter(found[0])
        readings(meter, found[1])
        return self._keep(transaction_id, self._meters.get(transaction_id, meter))

    def _keep(self, transaction_id: int, meter: TransactionMeter) -> TransactionMeter:
        self._meters[transaction_id] = meter
        self._meters.move_to_end(transaction_id)
        while len(self._meters) > self._capacity:
            self._meters.popitem(last=False)
        return meter

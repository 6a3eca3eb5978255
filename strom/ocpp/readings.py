"""A charger's meter readings → refusals logged, `MeterSample`s published, rows queued.

The same path for every OCPP version: 1.6 MeterValues and StopTransaction's transactionData,
2.0.1 TransactionEvent meter values. One `Readings` per connection (its log budget).
"""

from __future__ import annotations

import logging

from strom.events import EventBus
from strom.ocpp.meter import Parsed
from strom.ocpp.metering import MeterBook
from strom.store.transactions import MeterRow, TransactionRepository

log = logging.getLogger(__name__)

# Distinct reasons for refused meter values logged per connection; a charger that sends the
# same garbage every ten seconds fills no disk.
REFUSALS_LOGGED = 20


class Readings:
    """Applies one connection's parsed readings to the shared `MeterBook`."""

    def __init__(self, cp_id: str, meters: MeterBook, transactions: TransactionRepository,
                 bus: EventBus) -> None:
        self._cp_id = cp_id
        self._meters = meters
        self._transactions = transactions
        self._bus = bus
        self._refusals: set[str] = set()

    async def apply(self, connector_id: int, transaction_id: int | None,
                    parsed: Parsed) -> None:
        """Log what was refused, publish the transaction's readings, queue the rows."""
        for reason in parsed.refused:
            if reason not in self._refusals and len(self._refusals) < REFUSALS_LOGGED:
                self._refusals.add(reason)
                log.warning("%s: meter value refused on connector %d: %s", self._cp_id,
                            connector_id, reason)
        if parsed.signed and "signed" not in self._refusals:
            self._refusals.add("signed")
            log.info("%s: SignedData meter values are not read; the plain values are",
                     self._cp_id)
        samples = await self._meters.samples(self._cp_id, transaction_id, parsed.rows,
                                             self.history)
        self._transactions.add_meter_values(self._cp_id, parsed.rows)
        for sample in samples:
            self._bus.publish(sample)

    async def history(self, transaction_id: int) -> tuple[float, list[MeterRow]] | None:
        """meterStart and the stored rows of one of this charger's transactions."""
        tx = await self._transactions.get(transaction_id)
        if tx is None or tx.cp_id != self._cp_id:
            return None
        return tx.meter_start_wh, await self._transactions.meter_values(transaction_id)

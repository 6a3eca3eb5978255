"""Starting: from a paid invoice to a charging session.

A payment is recorded once (`on_paid`): a prepaid session becomes `paid`, a reservation
`reserved`, a top-up adds budget. One start task per paid session picks a connector inside the
store transaction (two payers racing for one get it once), asks the charger (RemoteStart) and
fails the session, all refundable, if the charger refuses or does not start in time, or if
its payer stopped before the RemoteStart had its turn (it is then not sent). The
charger's StartTransaction makes it `charging` (`stopping` when its payer asked to stop
meanwhile); one that comes after the session ended is billed and stopped; another one with
the idTag of a session that has its transaction is not the payer's: it is recorded, stopped
until it stops, and its energy reported unbilled. `SessionService` mixes this in: the
attributes and methods declared below are the service's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import aiosqlite

from strom.chargers.control import ChargerControl, Outcome
from strom.config import SessionSettings
from strom.events import TransactionStarted
from strom.failpoints import crash_point
from strom.sessions import ledger
from strom.sessions.connectors import ConnectorChoice, HeldConnectors, choose_connector
from strom.sessions.model import ENDED_STATES, Session, State
from strom.sessions.repository import SessionRepository
from strom.store.charge_points import ChargePointRepository, ChargerRecord
from strom.store.db import Database
from strom.store.extra_transactions import ExtraTransactionRepository
from strom.timeutil import iso

log = logging.getLogger("strom.sessions.lifecycle")


class StartFlow:
    """The starting part of `SessionService`: payments recorded, connectors chosen, RemoteStart."""

    _db: Database
    _settings: SessionSettings
    _charge_points: ChargePointRepository
    _chargers: ChargerControl
    repo: SessionRepository
    _starters: set[str]
    held_elsewhere: HeldConnectors

    if TYPE_CHECKING:  # SessionService's own, which this part calls
        def _spawn(self, coro: Awaitable[None], name: str) -> None: ...

        def publish(self, session: Session) -> None: ...

        def _ensure_stopping(self, session: Session) -> None: ...

        def _ensure_stopping_extra(self, cp_id: str, transaction_id: int) -> None: ...

        async def _reopen(self, conn: aiosqlite.Connection, session: Session,
                          why: str) -> None: ...

    async def on_paid(self, payment_hash: str, amount_msat: int) -> None:
        """Record a paid invoice once; a prepaid session then starts, a top-up adds budget."""

        async def record(conn: aiosqlite.Connection) -> tuple[Session, int, str] | None:
            invoice = await self.repo.invoice_in(conn, payment_hash)
            if invoice is None or not await self.repo.mark_invoice_paid(conn, payment_hash):
                return None  # not a session invoice, or already recorded
            session = await self.repo.get_in(conn, invoice["session_id"])
            assert session is not None
            # What the wallet received counts, whatever the invoice asked for.
            received = amount_msat or invoice["amount_msat"]
            fields: dict[str, Any] = {"paid_msat": session.paid_msat + received}
            if session.state == State.PENDING_PAYMENT and session.reservation_fee_msat:
                fields.update(paid_at=iso(), **await self._reserve_or_fail(conn, session))
            elif session.state == State.PENDING_PAYMENT:
                fields.update(state=State.PAID, paid_at=iso())
            elif session.state == State.RESERVED:
                # The reserver pays to charge within the window: the fee is in the budget.
                fields.update(state=State.PAID)
            elif session.state in (State.REFUNDED, State.SETTLED):
                # A top-up paid after the end: the money is the payer's to withdraw.
                fields.update(state=State.STOPPED)
            await self.repo.update(conn, session.id, **fields)
            await ledger.payment_received(conn, session.id, received, payment_hash)
            session = await self.repo.get_in(conn, session.id)
            assert session is not None
            return session, received, invoice["purpose"]

        # One unit of a group commit: many payments at once share one transaction.
        recorded = await self._db.run(record)
        if recorded is None:
            return
        session, received, purpose = recorded
        log.info("session %s: %d msat received (%s)", session.id, received, purpose)
        crash_point("paid")
        self.publish(session)
        if session.state == State.PAID:
            self._ensure_starting(session.id)

    async def _reserve_or_fail(self, conn: aiosqlite.Connection,
                               session: Session) -> dict[str, Any]:
        """A paid reservation holds its connector, unless another session took it meanwhile
        (then the fee is refundable)."""
        held = await self.repo.held_connectors(session.cp_id)
        if session.active_connector_id in held:
            return {"state": State.FAILED, "stopped_at": iso(),
                    "failure_reason": "the connector was taken before the reservation was paid"}
        return {"state": State.RESERVED}

    # --- starting ---------------------------------------------------------------------------

    def _ensure_starting(self, session_id: str) -> None:
        """One start task per paid session (the event, recovery and reconcile may all ask)."""
        if session_id in self._starters:
            return
        self._starters.add(session_id)
        self._spawn(self._start_once(session_id), f"start:{session_id}")

    async def _start_once(self, session_id: str) -> None:
        try:
            await self._begin_start(session_id)
        finally:
            self._starters.discard(session_id)

    async def _begin_start(self, session_id: str) -> None:
        """Reserve a connector and ask the charger to start, or fail the session (refundable)."""

        async def reserve(conn: aiosqlite.Connection) -> Session | None:
            session = await self.repo.get_in(conn, session_id)
            if session is None or session.state != State.PAID:
                return None
            cp = await self._charge_points.get(session.cp_id)
            # A reserved connector is the session's own: the charger holds it for its idTag.
            choice = ConnectorChoice(session.active_connector_id) \
                if session.reservation_fee_msat and session.active_connector_id \
                else await self.free_connector(cp, session.connector_id)
            if choice.connector_id is None:
                await self._fail(conn, session, choice.reason)
            else:
                await self.repo.update(conn, session.id, expect_state=State.PAID,
                                       state=State.STARTING,
                                       active_connector_id=choice.connector_id,
                                       start_requested_at=iso())
            return await self.repo.get_in(conn, session_id)

        # One unit of a group commit: the starts of many payments share one transaction.
        session = await self._db.run(reserve)
        if session is None:
            return
        self.publish(session)
        if session.state != State.STARTING:
            return
        crash_point("starting")
        self._spawn(self._start_timeout(session.id, self._settings.start_timeout),
                    f"start-timeout:{session.id}")
        await self._remote_start(session)

    async def free_connector(self, cp: ChargerRecord | None,
                             connector_id: int | None) -> ConnectorChoice:
        """A connector a new session may use now (the requested one, or any), else why not.

        `_begin_start` calls this inside its store transaction, so two payers racing for one
        connector get it once: the first commits `starting`, the second then sees it taken.
        There it runs in the store's thread: it reads the loop's state only by single
        lookups (`is_connected`, `HeldConnectors.on`), each atomic under the GIL.
        """
        if cp is None:
            return ConnectorChoice(None, "charge point was removed")
        held = await self.repo.held_connectors(cp.id)
        held.update(self.held_elsewhere.on(cp.id))
        return choose_connector(cp, connector_id, connected=self._chargers.is_connected(cp.id),
                                busy=set(held), reserved={
                                    n: until for n, until in held.items() if until is not None})

    async def _remote_start(self, session: Session) -> None:
        assert session.active_connector_id is not None

        async def still_wanted() -> bool:
            # Asked when the RemoteStart has its turn (it may wait behind another call to the
            # charger): a stop held meanwhile, or a start timeout, withdraws it unsent.
            now = await self.repo.get(session.id)
            return now is not None and now.state == State.STARTING and now.stop_reason is None

        result = await self._chargers.start(session.cp_id, session.active_connector_id,
                                            session.id_tag, still_wanted=still_wanted)
        if result.outcome == Outcome.NOT_SENT:
            # The charger heard nothing, so it cannot start: the whole payment is refundable.
            now = await self.repo.get(session.id)
            stop = now.stop_reason if now is not None and now.stop_reason else "withdrawn"
            await self.fail(session.id, f"stopped before the start was sent: {stop}",
                            only_if=(State.STARTING,))
        elif result.answered and not result.ok:
            await self.fail(session.id, "charger rejected the start", only_if=(State.STARTING,))
        elif not result.ok:  # offline, CALLERROR, timeout: the start timeout decides
            log.warning("session %s: RemoteStart failed: %s", session.id, result.reason)
            if not self._chargers.is_connected(session.cp_id):
                await self.fail(session.id, "charger offline", only_if=(State.STARTING,))

    async def _start_timeout(self, session_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.fail(session_id, "charger did not start in time", only_if=(State.STARTING,))

    async def fail(self, session_id: str, reason: str, *, only_if: tuple[State, ...]) -> bool:
        """Fail a session still in one of `only_if`; its whole unused payment is refundable."""
        async with self._db.transaction() as conn:
            session = await self.repo.get_in(conn, session_id)
            if session is None or session.state not in only_if:
                return False
            await self._fail(conn, session, reason)
            session = await self.repo.get_in(conn, session_id)
        assert session is not None
        self.publish(session)
        return True

    async def _fail(self, conn: aiosqlite.Connection, session: Session, reason: str) -> None:
        log.info("session %s failed: %s", session.id, reason)
        await self.repo.update(conn, session.id, state=State.FAILED,
                               failure_reason=reason, stopped_at=iso())

    async def authorize(self, cp_id: str, connector_id: int | None, id_tag: str) -> str:
        """OCPP Authorize/StartTransaction: only a session's own idTag, on its own charger."""
        session = await self.repo.by_id_tag(id_tag)
        if session is None or session.cp_id != cp_id:
            return "Invalid"
        if session.stop_requested:
            return "Invalid"  # its payer stopped it: a charger that starts anyway is stopped
        if session.state in (State.PAID, State.STARTING):
            return "Accepted"
        if session.state == State.CHARGING:
            same = connector_id in (None, session.active_connector_id)
            return "Accepted" if same else "ConcurrentTx"
        return "Invalid"

    async def owns_id_tag(self, cp_id: str, id_tag: str) -> bool:
        """Whether `id_tag` is a session's of this charger (passthrough: strom answers it,
        the charger's backend never sees it)."""
        session = await self.repo.by_id_tag(id_tag)
        return session is not None and session.cp_id == cp_id

    async def busy_connectors(self, cp_id: str) -> set[int]:
        """Connectors a session or an eMSP's reservation holds (reserved, starting,
        charging, stopping)."""
        return await self.repo.busy_connectors(cp_id) | set(self.held_elsewhere.on(cp_id))

    async def on_transaction_started(self, event: TransactionStarted) -> None:
        """StartTransaction: a starting session charges; a late one is linked and stopped."""

        async def link(conn: aiosqlite.Connection) -> tuple[Session, bool] | None:
            session = await self.repo.by_id_tag_in(conn, event.id_tag)
            if session is None or session.cp_id != event.cp_id:
                return None
            late_other = False
            linked: dict[str, Any] = {
                "transaction_id": event.transaction_id, "active_connector_id": event.connector_id,
                "meter_start_wh": event.meter_start_wh, "started_at": iso(event.timestamp)}
            if session.stop_requested:
                # The payer stopped while the RemoteStart was out: stop it now and bill what
                # the charger reports at StopTransaction.
                await self.repo.update(conn, session.id, state=State.STOPPING, **linked)
            elif session.state in (State.STARTING, State.PAID):
                await self.repo.update(conn, session.id, state=State.CHARGING, **linked)
            elif session.state in ENDED_STATES and session.transaction_id is None:
                # Started after the session ended (a stop during starting, a start timeout):
                # it is the session's energy, billed to what is left, and it is stopped now.
                await self.repo.update(conn, session.id, **linked)
                session = await self.repo.get_in(conn, session.id)
                assert session is not None
                await self._reopen(conn, session, "the charger started after the session ended")
            elif session.transaction_id != event.transaction_id:
                # One more transaction for an idTag that has one: not the payer's (never
                # billed to them), recorded so it is stopped until it stops and its energy
                # reported to the operator as unbilled.
                late_other = True
                await ExtraTransactionRepository.note_in(conn, event.transaction_id, session.id)
            session = await self.repo.get_in(conn, session.id)
            assert session is not None
            return session, late_other

        # A group commit's unit: chargers starting together share one transaction.
        linked_session = await self._db.run(link)
        if linked_session is None:
            return
        session, late_other = linked_session
        if late_other:
            log.warning("session %s: charger %s started another transaction %d; stopping it",
                        session.id, event.cp_id, event.transaction_id)
            self._ensure_stopping_extra(event.cp_id, event.transaction_id)
            return
        log.info("session %s %s (transaction %d)", session.id, session.state.value,
                 event.transaction_id)
        self.publish(session)
        if session.state in (State.STOPPING, State.STOPPING_UNCONFIRMED):
            self._ensure_stopping(session)


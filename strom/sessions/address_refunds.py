"""Refunds to a payer's lightning address (a zap payer's `lud16`): bounded tries with backoff.

The address may be down, slow, hostile or strom itself (another charger's address: paying it
would open a new session with the payer's refund, and its failure would trigger the next try,
without end — issue 26). So each try is counted in the store before it is made, the next one
waits `address_refund_backoff_seconds · 2^(tries-1)`, and after `address_refund_attempts` tries
(at once when the address can never work: malformed, fenced, strom's own, or an invoice strom
issued) the record is abandoned and `AddressRefundAbandoned` is published once, so the payer
is pointed at their withdraw link, which stays valid throughout. Tries run in tasks of their
own, never on the path of anyone else's events; a restart resumes them where they were.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from strom.config import SessionSettings
from strom.events import AddressRefundAbandoned, EventBus
from strom.lightning.address import LightningAddressRefused
from strom.lightning.wallet import PaymentStatus, WalletError
from strom.sessions.model import Session, State
from strom.sessions.refunds import RefundError, RefundService
from strom.store.address_refunds import AddressRefund, AddressRefundRepository
from strom.timeutil import iso, parse_iso, utcnow

log = logging.getLogger(__name__)


class Progress(StrEnum):
    DONE = "done"  # sent (or in flight), or nothing was left to send
    RETRYING = "retrying"  # failed or not due; a later try is scheduled
    ABANDONED = "abandoned"  # no more tries: the withdraw link is the way


class PayerAddresses(Protocol):
    """Where a payer's lightning address is published (nostr: their kind 0 `lud16`); the
    interface that reads profiles supplies it (`bots/profiles.py`), so the core decides
    without knowing nostr."""

    async def lud16_of(self, pubkey: str) -> str | None:
        """The lightning address the key `pubkey` (hex) signed in its own profile, if any."""
        ...


@dataclass(frozen=True, slots=True)
class PayerRefund:
    """A refund to the payer's address was started: where to, and how far it got."""

    address: str
    progress: Progress


def refund_due(session: Session, state: State) -> bool:
    """Whether a session that reached `state` is refunded to its payer's lightning address:
    a zap payer's (a lightning address is the route of zap payers only) that ended, stopped
    or failed, with money left."""
    return state in (State.STOPPED, State.FAILED) and session.payer_pubkey is not None \
        and session.refundable_msat > 0


class AddressRefundService:
    """`await refund_to_payer(session, profiles)` (or `refund(session_id, address)`) from any
    interface; retries run by themselves."""

    def __init__(self, *, repo: AddressRefundRepository, bus: EventBus, refunds: RefundService,
                 settings: SessionSettings) -> None:
        self._repo = repo
        self._bus = bus
        self._refunds = refunds
        self._settings = settings
        self._locks: dict[str, asyncio.Lock] = {}  # one try at a time per session
        self._due: dict[str, asyncio.Task[None]] = {}  # the scheduled retry per session
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Resume the tries that were under way when strom stopped."""
        for record in await self._repo.trying():
            self._schedule(record)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def refund_to_payer(self, session: Session,
                              profiles: PayerAddresses) -> PayerRefund | None:
        """Refund what `session` has left to the lightning address its payer published; None
        when they published none (the withdraw link stays the way)."""
        if session.payer_pubkey is None:
            return None
        address = await profiles.lud16_of(session.payer_pubkey)
        if address is None:
            return None
        return PayerRefund(address, await self.refund(session.id, address))

    async def refund(self, session_id: str, address: str) -> Progress:
        """Refund what `session_id` has left to `address`, now if a try is due."""
        record = await self._repo.open(session_id, address)
        if record.state != "trying":
            return Progress(record.state)
        return await self._try(session_id)

    async def _try(self, session_id: str) -> Progress:
        async with self._locks.setdefault(session_id, asyncio.Lock()):
            progress = await self._try_locked(session_id)
        if progress != Progress.RETRYING:
            self._locks.pop(session_id, None)
        return progress

    async def _try_locked(self, session_id: str) -> Progress:
        now = utcnow()
        current = await self._repo.get(session_id)
        if current is None or current.state != "trying":
            return Progress(current.state if current else "done")
        wait = self._settings.address_refund_backoff_seconds * 2 ** current.attempts
        record = await self._repo.begin_attempt(session_id, iso(now),
                                                iso(now + timedelta(seconds=wait)))
        if record is None:
            self._schedule(current)  # not due yet (or woken a little early): try when it is
            return Progress.RETRYING
        permanent = False
        try:
            outcome = await self._refunds.refund_to_address(session_id, record.address)
        except (LightningAddressRefused, RefundError) as exc:
            reason, permanent = str(exc), True
        except WalletError as exc:
            reason = str(exc)
        else:
            if outcome is None or outcome.status != PaymentStatus.FAILED:
                await self._repo.finish(session_id, "done")
                return Progress.DONE
            reason = "the payment failed"
        log.info("session %s: refund to %s failed (try %d of %d): %s", session_id,
                 record.address, record.attempts, self._settings.address_refund_attempts, reason)
        if permanent or record.attempts >= self._settings.address_refund_attempts:
            if await self._repo.finish(session_id, "abandoned", reason[:300]):
                self._bus.publish(AddressRefundAbandoned(session_id, record.address,
                                                         record.attempts, reason[:300]))
            return Progress.ABANDONED
        await self._repo.note_error(session_id, reason[:300])
        self._schedule(record)
        return Progress.RETRYING

    def _schedule(self, record: AddressRefund) -> None:
        if record.session_id in self._due:
            return
        task = asyncio.create_task(self._retry_at(record), name=f"refund:{record.session_id}")
        self._due[record.session_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retry_at(self, record: AddressRefund) -> None:
        try:
            due = parse_iso(record.next_at) if record.next_at else utcnow()
            # A hair late: the store compares times to the millisecond.
            await asyncio.sleep(max(0.0, (due - utcnow()).total_seconds()) + 0.005)
        finally:
            if self._due.get(record.session_id) is asyncio.current_task():
                del self._due[record.session_id]
        try:
            await self._try(record.session_id)
        except Exception:
            log.exception("session %s: refund retry failed", record.session_id)

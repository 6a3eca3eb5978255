"""The nostr bots: every charge point with a key publishes, listens and answers as itself."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from nostr_sdk import Event, Filter, Keys, Kind

from bots import events
from bots.client import NostrClient
from bots.commands import Commands
from bots.dm import GIFT_WRAP, NIP04_DM, DirectMessenger, open_message, recipient
from bots.external import ExternalZaps
from bots.inbox import InboxRelays
from bots.notify import Notifier
from bots.pacing import REFRESH_CHECK, next_refresh
from bots.profiles import PayerProfiles
from bots.relay_delivery import RelayDelivery
from bots.zaps import ZapReceipts
from strom.container import Services
from strom.errors import UserError
from strom.events import (
    AddressRefundAbandoned,
    ChargePointConnected,
    ChargePointDisconnected,
    ConnectorStatusChanged,
    InvoicePaid,
    SessionChanged,
)
from strom.keys import Identity, keys_path, load_identity
from strom.nostr.zap import ZAP_RECEIPT
from strom.sessions.address_refunds import Progress, refund_due
from strom.sessions.model import Session, State
from strom.tasks import Tasks
from strom.views import charge_point_json, document_url, market_json

log = logging.getLogger(__name__)

STATUS_REFRESH = 3600.0  # contract §5: at least hourly
# A status change waits this long for the ones right behind it (a boot brings a connect, a
# BootNotification and a StatusNotification per connector): one signed event for all of them.
STATUS_COALESCE = 0.5
ANNOUNCE_AT_ONCE = 32  # chargers announced side by side at the start
MAX_INBOX_LOOKUPS = 64  # payers' relay lists looked up at once, beside the bus handler
# Refunds to payers' lightning addresses run beside the event handler, never in it: one slow
# address must not delay anyone else's receipt, DM or status (issue 16, defect 3).
REFUNDS_AT_ONCE = 8
REFUNDS_WAITING = 500


class NostrBots:
    """Starts after the core services; `relays` includes the embedded relay when it runs."""

    def __init__(self, svc: Services, relays: list[str]) -> None:
        self._svc = svc
        self._relays = relays
        self._key_file = keys_path(svc.data_dir, svc.settings.nostr.keys_file)
        self._identities: dict[str, Identity] = {}
        self._by_pubkey: dict[str, Identity] = {}
        # Relays the operator did not name are strom's own (the embedded relay): no budget.
        self._client = NostrClient(relays, self._all_keys, self._on_nostr_event,
                                   unmetered=set(relays) - set(svc.settings.nostr.relays))
        # Relays outside strom's own: zap requests' relays and the relays DM receivers read.
        self._elsewhere = RelayDelivery(svc.outbound, relays)
        self._inboxes = InboxRelays(self._client.fetch, svc.zaps)
        self._profiles = PayerProfiles(self._client.fetch, self._inboxes, self._elsewhere.fetch)
        self._messenger = DirectMessenger(self._client.publish, elsewhere=self._to_inbox)
        self._commands = Commands.from_services(svc, self._key_file)
        self._notifier = Notifier(svc.settings.public_url, svc.settings.nostr.notify_every_kwh)
        self._receipts = ZapReceipts(svc.zaps, self._keys_for, self._client.publish,
                                     self._elsewhere.send_soon)
        self._tasks = Tasks()
        self._inbox_lookups: set[asyncio.Task[None]] = set()
        # Sessions whose refund is being tried -> what was announced for them meanwhile: it is
        # told after the end-of-session DM, so the payer reads the DMs in order.
        self._refunding: dict[str, list[Callable[[], Awaitable[None]]]] = {}
        self._refund_slots = asyncio.Semaphore(REFUNDS_AT_ONCE)
        self._status_at: dict[str, int] = {}
        self._status_locks: dict[str, asyncio.Lock] = {}
        self._status_due: set[str] = set()  # chargers whose status is about to be published
        self._external = ExternalZaps(svc)

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await self.reload_identities()
        await self._external.load(list(self._identities))
        await self._client.start()
        await self._subscribe_dms()
        # Status announcements are a view and may shed load; zap receipts, session DMs and
        # refunds to a payer's lightning address are money and never lose an event.
        self._svc.bus.subscribe(self._on_bus, ConnectorStatusChanged, ChargePointConnected,
                                ChargePointDisconnected)
        self._svc.bus.subscribe(self._on_bus, InvoicePaid, SessionChanged,
                                AddressRefundAbandoned, durable=True)
        self._tasks.spawn(self._announce_all(), "nostr:announce")
        self._tasks.spawn(self._refresh_hourly(), "nostr:refresh")

    async def close(self) -> None:
        await self._tasks.close()
        await self._inboxes.close()
        await self._elsewhere.close()
        await self._client.close()

    # --- identities -------------------------------------------------------------------------

    async def reload_identities(self) -> None:
        """Load the key of every registered charge point (a missing key is logged once)."""
        identities = {}
        for cp in await self._svc.charge_points.list():
            try:
                identities[cp.id] = load_identity(self._key_file, cp.id)
            except UserError as exc:
                if cp.id not in self._identities:
                    log.warning("nostr: %s stays off nostr: %s", cp.id, exc)
        self._identities = identities
        self._by_pubkey = {i.pubkey_hex: i for i in identities.values()}

    async def refresh(self) -> None:
        """Pick up charge points added or re-keyed since the start, and announce them."""
        known = set(self._identities)
        await self.reload_identities()
        await self._subscribe_dms()
        for cp_id in set(self._identities) - known:
            await self._announce(cp_id)

    @property
    def identity_count(self) -> int:
        """Charge points that are on nostr (their key is loaded)."""
        return len(self._identities)

    def relay_states(self) -> list[dict[str, object]]:
        """Per relay of strom's: publish counts, last refusal, rest, NIP-42 (`/healthz`)."""
        return self._client.relay_states()

    def _all_keys(self) -> list[Keys]:
        return [i.keys for i in self._identities.values()]

    def _keys_for(self, cp_id: str) -> Keys | None:
        identity = self._identities.get(cp_id)
        return identity.keys if identity else None

    def _cp_of(self, pubkey_hex: str) -> Identity | None:
        return self._by_pubkey.get(pubkey_hex)

    async def _subscribe_dms(self) -> None:
        pubkeys = [i.keys.public_key() for i in self._identities.values()]
        if pubkeys:
            await self._client.subscribe("dms", [
                Filter().kinds([Kind(NIP04_DM), Kind(GIFT_WRAP)]).pubkeys(pubkeys)])
        external = [i.keys.public_key() for cp_id, i in self._identities.items()
                    if cp_id in self._external.providers]
        if external:
            await self._client.subscribe("zaps", [
                Filter().kinds([Kind(ZAP_RECEIPT)]).pubkeys(external)])

    # --- publishing -------------------------------------------------------------------------

    async def _announce_all(self) -> None:
        """Every charger's profile, relay lists and status, `ANNOUNCE_AT_ONCE` chargers side by
        side: one after the other, each event waited for its own commit at strom's relay (1,000
        chargers: 4,000 round trips); side by side, the relay commits them together. One
        charger's failure is logged and stops no other."""
        waiting = iter(list(self._identities))

        async def announcer() -> None:
            for cp_id in waiting:
                try:
                    await self._announce(cp_id)
                except Exception:
                    log.exception("nostr: announcing %s failed", cp_id)

        await asyncio.gather(*(announcer() for _ in range(ANNOUNCE_AT_ONCE)))
        await self._receipts.catch_up()

    async def _announce(self, cp_id: str) -> None:
        identity = self._identities.get(cp_id)
        cp = await self._svc.charge_points.get(cp_id)
        if identity is None or cp is None:
            return
        view = charge_point_json(self._svc, cp)
        host = urlsplit(self._svc.settings.public_url).netloc
        for event in (events.profile(identity.keys, view, host),
                      events.relay_list(identity.keys, self._relays),
                      events.dm_relays(identity.keys, self._relays)):
            await self._client.publish(event)
        await self.publish_status(cp_id)

    async def publish_status(self, cp_id: str) -> None:
        """The charger's 30333, dated after the one before and published after it: one at a
        time per charger, so a relay never gets an older version after a newer one."""
        async with self._status_locks.setdefault(cp_id, asyncio.Lock()):
            identity = self._identities.get(cp_id)
            cp = await self._svc.charge_points.get(cp_id)
            if identity is not None and cp is not None:
                await self._client.publish(events.status(
                    identity.keys, charge_point_json(self._svc, cp),
                    self._next_status_time(cp_id), market_json(self._svc, cp),
                    self._document(cp_id)))

    def _status_soon(self, cp_id: str) -> None:
        """Publish the charger's status once, `STATUS_COALESCE` s from now, in a task of its own:
        the changes that come meanwhile are in it (it reads the charger then), and no charger
        waits for another's relay round trip. A change during the publishing is published after
        it (`publish_status` keeps them in order)."""
        if cp_id in self._status_due:
            return
        self._status_due.add(cp_id)
        self._tasks.spawn(self._publish_due(cp_id), "nostr:status")

    async def _publish_due(self, cp_id: str) -> None:
        try:
            await asyncio.sleep(STATUS_COALESCE)
        finally:
            self._status_due.discard(cp_id)
        try:
            await self.publish_status(cp_id)
        except Exception:  # the bus handler logged it before the task was the status's own
            log.exception("nostr: publishing the status of %s failed", cp_id)

    def _document(self, cp_id: str) -> str:
        return document_url(self._svc.settings.public_url, cp_id)

    def _next_status_time(self, cp_id: str) -> int:
        at = max(int(time.time()), self._status_at.get(cp_id, 0) + 1)
        self._status_at[cp_id] = at
        return at

    async def _refresh_hourly(self) -> None:
        """Each charger's status again within every hour, at its own minute of the hour
        (`bots.pacing`): a hundred chargers do not knock on the relays at once."""
        due: dict[str, float] = {}
        reloaded = time.time()
        while True:
            await asyncio.sleep(REFRESH_CHECK)
            now = time.time()
            if now - reloaded >= STATUS_REFRESH:
                reloaded = now
                await self.reload_identities()
                await self._subscribe_dms()
            for cp_id in [c for c in due if c not in self._identities]:
                del due[cp_id]
            for cp_id in list(self._identities):
                if cp_id not in due:
                    due[cp_id] = next_refresh(cp_id, now)
                elif due[cp_id] <= now:
                    due[cp_id] = next_refresh(cp_id, now)
                    await self.publish_status(cp_id)

    async def _to_inbox(self, receiver: str, wrap: Event) -> None:
        """A DM to the relays its receiver reads DMs from (none known: nothing more): a gift
        wrap where they read NIP-17 DMs, a NIP-04 message to their NIP-65 read relays.

        The lookup of a new payer's relay list may take its full time limit; it runs beside the
        caller, so other payers' messages never wait for it. At most `MAX_INBOX_LOOKUPS` run at
        once; past that the wrap stays on strom's own relays only (logged)."""
        if len(self._inbox_lookups) >= MAX_INBOX_LOOKUPS:
            log.warning("nostr: %d relay-list lookups under way; a DM to %s… stays on our relays",
                        len(self._inbox_lookups), receiver[:12])
            return
        task = self._tasks.spawn(self._deliver_to_inbox(receiver, wrap), "nostr:inbox")
        self._inbox_lookups.add(task)
        task.add_done_callback(self._inbox_lookups.discard)

    async def _deliver_to_inbox(self, receiver: str, dm: Event) -> None:
        lookup = self._inboxes.of if dm.kind().as_u16() == GIFT_WRAP else self._inboxes.read_of
        self._elsewhere.send_soon(dm, await lookup(receiver))

    # --- reacting ---------------------------------------------------------------------------

    async def _on_bus(self, event: object) -> None:
        match event:
            case ConnectorStatusChanged() | ChargePointConnected() | ChargePointDisconnected():
                self._status_soon(event.cp_id)
            case InvoicePaid():
                await self._receipts.on_paid(event.payment_hash, event.preimage)
            case SessionChanged():
                await self._notify(event.session_id, State(event.state))
            case AddressRefundAbandoned():
                await self._tell_refund_abandoned(event)

    async def _notify(self, session_id: str, state: State) -> None:
        """`state` is the one the event announced: the store may be further along by now."""
        if (later := self._refunding.get(session_id)) is not None:
            later.append(lambda: self._notify(session_id, state))
            return
        session = await self._svc.sessions.get(session_id)
        if session is None or session.payer_pubkey is None:
            return
        text = self._notifier.message(session, state)
        if text and refund_due(session, state) and len(self._refunding) < REFUNDS_WAITING:
            # The end-of-session DM waits for the refund attempt, in a task of its own.
            self._refunding[session.id] = []
            self._tasks.spawn(self._refund_then_tell(session, text), "nostr:refund")
            return
        await self._dm(session, text)

    async def _dm(self, session: Session, text: str | None) -> None:
        keys = self._keys_for(session.cp_id)
        if keys is not None and text and session.payer_pubkey is not None:
            await self._messenger.send(keys, session.payer_pubkey, text, "nip17")

    async def _refund_then_tell(self, session: Session, text: str) -> None:
        """The core refunds to the payer's lightning address when their profile names one
        (`strom.sessions.address_refunds`, bounded tries); the end-of-session DM says so."""
        try:
            async with self._refund_slots:
                refund = await self._svc.use_cases.address_refunds.refund_to_payer(
                    session, self._profiles)
                if refund is not None and refund.progress == Progress.DONE:
                    text = self._notifier.refunded_to(session, refund.address)
        except Exception:  # the payer still gets the DM with their withdraw link
            log.exception("session %s: refund to the payer's address failed", session.id)
        try:
            await self._dm(session, text)
        finally:
            for told_later in self._refunding.pop(session.id, []):
                await told_later()

    async def _tell_refund_abandoned(self, event: AddressRefundAbandoned) -> None:
        """Once, when strom stops trying the payer's address: the withdraw link is the way."""
        if (later := self._refunding.get(event.session_id)) is not None:
            later.append(lambda: self._tell_refund_abandoned(event))
            return
        session = await self._svc.sessions.get(event.session_id)
        if session is not None and session.refundable_msat > 0:
            await self._dm(session, self._notifier.address_refund_abandoned(
                session, event.address, event.attempts))

    async def _on_nostr_event(self, event: Event) -> None:
        kind = event.kind().as_u16()
        if kind not in (NIP04_DM, GIFT_WRAP, ZAP_RECEIPT):
            return
        identity = self._cp_of(recipient(event) or "")
        if identity is None:
            return
        if not await self._svc.zaps.claim(event.id().to_hex(), kind):
            return  # seen before (several relays, or before a restart)
        if kind == ZAP_RECEIPT:
            await self._external.on_receipt(identity.cp_id, event)
            return
        message = open_message(event, identity.cp_id, identity.keys)
        if message is None:
            return
        log.info("nostr: %s got a %s DM", identity.cp_id, message.protocol)
        answer = await self._commands.answer(identity.cp_id, message.sender, message.text)
        await self._messenger.send(identity.keys, message.sender, answer, message.protocol)

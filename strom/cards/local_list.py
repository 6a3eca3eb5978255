"""Keeping chargers' local authorization lists equal to the registered cards (OCPP 1.6
Local Auth List Management), so a charger can start a card while it is offline. Every call
goes through `ChargerControl` (its local list operations), whatever protocol the charger speaks.

The list has one version: the highest `list_version` of any card row (a removal leaves a row
behind, so the version only grows). When a charger boots or connects, strom asks its version
(GetLocalListVersion) and sends the Full list when it differs (or when strom cannot be sure
the charger got all of it: a long list goes in pieces); on a change it sends only the
cards changed since the version the charger holds (Differential; Full again when the charger
answers Failed or VersionMismatch), then ClearCache, so a removed card is not still accepted
from the charger's authorization cache. A charger that does not support the profile (not in
SupportedFeatureProfiles, GetLocalListVersion -1, a NotSupported answer) is recorded and
shown to the operator, and left alone until it boots again. Changes made by another process
(the CLI) are found by looking at the version every `poll_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable, Sequence

from strom.chargers.control import ChargerControl, ControlResult, ListEntry, Outcome
from strom.events import ChargePointBooted, ChargePointConnected, EventBus
from strom.store.cards import Card, CardRepository, ChargerList
from strom.tasks import Tasks

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
# How long chargers' boots and connects gather before the list version is read for them all.
ARRIVALS_WINDOW = 0.1
# A charger that reconnects usually boots first: its list is looked at after the boot, or
# this long after the connect when it does not boot.
CONNECT_DELAY_SECONDS = 2.0


class ListNotUpdated(Exception):
    """A list call got no answer (offline, timeout, a protocol error): try again later."""


class LocalListSync:
    """Sends the card list to chargers; one sync at a time per charger."""

    def __init__(self, repo: CardRepository, bus: EventBus, control: ChargerControl,
                 connected: Callable[[], Iterable[str]], *,
                 poll_seconds: float | None = None) -> None:
        """`connected()`: the chargers connected now, whatever protocol they speak."""
        self._repo = repo
        self._bus = bus
        self._control = control
        self._connected = connected
        self._poll_seconds = POLL_SECONDS if poll_seconds is None else poll_seconds
        self._kick = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: dict[str, bool] = {}  # cp → boot look wanted after the running sync
        self._order = itertools.count()  # the order of boots and connects, as they came
        self._booted: dict[str, int] = {}  # cp → `_order` of its last BootNotification
        self._tasks = Tasks()

    async def start(self) -> None:
        self._bus.subscribe_batches(self._on_arrivals, ChargePointBooted, ChargePointConnected,
                                    window=ARRIVALS_WINDOW)
        self._tasks.spawn(self._watch(await self._repo.list_version()), "cards:local-list")

    async def close(self) -> None:
        await self._tasks.close()  # the per-charger syncs are among them

    def changed(self) -> None:
        """The cards changed in this process: send the difference to connected chargers now."""
        self._kick.set()

    async def _on_arrivals(self, events: list[ChargePointBooted | ChargePointConnected]) -> None:
        booted, connected = [], []
        for event in events:  # in order: a boot after a connect in the batch counts as after
            if isinstance(event, ChargePointBooted):
                self._booted[event.cp_id] = next(self._order)
                booted.append(event.cp_id)
            else:
                connected.append((event.cp_id, next(self._order)))
        if booted:
            await self._look_at(booted)
        if connected:
            self._tasks.spawn(self._after_connect(connected), "local-list-connect")

    async def _after_connect(self, connected: list[tuple[str, int]]) -> None:
        await asyncio.sleep(CONNECT_DELAY_SECONDS)
        await self._look_at([cp_id for cp_id, when in connected
                             if self._booted.get(cp_id, -1) < when
                             and self._control.is_connected(cp_id)])

    async def _look_at(self, cp_ids: list[str]) -> None:
        """Sync these chargers' lists as after a boot, unless no card was ever registered
        (one read for all of them: a boot storm's chargers come in batches)."""
        if cp_ids and await self._repo.list_version() != 0:
            for cp_id in cp_ids:
                self.schedule(cp_id, boot=True)

    async def _watch(self, known: int) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_seconds):
                    await self._kick.wait()
            kicked = self._kick.is_set()
            self._kick.clear()
            try:
                version = await self._repo.list_version()
            except Exception:
                log.exception("reading the card list version failed")
                continue
            if version != known or kicked:
                known = version
                for cp_id in list(self._connected()):
                    self.schedule(cp_id, boot=False)

    def schedule(self, cp_id: str, *, boot: bool) -> None:
        """Sync one charger soon; a sync already running for it is followed by another."""
        if cp_id in self._running:
            self._again[cp_id] = self._again.get(cp_id, False) or boot
            return
        self._running[cp_id] = self._tasks.spawn(self._sync_then_again(cp_id, boot),
                                           f"local-list:{cp_id}")

    async def _sync_then_again(self, cp_id: str, boot: bool) -> None:
        try:
            while True:
                try:
                    await self.sync(cp_id, boot=boot)
                except Exception:
                    log.exception("%s: syncing the local list failed", cp_id)
                if cp_id not in self._again:
                    return
                boot = self._again.pop(cp_id)
        finally:
            self._running.pop(cp_id, None)

    async def sync(self, cp_id: str, *, boot: bool) -> ChargerList | None:
        """Bring one charger's list to the current version; what is now known of it.

        `boot`: the charger (re)connected, so its version is asked and a different one gets
        the Full list; otherwise only what changed since the version it accepted last.
        """
        version = await self._repo.list_version()
        if version == 0:
            return None  # no card was ever registered: chargers are not bothered
        known = await self._repo.charger_list(cp_id)
        if not boot and known is not None and known.supported is False:
            return known
        held = known.list_version if known else None
        try:
            outcome = await self._bring_up(cp_id, version, boot=boot, held=held)
        except Exception as exc:
            # Part of an update may have reached the charger: only a Full list is sure next.
            log.warning("%s: local list not updated: %s", cp_id, exc)
            outcome = (None, known.supported if known else None, f"not updated: {exc}")
        list_version, supported, detail = outcome
        if supported is False:
            log.warning("%s: no local authorization list (%s); cards are accepted online only",
                        cp_id, detail)
        await self._repo.record_charger(cp_id, list_version=list_version, supported=supported,
                                        detail=detail)
        return await self._repo.charger_list(cp_id)

    async def _bring_up(self, cp_id: str, version: int, *, boot: bool,
                        held: int | None) -> tuple[int | None, bool | None, str | None]:
        """(version the charger holds, supported, detail) after making it hold `version`."""
        settings = await self._control.local_list_settings(cp_id)
        if settings.result.outcome == Outcome.NOT_SUPPORTED:
            return None, False, settings.result.reason
        _answered(settings.result)
        notes = []
        if settings.enabled is False:
            enabled = await self._control.enable_local_list(cp_id)
            if not enabled.ok:
                notes.append(f"the local list is switched off; switching it on was answered"
                             f" {_word(enabled)}")
        answer = await self._control.local_list_version(cp_id)
        if answer.result.outcome == Outcome.NOT_SUPPORTED or answer.version is None:
            _answered(answer.result)
            return None, False, answer.result.reason or "the charger has no local list"
        theirs = answer.version
        if theirs == version and held == version:
            return version, True, "; ".join(notes) or None
        # Differential only from a version strom itself gave this charger, completely.
        full = boot or theirs == 0 or theirs != held or theirs >= version
        entries = [_entry(c) for c in (await self._repo.cards() if full
                                            else await self._repo.changed_since(theirs))]
        limit = settings.max_entries
        if full and limit is not None and len(entries) > limit:
            return theirs, True, (f"{len(entries)} cards do not fit the charger's list"
                                  f" (it holds {limit})")
        sent = await self._send(cp_id, version, full, entries, settings.per_message)
        if sent.status in ("Failed", "VersionMismatch") and not full:
            log.info("%s: Differential list answered %s; sending the Full list", cp_id,
                     sent.status)
            full = True
            sent = await self._send(cp_id, version, True,
                                    [_entry(c) for c in await self._repo.cards()],
                                    settings.per_message)
        if sent.outcome == Outcome.NOT_SUPPORTED:
            return None, False, f"SendLocalList: {_word(sent)}"
        if not sent.ok:
            # A refused piece of a long list leaves the charger at the new version with part
            # of it: forget what it holds, so the next look sends the Full list again.
            return None, True, f"SendLocalList ({'Full' if full else 'Differential'})" \
                               f" answered {_word(sent)}"
        log.info("%s: local list at version %d (%s, %d entries)", cp_id, version,
                 "Full" if full else "Differential", len(entries))
        cleared = await self._control.clear_cache(cp_id)
        if not cleared.ok:
            notes.append(f"ClearCache was answered {_word(cleared)}")
        return version, True, "; ".join(notes) or None

    async def _send(self, cp_id: str, version: int, full: bool, entries: Sequence[ListEntry],
                    chunk: int | None) -> ControlResult:
        """SendLocalList, in pieces of the charger's most per message: the first one as
        asked, the rest as Differential updates to the same version. A piece that got no
        answer (offline, timeout) raises: part of the list may have arrived."""
        size = chunk or max(len(entries), 1)
        pieces = [entries[i:i + size] for i in range(0, len(entries), size)] or [[]]
        result = ControlResult(Outcome.ACCEPTED, "Accepted")
        for number, piece in enumerate(pieces):
            result = await self._control.send_local_list(
                cp_id, version, piece, full=full and number == 0)
            if result.outcome != Outcome.NOT_SUPPORTED:
                _answered(result)
            if not result.ok:
                break
        return result


def _entry(card: Card) -> ListEntry:
    """A card as its list entry: a removed card (no status) is deleted from the list."""
    return ListEntry(card.id_tag, card.list_status)


def _answered(result: ControlResult) -> None:
    """Raise `ListNotUpdated` unless the charger answered (yes, no or "I can't")."""
    if result.outcome in (Outcome.NOT_CONNECTED, Outcome.TIMEOUT, Outcome.ERROR):
        raise ListNotUpdated(result.reason or result.outcome.value)


def _word(result: ControlResult) -> str:
    """The charger's own word for an answer, else the protocol error's code."""
    return result.status or result.code or result.outcome.value

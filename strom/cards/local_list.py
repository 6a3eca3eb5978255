"""Keeping chargers' local authorization lists equal to the registered cards (OCPP 1.6
Local Auth List Management), so a charger can start a card while it is offline.

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
import logging
from typing import Any, Protocol

from strom.events import ChargePointBooted, ChargePointConnected, EventBus
from strom.store.cards import CardRepository, ChargerList
from strom.tasks import Tasks

log = logging.getLogger(__name__)

PROFILE = "LocalAuthListManagement"
POLL_SECONDS = 5.0
# A charger that reconnects usually boots first: its list is looked at after the boot, or
# this long after the connect when it does not boot.
CONNECT_DELAY_SECONDS = 2.0


class LocalListControl(Protocol):
    """The calls the list needs (OCPP 1.6: `strom/ocpp/local_list.py`).

    A charger that answers a call with NotSupported / NotImplemented gets -1, "NotSupported"
    or {} back; other failures (offline, timeout, a CALLERROR) raise.
    """

    def connected_ids(self) -> list[str]: ...

    async def local_list_config(self, cp_id: str) -> dict[str, str | None]: ...

    async def enable_local_list(self, cp_id: str) -> str: ...

    async def local_list_version(self, cp_id: str) -> int: ...

    async def send_local_list(self, cp_id: str, version: int, *, full: bool,
                              entries: list[dict[str, Any]]) -> str: ...

    async def clear_cache(self, cp_id: str) -> bool: ...


class LocalListSync:
    """Sends the card list to chargers; one sync at a time per charger."""

    def __init__(self, repo: CardRepository, bus: EventBus, control: LocalListControl, *,
                 poll_seconds: float | None = None) -> None:
        self._repo = repo
        self._bus = bus
        self._control = control
        self._poll_seconds = POLL_SECONDS if poll_seconds is None else poll_seconds
        self._kick = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: dict[str, bool] = {}  # cp → boot look wanted after the running sync
        self._booted: dict[str, float] = {}  # cp → loop time of its last BootNotification
        self._tasks = Tasks()

    async def start(self) -> None:
        self._bus.subscribe(self._on_event, ChargePointBooted, ChargePointConnected)
        self._tasks.spawn(self._watch(await self._repo.list_version()), "cards:local-list")

    async def close(self) -> None:
        await self._tasks.close()  # the per-charger syncs are among them

    def changed(self) -> None:
        """The cards changed in this process: send the difference to connected chargers now."""
        self._kick.set()

    async def _on_event(self, event: object) -> None:
        if isinstance(event, ChargePointBooted):
            self._booted[event.cp_id] = asyncio.get_running_loop().time()
            self.schedule(event.cp_id, boot=True)
        elif isinstance(event, ChargePointConnected):
            self._tasks.spawn(self._after_connect(event.cp_id), f"local-list-connect:{event.cp_id}")

    async def _after_connect(self, cp_id: str) -> None:
        connected = asyncio.get_running_loop().time()
        await asyncio.sleep(CONNECT_DELAY_SECONDS)
        if self._booted.get(cp_id, -1.0) < connected and cp_id in self._control.connected_ids():
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
                for cp_id in self._control.connected_ids():
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
        config = await self._control.local_list_config(cp_id)
        profiles = config.get("SupportedFeatureProfiles")
        if profiles is not None and PROFILE not in {p.strip() for p in profiles.split(",")}:
            return None, False, f"SupportedFeatureProfiles ({profiles[:200]}) lacks {PROFILE}"
        notes = []
        if (config.get("LocalAuthListEnabled") or "").strip().lower() == "false":
            answer = await self._control.enable_local_list(cp_id)
            if answer != "Accepted":
                notes.append(f"LocalAuthListEnabled is false; enabling it was answered {answer}")
        theirs = await self._control.local_list_version(cp_id)
        if theirs < 0:
            return None, False, "GetLocalListVersion: the charger has no local list (-1)"
        if theirs == version and held == version:
            return version, True, "; ".join(notes) or None
        # Differential only from a version strom itself gave this charger, completely.
        full = boot or theirs == 0 or theirs != held or theirs >= version
        entries = [c.list_entry() for c in (await self._repo.cards() if full
                                            else await self._repo.changed_since(theirs))]
        limit = _positive(config.get("LocalAuthListMaxLength"))
        if full and limit is not None and len(entries) > limit:
            return theirs, True, (f"{len(entries)} cards do not fit the charger's list"
                                  f" (LocalAuthListMaxLength {limit})")
        status = await self._send(cp_id, version, full, entries,
                                  _positive(config.get("SendLocalListMaxLength")))
        if status in ("Failed", "VersionMismatch") and not full:
            log.info("%s: Differential list answered %s; sending the Full list", cp_id, status)
            full = True
            status = await self._send(cp_id, version, True,
                                      [c.list_entry() for c in await self._repo.cards()],
                                      _positive(config.get("SendLocalListMaxLength")))
        if status == "NotSupported":
            return None, False, "SendLocalList: NotSupported"
        if status != "Accepted":
            # A refused piece of a long list leaves the charger at the new version with part
            # of it: forget what it holds, so the next look sends the Full list again.
            return None, True, f"SendLocalList ({'Full' if full else 'Differential'})" \
                               f" answered {status}"
        log.info("%s: local list at version %d (%s, %d entries)", cp_id, version,
                 "Full" if full else "Differential", len(entries))
        if not await self._control.clear_cache(cp_id):
            notes.append("ClearCache was rejected")
        return version, True, "; ".join(notes) or None

    async def _send(self, cp_id: str, version: int, full: bool, entries: list[dict[str, Any]],
                    chunk: int | None) -> str:
        """SendLocalList, in pieces of the charger's SendLocalListMaxLength: the first one as
        asked, the rest as Differential updates to the same version."""
        size = chunk or max(len(entries), 1)
        pieces = [entries[i:i + size] for i in range(0, len(entries), size)] or [[]]
        status = "Accepted"
        for number, piece in enumerate(pieces):
            status = await self._control.send_local_list(
                cp_id, version, full=full and number == 0, entries=piece)
            if status != "Accepted":
                break
        return status


def _positive(value: str | None) -> int | None:
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number > 0 else None


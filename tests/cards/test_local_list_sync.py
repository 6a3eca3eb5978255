"""The local list logic over a real store and a charger double that keeps a list the way OCPP
1.6 §5.15 says (Full replaces, Differential adds/updates, an entry without idTagInfo deletes)
and may forget its list, refuse an update, or know another version.

Property (hypothesis): whatever the operator does (add, remove, re-add, top up, empty an
account) and however the charger misbehaves (forgets its list, refuses a piece of it), the next
sync that goes through leaves the charger holding exactly the registered cards with their
current status, at strom's version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from strom.cards.local_list import LocalListSync
from strom.cards.registry import CardRegistry
from strom.chargers.control import (
    ControlResult,
    ListEntry,
    LocalListSettings,
    LocalListVersion,
    Outcome,
)
from strom.events import EventBus
from strom.ocpp.local_list import list_settings
from strom.store.cards import CardRepository
from strom.store.db import Database

ACCEPTED = ControlResult(Outcome.ACCEPTED, "Accepted")


class ListCharger:
    """A charger's local list behind `ChargerControl`'s list operations, answering as the OCPP
    1.6 adapter does: its configuration read by `strom.ocpp.local_list.list_settings`."""

    def __init__(self, *, profiles: str | None = "Core,LocalAuthListManagement",
                 chunk: int | None = None) -> None:
        self.profiles = profiles
        self.chunk = chunk
        self.version = 0
        self.entries: dict[str, str] = {}
        self.refuse_next: str | None = None  # "Failed" / "VersionMismatch" once
        self.sent: list[tuple[bool, int, int]] = []  # (full, version, entries)
        self.cleared = 0

    def connected(self) -> list[str]:
        return ["cp-1"]

    def is_connected(self, cp_id: str) -> bool:
        return True

    def config(self) -> dict[str, str | None]:
        config: dict[str, str | None] = {}
        if self.profiles is not None:
            config["SupportedFeatureProfiles"] = self.profiles
        if self.chunk is not None:
            config["SendLocalListMaxLength"] = str(self.chunk)
        return config

    async def local_list_settings(self, cp_id: str) -> LocalListSettings:
        return list_settings(self.config())

    async def enable_local_list(self, cp_id: str) -> ControlResult:
        return ACCEPTED

    async def local_list_version(self, cp_id: str) -> LocalListVersion:
        if "LocalAuthListManagement" not in (self.profiles or ""):
            return LocalListVersion(ControlResult(Outcome.NOT_SUPPORTED, "-1",
                                                  "answered GetLocalListVersion -1"))
        return LocalListVersion(ACCEPTED, self.version)

    async def send_local_list(self, cp_id: str, version: int, entries: Sequence[ListEntry], *,
                              full: bool) -> ControlResult:
        assert self.chunk is None or len(entries) <= self.chunk
        self.sent.append((full, version, len(entries)))
        if self.refuse_next and not full:
            answer, self.refuse_next = self.refuse_next, None
            return ControlResult(Outcome.REJECTED, answer)
        if full:
            self.entries = {}
        for entry in entries:
            if entry.status is not None:
                self.entries[entry.id_tag] = entry.status
            else:
                self.entries.pop(entry.id_tag, None)
        self.version = version
        return ACCEPTED

    async def clear_cache(self, cp_id: str) -> ControlResult:
        self.cleared += 1
        return ACCEPTED


def syncing(repo: CardRepository, charger: ListCharger) -> LocalListSync:
    return LocalListSync(repo, EventBus(), charger, charger.connected)  # type: ignore[arg-type]


async def expected(repo: CardRepository) -> dict[str, str]:
    return {c.id_tag: c.list_status or "" for c in await repo.cards()}


async def test_differential_refused_falls_back_to_full(db: Database) -> None:
    repo, charger = CardRepository(db), ListCharger(chunk=2)
    sync = syncing(repo, charger)
    registry = CardRegistry(repo)
    for tag in ("A", "B", "C"):
        await registry.add_card(tag, "free")
    await sync.sync("cp-1", boot=True)
    assert charger.sent == [(True, 3, 2), (False, 3, 1)] and charger.entries == {
        "A": "Accepted", "B": "Accepted", "C": "Accepted"}
    await registry.remove_card("B")
    charger.refuse_next = "VersionMismatch"
    known = await sync.sync("cp-1", boot=False)
    assert charger.sent[2:] == [(False, 4, 1), (True, 4, 2)]
    assert charger.entries == {"A": "Accepted", "C": "Accepted"}
    assert known is not None and known.list_version == 4 and known.supported
    assert charger.cleared == 2


async def test_no_profile_is_recorded_and_left_alone(db: Database) -> None:
    repo, charger = CardRepository(db), ListCharger(profiles="Core,SmartCharging")
    sync = syncing(repo, charger)
    assert await sync.sync("cp-1", boot=True) is None  # no card ever: nothing asked
    await CardRegistry(repo).add_card("A", "free")
    known = await sync.sync("cp-1", boot=True)
    assert known is not None and known.supported is False and "SmartCharging" in str(known.detail)
    charger.profiles = None  # a charger that does not say, then answers -1
    known = await sync.sync("cp-1", boot=True)
    assert known is not None and known.supported is False and "-1" in str(known.detail)
    assert charger.sent == []


OPS = st.lists(st.tuples(
    st.sampled_from(["add_free", "add_account", "remove", "topup", "empty", "sync", "boot",
                     "forget", "refuse"]),
    st.sampled_from(["A", "b", "C", "d"])), max_size=25)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=OPS, chunk=st.sampled_from([None, 1, 3]))
# The second piece of a Full list refused: the charger is at the new version with half of it.
@example(ops=[("add_free", "A"), ("add_free", "b"), ("refuse", "A"), ("boot", "A")], chunk=1)
def test_after_a_sync_the_charger_holds_exactly_the_cards(tmp_path_factory: Any,
                                                          ops: list[tuple[str, str]],
                                                          chunk: int | None) -> None:
    path: Path = tmp_path_factory.mktemp("list") / "cards.sqlite3"
    asyncio.run(_run(path, ops, chunk))


async def _run(path: Path, ops: list[tuple[str, str]], chunk: int | None) -> None:
    db = await Database.open(path)
    try:
        repo, charger = CardRepository(db), ListCharger(chunk=chunk)
        registry, sync = CardRegistry(repo), syncing(repo, charger)
        await registry.add_account("acc", balance_msat=1000)
        for op, tag in ops:
            card = await repo.card(tag)
            if op == "add_free" and card is None:
                await registry.add_card(tag, "free")
            elif op == "add_account" and card is None:
                await registry.add_card(tag, "account", account_id="acc")
            elif op == "remove" and card is not None:
                await registry.remove_card(tag)
            elif op == "topup":
                await registry.adjust("acc", 1000)
            elif op == "empty" and (balance := (await registry.account("acc")).balance_msat):
                await registry.adjust("acc", -balance)
            elif op == "forget":  # a charger reset to factory settings
                charger.version, charger.entries = 0, {}
            elif op == "refuse":
                charger.refuse_next = "Failed"
            elif op in ("sync", "boot"):
                await sync.sync("cp-1", boot=op == "boot")
        charger.refuse_next = None  # the last look goes through
        await sync.sync("cp-1", boot=False)
        version = await repo.list_version()
        if version:
            assert charger.version == version
            assert charger.entries == await expected(repo)
    finally:
        await db.close()


# What real chargers report (GetConfiguration values copied from public bug reports).
FIELD = {
    # Grizzl-e Smart v2: https://github.com/lbbrhzn/ocpp/issues/899
    "grizzl-e": {"SupportedFeatureProfiles": "Core,FirmwareManagement"},
    # EVBox Elvi: https://github.com/evcc-io/evcc/issues/15529
    "evbox-elvi": {"SupportedFeatureProfiles": "Core,FirmwareManagement,LocalAuthListManagement,"
                   "SmartCharging,RemoteTrigger,Reservation", "SendLocalListMaxLength": "25"},
}


class FieldCharger(ListCharger):
    def __init__(self, config: dict[str, str], send_answer: str = "Accepted") -> None:
        super().__init__()
        self.field = config
        self.send_answer = send_answer

    def config(self) -> dict[str, str | None]:
        return dict(self.field)

    async def send_local_list(self, cp_id: str, version: int, entries: Sequence[ListEntry], *,
                              full: bool) -> ControlResult:
        limit = int(self.field.get("SendLocalListMaxLength", "0") or 0)
        if limit and len(entries) > limit:
            # as a charger must when a list is longer than it takes
            return ControlResult(Outcome.REJECTED, "Failed")
        if self.send_answer != "Accepted":
            self.sent.append((full, version, len(entries)))
            return ControlResult(Outcome.NOT_SUPPORTED, self.send_answer)
        return await super().send_local_list(cp_id, version, entries, full=full)


async def test_field_chargers(db: Database) -> None:
    repo, registry = CardRepository(db), CardRegistry(CardRepository(db))
    for number in range(30):
        await registry.add_card(f"CARD-{number:02d}", "free")
    grizzl = FieldCharger(FIELD["grizzl-e"])
    known = await syncing(repo, grizzl).sync("cp-1", boot=True)
    assert known is not None and known.supported is False and grizzl.sent == []
    elvi = FieldCharger(FIELD["evbox-elvi"])
    known = await syncing(repo, elvi).sync("cp-2", boot=True)
    assert elvi.sent == [(True, 30, 25), (False, 30, 5)]  # 30 cards in pieces of 25
    assert known is not None and known.list_version == 30 and len(elvi.entries) == 30
    # Says it has the profile, then answers SendLocalList NotSupported (the list is disabled
    # in its settings): https://github.com/mobilityhouse/ocpp/issues/265
    disabled = FieldCharger(FIELD["evbox-elvi"], send_answer="NotSupported")
    known = await syncing(repo, disabled).sync("cp-3", boot=True)
    assert known is not None and known.supported is False
    assert known.detail == "SendLocalList: NotSupported"


class SilentCharger(ListCharger):
    """Takes the first piece of a list, then stops answering (a connection gone quiet)."""

    async def send_local_list(self, cp_id: str, version: int, entries: Sequence[ListEntry], *,
                              full: bool) -> ControlResult:
        if self.sent:
            return ControlResult(Outcome.TIMEOUT, reason="charge point cp-1 did not answer")
        return await super().send_local_list(cp_id, version, entries, full=full)


async def test_a_piece_without_answer_leaves_the_list_for_a_full_one_next(db: Database) -> None:
    repo, charger = CardRepository(db), SilentCharger(chunk=1)
    registry = CardRegistry(repo)
    for tag in ("A", "B"):
        await registry.add_card(tag, "free")
    known = await syncing(repo, charger).sync("cp-1", boot=True)
    assert known is not None and known.list_version is None  # half a list: nothing is sure
    assert "not updated" in str(known.detail) and "did not answer" in str(known.detail)
    assert charger.cleared == 0

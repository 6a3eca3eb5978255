"""Repository of owner cards, their prepaid accounts, card sessions and the accounts' book.

Accounts in `card_ledger` (double entry, like the sessions' `ledger`): `operator` (money from
outside strom: what the operator tops up), `card_account:<id>` (a prepaid balance),
`card_revenue` (energy sold to cards). A balance change and its ledger row are one statement
pair in the caller's transaction.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from strom.store.db import Database
from strom.timeutil import iso

OPERATOR = "operator"
CARD_REVENUE = "card_revenue"


def account_key(account_id: str) -> str:
    """The ledger account of a prepaid card account."""
    return f"card_account:{account_id}"


class Rule(enum.StrEnum):
    FREE = "free"  # charges at no cost; the energy is recorded
    ACCOUNT = "account"  # drawn from a prepaid operator account at the charger's tariff


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    balance_msat: int
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "balance_msat": self.balance_msat,
                "created_at": self.created_at, "updated_at": self.updated_at}


@dataclass(frozen=True, slots=True)
class Card:
    id_tag: str
    label: str
    rule: Rule
    account_id: str | None
    list_status: str | None  # what the local list says: Accepted, Blocked; None = removed
    list_version: int
    created_at: str
    removed_at: str | None

    @property
    def active(self) -> bool:
        return self.removed_at is None

    def to_json(self) -> dict[str, Any]:
        return {"id_tag": self.id_tag, "label": self.label, "rule": self.rule.value,
                "account": self.account_id, "status": self.list_status,
                "list_version": self.list_version, "created_at": self.created_at}


@dataclass(slots=True)
class CardSession:
    id: str
    cp_id: str
    connector_id: int
    transaction_id: int
    id_tag: str
    rule: Rule
    account_id: str | None
    state: str  # charging | stopping | stopped
    tariff: dict[str, Any]  # the Tariff's JSON, as locked at the start
    meter_start_wh: float
    energy_wh: float
    consumed_msat: int
    unbilled_msat: int
    rate_msat_per_kwh: int | None
    rate_since_wh: float
    rated_msat: int
    power_w: float | None
    max_power_w: float | None
    last_reading_at: str | None
    started_at: str
    stopped_at: str | None
    stop_reason: str | None
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": "card", "cp_id": self.cp_id,
                "connector_id": self.connector_id, "transaction_id": self.transaction_id,
                "id_tag": self.id_tag, "rule": self.rule.value, "account": self.account_id,
                "state": self.state, "energy_wh": round(self.energy_wh, 3),
                "consumed_msat": self.consumed_msat, "unbilled_msat": self.unbilled_msat,
                "power_w": self.power_w, "started_at": self.started_at,
                "stopped_at": self.stopped_at, "stop_reason": self.stop_reason,
                "tariff": self.tariff}


@dataclass(frozen=True, slots=True)
class ChargerList:
    """What strom knows of one charger's local list."""

    cp_id: str
    list_version: int | None
    supported: bool | None
    detail: str | None
    checked_at: str

    def to_json(self) -> dict[str, Any]:
        return {"cp_id": self.cp_id, "list_version": self.list_version,
                "supported": self.supported, "detail": self.detail,
                "checked_at": self.checked_at}




def _account(row: Any) -> Account:
    return Account(row["id"], row["name"], row["balance_msat"], row["created_at"],
                   row["updated_at"])


def _card(row: Any) -> Card:
    return Card(row["id_tag"], row["label"], Rule(row["rule"]), row["account_id"],
                row["list_status"], row["list_version"], row["created_at"], row["removed_at"])


def _session(row: Any) -> CardSession:
    data = dict(row)
    data["rule"] = Rule(data["rule"])
    data["tariff"] = json.loads(data.pop("tariff_json"))
    return CardSession(**data)


def _charger(row: Any) -> ChargerList:
    supported = None if row["supported"] is None else bool(row["supported"])
    return ChargerList(row["cp_id"], row["list_version"], supported, row["detail"],
                       row["checked_at"])


# An account card's status in the local list follows its account: Blocked once it is empty.
_STATUS_OF_ACCOUNT = ("CASE WHEN (SELECT balance_msat FROM card_accounts a"
                      " WHERE a.id = cards.account_id) > 0 THEN 'Accepted' ELSE 'Blocked' END")

_SESSION_COLUMNS = frozenset({
    "state", "energy_wh", "consumed_msat", "unbilled_msat", "rate_msat_per_kwh",
    "rate_since_wh", "rated_msat", "power_w", "max_power_w", "last_reading_at", "stopped_at",
    "stop_reason"})


class CardRepository:
    """All SQL of cards, accounts, card sessions and local list state."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def db(self) -> Database:
        return self._db

    # --- accounts ---------------------------------------------------------------------------

    async def account(self, account_id: str) -> Account | None:
        row = await self._db.fetchone("SELECT * FROM card_accounts WHERE id = ?", (account_id,))
        return _account(row) if row else None

    async def account_in(self, conn: aiosqlite.Connection, account_id: str) -> Account | None:
        cursor = await conn.execute("SELECT * FROM card_accounts WHERE id = ?", (account_id,))
        row = await cursor.fetchone()
        return _account(row) if row else None

    async def accounts(self) -> list[Account]:
        return [_account(r) for r in await self._db.fetchall(
            "SELECT * FROM card_accounts ORDER BY id")]

    async def insert_account(self, conn: aiosqlite.Connection, account_id: str,
                             name: str) -> bool:
        """False when an account of that id exists."""
        now = iso()
        cursor = await conn.execute(
            "INSERT INTO card_accounts (id, name, balance_msat, created_at, updated_at)"
            " VALUES (?, ?, 0, ?, ?) ON CONFLICT (id) DO NOTHING",
            (account_id, name, now, now))
        return cursor.rowcount == 1

    async def move(self, conn: aiosqlite.Connection, account_id: str, amount_msat: int, *,
                   kind: str, note: str | None = None,
                   card_session_id: str | None = None) -> None:
        """Add `amount_msat` (negative: take) to an account's balance, with its ledger row.

        `account_topup` and `account_withdrawn` move money between the operator and the
        account; `card_energy` from the account to `card_revenue`. The balance's CHECK refuses
        to go below zero.
        """
        if amount_msat == 0:
            return
        await conn.execute(
            "UPDATE card_accounts SET balance_msat = balance_msat + ?, updated_at = ?"
            " WHERE id = ?", (amount_msat, iso(), account_id))
        mine = account_key(account_id)
        if kind == "card_energy":
            debit, credit = mine, CARD_REVENUE
        elif amount_msat > 0:
            debit, credit = OPERATOR, mine
        else:
            debit, credit = mine, OPERATOR
        await conn.execute(
            "INSERT INTO card_ledger (at, account_id, card_session_id, kind, debit, credit,"
            " amount_msat, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (iso(), account_id, card_session_id, kind, debit, credit, abs(amount_msat), note))

    # --- cards and the list version ---------------------------------------------------------

    async def card(self, id_tag: str, *, removed: bool = False) -> Card | None:
        """The card of `id_tag` (any case); a removed one only with `removed`."""
        row = await self._db.fetchone("SELECT * FROM cards WHERE id_tag = ?", (id_tag,))
        card = _card(row) if row else None
        return card if card is not None and (removed or card.active) else None

    async def card_in(self, conn: aiosqlite.Connection, id_tag: str) -> Card | None:
        cursor = await conn.execute("SELECT * FROM cards WHERE id_tag = ?", (id_tag,))
        row = await cursor.fetchone()
        return _card(row) if row else None

    async def cards(self) -> list[Card]:
        """Registered cards (not removed ones)."""
        return [_card(r) for r in await self._db.fetchall(
            "SELECT * FROM cards WHERE removed_at IS NULL ORDER BY id_tag")]

    async def list_version(self) -> int:
        """The version of the local list (0: no card was ever registered)."""
        row = await self._db.fetchone("SELECT COALESCE(MAX(list_version), 0) FROM cards")
        return int(row[0]) if row else 0

    async def next_version_in(self, conn: aiosqlite.Connection) -> int:
        cursor = await conn.execute("SELECT COALESCE(MAX(list_version), 0) + 1 FROM cards")
        row = await cursor.fetchone()
        return int(row[0]) if row else 1

    async def is_session_tag_in(self, conn: aiosqlite.Connection, id_tag: str) -> bool:
        """Whether a lightning session uses this idTag (strom's own, random)."""
        cursor = await conn.execute("SELECT 1 FROM sessions WHERE id_tag = ? COLLATE NOCASE",
                                    (id_tag,))
        return await cursor.fetchone() is not None

    async def put_card(self, conn: aiosqlite.Connection, *, id_tag: str, label: str, rule: Rule,
                       account_id: str | None, status: str, version: int) -> None:
        """Register a card, or bring back a removed one under the same idTag."""
        await conn.execute(
            "INSERT INTO cards (id_tag, label, rule, account_id, list_status, list_version,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id_tag) DO UPDATE SET"
            " label = excluded.label, rule = excluded.rule, account_id = excluded.account_id,"
            " list_status = excluded.list_status, list_version = excluded.list_version,"
            " created_at = excluded.created_at, removed_at = NULL",
            (id_tag, label, rule.value, account_id, status, version, iso()))

    async def remove_card(self, conn: aiosqlite.Connection, id_tag: str, version: int) -> None:
        await conn.execute(
            "UPDATE cards SET list_status = NULL, removed_at = ?, list_version = ?"
            " WHERE id_tag = ?", (iso(), version, id_tag))

    async def follow_balances(self, conn: aiosqlite.Connection) -> int:
        """Set each account card's list status from its account (Blocked when empty), under a
        new list version; the number of cards that changed."""
        version = await self.next_version_in(conn)
        cursor = await conn.execute(
            f"UPDATE cards SET list_status = {_STATUS_OF_ACCOUNT}, list_version = ?"
            f" WHERE removed_at IS NULL AND rule = 'account'"
            f" AND list_status != {_STATUS_OF_ACCOUNT}", (version,))
        return cursor.rowcount

    async def changed_since(self, version: int) -> list[Card]:
        """Every card (removed ones too) changed after list `version`."""
        return [_card(r) for r in await self._db.fetchall(
            "SELECT * FROM cards WHERE list_version > ? ORDER BY list_version, id_tag",
            (version,))]

    # --- chargers' lists --------------------------------------------------------------------

    async def charger_list(self, cp_id: str) -> ChargerList | None:
        row = await self._db.fetchone("SELECT * FROM card_list_chargers WHERE cp_id = ?",
                                      (cp_id,))
        return _charger(row) if row else None

    async def charger_lists(self) -> list[ChargerList]:
        return [_charger(r) for r in await self._db.fetchall(
            "SELECT * FROM card_list_chargers ORDER BY cp_id")]

    async def record_charger(self, cp_id: str, *, list_version: int | None,
                             supported: bool | None, detail: str | None) -> None:
        """What the last look at a charger's list found (the whole row is replaced)."""
        await self._db.execute(
            "INSERT INTO card_list_chargers (cp_id, list_version, supported, detail, checked_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (cp_id) DO UPDATE SET"
            " list_version = excluded.list_version, supported = excluded.supported,"
            " detail = excluded.detail, checked_at = excluded.checked_at",
            (cp_id, list_version, None if supported is None else int(supported), detail, iso()))

    # --- card sessions ----------------------------------------------------------------------

    async def insert_session(self, conn: aiosqlite.Connection, session: CardSession) -> bool:
        """False when the transaction already has its card session (a retried start)."""
        cursor = await conn.execute(
            "INSERT INTO card_sessions (id, cp_id, connector_id, transaction_id, id_tag, rule,"
            " account_id, state, tariff_json, meter_start_wh, started_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (transaction_id) DO NOTHING",
            (session.id, session.cp_id, session.connector_id, session.transaction_id,
             session.id_tag, session.rule.value, session.account_id, session.state,
             json.dumps(session.tariff), session.meter_start_wh, session.started_at,
             session.updated_at))
        return cursor.rowcount == 1

    async def session_in(self, conn: aiosqlite.Connection,
                         transaction_id: int) -> CardSession | None:
        cursor = await conn.execute("SELECT * FROM card_sessions WHERE transaction_id = ?",
                                    (transaction_id,))
        row = await cursor.fetchone()
        return _session(row) if row else None

    async def session(self, session_id: str) -> CardSession | None:
        row = await self._db.fetchone("SELECT * FROM card_sessions WHERE id = ?", (session_id,))
        return _session(row) if row else None

    async def update_session(self, conn: aiosqlite.Connection, session_id: str,
                             **fields: Any) -> None:
        unknown = set(fields) - _SESSION_COLUMNS
        if unknown:
            raise ValueError(f"not card session columns: {sorted(unknown)}")
        fields["updated_at"] = iso()
        names = ", ".join(f"{name} = ?" for name in fields)
        await conn.execute(f"UPDATE card_sessions SET {names} WHERE id = ?",
                           (*fields.values(), session_id))

    async def open_sessions(self) -> list[CardSession]:
        return [_session(r) for r in await self._db.fetchall(
            "SELECT * FROM card_sessions WHERE state != 'stopped' ORDER BY started_at")]

    async def sessions(self, *, limit: int, offset: int) -> tuple[list[CardSession], int]:
        """Card sessions, newest first, and how many there are."""
        rows = await self._db.fetchall(
            "SELECT * FROM card_sessions ORDER BY started_at DESC, id LIMIT ? OFFSET ?",
            (limit, offset))
        total = await self._db.fetchone("SELECT COUNT(*) FROM card_sessions")
        return [_session(r) for r in rows], int(total[0]) if total else 0

    # --- the check --------------------------------------------------------------------------

    async def account_books(self) -> list[tuple[str, int, int]]:
        """(account, balance, what its ledger rows add up to) for every account."""
        rows = await self._db.fetchall(
            "SELECT a.id, a.balance_msat, COALESCE(SUM(CASE WHEN l.credit = 'card_account:'"
            " || a.id THEN l.amount_msat ELSE -l.amount_msat END), 0) AS booked"
            " FROM card_accounts a LEFT JOIN card_ledger l ON l.account_id = a.id"
            " GROUP BY a.id ORDER BY a.id")
        return [(r[0], int(r[1]), int(r[2])) for r in rows]

    async def session_books(self) -> list[tuple[CardSession, int]]:
        """Every card session with what the ledger drew from its account for it."""
        rows = await self._db.fetchall(
            "SELECT s.*, (SELECT COALESCE(SUM(amount_msat), 0) FROM card_ledger l"
            " WHERE l.card_session_id = s.id) AS booked FROM card_sessions s ORDER BY s.id")
        books = []
        for row in rows:
            data = dict(row)
            booked = int(data.pop("booked"))
            books.append((_session(data), booked))
        return books

    async def lightning_overlaps(self) -> list[tuple[str, str]]:
        """(card session, lightning session) pairs that claim the same OCPP transaction."""
        rows = await self._db.fetchall(
            "SELECT c.id, s.id FROM card_sessions c JOIN sessions s"
            " ON s.cp_id = c.cp_id AND s.transaction_id = c.transaction_id")
        return [(r[0], r[1]) for r in rows]

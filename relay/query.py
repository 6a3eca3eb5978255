"""Filters turned into parameterized SQL over the relay's `events` and `tags` tables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from relay.event import PROTECTED_KINDS
from relay.filters import Filter

_PROTECTED = ", ".join(str(k) for k in sorted(PROTECTED_KINDS))


def _marks(values: Iterable[Any], params: list[Any]) -> str:
    items = list(values)
    params.extend(items)
    return ", ".join("?" * len(items))


def where_clause(f: Filter, readers: frozenset[str], now: int) -> tuple[str, list[Any]]:
    """The WHERE condition for one filter, also hiding expired events and protected kinds
    that none of `readers` (authenticated pubkeys) wrote or receives."""
    params: list[Any] = [now]
    where = ["(e.expires_at IS NULL OR e.expires_at > ?)"]
    if f.ids is not None:
        where.append(f"e.id IN ({_marks(sorted(f.ids), params)})")
    if f.authors is not None:
        where.append(f"e.pubkey IN ({_marks(sorted(f.authors), params)})")
    if f.kinds is not None:
        where.append(f"e.kind IN ({_marks(sorted(f.kinds), params)})")
    if f.since is not None:
        where.append("e.created_at >= ?")
        params.append(f.since)
    if f.until is not None:
        where.append("e.created_at <= ?")
        params.append(f.until)
    for name, values in f.tags:
        params.append(name)
        where.append("e.seq IN (SELECT t.event_seq FROM tags t WHERE t.name = ? AND "
                     f"t.value IN ({_marks(sorted(values), params)}))")
    if not readers:
        where.append(f"e.kind NOT IN ({_PROTECTED})")
    else:
        authors = _marks(sorted(readers), params)
        params.append("p")
        recipients = _marks(sorted(readers), params)
        where.append(f"(e.kind NOT IN ({_PROTECTED}) OR e.pubkey IN ({authors}) OR e.seq IN "
                     f"(SELECT t.event_seq FROM tags t WHERE t.name = ? AND t.value IN ({recipients})))")
    return " AND ".join(where), params


def select_sql(f: Filter, readers: frozenset[str], now: int) -> tuple[str, list[Any]]:
    """Newest first, ties by lowest id (NIP-01), at most `f.limit` rows of (created_at, id, raw)."""
    where, params = where_clause(f, readers, now)
    params.append(f.limit)
    return (f"SELECT e.created_at, e.id, e.raw FROM events e WHERE {where} "
            "ORDER BY e.created_at DESC, e.id LIMIT ?", params)


def count_sql(filters: list[Filter], readers: frozenset[str], now: int) -> tuple[str, list[Any]]:
    """NIP-45: how many stored events match any of `filters` (limits do not apply)."""
    clauses: list[str] = []
    params: list[Any] = []
    for f in filters:
        where, extra = where_clause(f, readers, now)
        clauses.append(f"({where})")
        params.extend(extra)
    return f"SELECT COUNT(*) FROM events e WHERE {' OR '.join(clauses)}", params

"""NIP-01 filters: parse and validate what a client sends, and match events in memory.

Supported keys: ids, authors, kinds, #<single letter>, since, until, limit. Ids and authors
must be full 64-character hex (prefix matching is not offered). Other keys are ignored, as
most relays do, so that a client asking for more still gets what is supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from relay.event import Event

_HEX64 = re.compile(r"[0-9a-f]{64}")
_TAG_KEY = re.compile(r"#[A-Za-z]")


class InvalidFilter(ValueError):
    """The filter cannot be understood; the text follows `invalid:`."""


@dataclass(frozen=True, slots=True)
class Filter:
    """One filter; None means "any", an empty set means "nothing"."""

    ids: frozenset[str] | None = None
    authors: frozenset[str] | None = None
    kinds: frozenset[int] | None = None
    tags: tuple[tuple[str, frozenset[str]], ...] = ()
    since: int | None = None
    until: int | None = None
    limit: int | None = None

    def matches(self, event: Event) -> bool:
        """Whether `event` passes every condition (limit is for stored queries only)."""
        if self.ids is not None and event.id not in self.ids:
            return False
        if self.authors is not None and event.pubkey not in self.authors:
            return False
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.since is not None and event.created_at < self.since:
            return False
        if self.until is not None and event.created_at > self.until:
            return False
        for name, values in self.tags:
            present = event.tag_index.get(name)
            if present is None or present.isdisjoint(values):
                return False
        return True

    @property
    def matches_nothing(self) -> bool:
        """Some list is empty, or since lies after until: no event can match."""
        empty = any(s is not None and not s for s in (self.ids, self.authors, self.kinds))
        inverted = self.since is not None and self.until is not None and self.since > self.until
        return empty or inverted or any(not values for _, values in self.tags)


def _hex_set(value: Any, name: str, max_items: int) -> frozenset[str]:
    if not isinstance(value, list):
        raise InvalidFilter(f"{name} must be a list")
    if len(value) > max_items:
        raise InvalidFilter(f"{name} has more than {max_items} entries")
    for item in value:
        if not isinstance(item, str) or not _HEX64.fullmatch(item):
            raise InvalidFilter(f"{name} must be 64-character lowercase hex strings")
    return frozenset(value)


def _int(value: Any, name: str, upper: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= upper:
        raise InvalidFilter(f"{name} must be an integer from 0 to {upper}")
    return value


def parse_filter(obj: Any, *, default_limit: int, max_limit: int,
                 max_items: int = 1000, max_tag_values: int | None = None) -> Filter:
    """Validate one filter object; `limit` defaults to `default_limit`, capped at `max_limit`.

    Each list holds at most `max_items`; all tag lists together at most `max_tag_values`
    (default `max_items`): each tag value is a subquery. Raises InvalidFilter with a one-line
    reason.
    """
    if not isinstance(obj, dict):
        raise InvalidFilter("a filter must be a JSON object")
    ids = _hex_set(obj["ids"], "ids", max_items) if "ids" in obj else None
    authors = _hex_set(obj["authors"], "authors", max_items) if "authors" in obj else None
    kinds = None
    if "kinds" in obj:
        if not isinstance(obj["kinds"], list) or len(obj["kinds"]) > max_items:
            raise InvalidFilter(f"kinds must be a list of at most {max_items} integers")
        kinds = frozenset(_int(k, "kinds", 65535) for k in obj["kinds"])
    tags: list[tuple[str, frozenset[str]]] = []
    for key, value in obj.items():
        if not key.startswith("#"):
            continue
        if not _TAG_KEY.fullmatch(key):
            raise InvalidFilter(f"tag filter {key[:20]!r}: only single-letter tags can be queried")
        if (not isinstance(value, list) or len(value) > max_items
                or not all(isinstance(v, str) for v in value)):
            raise InvalidFilter(f"{key} must be a list of at most {max_items} strings")
        tags.append((key[1], frozenset(value)))
    tag_budget = max_items if max_tag_values is None else max_tag_values
    if sum(len(values) for _, values in tags) > tag_budget:
        raise InvalidFilter(f"at most {tag_budget} tag values in one filter")
    since = _int(obj["since"], "since", 2**53) if "since" in obj else None
    until = _int(obj["until"], "until", 2**53) if "until" in obj else None
    limit = _int(obj["limit"], "limit", 2**53) if "limit" in obj else default_limit
    return Filter(ids, authors, kinds, tuple(sorted(tags)), since, until, min(limit, max_limit))

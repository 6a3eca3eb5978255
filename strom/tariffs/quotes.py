"""Quotes: the tariff a wallet was shown, kept briefly so its invoice is made at that price.

LNURL-pay asks for the price twice: in the payRequest (whose metadata the wallet shows and
later checks against the invoice's description hash) and in the callback. A dynamic price may
change in between; a quote id carried in the callback URL returns the tariff first shown.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from strom.tariffs.model import Tariff


class QuoteBook:
    """At most `capacity` quotes, each honoured for `ttl_seconds` after it was issued."""

    def __init__(self, ttl_seconds: float, capacity: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._capacity = capacity
        self._clock = clock
        # Insertion order is expiry order, since every quote lives equally long.
        self._quotes: OrderedDict[str, tuple[float, str, Tariff]] = OrderedDict()

    def issue(self, cp_id: str, tariff: Tariff) -> str:
        """Remember `tariff` as quoted for `cp_id`; returns the quote id."""
        now = self._clock()
        while self._quotes and (len(self._quotes) >= self._capacity
                                or next(iter(self._quotes.values()))[0] <= now):
            self._quotes.popitem(last=False)
        quote_id = secrets.token_urlsafe(12)
        self._quotes[quote_id] = (now + self._ttl, cp_id, tariff)
        return quote_id

    def get(self, cp_id: str, quote_id: str) -> Tariff | None:
        """The quoted tariff, if the id is known, for this charge point, and not expired."""
        entry = self._quotes.get(quote_id)
        if entry is None or entry[1] != cp_id or entry[0] <= self._clock():
            return None
        return entry[2]

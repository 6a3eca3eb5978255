"""Quotes: the tariff a wallet was shown, held briefly so its one invoice is made at that price.

LNURL-pay asks for the price twice: in the payRequest (whose metadata the wallet shows and
later checks against the invoice's description hash) and in the callback. A dynamic price may
change in between; a quote id carried in the callback URL returns the tariff first shown.

A quote promises no more than that: it ends at the earliest of its lifetime, the end of the
spot slot it quotes (`Tariff.valid_until`) and `cancel()` (an operator's price change), and
it is taken by one invoice. A quote that was taken, has ended or was cancelled is still
remembered for `REMEMBER` after its lifetime, so the callback can tell a wallet that the price
it showed no longer holds instead of making an invoice whose description the wallet rejects.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from strom.tariffs.model import Tariff
from strom.timeutil import parse_iso

# How long an ended quote is remembered (within `capacity`): a wallet may wait on its amount
# screen for a while before it calls back.
REMEMBER = timedelta(hours=1)


@dataclass(slots=True)
class Quote:
    """One quoted price: for which charge point, from what, until when, and whether used."""

    cp_id: str
    tariff: Tariff
    base: Tariff  # the operator's static prices it was made from; a change ends the quote
    issued_at: datetime
    ends_at: datetime
    taken: bool = False

    def open(self, now: datetime) -> bool:
        return not self.taken and now < self.ends_at


class QuoteBook:
    """At most `capacity` quotes; each lives at most `lifetime` after it was issued."""

    def __init__(self, lifetime: timedelta, clock: Callable[[], datetime],
                 capacity: int = 10_000) -> None:
        self._lifetime = lifetime
        self._capacity = capacity
        self._clock = clock
        # Insertion order is the order in which they are forgotten (all live equally long).
        self._quotes: OrderedDict[str, Quote] = OrderedDict()

    def issue(self, cp_id: str, tariff: Tariff, base: Tariff) -> tuple[str, Quote]:
        """Remember `tariff` as quoted for `cp_id`; returns the quote id and the quote."""
        now = self._clock()
        self._forget_old(now, self._capacity - 1)
        quote = Quote(cp_id, tariff, base, now, self.ends_at(tariff))
        quote_id = secrets.token_urlsafe(12)
        self._quotes[quote_id] = quote
        return quote_id, quote

    def ends_at(self, tariff: Tariff) -> datetime:
        """When a quote of `tariff` issued now ends: its lifetime or its price slot, if sooner."""
        ends = self._clock() + self._lifetime
        return min(ends, parse_iso(tariff.valid_until)) if tariff.valid_until else ends

    def take(self, cp_id: str, quote_id: str,
             still_holds: Callable[[Quote], bool]) -> tuple[Quote | None, bool]:
        """(the quote, whether it was taken now): once, if open and `still_holds(quote)`.

        A quote that was taken, has ended or no longer holds comes back with False, so the
        caller knows what the wallet was shown; an unknown id (or another charger's) as None.
        """
        now = self._clock()
        self._forget_old(now, self._capacity)
        quote = self._quotes.get(quote_id)
        if quote is None or quote.cp_id != cp_id:
            return None, False
        if not quote.open(now) or not still_holds(quote):
            quote.ends_at = min(quote.ends_at, now)
            return quote, False
        quote.taken = True
        return quote, True

    def cancel(self, cp_id: str | None = None) -> int:
        """End every open quote (of `cp_id`, or of all charge points); returns how many."""
        now = self._clock()
        cancelled = 0
        for quote in self._quotes.values():
            if (cp_id is None or quote.cp_id == cp_id) and quote.open(now):
                quote.ends_at = now
                cancelled += 1
        return cancelled

    def _forget_old(self, now: datetime, keep: int) -> None:
        while self._quotes and (
                len(self._quotes) > keep
                or next(iter(self._quotes.values())).issued_at + self._lifetime + REMEMBER
                <= now):
            self._quotes.popitem(last=False)

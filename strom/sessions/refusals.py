"""The one base of the use cases' refusals: a request the payer gets a reason for.

Each use case (`checkout.py`, `topup.py`, `payer_stop.py`, `withdrawals.py`) raises a subclass
naming what went wrong; its message is written for the person paying or stopping, and every
interface shows it as it is (LNURL: the LUD-06 `reason`; nostr: the DM answer; pages: the
error text). Interfaces never word a refusal of their own for these cases.
"""

from __future__ import annotations


class Refused(Exception):
    """A use case refused the request; `str(exc)` is the reason, for the payer."""

    @property
    def reason(self) -> str:
        return str(self)

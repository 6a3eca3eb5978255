"""The rules a card's and an account's input follows, and the error that says which broke."""

from __future__ import annotations

import re

from strom.errors import UserError

# OCPP 1.6 idTag: CiString20Type, printable ASCII. Compared case-insensitively.
MAX_ID_TAG = 20
ID_TAG = re.compile(r"^[\x21-\x7e]{1,20}$")
ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")
LABEL = re.compile(r"^[^\x00-\x1f\x7f]{0,100}$")
# An account holds at most this much (10 BTC): a typo of a few zeros is refused, not stored.
MAX_BALANCE_MSAT = 10 * 100_000_000 * 1000


class CardError(UserError):
    """Input the operator can fix; `kind` lets interfaces pick their answer (404, 409, 422)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "invalid" | "duplicate" | "not_found" | "unknown_account"


def check_id_tag(id_tag: str) -> str:
    """The idTag as given, or why it cannot be one (OCPP CiString20: printable ASCII)."""
    if not isinstance(id_tag, str) or not id_tag:
        raise CardError("invalid", "idTag is empty")
    if len(id_tag) > MAX_ID_TAG:
        raise CardError("invalid", f"idTag has {len(id_tag)} characters; OCPP allows at most"
                        f" {MAX_ID_TAG}")
    if not ID_TAG.match(id_tag):
        raise CardError("invalid", "idTag may hold printable ASCII only (no spaces)")
    return id_tag


def check_account_id(account_id: str) -> str:
    if not ACCOUNT_ID.match(account_id or ""):
        raise CardError("invalid", f"account id {account_id[:60]!r}: use 1-48 letters, digits,"
                        " '.', '_' or '-'")
    return account_id


def check_label(label: str) -> str:
    if not LABEL.match(label):
        raise CardError("invalid", "label: at most 100 characters, no control characters")
    return label


def shown_tag(id_tag: str) -> str:
    """An idTag as log lines show it: its start only. A whole tag lets anyone who reads the log
    clone the card (many RFID cards are nothing but their number)."""
    return id_tag[:4] + "…" if len(id_tag) > 4 else "…"

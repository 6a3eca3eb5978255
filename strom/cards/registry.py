"""The operator's cards and prepaid accounts: register, remove, top up — the rules, not the SQL.

Every change that alters what chargers should hold bumps the local list version in the same
store transaction (`strom/cards/local_list.py` sends it on); `on_change` tells a running
server at once, and a server that did not make the change (the CLI) finds the new version on
its next look.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from strom.cards.model import (
    MAX_BALANCE_MSAT,
    CardError,
    check_account_id,
    check_id_tag,
    check_label,
    shown_tag,
)
from strom.store.cards import Account, Card, CardRepository, Rule

log = logging.getLogger(__name__)


class CardRegistry:
    """Cards and accounts as the operator manages them (CLI, admin API, TUI)."""

    def __init__(self, repo: CardRepository, on_change: Callable[[], None] | None = None) -> None:
        self.repo = repo
        self._on_change = on_change

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    # --- accounts ---------------------------------------------------------------------------

    async def add_account(self, account_id: str, name: str | None = None,
                          balance_msat: int = 0, note: str | None = None) -> Account:
        """A new prepaid account, with an opening balance (a top-up) if given."""
        check_account_id(account_id)
        check_label(name or "")
        _check_amount(balance_msat, allow_negative=False)
        async with self.repo.db.transaction() as conn:
            if not await self.repo.insert_account(conn, account_id, name or account_id):
                raise CardError("duplicate", f"account {account_id} exists already")
            await self.repo.move(conn, account_id, balance_msat, kind="account_topup",
                                 note=note or "opening balance")
            account = await self.repo.account_in(conn, account_id)
        assert account is not None
        log.info("card account %s added with %d msat", account_id, balance_msat)
        return account

    async def adjust(self, account_id: str, amount_msat: int, note: str | None = None) -> Account:
        """Top up (positive) or take back (negative) part of an account's balance.

        Taking more than the balance is refused: money a card already drew stays drawn.
        """
        _check_amount(amount_msat, allow_negative=True)
        if amount_msat == 0:
            raise CardError("invalid", "amount_msat must not be 0")
        check_label(note or "")
        async with self.repo.db.transaction() as conn:
            account = await self.repo.account_in(conn, account_id)
            if account is None:
                raise CardError("unknown_account", f"unknown account {account_id[:60]!r}")
            after = account.balance_msat + amount_msat
            if after < 0:
                raise CardError("invalid", f"account {account_id} holds {account.balance_msat}"
                                f" msat; {-amount_msat} msat cannot be taken")
            if after > MAX_BALANCE_MSAT:
                raise CardError("invalid", f"an account holds at most {MAX_BALANCE_MSAT} msat")
            await self.repo.move(conn, account_id, amount_msat,
                                 kind="account_topup" if amount_msat > 0 else "account_withdrawn",
                                 note=note)
            changed = await self.repo.follow_balances(conn)
            account = await self.repo.account_in(conn, account_id)
        assert account is not None
        log.info("card account %s: %+d msat, balance %d msat", account_id, amount_msat,
                 account.balance_msat)
        if changed:
            self._changed()
        return account

    # --- cards ------------------------------------------------------------------------------

    async def add_card(self, id_tag: str, rule: Rule | str, *, account_id: str | None = None,
                       label: str = "") -> Card:
        """Register an idTag: free, or billed to `account_id`."""
        check_id_tag(id_tag)
        check_label(label)
        try:
            rule = Rule(rule)
        except ValueError:
            raise CardError("invalid", f"rule {str(rule)[:20]!r}: use 'free' or 'account'") \
                from None
        if rule == Rule.ACCOUNT and not account_id:
            raise CardError("invalid", "a card billed to an account needs the account")
        if rule == Rule.FREE and account_id:
            raise CardError("invalid", "a free card has no account")
        async with self.repo.db.transaction() as conn:
            existing = await self.repo.card_in(conn, id_tag)
            if existing is not None and existing.active:
                raise CardError("duplicate", f"idTag {existing.id_tag} is registered already")
            if await self.repo.is_session_tag_in(conn, id_tag):
                raise CardError("duplicate", f"idTag {id_tag} belongs to a lightning session")
            status = "Accepted"
            if account_id is not None:
                account = await self.repo.account_in(conn, account_id)
                if account is None:
                    raise CardError("unknown_account", f"unknown account {account_id[:60]!r}")
                status = "Accepted" if account.balance_msat > 0 else "Blocked"
            version = await self.repo.next_version_in(conn)
            await self.repo.put_card(conn, id_tag=id_tag, label=label, rule=rule,
                                     account_id=account_id, status=status, version=version)
            card = await self.repo.card_in(conn, id_tag)
        assert card is not None
        log.info("card %s registered (%s), local list version %d", shown_tag(id_tag), rule.value,
                 version)
        self._changed()
        return card

    async def remove_card(self, id_tag: str) -> Card:
        """Remove a card: chargers are told to delete it; its sessions keep their history."""
        async with self.repo.db.transaction() as conn:
            card = await self.repo.card_in(conn, id_tag)
            if card is None or not card.active:
                raise CardError("not_found", f"unknown card {id_tag[:20]!r}")
            version = await self.repo.next_version_in(conn)
            await self.repo.remove_card(conn, card.id_tag, version)
            card = await self.repo.card_in(conn, card.id_tag)
        assert card is not None
        log.info("card %s removed, local list version %d", shown_tag(card.id_tag), version)
        self._changed()
        return card

    async def card(self, id_tag: str) -> Card:
        card = await self.repo.card(id_tag)
        if card is None:
            raise CardError("not_found", f"unknown card {id_tag[:20]!r}")
        return card

    async def account(self, account_id: str) -> Account:
        account = await self.repo.account(account_id)
        if account is None:
            raise CardError("not_found", f"unknown account {account_id[:60]!r}")
        return account


def _check_amount(amount_msat: int, *, allow_negative: bool) -> None:
    if isinstance(amount_msat, bool) or not isinstance(amount_msat, int):
        raise CardError("invalid", "amount must be a whole number of msat")
    if abs(amount_msat) > MAX_BALANCE_MSAT or (amount_msat < 0 and not allow_negative):
        raise CardError("invalid", f"amount must be 0 … {MAX_BALANCE_MSAT} msat")

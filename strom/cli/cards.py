"""`strom cards …` and `strom accounts …`: the owner's RFID cards and their prepaid accounts.

They work on the store like `strom cp`; a running server finds the change within seconds and
sends it to the chargers' local lists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from strom.cards.registry import CardRegistry
from strom.cli.common import CliEnv, common_options, echo_json, echo_listing, with_store
from strom.store.cards import CardRepository

T = TypeVar("T")


def _with_registry(env: CliEnv, work: Callable[[CardRegistry], Awaitable[T]]) -> T:
    return with_store(env, lambda db: work(CardRegistry(CardRepository(db))))


def _sat(msat: int) -> str:
    return f"{msat / 1000:,.3f}".rstrip("0").rstrip(".") + " sat"


@click.group()
def cards() -> None:
    """The owner's RFID cards: free, or billed to a prepaid account."""


@cards.command("add")
@click.argument("id_tag")
@click.option("--free", "free", is_flag=True, help="Charges at no cost (energy recorded).")
@click.option("--account", "account", default=None,
              help="Bill to this prepaid account at the charger's tariff.")
@click.option("--label", default="", help="Whose card it is (family, fleet, staff).")
@common_options
def add(env: CliEnv, id_tag: str, free: bool, account: str | None, label: str) -> None:
    """Register a card (idTag up to 20 characters)."""
    if free == (account is not None):
        raise click.UsageError("give either --free or --account ACCOUNT")
    card = _with_registry(env, lambda r: r.add_card(
        id_tag, "free" if free else "account", account_id=account, label=label))
    rule = "free" if free else f"billed to account {account}"
    click.echo(f"added card {card.id_tag} ({rule}); local list version {card.list_version}")


@cards.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@common_options
def list_(env: CliEnv, as_json: bool) -> None:
    """List the registered cards."""
    found = _with_registry(env, lambda r: r.repo.cards())
    if not echo_listing(found, as_json, "no cards; add one with: strom cards add IDTAG --free |"
                        " --account ACCOUNT", lambda c: c.to_json()):
        return
    click.echo(f"{'IDTAG':<21} {'RULE':<8} {'ACCOUNT':<16} {'STATUS':<9} LABEL")
    for c in found:
        click.echo(f"{c.id_tag:<21} {c.rule.value:<8} {c.account_id or '-':<16}"
                   f" {c.list_status or '-':<9} {c.label}")


@cards.command("remove")
@click.argument("id_tag")
@common_options
def remove(env: CliEnv, id_tag: str) -> None:
    """Remove a card; chargers are told to forget it."""
    card = _with_registry(env, lambda r: r.remove_card(id_tag))
    click.echo(f"removed card {card.id_tag}; local list version {card.list_version}")


@cards.command("sessions")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@common_options
def sessions(env: CliEnv, limit: int) -> None:
    """The newest sessions started by cards, as JSON."""
    found, _ = _with_registry(env, lambda r: r.repo.sessions(limit=limit, offset=0))
    echo_json([s.to_json() for s in found])


@click.group()
def accounts() -> None:
    """Prepaid operator accounts that cards are billed to."""


@accounts.command("add")
@click.argument("account_id")
@click.option("--name", default=None, help="Display name (default: the id).")
@click.option("--balance-sat", type=click.IntRange(0), default=0, show_default=True,
              help="Opening balance in sat.")
@common_options
def account_add(env: CliEnv, account_id: str, name: str | None, balance_sat: int) -> None:
    """Open a prepaid account."""
    account = _with_registry(env, lambda r: r.add_account(account_id, name, balance_sat * 1000))
    click.echo(f"added account {account.id} with {_sat(account.balance_msat)}")


@accounts.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@common_options
def account_list(env: CliEnv, as_json: bool) -> None:
    """List the accounts and their balances."""
    found = _with_registry(env, lambda r: r.repo.accounts())
    if not echo_listing(found, as_json, "no accounts; open one with: strom accounts add ID"
                        " --balance-sat N", lambda a: a.to_json()):
        return
    for a in found:
        click.echo(f"{a.id:<20} {_sat(a.balance_msat):>20}  {a.name}")


@accounts.command("topup")
@click.argument("account_id")
@click.argument("amount_sat", type=click.IntRange(1))
@click.option("--note", default=None, help="Why (kept in the account's book).")
@common_options
def topup(env: CliEnv, account_id: str, amount_sat: int, note: str | None) -> None:
    """Add AMOUNT_SAT to an account."""
    account = _with_registry(env, lambda r: r.adjust(account_id, amount_sat * 1000, note))
    click.echo(f"account {account.id}: balance {_sat(account.balance_msat)}")


@accounts.command("withdraw")
@click.argument("account_id")
@click.argument("amount_sat", type=click.IntRange(1))
@click.option("--note", default=None, help="Why (kept in the account's book).")
@common_options
def withdraw(env: CliEnv, account_id: str, amount_sat: int, note: str | None) -> None:
    """Take AMOUNT_SAT back from an account (never below zero)."""
    account = _with_registry(env, lambda r: r.adjust(account_id, -amount_sat * 1000, note))
    click.echo(f"account {account.id}: balance {_sat(account.balance_msat)}")

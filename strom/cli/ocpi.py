"""`strom ocpi …`: the eMSPs strom roams with (OCPI 2.2.1, CPO role).

Works on the store like `strom cards`; a running server sees a change at the next request
(tokens are looked up per request), so `remove` locks a party out at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from strom.cli.common import CliEnv, common_options, echo_listing, with_store
from strom.ocpi.parties import PartyService, party_view
from strom.outbound import Outbound
from strom.store.ocpi import OcpiPartyRepository

T = TypeVar("T")


def _with_parties(env: CliEnv, work: Callable[[PartyService], Awaitable[T]]) -> T:
    return with_store(env, lambda db: work(PartyService(
        OcpiPartyRepository(db), env.settings, Outbound(env.settings.outbound))))


@click.group()
def ocpi() -> None:
    """eMSP parties (OCPI 2.2.1): issue a token A, list, remove."""


@ocpi.command("add")
@click.argument("name")
@common_options
def add(env: CliEnv, name: str) -> None:
    """Issue a token A for a new eMSP; give it, with the versions URL, to the eMSP."""
    if not 0 < len(name) <= 100 or not name.isprintable():
        raise click.UsageError("NAME: 1 to 100 printable characters")
    party, token = _with_parties(env, lambda p: p.issue(name))
    versions = f"{env.settings.public_url}/ocpi/versions"
    click.echo(f"party {party.id} ({name}) waits for its registration\n"
               f"versions URL: {versions}\n"
               f"token A:      {token}\n"
               "(shown once; the eMSP registers with it and then uses a token of its own)")


@ocpi.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@common_options
def list_(env: CliEnv, as_json: bool) -> None:
    """The parties: pending (token A issued), registered, unregistered."""
    found = [party_view(p) for p in _with_parties(env, lambda p: p.all())]
    if not echo_listing(found, as_json, "no eMSP parties; add one with: strom ocpi add NAME"):
        return
    click.echo(f"{'ID':<4} {'STATE':<13} {'PARTY':<7} {'NAME':<24} VERSIONS URL")
    for p in found:
        who = f"{p['country_code']}/{p['party_id']}" if p["party_id"] else "-"
        click.echo(f"{p['id']:<4} {p['state']:<13} {who:<7} {p['name'][:24]:<24} "
                   f"{p['versions_url'] or '-'}")


@ocpi.command("remove")
@click.argument("party_id", type=int)
@common_options
def remove(env: CliEnv, party_id: int) -> None:
    """Unregister a party: its tokens stop working, nothing more is pushed to it."""
    if not _with_parties(env, lambda p: p.remove(party_id)):
        raise click.ClickException(f"no party {party_id} that is still pending or registered")
    click.echo(f"party {party_id} unregistered")

"""`strom ledger check`: verify the money invariant of every session."""

from __future__ import annotations

import json
import sys

import click

from strom.cli.common import CliEnv, common_options, open_store, run_async
from strom.sessions.audit import LedgerReport, check_ledger


@click.group()
def ledger() -> None:
    """The money ledger."""


@ledger.command("check")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@common_options
def check(env: CliEnv, as_json: bool) -> None:
    """Verify paid = consumed + refunded + forfeited + held + refundable for every session.

    Exits with code 3 on any mismatch. Unbilled energy (a charger delivered more than a
    session paid for) is listed as a finding and keeps exit code 0: the books still balance.
    """

    async def go() -> LedgerReport:
        async with open_store(env) as db:
            return await check_ledger(db)

    report = run_async(go())
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(f"{report.sessions} sessions: received {report.received_msat} msat = "
                   f"consumed {report.consumed_msat} + refunded {report.refunded_msat} + "
                   f"forfeited {report.forfeited_msat} + held {report.held_msat} + "
                   f"refundable {report.refundable_msat}")
        if report.card_sessions or report.card_accounts_msat:
            click.echo(f"{report.card_sessions} card sessions: {report.card_consumed_msat} msat"
                       f" drawn from accounts, which hold {report.card_accounts_msat} msat")
        if report.extra_transactions:
            click.echo(f"{len(report.extra_transactions)} extra transaction(s) (not the payers'):"
                       f" {report.extra_unbilled_wh:.0f} Wh delivered, unbilled")
        for problem in report.problems:
            click.echo(f"MISMATCH {problem}", err=True)
        for finding in report.findings:
            click.echo(f"UNBILLED {finding}", err=True)
        click.echo("ledger OK" if report.ok else f"ledger has {len(report.problems)} problem(s)")
    if not report.ok:
        sys.exit(3)

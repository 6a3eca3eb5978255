"""The `strom` command. Each sub-command lives in a module of its own."""

from __future__ import annotations

import sys

import click

from strom import __version__
from strom.cli.cp import cp
from strom.cli.keys import keys
from strom.cli.ledger import ledger
from strom.cli.relay import relay
from strom.cli.run import demo, run
from strom.cli.simulate import simulate
from strom.cli.tui import tui
from strom.cli.wallet import wallet
from strom.errors import UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="strom")
def cli() -> None:
    """strom: sell EV charging for bitcoin over Lightning, with OCPP 1.6J and nostr."""


cli.add_command(run)
cli.add_command(demo)
cli.add_command(cp)
cli.add_command(keys)
cli.add_command(ledger)
cli.add_command(relay)
cli.add_command(simulate)
cli.add_command(tui)
cli.add_command(wallet)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 1, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserError as exc:
        click.echo(f"strom: error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)

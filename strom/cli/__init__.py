"""The `strom` command. Each sub-command lives in a module of its own."""

from __future__ import annotations

import importlib
import sys

import click

from strom import __version__
from strom.errors import UserError

# name -> "module:attribute"; a command's module (and its heavy imports: nostr-sdk, Textual,
# the whole server) loads only when that command runs.
COMMANDS = {
    "init": "strom.cli.init:init", "run": "strom.cli.run:run", "demo": "strom.cli.run:demo", "cp": "strom.cli.cp:cp",
    "keys": "strom.cli.keys:keys", "ledger": "strom.cli.ledger:ledger",
    "relay": "strom.cli.relay:relay", "simulate": "strom.cli.simulate:simulate",
    "site": "strom.cli.site:site",
    "tui": "strom.cli.tui:tui", "wallet": "strom.cli.wallet:wallet",
    "cards": "strom.cli.cards:cards", "accounts": "strom.cli.cards:accounts",
    "firmware": "strom.cli.firmware:firmware", "diagnostics": "strom.cli.firmware:diagnostics",
    "ocpp": "strom.cli.ocpp:ocpp",
    "ocpi": "strom.cli.ocpi:ocpi",
}
SHORT_HELP = {
    "init": "Write a commented strom.toml (asks, or takes flags).",
    "run": "Run the server (demo mode without a config file).",
    "demo": "Run in demo mode in a fresh temporary data dir.",
    "cp": "Register and inspect charge points.", "keys": "Manage the chargers' nostr keys.",
    "ledger": "Check the money ledger.", "relay": "Run the embedded nostr relay on its own.",
    "simulate": "Simulate OCPP 1.6J charge points.",
    "site": "Sites: chargers sharing one grid connection's power.", "tui": "The operator console.",
    "wallet": "The embedded dev wallet.",
    "cards": "The owner's RFID cards (free or billed to an account).",
    "accounts": "Prepaid accounts that cards are billed to.",
    "firmware": "Upload firmware and update chargers (running server).",
    "diagnostics": "Chargers' diagnostics and logs (running server).",
    "ocpp": "strom's OCPP CA for chargers' certificates.",
    "ocpi": "eMSP parties that roam on strom's chargers (OCPI 2.2.1).",
}


class LazyGroup(click.Group):
    """Sub-commands imported on use, so `strom --help` and `strom cp list` start fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, SHORT_HELP[name]) for name in COMMANDS])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="strom")
def cli() -> None:
    """strom: sell EV charging for bitcoin over Lightning, with OCPP 1.6J and nostr."""


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

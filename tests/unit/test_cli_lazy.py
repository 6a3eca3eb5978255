"""The lazily loaded `strom` commands: every listed one loads, and `--help` lists them all."""

from __future__ import annotations

import click
from click.testing import CliRunner

from strom.cli import COMMANDS, SHORT_HELP, cli


def test_every_command_loads_and_is_described() -> None:
    assert set(SHORT_HELP) == set(COMMANDS)
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name
    help_text = CliRunner().invoke(cli, ["--help"]).output
    assert all(name in help_text for name in COMMANDS)

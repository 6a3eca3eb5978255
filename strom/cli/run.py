"""`strom run` and `strom demo`: the server."""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path

import click
import uvloop

from strom.app import StartupError, StromApp
from strom.cli.common import CliEnv, common_options
from strom.gc_keeper import short_gc_pauses
from strom.logsetup import setup_logging


async def _serve(env: CliEnv, demo: bool) -> None:
    # What start-up built, and the connections' objects, live long: the keeper moves them out
    # of the collector's way, so its pauses stay short with thousands of chargers connected.
    async with StromApp(env.settings, env.data_dir, demo=demo) as app, short_gc_pauses():
        lines = ["", "strom is running" + (" in demo mode (not real money)" if demo else ""),
                 f"  data dir: {env.data_dir}"]
        lines += [f"  {name + ':':8} {url}" for name, url in app.urls().items()]
        lines += ["  stop with Ctrl-C", ""]
        click.echo("\n".join(lines), err=True)
        await app.wait()
    click.echo("strom stopped", err=True)


def _serve_or_explain(env: CliEnv, demo: bool, debug: bool) -> None:
    """A failed start stops what had started and ends in one line (and exit code 1)."""
    try:
        # uvloop: a charger's connect and boot cost the server 24 % less CPU than on asyncio's
        # loop, its messages the same (docs/performance.md, `python -m bench.trials --uvloop`).
        uvloop.run(_serve(env, demo=demo))
    except StartupError as exc:
        if debug and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__)
        raise


@click.command()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option("--debug", is_flag=True, help="Show the traceback of a failed start.")
@common_options
def run(env: CliEnv, verbose: bool, debug: bool) -> None:
    """Run the server: OCPP, HTTP, nostr bots, relay. Demo mode without a config file."""
    setup_logging(verbose)
    _serve_or_explain(env, env.demo, debug)


@click.command()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option("--debug", is_flag=True, help="Show the traceback of a failed start.")
@common_options
def demo(env: CliEnv, verbose: bool, debug: bool) -> None:
    """Run in demo mode in a fresh temporary data dir."""
    setup_logging(verbose)
    with tempfile.TemporaryDirectory(prefix="strom-demo-") as tmp:
        _serve_or_explain(CliEnv(Path(tmp), None), True, debug)

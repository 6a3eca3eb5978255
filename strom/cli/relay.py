"""`strom relay`: the embedded nostr relay on its own, with the `[relay]` settings."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

import click

from relay import Relay, database_path
from strom.cli.common import CliEnv, common_options, run_async
from strom.keys import KeyRing, PubkeySet, keys_path
from strom.logsetup import setup_logging
from strom.paths import ensure_data_dir


async def _serve(env: CliEnv, host: str, port: int) -> None:
    settings = env.settings.relay
    ensure_data_dir(env.data_dir)
    # Also with the open policy: the charge points' own events are never rate limited.
    keys = PubkeySet(KeyRing(keys_path(env.data_dir, env.settings.nostr.keys_file)))
    await keys.load()
    refresher = asyncio.create_task(keys.refresh_forever(), name="relay-keys")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    relay = Relay(database_path(env.data_dir), host, port, write_policy=settings.write_policy,
                  allowed_pubkeys=keys, trusted_pubkeys=keys)
    try:
        async with relay:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            click.echo(relay.url)
            sys.stdout.flush()
            click.echo(f"nostr relay running ({settings.write_policy} write policy, "
                       f"data in {database_path(env.data_dir)}); stop with Ctrl-C", err=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
    click.echo("relay stopped", err=True)


@click.command("relay")
@click.option("--host", default=None, help="Address to bind (default: [relay] host).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port (default: [relay] port; 0 picks a free one).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@common_options
def relay(env: CliEnv, host: str | None, port: int | None, verbose: bool) -> None:
    """Run the embedded nostr relay on its own; prints its URL."""
    setup_logging(verbose)
    settings = env.settings.relay
    run_async(_serve(env, host or settings.host, settings.port if port is None else port))

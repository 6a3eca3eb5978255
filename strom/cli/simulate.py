"""`strom simulate`: one or many simulated OCPP 1.6J charge points, until Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import datetime

import click

from strom.cli.common import CliEnv, common_options, run_async
from strom.cli.cp import CP_ID
from strom.config import Settings
from strom.errors import UserError
from strom.logsetup import setup_logging
from strom.simulator import Fleet, FleetCounts, SimEvent

# Per-charger lines a fleet still prints; connection churn becomes the periodic summary.
FLEET_KINDS = {"started", "stopped", "full", "reset", "rejected", "dropped"}
SUMMARY_EVERY_S = 5.0


def default_url(settings: Settings) -> str:
    """The central system this strom would run, from `[ocpp] host, port, tls_cert`."""
    host = settings.ocpp.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    scheme = "wss" if settings.ocpp.tls_cert else "ws"
    return f"{scheme}://{host}:{settings.ocpp.port}/ocpp"


def _say(message: str) -> None:
    click.echo(f"{datetime.now():%H:%M:%S} {message}")


class _Reporter:
    """One line per notable event; a fleet prints each problem once and then a summary."""

    def __init__(self, single: bool) -> None:
        self._single = single
        self._problem_shown = False

    def __call__(self, event: SimEvent) -> None:
        if self._single or event.kind in FLEET_KINDS:
            _say(f"{event.cp_id}: {event.message}")
        elif event.kind in ("unreachable", "refused") and not self._problem_shown:
            self._problem_shown = True
            _say(f"{event.cp_id}: {event.message} (further connection errors: see the summary)")
        elif event.kind == "booted":
            self._problem_shown = False


def _summary(counts: FleetCounts) -> str:
    return (f"fleet: {counts.booted}/{counts.total} booted, {counts.connected} connected, "
            f"{counts.charging} charging, {counts.queued} messages queued")


async def _summaries(fleet: Fleet) -> None:
    last: FleetCounts | None = None
    while True:
        await asyncio.sleep(SUMMARY_EVERY_S)
        counts = fleet.counts()
        if counts != last:
            _say(_summary(counts))
            last = counts


async def _simulate(fleet: Fleet, count: int, url: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    what = fleet.chargers[0].cp_id if count == 1 else f"{count} charge points"
    _say(f"simulating {what} against {url}; stop with Ctrl-C")
    await fleet.start()
    summaries = asyncio.create_task(_summaries(fleet)) if count > 1 else None
    try:
        await stop.wait()
    finally:
        if summaries is not None:
            summaries.cancel()
        _say("stopping: ending running transactions")
        # Like a charger switched off by its owner: sessions end (reason Local) and are reported.
        await fleet.close(stop_reason="Local")
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    _say("simulator stopped")


@click.command()
@click.argument("cp_id")
@click.option("--url", default=None,
              help="Central system base URL; the charger connects to URL/CP_ID "
                   "(default: ws://[ocpp] host:port/ocpp from the settings).")
@click.option("--connectors", type=click.IntRange(1, 16), default=1, show_default=True)
@click.option("--password", default=None, help="OCPP Basic-auth password (security profile 1).")
@click.option("--count", type=click.IntRange(1, 10_000), default=1, show_default=True,
              help="Run N charge points named CP_ID-1 … CP_ID-N.")
@click.option("--meter-interval", type=click.FloatRange(0.05), default=10.0, show_default=True,
              help="Seconds between MeterValues.")
@click.option("--speed", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
              help="Simulated time runs X times faster (energy per interval).")
@click.option("--max-power", "max_power_w", type=click.IntRange(1_000, 350_000), default=11_000,
              show_default=True, help="Charger power limit in W.")
@click.option("--ocpp", "version", type=click.Choice(["1.6", "2.0.1"]), default="1.6",
              show_default=True, help="The OCPP version the charge points speak.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging (every OCPP frame).")
@common_options
def simulate(env: CliEnv, cp_id: str, url: str | None, connectors: int, password: str | None,
             count: int, meter_interval: float, speed: float, max_power_w: int,
             version: str, verbose: bool) -> None:
    """Simulate OCPP 1.6J (or 2.0.1) charge points that boot, accept remote start and stop
    and meter energy."""
    if not CP_ID.match(cp_id):
        raise UserError(f"charge point id {cp_id!r}: use 1-48 letters, digits, '.', '_' or '-'")
    setup_logging(verbose)
    if not verbose:
        # Events are printed as lines of their own; the log would say everything twice.
        logging.getLogger("strom.simulator").setLevel(logging.WARNING)
    base = url or default_url(env.settings)
    try:
        fleet = Fleet(cp_id, count, base, connectors=connectors, password=password,
                      meter_interval=meter_interval, speed=speed, max_power_w=max_power_w,
                      on_event=_Reporter(single=count == 1), ocpp=f"ocpp{version}")
    except ValueError as exc:
        raise UserError(f"--url: {exc}") from None
    run_async(_simulate(fleet, count, base))

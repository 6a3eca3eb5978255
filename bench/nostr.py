"""Nostr status: kind-30333 events built, signed and published for 1,000 charge point identities.

The events are `bots.events.status` of a charger view shaped as strom's public JSON (contract
§6), published through the bots' own `NostrClient` (one connection for all identities, NIP-42
answered for each) to the embedded relay, which trusts strom's keys as the app configures it.
The client and the relay share this process's loop.

Baselines: signing alone (no network), and the same client publishing to nostr-sdk's
LocalRelay (Rust, in memory, nothing on disk). Relay ingest from raw websockets is in
bench/relay.py. Beside the rates, the CPU per event of this whole process (client, relay,
the relay's SQLite thread and nostr-sdk's threads; `time.process_time`) with 50 in flight:
it moves much less with the machine's load than the rates do.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import nostr_sdk as ns
from nostr_sdk import Event, Keys

from bench.figures import Figure, rate
from bots import events
from bots.client import NostrClient
from relay import Relay
from strom.lnurl.links import pay_links
from strom.tariffs.model import Tariff

IDENTITIES = 1_000
CONCURRENCY = 50
PUBLIC_URL = "http://127.0.0.1:8000"
SETTLE = 1.0  # for a relay that sends no AUTH challenge (LocalRelay)
AUTH_WAIT = 60.0  # the client answers the embedded relay's challenge for every identity first


def charger_view(cp_id: str, n: int) -> dict[str, Any]:
    """A charger as strom's views render it (the fields `status()` reads, and the rest)."""
    links = pay_links(PUBLIC_URL, cp_id)
    lat, lon = 52.0 + (n % 100) / 100, 13.0 + (n // 100) / 100
    return {
        "id": cp_id, "name": f"Charger {n}", "pubkey": None, "npub": None,
        "lud16": links.address, "lnurl": links.lnurl, "url": f"{PUBLIC_URL}/cp/{cp_id}",
        "status": "Available",
        "location": {"lat": lat, "lon": lon, "geohash": ""},
        "connectors": [{"id": c, "status": "Available",
                        "lnurl": pay_links(PUBLIC_URL, cp_id, c).lnurl} for c in (1, 2)],
        "tariff": Tariff(price_msat_per_kwh=300_000).to_json(),
    }


def _sign_all(keys: list[Keys], views: list[dict[str, Any]], created_at: int) -> list[Event]:
    return [events.status(k, v, created_at) for k, v in zip(keys, views, strict=True)]


async def _settled(client: NostrClient, challenged: bool) -> None:
    """Until the client has answered the relay's NIP-42 challenge for every identity (or, for a
    relay that sends none, `SETTLE` seconds): the measured part is publishing only."""
    if not challenged:
        await asyncio.sleep(SETTLE)
        return
    for _ in range(int(AUTH_WAIT / 0.05)):
        if all(state["auth"] == "answered" for state in client.relay_states()):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the client did not answer the relay's AUTH within {AUTH_WAIT} s")


async def _publish_rates(url: str, keys: list[Keys], views: list[dict[str, Any]],
                         rounds: list[int], *, challenged: bool) -> list[tuple[float, float]]:
    """(events/s, CPU ms per event) of sign+publish, one per `concurrency` in `rounds`; every
    event must be accepted."""

    async def ignore(_: Event) -> None:
        return None

    client = NostrClient([url], lambda: keys, ignore, unmetered=[url])  # as the embedded relay
    await client.start()
    try:
        await _settled(client, challenged)
        rates = []
        created_at = int(time.time())
        for concurrency in rounds:
            created_at += 1

            async def one(i: int, at: int = created_at) -> None:
                if not await client.publish(events.status(keys[i], views[i], at)):
                    raise RuntimeError("the relay refused a status event")

            cpu = time.process_time()
            per_second = await rate(len(keys), concurrency, one)
            rates.append((per_second, (time.process_time() - cpu) / len(keys) * 1000))
        return rates
    finally:
        await client.close()


async def _local_relay_rates(keys: list[Keys], views: list[dict[str, Any]],
                             rounds: list[int]) -> list[tuple[float, float]]:
    ns.uniffi_set_event_loop(asyncio.get_running_loop())
    # LocalRelay reports port 0 when asked for 0, so pick a free port first.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    local = (ns.LocalRelayBuilder().addr("127.0.0.1").port(port)
             .rate_limit(ns.RateLimit(max_reqs=1000, notes_per_minute=10**9)).build())
    await local.run()
    try:
        return await _publish_rates(f"ws://127.0.0.1:{port}", keys, views, rounds,
                                    challenged=False)
    finally:
        local.shutdown()


async def run(identities: int = IDENTITIES) -> list[Figure]:
    """Measure status publishing for `identities` charge points."""
    keys = [Keys.generate() for _ in range(identities)]
    views = [charger_view(f"cp-{n}", n) for n in range(1, identities + 1)]
    ours = {k.public_key().to_hex() for k in keys}
    started = time.perf_counter()
    _sign_all(keys, views, int(time.time()))
    signing = identities / (time.perf_counter() - started)
    rounds = [1, CONCURRENCY]
    with tempfile.TemporaryDirectory(prefix="strom-bench-nostr-") as tmp:
        async with Relay(Path(tmp) / "relay.sqlite3", "127.0.0.1", 0,
                         allowed_pubkeys=lambda: ours, trusted_pubkeys=lambda: ours) as relay:
            (one_by_one, _), (concurrent, cpu) = await _publish_rates(
                relay.url, keys, views, rounds, challenged=True)
    (local_one, _), (local_concurrent, local_cpu) = await _local_relay_rates(keys, views, rounds)
    note = f"{identities} identities, one client connection (as the bots)"
    return [
        Figure("nostr", "status events built + signed", signing, "events/s",
               note="bots.events.status, no network"),
        Figure("nostr", "status sign+publish, one at a time", one_by_one, "events/s",
               local_one, note + "; as the bots announce; baseline: nostr-sdk LocalRelay"),
        Figure("nostr", f"status sign+publish, {CONCURRENCY} in flight", concurrent, "events/s",
               local_concurrent, note + "; baseline: nostr-sdk LocalRelay"),
        Figure("nostr", f"CPU per status signed+published, {CONCURRENCY} in flight", cpu, "ms",
               local_cpu, "client, relay and its SQLite thread in this process; baseline: "
               "the same client and nostr-sdk LocalRelay (in memory)"),
    ]

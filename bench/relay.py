"""The embedded relay: ingest rate (OK after commit), query time, fan-out, verification.

Clients run in the same process and loop as the relay, so their cost is counted too; the
baseline is nostr-sdk's LocalRelay (Rust, in memory, nothing on disk) fed by the same client.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import nostr_sdk as ns
import websockets
from coincurve import PublicKeyXOnly

from bench.figures import Figure
from relay import Limits, Relay

INGEST_EVENTS = 12_000
CONNECTIONS = 4
SEQUENTIAL_EVENTS = 1_000
SUBSCRIBERS = 20
FANOUT_EVENTS = 1_000
# The benchmark measures the engine, not the per-connection rate limit.
UNLIMITED = Limits(events_per_second=1e9, event_burst=10**9, max_pending_messages=10**6,
                   reqs_per_second=1e9, req_burst=10**9, address_reqs_per_second=1e9,
                   address_req_burst=10**9)


def _signed(keys: ns.Keys, count: int, kind: int = 1, tags: Sequence[Sequence[str]] = ()) -> list[str]:
    tag_list = [ns.Tag.parse(list(t)) for t in tags]
    return [ns.EventBuilder(ns.Kind(kind), f"bench {i}").tags(tag_list).finalize(keys).as_json()
            for i in range(count)]


async def _publish(url: str, events: list[str], *, wait_each: bool = False) -> None:
    """Send EVENTs (pipelined, or one at a time) and wait for every OK."""
    async with websockets.connect(url, max_size=None) as ws:
        pending = 0
        for raw in events:
            await ws.send(f'["EVENT",{raw}]')
            pending += 1
            while pending and (wait_each or pending > 2000):
                pending -= await _take_ok(ws)
        while pending:
            pending -= await _take_ok(ws)


async def _take_ok(ws: websockets.ClientConnection) -> int:
    message = json.loads(await ws.recv())
    if message[0] != "OK":
        return 0
    if not message[2]:
        raise RuntimeError(f"event refused: {message}")
    return 1


async def _ingest(url: str, batches: list[list[str]]) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(_publish(url, batch) for batch in batches))
    return sum(len(b) for b in batches) / (time.perf_counter() - started)


async def _query_ms(url: str, filters: dict[str, object], expect: int, repeat: int = 20) -> float:
    async with websockets.connect(url, max_size=None) as ws:
        started = time.perf_counter()
        for i in range(repeat):
            await ws.send(json.dumps(["REQ", f"q{i}", filters]))
            got = 0
            while True:
                message = json.loads(await ws.recv())
                if message[0] == "EOSE":
                    break
                if message[0] == "CLOSED":  # refused (a limit): no EOSE will come
                    raise RuntimeError(f"query refused: {message}")
                got += message[0] == "EVENT"
            if got != expect:
                raise RuntimeError(f"query returned {got} events, expected {expect}")
        return (time.perf_counter() - started) / repeat * 1000


async def _fanout(url: str, events: list[str]) -> float:
    """Deliveries per second from one publisher to SUBSCRIBERS live subscriptions."""
    subscribers = [await websockets.connect(url, max_size=None) for _ in range(SUBSCRIBERS)]
    for ws in subscribers:
        await ws.send(json.dumps(["REQ", "live", {"kinds": [7]}]))
        while json.loads(await ws.recv())[0] != "EOSE":
            pass

    async def drain(ws: websockets.ClientConnection) -> None:
        got = 0
        while got < len(events):
            got += json.loads(await ws.recv())[0] == "EVENT"

    started = time.perf_counter()
    await asyncio.gather(_publish(url, events), *(drain(ws) for ws in subscribers))
    elapsed = time.perf_counter() - started
    for ws in subscribers:
        await ws.close()
    return len(events) * SUBSCRIBERS / elapsed


def _verify_rates(raws: list[str]) -> tuple[float, float]:
    """Events/s checked (id + signature) by json+hashlib+coincurve and by nostr-sdk."""
    started = time.perf_counter()
    for raw in raws:
        e = json.loads(raw)
        serialized = json.dumps([0, e["pubkey"], e["created_at"], e["kind"], e["tags"],
                                 e["content"]], separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(serialized.encode()).digest()
        assert digest.hex() == e["id"]
        assert PublicKeyXOnly(bytes.fromhex(e["pubkey"])).verify(bytes.fromhex(e["sig"]), digest)
    ours = len(raws) / (time.perf_counter() - started)
    started = time.perf_counter()
    for raw in raws:
        assert ns.Event.from_json(raw).verify()
    return ours, len(raws) / (time.perf_counter() - started)


async def _local_relay_ingest(batches: list[list[str]]) -> float:
    ns.uniffi_set_event_loop(asyncio.get_running_loop())
    # LocalRelay reports port 0 when asked for 0, so pick a free port first.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    local = (ns.LocalRelayBuilder().addr("127.0.0.1").port(port)
             .rate_limit(ns.RateLimit(max_reqs=1000, notes_per_minute=10**9)).build())
    await local.run()
    try:
        return await _ingest(f"ws://127.0.0.1:{port}", batches)
    finally:
        local.shutdown()


async def run() -> list[Figure]:
    """Measure and return the relay's figures."""
    authors = [ns.Keys.generate() for _ in range(CONNECTIONS)]
    target = ns.Keys.generate().public_key().to_hex()
    per = INGEST_EVENTS // CONNECTIONS
    batches = [_signed(k, per, tags=[["t", "bench"], ["p", target if i == 0 else "0" * 64]])
               for i, k in enumerate(authors)]
    baseline_batches = [_signed(k, per) for k in authors]
    sequential = _signed(ns.Keys.generate(), SEQUENTIAL_EVENTS, kind=1111)
    fanout = _signed(ns.Keys.generate(), FANOUT_EVENTS, kind=7)
    with tempfile.TemporaryDirectory(prefix="strom-bench-relay-") as tmp:
        async with Relay(Path(tmp) / "relay.sqlite3", "127.0.0.1", 0, limits=UNLIMITED) as relay:
            ingest = await _ingest(relay.url, batches)
            started = time.perf_counter()
            await _publish(relay.url, sequential, wait_each=True)
            one_by_one = SEQUENTIAL_EVENTS / (time.perf_counter() - started)
            by_kind = await _query_ms(relay.url, {"kinds": [1], "limit": 500}, 500)
            by_tag = await _query_ms(relay.url, {"#p": [target], "limit": 100}, 100)
            deliveries = await _fanout(relay.url, fanout)
    local = await _local_relay_ingest(baseline_batches)
    ours, sdk = _verify_rates(batches[0][:2000])
    note = f"{INGEST_EVENTS} events over {CONNECTIONS} connections, SQLite WAL synchronous=FULL"
    return [
        Figure("relay", "ingest, pipelined, OK after commit", ingest, "events/s",
               baseline=local, note=note + "; baseline: nostr-sdk LocalRelay in memory"),
        Figure("relay", "ingest, one connection, one event per OK", one_by_one, "events/s"),
        Figure("relay", f"REQ 500 newest of {INGEST_EVENTS} by kind", by_kind, "ms"),
        Figure("relay", f"REQ 100 by #p among {INGEST_EVENTS}", by_tag, "ms"),
        Figure("relay", f"live fan-out to {SUBSCRIBERS} subscribers", deliveries, "events/s",
               note="deliveries per second"),
        Figure("relay", "verify id+sig (json, hashlib, coincurve)", ours, "events/s",
               baseline=sdk, note="baseline: nostr-sdk Event.from_json().verify()"),
    ]


if __name__ == "__main__":
    for figure in asyncio.run(run()):
        print(f"{figure.name:<44} {figure.value:>10.1f} {figure.unit}"
              + (f"  (baseline {figure.baseline:.1f})" if figure.baseline else ""))

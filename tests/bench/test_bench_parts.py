"""The benchmark's own parts: percentiles, load steps, socket counting, the runner's output."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import websockets

from bench.figures import Figure, percentile
from bench.http_load import HttpLoadError, get_all
from bench.ocpp import server_sockets
from bench.ocpp_load import Step, sustained

ROOT = Path(__file__).resolve().parents[2]


def test_percentile_matches_statistics_inclusive_quantiles() -> None:
    values = [float(v) for v in (13, 1, 7, 3, 21, 8, 5, 2, 34, 1)]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    assert percentile(values, 50) == pytest.approx(statistics.median(values))
    assert percentile(values, 99) == pytest.approx(cuts[98])
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 34.0
    with pytest.raises(ValueError):
        percentile([], 50)


def _step(offered: float, achieved: float, p99: float, errors: int = 0) -> Step:
    return Step(offered, achieved, 1.0, p99, errors, 0.0, 5.0)


def test_sustained_is_the_busiest_step_within_the_p99_limit() -> None:
    steps = [_step(250, 250, 10), _step(375, 370, 60), _step(560, 500, 400)]
    assert sustained(steps) == steps[1]
    # A step with errors does not count, however fast its answers were.
    assert sustained([_step(250, 250, 10), _step(375, 375, 20, errors=3)]) == steps[0]
    assert sustained([_step(250, 100, 900)]) is None


def test_figure_ratio_is_value_over_baseline() -> None:
    assert Figure("g", "n", 50.0, "ms", 25.0).ratio == 2.0
    assert Figure("g", "n", 50.0, "ms").ratio is None
    assert Figure("g", "n", 50.0, "ms", 0.0).to_json()["ratio"] is None


async def test_server_sockets_counts_the_servers_side_of_each_connection() -> None:
    async def echo(ws: websockets.ServerConnection) -> None:
        await ws.wait_closed()

    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        assert server_sockets(port) == 0
        clients = [await websockets.connect(f"ws://127.0.0.1:{port}") for _ in range(3)]
        assert server_sockets(port) == 3
        await clients[0].close()
        for _ in range(50):
            if server_sockets(port) == 2:
                break
            await asyncio.sleep(0.02)
        assert server_sockets(port) == 2
        for client in clients[1:]:
            await client.close()


def test_runner_prints_a_table_and_writes_results_with_machine_facts(tmp_path: Path) -> None:
    (tmp_path / "fake_bench.py").write_text(
        "from bench.figures import Figure\n"
        "async def run():\n"
        "    return [Figure('fake', 'answers', 42.0, 'per s', 21.0, 'a note')]\n")
    out = tmp_path / "latest.json"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "-m", "bench", "--out", str(out), "fake_bench"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "answers" in done.stdout and "2.00" in done.stdout
    data = json.loads(out.read_text())
    assert data["figures"] == [{"group": "fake", "name": "answers", "value": 42.0,
                                "unit": "per s", "baseline": 21.0, "note": "a note",
                                "ratio": 2.0}]
    assert data["machine"]["cores"] == os.cpu_count()
    assert data["modules"] == ["fake_bench"] and data["seconds"] >= 0
    markdown = subprocess.run([sys.executable, "-m", "bench", "--out", str(out), "--markdown"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert "| fake | answers | 42.0 | per s | 21.0 | 2.00 | a note |" in markdown.stdout


async def test_the_light_http_client_reads_each_answer_on_its_keep_alive_connection() -> None:
    """bench/http_load.py: bodies by Content-Length, several requests per connection, and
    anything but a 200 is an error, not a figure."""
    seen: list[str] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the client closed the connection
                return
            path = head.split(b" ")[1].decode()
            seen.append(path)
            body = b'{"pr":"' + path.encode() + b'"}'
            status = b"404 Not Found" if path == "/missing" else b"200 OK"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        bodies: list[bytes] = []
        ms = await get_all(base, [f"/cb?n={n}" for n in range(10)], 2, bodies.append)
        assert len(ms) == 10 and all(m > 0 for m in ms)
        assert sorted(bodies) == sorted(b'{"pr":"/cb?n=%d"}' % n for n in range(10))
        assert connections == 2  # kept alive: 5 requests each
        with pytest.raises(HttpLoadError, match="404"):
            await get_all(base, ["/missing"], 1)
    finally:
        server.close()
        await server.wait_closed()

"""`strom simulate` as a user runs it: a subprocess against a central system on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from ocpp.v16 import call

from tests.unit.test_simulator import CentralSystem


async def launch(tmp_path: Path, *args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "STROM_DATA_DIR": str(tmp_path / "data")}
    env.pop("STROM_CONFIG", None)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "strom", "simulate", *args, cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def read_until(proc: asyncio.subprocess.Process, needle: str, seen: list[str]) -> str:
    """Read stdout lines (collected in `seen`) until one contains `needle`."""
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, f"simulator exited before printing {needle!r}: {seen}"
            seen.append(line)
            if needle in line:
                return line


async def interrupt(proc: asyncio.subprocess.Process) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    return out.decode(), err.decode()


async def test_simulate_boots_charges_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    lines: list[str] = []
    async with CentralSystem() as cs:
        proc = await launch(tmp_path, "cp-e2e", "--url", cs.url, "--connectors", "2",
                            "--meter-interval", "0.1", "--speed", "60")
        await read_until(proc, "cp-e2e: booted", lines)
        assert cs.of("BootNotification", "cp-e2e")
        await cs.until(lambda: len(cs.of("StatusNotification")) == 3)
        answer = await cs.call("cp-e2e", call.RemoteStartTransaction(id_tag="E2E", connector_id=2))
        assert answer.status == "Accepted"
        await read_until(proc, "started transaction", lines)
        await cs.until(lambda: len(cs.of("MeterValues")) >= 2)
        out, err = await interrupt(proc)
        # The charger said goodbye: its session ended and was reported before it closed.
        await cs.until(lambda: cs.of("closed"))
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "simulator stopped" in out
    stop = cs.of("StopTransaction")[0]
    assert (stop["reason"], stop["transaction_id"]) == ("Local", cs.next_tx)
    assert cs.of("closed")[0]["code"] == 1000
    assert cs.actions().index("StopTransaction") < cs.actions().index("closed")


async def test_simulate_explains_an_unreachable_server(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = await launch(tmp_path, "cp-x", "--url", f"ws://127.0.0.1:{port}/ocpp")
    line = await read_until(proc, "cannot reach", [])
    assert (f"cannot reach ws://127.0.0.1:{port}/ocpp/cp-x — is `strom run` running? "
            "retrying in") in line
    _, err = await interrupt(proc)
    assert proc.returncode == 0
    assert "Traceback" not in err


async def test_simulate_a_fleet(tmp_path: Path) -> None:
    async with CentralSystem() as cs:
        proc = await launch(tmp_path, "lot", "--url", cs.url, "--count", "3")
        await cs.until(lambda: len({c for c, a, _ in cs.log if a == "BootNotification"}) == 3)
        out, err = await interrupt(proc)
        await cs.until(lambda: len(cs.of("closed")) == 3)
    assert proc.returncode == 0, err
    assert sorted(c for c, a, _ in cs.log if a == "BootNotification") == ["lot-1", "lot-2", "lot-3"]
    assert "simulating 3 charge points" in out


def test_simulate_bad_input_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "STROM_DATA_DIR": str(tmp_path / "data")}
    for args in (["bad id!"], ["cp-1", "--url", "http://127.0.0.1:9000/ocpp"]):
        result = subprocess.run([sys.executable, "-m", "strom", "simulate", *args], env=env,
                                cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("strom: error:")
        assert result.stderr.count("\n") == 1


async def test_simulate_speaks_2_0_1_to_strom(tmp_path: Path, db) -> None:  # noqa: ANN001
    """`strom simulate --ocpp 2.0.1` against strom's own central system: it negotiates 2.0.1,
    boots, and a remote start becomes a TransactionEvent strom bills from."""
    from strom.events import MeterSample, TransactionStarted
    from tests.ocpp.conftest import Accepting, start_ocpp
    from tests.ocpp.test_core_messages import next_of
    server, bus = await start_ocpp(db)
    server.central.authorizer = Accepting()
    lines: list[str] = []
    try:
        async with bus.listen(TransactionStarted, MeterSample) as events:
            proc = await launch(tmp_path, "cp-1", "--url", server.url("").rstrip("/"),
                                "--ocpp", "2.0.1", "--meter-interval", "0.1", "--speed", "60")
            await read_until(proc, "cp-1: booted", lines)
            cp = await server.charge_points.get("cp-1")
            assert cp is not None and cp.ocpp_protocol == "ocpp2.0.1"
            assert (await server.central.control201.start("cp-1", 1, "E2E-201")).ok
            started = await next_of(events, TransactionStarted)
            assert started.id_tag == "E2E-201"
            sample = await next_of(events, MeterSample)
            while sample.energy_wh is None or sample.energy_wh <= started.meter_start_wh:
                sample = await next_of(events, MeterSample)
            _, err = await interrupt(proc)
        assert proc.returncode == 0 and "Traceback" not in err
    finally:
        await server.central.close()
        await bus.close()

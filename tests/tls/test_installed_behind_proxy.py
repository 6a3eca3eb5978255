"""The issue's whole path as an operator runs it: the wheel installed in a clean venv, `strom
init --non-interactive` and `strom run` from an empty directory, behind Debian's nginx with a
certificate from Pebble (a real ACME CA); a simulated charger on wss through nginx, a wallet
(the lnurl library) paying, charging and taking its refund through the public https URL."""

from __future__ import annotations

import asyncio
import signal
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import lnurl
import pytest

from tests.deploy.conftest import Installed, installed  # noqa: F401  (the installed wheel)
from tests.doubles.edges import make_invoice
from tests.e2e.processes import wait_running
from tests.tls.nginx import Nginx
from tests.tls.pebble import Pebble, free_port, issue_certificate

pytestmark = pytest.mark.timeout(300)
CP = "cp-1"


async def _cli(installed: Installed, work: Path, env: dict[str, str],  # noqa: F811
               *args: str) -> str:
    done = await asyncio.create_subprocess_exec(
        str(installed.bin / "strom"), *args, cwd=work, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await done.communicate()
    assert done.returncode == 0, out.decode(errors="replace")[-2000:]
    return out.decode()


def _start_server(installed: Installed, work: Path, env: dict[str, str],  # noqa: F811
                  log: Path) -> subprocess.Popen[bytes]:
    """`strom run` as the operator starts it, its output in `log`."""
    with log.open("wb") as out:
        return subprocess.Popen([str(installed.bin / "strom"), "run"], cwd=work, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


async def _until(probe: Callable[[], Awaitable[Any]], check: Callable[[Any], bool],
                 what: str) -> Any:
    for _ in range(300):
        value = await probe()
        if check(value):
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within 30 s: {what} (last: {value!r})")


async def test_installed_strom_pays_charges_and_refunds_behind_nginx(
        installed: Installed, pebble: Pebble, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    cert, root = await issue_certificate(pebble, "localhost")
    root_file = tmp_path / "pebble-root.pem"
    root_file.write_text(root)
    monkeypatch.setenv("SSL_CERT_FILE", str(root_file))  # the lnurl library's trust
    nginx = Nginx(tmp_path, free_port(), cert, cert)
    public = f"https://localhost:{nginx.port}"
    http_port, ocpp_port = free_port(), free_port()
    env = installed.env(STROM_HTTP_PORT=str(http_port), STROM_OCPP_PORT=str(ocpp_port),
                        STROM_RELAY_PORT="0", STROM_HTTP_TRUSTED_PROXIES="127.0.0.1",
                        SSL_CERT_FILE=str(root_file))  # the simulator's trust
    work = tmp_path / "empty"
    work.mkdir()
    await _cli(installed, work, env, "init", "--non-interactive", "--public-url", public,
               "--backend", "dev", "--charger", CP, "--lat", "48.14", "--lon", "11.58")

    log = tmp_path / "strom.log"
    server = _start_server(installed, work, env, log)
    charger: asyncio.subprocess.Process | None = None
    try:
        await asyncio.to_thread(wait_running, work / ".strom", server)
        await nginx.start({"/": http_port, "/ocpp/": ocpp_port})
        charger = await asyncio.create_subprocess_exec(
            str(installed.bin / "strom"), "simulate", CP, "--url", f"wss://localhost:"
            f"{nginx.port}/ocpp", "--meter-interval", "0.2", "--speed", "600", cwd=work,
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        async with httpx.AsyncClient(verify=ssl.create_default_context(cadata=root),
                                     timeout=10) as web:
            async def record() -> dict[str, Any]:
                return (await web.get(f"{public}/api/v1/public/charge-points/{CP}")).json()

            await _until(record, lambda cp: cp.get("status") == "Available",
                         "the charger is connected through nginx")
            pay = await lnurl.get(f"{public}/lnurlp/{CP}")
            assert isinstance(pay, lnurl.LnurlPayResponse), pay
            action = await lnurl.execute_pay_request(pay, 50_000_000)
            await _cli(installed, work, env, "wallet", "pay", str(action.pr))
            session_url = str(action.successAction.url)
            assert session_url.startswith(public + "/s/")

            async def session() -> dict[str, Any]:
                return (await web.get(session_url,
                                      headers={"Accept": "application/json"})).json()

            charging = await _until(session, lambda s: s["state"] == "charging"
                                    and s["energy_wh"] > 0, "charging")
            withdraw = await lnurl.handle(charging["lnurlw"])
            assert isinstance(withdraw, lnurl.LnurlWithdrawResponse), withdraw
            assert str(withdraw.callback).startswith(public + "/")
            done = await lnurl.execute_withdraw(
                withdraw, make_invoice(int(withdraw.maxWithdrawable), currency="bcrt"))
            assert done.status == "OK"
            final = await _until(session, lambda s: s["state"] == "refunded", "refunded")
            assert final["refunded_msat"] + final["consumed_msat"] == final["paid_msat"]
            assert 0 < final["refunded_msat"] < final["paid_msat"]
        await _cli(installed, work, env, "ledger", "check")
    finally:
        if charger is not None:
            charger.terminate()
            await charger.wait()
        nginx.stop()
        server.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.wait, 30)
    text = log.read_text(errors="replace")
    assert code == 0 and "Traceback" not in text, text[-3000:]

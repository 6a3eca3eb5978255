"""kill -9 at each state of a session (paid, starting, stopping, refund in flight), restart:
`strom ledger check` passes, the payment counts once, the refund is paid once.

`STROM_FAILPOINT` (strom/failpoints.py) makes the server SIGKILL itself at the chosen state.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx
import lnurl
import pytest

from strom.lnurl.codec import lnurl_encode
from tests.doubles.edges import make_invoice
from tests.e2e.processes import free_port, start, strom, wait_running

CP = "cp-c"


class Rig:
    """A strom server and a simulated charger as processes, with a fixed config."""

    def __init__(self, tmp: Path) -> None:
        self.data = tmp / "data"
        self.log = tmp / "strom.log"
        self.ocpp_port = free_port()
        self.config = tmp / "strom.toml"
        self.config.write_text(f"""
[http]
port = {free_port()}
[ocpp]
port = {self.ocpp_port}
[relay]
embedded = false
[sessions]
start_timeout = 4.0
stop_timeout = 10.0
""")
        self.cfg = ("--config", str(self.config))
        assert strom("cp", "add", CP, "--lat", "1", "--lon", "2", *self.cfg,
                     data_dir=self.data).returncode == 0
        self.server = None
        self.charger = start("simulate", CP, "--url", f"ws://127.0.0.1:{self.ocpp_port}/ocpp",
                             "--meter-interval", "0.3", "--speed", "20", data_dir=self.data,
                             log=tmp / "sim.log")
        self.base = ""

    def run(self, failpoint: str | None = None) -> None:
        extra = {"STROM_FAILPOINT": failpoint} if failpoint else {}
        self.server = start("run", *self.cfg, data_dir=self.data, log=self.log, **extra)
        self.base = wait_running(self.data, self.server)
        deadline = time.monotonic() + 30
        while json.loads(strom("cp", "show", CP, *self.cfg, data_dir=self.data).stdout)[
                "status"] not in ("Available", "Charging", "SuspendedEV", "Finishing"):
            assert time.monotonic() < deadline, "charger did not come back"
            time.sleep(0.2)

    def crashed(self) -> None:
        assert self.server is not None
        assert self.server.wait(timeout=30) == -signal.SIGKILL

    def pay(self, amount_msat: int) -> str:
        pay = asyncio.run(lnurl.handle(lnurl_encode(f"{self.base}/lnurlp/{CP}")))
        action = asyncio.run(lnurl.execute_pay_request(pay, amount_msat))
        token = (self.data / "admin.token").read_text().strip()
        try:
            httpx.post(f"{self.base}/api/v1/dev/pay", json={"bolt11": str(action.pr)},
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
        except httpx.HTTPError:
            pass  # the server may die while answering
        return str(action.successAction.url)

    def session(self, url: str) -> dict:
        return httpx.get(url, headers={"Accept": "application/json"}, timeout=10).json()

    def wait(self, url: str, check, seconds: float = 40) -> dict:  # noqa: ANN001
        deadline = time.monotonic() + seconds
        while not check(current := self.session(url)):
            assert time.monotonic() < deadline, current
            time.sleep(0.2)
        return current

    def refund(self, url: str) -> None:
        """Stop if needed and withdraw the rest; returns once the session is refunded."""
        request = asyncio.run(lnurl.handle(self.session(url)["lnurlw"]))
        assert isinstance(request, lnurl.LnurlWithdrawResponse), request
        done = asyncio.run(lnurl.execute_withdraw(request, make_invoice(
            int(request.maxWithdrawable))))
        assert done.status == "OK"

    def ledger_ok(self) -> None:
        checked = strom("ledger", "check", "--json", *self.cfg, data_dir=self.data)
        assert checked.returncode == 0, checked.stdout + checked.stderr

    def outgoing_payments(self) -> list[dict]:
        """The wallet's own record of money sent (`strom wallet payments`)."""
        listed = strom("wallet", "payments", "--json", *self.cfg, data_dir=self.data)
        assert listed.returncode == 0, listed.stderr
        return [p for p in json.loads(listed.stdout) if p["direction"] == "out"]

    def close(self) -> None:
        for proc in (self.server, self.charger):
            if proc is not None and proc.poll() is None:
                proc.kill()
        assert "Traceback" not in self.log.read_text()


@pytest.fixture
def rig(tmp_path: Path):  # noqa: ANN201
    setup = Rig(tmp_path)
    yield setup
    setup.close()


@pytest.mark.parametrize("failpoint", ["paid", "starting"])
def test_crash_after_payment(rig: Rig, failpoint: str) -> None:
    rig.run(failpoint)
    url = rig.pay(50_000_000)
    rig.crashed()
    rig.run()
    # Either the start goes through after the restart, or it times out and all is refundable.
    state = rig.wait(url, lambda s: s["state"] in ("charging", "failed"))
    assert state["paid_msat"] == 50_000_000
    if state["state"] == "failed":
        assert state["refundable_msat"] == 50_000_000
    rig.refund(url)
    assert rig.session(url)["state"] == "refunded"
    rig.ledger_ok()


def test_crash_while_stopping(rig: Rig) -> None:
    rig.run("stopping")
    url = rig.pay(50_000_000)
    rig.wait(url, lambda s: s["state"] == "charging" and s["energy_wh"] > 0)
    with pytest.raises(lnurl.LnurlResponseException):  # the server dies mid-request
        asyncio.run(lnurl.handle(rig.session(url)["lnurlw"]))
    rig.crashed()
    rig.run()
    # Recovery asks the charger to stop again; its StopTransaction ends the session.
    stopped = rig.wait(url, lambda s: s["state"] == "stopped")
    assert stopped["paid_msat"] == stopped["consumed_msat"] + stopped["refundable_msat"]
    rig.refund(url)
    rig.ledger_ok()


def test_crash_with_refund_in_flight(rig: Rig) -> None:
    rig.run("refund_in_flight")
    url = rig.pay(50_000_000)
    rig.wait(url, lambda s: s["state"] == "charging" and s["energy_wh"] > 0)
    request = asyncio.run(lnurl.handle(rig.session(url)["lnurlw"]))
    invoice = make_invoice(int(request.maxWithdrawable))
    with pytest.raises(lnurl.LnurlResponseException):
        asyncio.run(lnurl.execute_withdraw(request, invoice))
    rig.crashed()
    rig.run()
    refunded = rig.wait(url, lambda s: s["state"] == "refunded")
    assert refunded["refunded_msat"] == int(request.maxWithdrawable)
    assert refunded["refundable_msat"] == 0
    paid_out = rig.outgoing_payments()
    assert [(p["status"], p["amount_msat"]) for p in paid_out] == \
        [("succeeded", int(request.maxWithdrawable))]  # paid once, not once per attempt
    rig.ledger_ok()

"""`strom wallet …` as a user runs it, next to a running strom (real HTTP, real store)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import bolt11
import httpx

from strom.app import StromApp
from strom.events import InvoicePaid
from strom.lightning.dev import DevWallet
from strom.web.app import create_web_app
from tests.doubles.edges import FakeWallet, make_invoice

STROM = [sys.executable, "-m", "strom"]


async def strom(data_dir: Path, *args: str, **extra_env: str) -> tuple[int, str, str]:
    """Run the CLI without blocking the loop the server runs on."""
    env = {**os.environ, "STROM_DATA_DIR": str(data_dir), **extra_env}
    env.pop("STROM_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        *STROM, *args, env=env, cwd=data_dir.parent,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_invoice_without_a_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, out, err = await strom(data, "wallet", "invoice", "--amount-msat", "21000",
                                 "--memo", "a coffee")
    assert code == 0, err
    decoded = bolt11.decode(out.strip())
    assert decoded.amount_msat == 21_000 and decoded.currency == "bcrt"
    assert decoded.description == "a coffee"
    code, out, _ = await strom(data, "wallet", "payments", "--json")
    rows = json.loads(out)
    assert [(r["direction"], r["status"], r["payment_hash"]) for r in rows] == [
        ("in", "open", decoded.payment_hash)]

    code, _, err = await strom(data, "wallet", "pay", make_invoice(1_000))
    assert code == 1
    assert err.strip() == f"strom: error: strom is not running in {data}; start it with `strom run`"
    code, _, err = await strom(data, "wallet", "invoice", "--amount-msat", "0")
    assert code == 2 and "Traceback" not in err


async def test_pay_settles_in_the_running_server(app: StromApp, data_dir: Path) -> None:
    assert app.services is not None and isinstance(app.services.wallet, DevWallet)
    code, out, err = await strom(data_dir, "wallet", "invoice", "--amount-msat", "21000")
    assert code == 0, err
    invoice = out.strip()
    payment_hash = bolt11.decode(invoice).payment_hash

    async with app.services.bus.listen(InvoicePaid) as queue:
        code, out, err = await strom(data_dir, "wallet", "pay", invoice)
        assert code == 0, err
        assert out.strip() == f"settled {payment_hash} (21000 msat received)"
        event = await asyncio.wait_for(queue.get(), 5)
        code, _, err = await strom(data_dir, "wallet", "pay", invoice)
        assert code == 1 and err.strip() == "strom: error: invoice is already paid"
        await asyncio.sleep(0.1)
        assert queue.empty()  # published once
    assert (event.payment_hash, event.amount_msat) == (payment_hash, 21_000)
    row = await app.services.db.fetchone(
        "SELECT state, received_msat FROM ln_invoices WHERE payment_hash = ?", (payment_hash,))
    assert row is not None and tuple(row) == ("paid", 21_000)

    foreign = make_invoice(5_000)
    code, out, err = await strom(data_dir, "wallet", "pay", foreign)
    assert code == 0 and out.startswith("paid ") and "succeeded" in out, err
    code, _, err = await strom(data_dir, "wallet", "pay", make_invoice(5_000, currency="bc"))
    assert code == 1
    assert err.strip() == ("strom: error: payment failed: invoice is for mainnet, "
                           "this wallet is on regtest")
    code, _, err = await strom(data_dir, "wallet", "pay", "lnbcrt1nonsense")
    assert code == 1 and "not a valid BOLT11 invoice" in err and "Traceback" not in err

    code, out, _ = await strom(data_dir, "wallet", "payments", "--json")
    summary = sorted((r["direction"], r["status"], r["amount_msat"]) for r in json.loads(out))
    assert summary == [("in", "paid", 21_000), ("out", "failed", 5_000),
                       ("out", "succeeded", 5_000)]
    assert await app.services.wallet.balance() == 16_000


async def test_dev_pay_route_guards(app: StromApp) -> None:
    svc = app.services
    assert svc is not None
    token = {"Authorization": f"Bearer {svc.admin_token}"}
    url = app.http_url + "/api/v1/dev/pay"
    async with httpx.AsyncClient() as client:
        assert (await client.post(url, json={"bolt11": make_invoice(1_000)})).status_code == 401
        for body, reason in ((b"{", "body must be JSON"), (b"[]", "give the invoice"),
                             (b'{"bolt11": 5}', "give the invoice"),
                             (b'{"bolt11": "lnbc"}', "not a valid BOLT11")):
            answer = await client.post(url, content=body, headers=token)
            assert answer.status_code == 400 and reason in answer.json()["error"]

    # From another host: refused, even with the token.
    remote = httpx.ASGITransport(app=create_web_app(svc), client=("192.0.2.7", 40000))
    async with httpx.AsyncClient(transport=remote, base_url="http://strom") as client:
        answer = await client.post("/api/v1/dev/pay", json={"bolt11": "x"}, headers=token)
        assert answer.status_code == 403

    dev, svc.wallet = svc.wallet, FakeWallet()
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.post(url, json={"bolt11": make_invoice(1_000)}, headers=token)
        assert answer.status_code == 404
    finally:
        svc.wallet = dev


async def test_cli_invoice_refuses_other_backends(tmp_path: Path) -> None:
    code, _, err = await strom(tmp_path / "data", "wallet", "invoice", "--amount-msat", "1000",
                               STROM_LIGHTNING_BACKEND="lnd")
    assert code == 1 and "dev wallet only" in err and "Traceback" not in err

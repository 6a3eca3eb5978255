"""`strom wallet invoice|pay|payments`: the dev wallet from the command line.

`invoice` works on the store directly (no server needed); `pay` asks the running server, whose
wallet then settles the invoice and tells the sessions, exactly as a real payment would.
"""

from __future__ import annotations

from typing import Any

import click

from strom.cli.common import (
    CliEnv,
    call_server,
    common_options,
    echo_listing,
    open_store,
    run_async,
)
from strom.errors import UserError
from strom.events import EventBus
from strom.lightning.dev import DevWallet
from strom.lightning.wallet import Invoice
from strom.store.lightning import LightningRepository


def _dev_only(env: CliEnv) -> None:
    backend = env.settings.lightning.backend
    if backend != "dev":
        raise UserError(f"strom wallet works with the dev wallet only; [lightning] backend is "
                        f"{backend!r} (use your node's own tools)")


@click.group()
def wallet() -> None:
    """Dev wallet: make invoices, pay them, list payments (not real money)."""


@wallet.command("invoice")
@click.option("--amount-msat", type=click.IntRange(1, 2_100_000_000_000_000_000), required=True,
              help="Amount in millisatoshis.")
@click.option("--memo", default="strom dev invoice", show_default=True, help="Description.")
@common_options
def invoice(env: CliEnv, amount_msat: int, memo: str) -> None:
    """Create an invoice and print its BOLT11."""
    _dev_only(env)
    lightning = env.settings.lightning

    async def go() -> Invoice:
        async with open_store(env) as db:
            # One invoice: a signing worker would cost more to start than it saves.
            dev = DevWallet(db, EventBus(), env.data_dir, network=lightning.network,
                            signing_workers=0)
            return await dev.create_invoice(amount_msat, description=memo,
                                            expiry=lightning.invoice_expiry)

    click.echo(run_async(go()).bolt11)


@wallet.command("pay")
@click.argument("bolt11")
@common_options
def pay(env: CliEnv, bolt11: str) -> None:
    """Pay BOLT11 through the running server: ours is settled, others are recorded as paid."""
    status, answer = call_server(env, "POST", "/api/v1/dev/pay", json={"bolt11": bolt11},
                                 timeout=30)
    if status == 404:
        raise UserError("the running strom does not use the dev wallet; pay with a real wallet")
    if status != 200:
        raise UserError(str(answer.get("error") or f"server answered HTTP {status}"))
    if answer.get("settled"):
        click.echo(f"settled {answer['payment_hash']} ({answer['amount_msat']} msat received)")
    elif answer.get("status") == "failed":
        raise UserError(f"payment failed: {answer.get('failure_reason', 'no reason given')}")
    else:
        click.echo(f"paid {answer['payment_hash']} ({answer['amount_msat']} msat, "
                   f"{answer['status']})")


@wallet.command("payments")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@common_options
def payments(env: CliEnv, as_json: bool) -> None:
    """List payments in (invoices) and out, newest first."""

    async def go() -> list[dict[str, Any]]:
        async with open_store(env) as db:
            repo = LightningRepository(db)
            rows = [{"direction": "in", "payment_hash": i.payment_hash, "backend": i.backend,
                     "amount_msat": i.received_msat or i.amount_msat, "fee_msat": 0,
                     "status": i.state, "created_at": i.created_at, "done_at": i.paid_at,
                     "description": i.description, "reason": None}
                    for i in await repo.invoices()]
            rows += [{"direction": "out", "payment_hash": p.payment_hash, "backend": p.backend,
                      "amount_msat": p.amount_msat, "fee_msat": p.fee_msat, "status": p.status,
                      "created_at": p.created_at,
                      "done_at": p.updated_at if p.status != "pending" else None,
                      "description": None, "reason": p.failure_reason}
                     for p in await repo.payments()]
            return sorted(rows, key=lambda r: r["created_at"], reverse=True)

    rows = run_async(go())
    if not echo_listing(rows, as_json, "no payments yet; make an invoice with: strom wallet"
                        " invoice --amount-msat N"):
        return
    click.echo(f"{'WHEN':<25} {'DIR':<4} {'STATUS':<10} {'MSAT':>14} {'FEE':>8}  HASH")
    for r in rows:
        note = f"  ({r['reason']})" if r["reason"] else ""
        click.echo(f"{r['created_at']:<25} {r['direction']:<4} {r['status']:<10} "
                   f"{r['amount_msat']:>14} {r['fee_msat']:>8}  {r['payment_hash'][:16]}…{note}")

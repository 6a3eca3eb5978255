"""A payment whose `InvoicePaid` never reaches the sessions (dropped by the bus, or its handler
failed) still starts the charger within seconds, without a restart: the sessions reconcile
paid invoices from the store (`SessionService.reconcile`). Through the public interfaces only:
LNURL pay with the lnurl library, the dev wallet's pay endpoint, the simulated charger."""

from __future__ import annotations

import asyncio

import pytest

from strom.events import BusEvent, InvoicePaid
from tests.money.conftest import World

SAT = 1000


@pytest.mark.parametrize("fault", ["dropped", "raised"])
async def test_a_lost_invoice_paid_still_starts_the_session(world: World, fault: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    svc = world.app.services
    assert svc.sessions is not None
    lost: list[object] = []
    if fault == "dropped":  # as a full queue would have done before
        publish = svc.bus.publish

        def dropping(event: BusEvent) -> None:
            if isinstance(event, InvoicePaid) and not lost:
                lost.append(event)
                return
            publish(event)

        monkeypatch.setattr(svc.bus, "publish", dropping)
    else:
        on_paid = svc.sessions.on_paid

        async def failing_once(payment_hash: str, amount_msat: int) -> None:
            if not lost:
                lost.append(payment_hash)
                raise RuntimeError("the handler failed once")
            await on_paid(payment_hash, amount_msat)

        monkeypatch.setattr(svc.sessions, "on_paid", failing_once)

    loop = asyncio.get_running_loop()
    paid_at = loop.time()
    session = await world.pay_to_charge(20_000 * SAT)
    assert lost, "the fault was not injected"
    session = await world.session_until(session["url"], lambda s: s["state"] == "charging")
    assert loop.time() - paid_at < 10, "a paid session waited for more than a few seconds"
    assert session["paid_msat"] == 20_000 * SAT  # recorded once, however many paths saw it
    await world.ledger_ok()

"""Reserving by nostr (issue 21): a zap with the comment `reserve` pays the reservation fee
(its sender the payer), the DM `reserve` says how, `cancel` by DM works for the zap's sender
only, and a second zap from the payer charges with the fee in the budget. The charger is the
ocpp library's 1.6 ChargePoint with the Reservation profile."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from nostr_sdk import uniffi_set_event_loop

from strom.app import StromApp
from strom.sessions.model import State
from tests.api.charger import running_charger
from tests.conftest import free_settings
from tests.money.test_reservations import FEE, ReservingCharger
from tests.nostr.conftest import CP, Driver, register
from tests.nostr.test_zaps_and_dms import dev_pay, dm17, zap_request
from tests.polling import eventually


async def test_reserve_by_zap_cancel_by_dm_and_charge_by_zap(data_dir: Path) -> None:
    uniffi_set_event_loop(asyncio.get_running_loop())
    cp_keys = await register(data_dir)
    cp_pub = cp_keys.public_key().to_hex()
    settings = free_settings(tariff={"reservation": {"fee_msat": FEE,
                                                     "check_interval_seconds": 0.2}})
    async with StromApp(settings, data_dir) as app, \
            running_charger(app.services.central_system.url, CP, connectors=2,
                            charger_class=ReservingCharger) as charger, \
            httpx.AsyncClient(base_url=app.http_url, timeout=20) as http:
        sessions = app.services.sessions
        driver, stranger = Driver(app.relay.url), Driver(app.relay.url)
        await driver.start()
        await stranger.start()
        try:
            how = await dm17(driver, cp_pub, "reserve")
            assert "with the comment `reserve`" in how and "lightning:LNURL" in how, how

            async def zap(content: str, amount: int) -> None:
                request = zap_request(driver.keys, cp_pub, app.relay.url, amount=amount,
                                      content=content)
                answer = (await http.get(f"/lnurlp/{CP}/callback", params={
                    "amount": amount, "nostr": request})).json()
                assert "pr" in answer, answer
                await dev_pay(app, http, answer["pr"])

            await zap("Reserve", FEE)
            held = (await eventually(lambda: sessions.repo.list(cp_id=CP), lambda found: found
                                     and found[0].reserved_until is not None))[0]
            assert held.state == State.RESERVED and held.payer_pubkey == driver.pubkey
            assert "is held for you" in await driver.dm("Reservation fee", sender=cp_pub)
            (rid, reserved), = charger.reservations.items()
            assert reserved["id_tag"] == held.id_tag

            # Nobody but the zap's sender cancels it.
            assert "Only its payer" in await dm17(stranger, cp_pub, "cancel")
            assert (await sessions.repo.get(held.id)).state == State.RESERVED

            # The payer zaps again to charge: the fee is part of the budget.
            await zap("charge please", 5_000_000)
            charging = await eventually(lambda: sessions.repo.get(held.id),
                                        lambda s: s.state == State.CHARGING)
            assert charging.paid_msat == FEE + 5_000_000
            assert charger.transactions[charging.active_connector_id]
            assert "You hold no reservation" in await dm17(driver, cp_pub, "cancel", "You hold")

            # A second reservation, cancelled by its payer's DM: the fee is kept (default).
            await zap("reserve", FEE)
            second = (await eventually(
                lambda: sessions.repo.list(cp_id=CP, state=State.RESERVED),
                lambda found: found and found[0].reserved_until is not None))[0]
            answer = await dm17(driver, cp_pub, "cancel", "Reservation cancelled")
            assert answer == "Reservation cancelled; the fee is kept.", answer
            assert (await sessions.repo.get(second.id)).state == State.SETTLED
            assert rid not in charger.cancelled and len(charger.cancelled) == 1
            assert (await sessions.check_ledger()).ok
        finally:
            await driver.client.close()
            await stranger.client.close()

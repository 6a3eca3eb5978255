"""Refusals a driver may meet, each with a clear reason and no money lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import lnurl
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect

from strom.app import StromApp
from strom.lnurl.codec import lnurl_encode
from strom.paths import admin_token_path
from tests.conftest import free_settings
from tests.doubles.edges import make_invoice
from tests.money.conftest import CP, World
from tests.polling import eventually


async def test_offline_charger_cannot_be_paid(world: World) -> None:
    await world.charger.close()
    services = world.app.services
    await eventually(lambda: services.charge_points.get(CP), lambda cp: cp.status == "Offline")
    answer = (await world.http.get(f"/lnurlp/{CP}")).json()
    assert answer["status"] == "ERROR" and "offline" in answer["reason"]


class SilentCharger(ChargePoint):
    """Accepts RemoteStart but never starts: a car that is not plugged in, a broken relay."""

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, **kwargs: object) -> call_result.RemoteStartTransaction:
        return call_result.RemoteStartTransaction(status="Accepted")


async def test_start_timeout_fails_and_refunds_everything(data_dir: Path) -> None:
    settings = free_settings(sessions={"start_timeout": 1.0})
    async with StromApp(settings, data_dir) as app:
        services = app.services
        await services.charge_points.add(CP, name="Silent", lat=1, lon=2)
        url = f"{services.central_system.url}{CP}"
        async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            charger = SilentCharger(CP, ws)
            task = asyncio.create_task(charger.start())
            await charger.call(call.BootNotification(charge_point_vendor="x",
                                                     charge_point_model="y"))
            await charger.call(call.StatusNotification(connector_id=1, error_code="NoError",
                                                       status="Available"))
            base = services.settings.public_url
            pay = await lnurl.handle(lnurl_encode(f"{base}/lnurlp/{CP}"))
            action = await lnurl.execute_pay_request(pay, 1_000_000)
            token = admin_token_path(data_dir).read_text().strip()
            async with httpx.AsyncClient() as http:
                await http.post(f"{base}/api/v1/dev/pay", json={"bolt11": str(action.pr)},
                                headers={"Authorization": f"Bearer {token}"})

                async def session() -> dict:
                    return (await http.get(str(action.successAction.url),
                                           headers={"Accept": "application/json"})).json()

                failed = await eventually(session, lambda s: s["state"] == "failed")
            assert failed["refundable_msat"] == failed["paid_msat"] == 1_000_000
            assert "did not start" in failed["failure_reason"] or "start" in \
                failed["failure_reason"]
            request = await lnurl.handle(failed["lnurlw"])
            assert int(request.maxWithdrawable) == 1_000_000
            done = await lnurl.execute_withdraw(request, make_invoice(1_000_000))
            assert done.status == "OK"
            task.cancel()


async def test_demo_pay_button_starts_a_session(demo_world: World) -> None:
    world = demo_world
    answer = await world.http.post(f"/cp/{CP}/demo-pay", data={"sat": "1500"})
    assert answer.status_code == 303
    session_url = world.app.http_url + answer.headers["location"]
    session = await world.session_until(session_url, lambda s: s["state"] == "charging")
    assert session["paid_msat"] == 1_500_000
    too_little = await world.http.post(f"/cp/{CP}/demo-pay", data={"sat": "1"})
    assert too_little.status_code == 409 and "below minimum" in too_little.json()["error"]


async def test_charger_page_offers_the_demo_button_in_demo_mode(demo_world: World) -> None:
    page = await demo_world.http.get(f"/cp/{CP}")
    assert f'action="/cp/{CP}/demo-pay"' in page.text and "Pay with the dev wallet" in page.text


async def test_demo_pay_outside_demo_mode_is_not_found_and_pays_nothing(world: World) -> None:
    # A proxy on the same host makes every visitor loopback: loopback alone opens nothing.
    answer = await world.http.post(f"/cp/{CP}/demo-pay", data={"sat": "1500"})
    assert answer.status_code == 404 and "demo mode" in answer.json()["error"]
    page = await world.http.get(f"/cp/{CP}")
    assert "demo-pay" not in page.text
    assert await world.app.services.sessions.repo.count() == 0


async def test_dev_pay_needs_the_admin_token_also_on_loopback(world: World) -> None:
    answer = await world.http.post("/api/v1/dev/pay", json={"bolt11": make_invoice(1000)})
    assert answer.status_code == 401

"""Pay to reserve (issue 21), end to end: strom, the ocpp library's 1.6 ChargePoint as a
charger with the Reservation profile, and a driver's LNURL wallet (the lnurl library).

A paid reservation holds the connector (ReserveNow with the session's idTag; another payer is
refused), is credited when its payer pays to charge in time (RemoteStart with the reserved
idTag, the fee in the budget), and an unused one expires with the fee kept or refundable per
`[tariff.reservation] unused_fee`. Only the payer's token cancels; the books balance.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import bolt11
import httpx
import lnurl
from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from strom.app import StromApp
from tests.api.charger import TestCharger, running_charger
from tests.conftest import free_settings
from tests.money.conftest import CP, World
from tests.polling import eventually

FEE = 2_000_000


class ReservingCharger(TestCharger):
    """A charger with the Reservation profile (or, `profiles`, without)."""

    __test__ = False
    profiles = "Core,Reservation,RemoteTrigger"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.reservations: dict[int, dict[str, Any]] = {}  # reservation id → ReserveNow
        self.cancelled: list[int] = []

    @on(Action.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None,
                                   **_: Any) -> call_result.GetConfiguration:
        return call_result.GetConfiguration(configuration_key=[
            {"key": "SupportedFeatureProfiles", "readonly": True, "value": self.profiles}])

    @on(Action.reserve_now)
    async def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str,
                             reservation_id: int, **_: Any) -> call_result.ReserveNow:
        self.reservations[reservation_id] = {"connector_id": connector_id, "id_tag": id_tag,
                                             "expiry_date": expiry_date}
        self._spawn(self.status(connector_id, "Reserved"))
        return call_result.ReserveNow(status="Accepted")

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id: int) -> call_result.CancelReservation:
        self.cancelled.append(reservation_id)
        found = self.reservations.pop(reservation_id, None)
        if found is None:
            return call_result.CancelReservation(status="Rejected")
        self._spawn(self.status(found["connector_id"], "Available"))
        return call_result.CancelReservation(status="Accepted")


class OccupiedCharger(ReservingCharger):
    """Says Occupied to ReserveNow (a car plugged in without a session of strom's)."""

    __test__ = False

    @on(Action.reserve_now)
    async def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str,
                             reservation_id: int, **_: Any) -> call_result.ReserveNow:
        return call_result.ReserveNow(status="Occupied")


class CoreOnlyCharger(ReservingCharger):
    __test__ = False
    profiles = "Core,RemoteTrigger"


@asynccontextmanager
async def reserving(data_dir: Path, charger_class: type[TestCharger] = ReservingCharger,
                    **reservation: Any) -> AsyncIterator[tuple[World, Any]]:
    settings = free_settings(tariff={"reservation": {"fee_msat": FEE, "minutes": 15,
                                                     "check_interval_seconds": 0.2,
                                                     **reservation}},
                             sessions={"stop_timeout": 5.0})
    async with StromApp(settings, data_dir) as app:
        if not await app.services.charge_points.exists(CP):  # a second run is a restart
            await app.services.charge_points.add(CP, name="Money Street", lat=50.1, lon=8.7,
                                                 num_connectors=1)
        async with running_charger(app.services.central_system.url, CP, connectors=1,
                                   charger_class=charger_class) as charger, \
                httpx.AsyncClient(base_url=app.http_url, timeout=30) as http:
            yield World(app, None, http), charger  # type: ignore[arg-type]


async def pay(world: World, url: str, amount_msat: int) -> Any:
    """What a wallet does with a pay link: the payRequest, the invoice, paying it."""
    request = await lnurl.handle(url) if url.lower().startswith("lnurl") else await lnurl.get(url)
    assert isinstance(request, lnurl.LnurlPayResponse), request
    action = await lnurl.execute_pay_request(request, amount_msat)
    invoice = bolt11.decode(str(action.pr))
    assert invoice.amount_msat == amount_msat
    metadata = request.metadata if isinstance(request.metadata, str) else str(request.metadata)
    assert invoice.description_hash == hashlib.sha256(metadata.encode()).hexdigest()
    paid = await world.http.post("/api/v1/dev/pay", json={"bolt11": str(action.pr)},
                                 headers=world.admin)
    assert paid.json()["settled"], paid.text
    return action


async def reserve(world: World) -> dict[str, Any]:
    base = world.app.services.settings.public_url
    offer = (await world.http.get(f"/reserve/{CP}")).json()
    assert offer["minSendable"] == offer["maxSendable"] == FEE, offer
    assert "Reserve connector 1 at Money Street for " in offer["metadata"]
    action = await pay(world, f"{base}/reserve/{CP}", FEE)
    return await world.session_until(str(action.successAction.url),
                                     lambda s: s["reserved_until"] is not None)


async def test_a_paid_reservation_holds_the_connector_and_is_credited_on_start(
        data_dir: Path) -> None:
    async with reserving(data_dir) as (world, charger):
        page = (await world.http.get(f"/cp/{CP}")).text
        assert 'id="reserve-link"' in page and "for 15 minutes: 2000 sat" in page
        session = await reserve(world)
        assert session["state"] == "reserved" and session["paid_msat"] == FEE
        assert session["reservation_fee_msat"] == FEE
        await world.ledger_ok()  # the fee is the session's while it holds
        (rid, held), = charger.reservations.items()
        assert held["connector_id"] == 1
        assert held["id_tag"] == (await world.app.services.sessions.get(session["id"])).id_tag
        # Drivers see until when (the public JSON the status event is made of, the page).
        async def public_cp() -> Any:
            return (await world.http.get(f"/api/v1/public/charge-points/{CP}")).json()
        public = await eventually(public_cp,
                                  lambda cp: cp["connectors"][0]["status"] == "Reserved")
        assert public["connectors"][0]["reserved_until"] == session["reserved_until"]
        page = (await world.http.get(f"/cp/{CP}")).text
        assert f"reserved until <time datetime=\"{session['reserved_until']}\">" in page
        assert 'id="reserve-link"' not in page  # no free connector left to reserve

        # Another driver is refused with the reason, on every way in.
        answer = (await world.http.get(f"/lnurlp/{CP}")).json()
        assert answer["status"] == "ERROR" and "reserved for another driver until" in \
            answer["reason"], answer
        assert (await world.http.get(f"/reserve/{CP}")).json()["status"] == "ERROR"

        # A stranger cannot cancel: not with the read-only link, not with a made-up token.
        token = session["url"].rsplit("/", 1)[1]
        view = session["view_url"].rsplit("/", 1)[1]
        for other in (view, "x" * 22):
            refused = await world.http.post(f"/s/{other}/cancel-reservation")
            assert refused.status_code == 404, refused.text
        assert (await world.session(session["url"]))["state"] == "reserved"
        assert charger.cancelled == []
        # The payer's page says until when, offers the top-up and the cancel button; the
        # stop & refund link takes nothing while the reservation holds.
        page = (await world.http.get(session["url"])).text
        assert "Reserved for you" in page and 'id="cancel-reservation"' in page
        assert 'id="topup-section" aria-labelledby="topup-title">' in page
        withdraw = (await world.http.get(f"/lnurlw/{token}")).json()
        assert withdraw["status"] == "ERROR" and "reservation holds" in withdraw["reason"]
        assert 'id="cancel-reservation"' not in (await world.http.get(session["view_url"])).text

        # The payer pays to charge: the fee is in the budget, and the reserved idTag starts.
        await pay(world, session["topup_lnurl"], 10_000_000)
        charging = await world.session_until(session["url"], lambda s: s["state"] == "charging")
        assert charging["paid_msat"] == FEE + 10_000_000
        assert charger.transactions[1]
        await charger.meter(1, 1000.0, 7000.0)  # 1 kWh at 300 sat/kWh
        await world.session_until(session["url"], lambda s: s["consumed_msat"] == 300_000)
        done, _ = await world.withdraw_all(charging["lnurlw"])
        ended = await world.session_until(session["url"], lambda s: s["state"] == "refunded")
        assert ended["refunded_msat"] == FEE + 10_000_000 - 300_000
        assert token and rid
        await world.ledger_ok()


async def test_an_unused_reservation_expires_and_the_fee_is_kept(data_dir: Path) -> None:
    async with reserving(data_dir, minutes=0.05) as (world, charger):
        session = await reserve(world)
        (rid, _), = charger.reservations.items()
        ended = await world.session_until(session["url"], lambda s: s["state"] == "settled")
        assert ended["consumed_msat"] == FEE and ended["refundable_msat"] == 0
        assert "expired" in ended["stop_reason"] and charger.cancelled == [rid]
        # The connector is free for the next driver again.
        assert (await world.http.get(f"/lnurlp/{CP}")).json()["tag"] == "payRequest"
        ledger = (await world.http.get("/api/v1/ledger/check", headers=world.admin)).json()
        assert ledger["ok"] and ledger["consumed_msat"] == FEE, ledger


async def test_an_unused_reservation_expires_and_the_fee_is_refunded(data_dir: Path) -> None:
    async with reserving(data_dir, minutes=0.05, unused_fee="refunded") as (world, charger):
        session = await reserve(world)
        ended = await world.session_until(session["url"], lambda s: s["state"] == "failed")
        assert ended["refundable_msat"] == FEE and "refundable" in ended["failure_reason"]
        await world.withdraw_all(ended["lnurlw"])
        refunded = await world.session_until(session["url"], lambda s: s["state"] == "refunded")
        assert refunded["refunded_msat"] == FEE
        await world.ledger_ok()


async def test_the_payer_cancels_with_their_token(data_dir: Path) -> None:
    async with reserving(data_dir) as (world, charger):
        session = await reserve(world)
        (rid, _), = charger.reservations.items()
        token = session["url"].rsplit("/", 1)[1]
        answer = await world.http.post(f"/s/{token}/cancel-reservation",
                                       headers={"Accept": "text/html"})  # the page's button
        assert answer.status_code == 303 and answer.headers["location"] == f"/s/{token}"
        after = await world.session(session["url"])
        assert after["state"] == "settled" and charger.cancelled == [rid]
        assert (await world.http.post(f"/s/{token}/cancel-reservation")).status_code == 404
        await world.ledger_ok()


async def test_no_reservation_at_a_charger_without_the_profile(data_dir: Path) -> None:
    async with reserving(data_dir, charger_class=CoreOnlyCharger) as (world, _):
        answer = (await world.http.get(f"/reserve/{CP}")).json()
        assert answer["status"] == "ERROR" and "takes no reservations" in answer["reason"]
        assert "reserve-link" not in (await world.http.get(f"/cp/{CP}")).text
        assert (await world.http.get(f"/lnurlp/{CP}")).json()["tag"] == "payRequest"


async def test_the_operator_cancels_and_the_fee_is_refundable(data_dir: Path) -> None:
    async with reserving(data_dir) as (world, charger):
        session = await reserve(world)
        (rid, _), = charger.reservations.items()
        url = f"/api/v1/commands/{CP}/cancel-reservation"
        assert (await world.http.post(url, json={"connector_id": 1})).status_code == 401
        answer = await world.http.post(url, json={"connector_id": 1}, headers=world.admin)
        assert answer.json() == {"cp_id": CP, "command": "cancel-reservation",
                                 "status": "Accepted", "outcome": "accepted"}, answer.text
        ended = await world.session(session["url"])
        assert ended["state"] == "failed" and ended["refundable_msat"] == FEE
        assert charger.cancelled == [rid]
        again = await world.http.post(url, json={"connector_id": 1}, headers=world.admin)
        assert again.json()["outcome"] == "rejected"
        audited = [e for e in await world.app.services.event_log.recent(CP)
                   if e["kind"] == "operator_command"]
        assert [e["payload"]["outcome"] for e in audited] == ["rejected", "accepted"], audited
        await world.ledger_ok()


async def test_a_reservation_outlives_a_restart_and_expires_after_it(data_dir: Path) -> None:
    async with reserving(data_dir, minutes=0.1) as (world, charger):
        session = await reserve(world)
        (rid, _), = charger.reservations.items()
    async with reserving(data_dir, minutes=0.1) as (world, charger):
        # The charger still holds it (it reconnected with its reservation); strom expires it.
        charger.reservations[rid] = {"connector_id": 1}
        page = "/s/" + session["url"].rsplit("/", 1)[1]  # the port changed
        ended = await world.session_until(page, lambda s: s["state"] == "settled")
        assert ended["reserved_until"] == session["reserved_until"]
        assert charger.cancelled == [rid] and ended["consumed_msat"] == FEE
        await world.ledger_ok()


async def test_a_reservation_the_charger_refuses_is_refundable(data_dir: Path) -> None:
    async with reserving(data_dir, charger_class=OccupiedCharger) as (world, _):
        base = world.app.services.settings.public_url
        action = await pay(world, f"{base}/reserve/{CP}", FEE)
        failed = await world.session_until(str(action.successAction.url),
                                           lambda s: s["state"] == "failed")
        assert "Occupied" in failed["failure_reason"] and failed["refundable_msat"] == FEE
        await world.withdraw_all(failed["lnurlw"])
        await world.session_until(str(action.successAction.url),
                                  lambda s: s["state"] == "refunded")
        await world.ledger_ok()

"""A zap starts a session on an OCPP 2.0.1 charger and the payer stops it by DM: the nostr
path does not know which OCPP the charger speaks. The charger is the ocpp library's v201
ChargePoint (`tests/ocpp/charger201.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from nostr_sdk import Keys

from strom.app import StromApp
from strom.lnurl.codec import lnurl_decode
from strom.sessions.model import State
from tests.nostr.conftest import CP, Driver, cp_available, keyed_strom
from tests.nostr.test_zaps_and_dms import AMOUNT, dev_pay, dm17, zap_answer
from tests.ocpp.charger201 import ChargingCharger201, running_charger201
from tests.polling import eventually


@pytest.fixture
async def nostr_app(data_dir: Path) -> AsyncIterator[tuple[StromApp, Keys]]:
    """The conftest's world, with a 2.0.1 charger in place of the simulator."""
    async with keyed_strom(data_dir) as (app, cp_keys):
        assert app.services is not None and app.services.central_system is not None
        async with running_charger201(app.services.central_system.url, CP,
                                      charger_class=ChargingCharger201):
            await cp_available(app)
            yield app, cp_keys


async def test_zap_then_dm_stop_and_refund_on_a_2_0_1_charger(
        nostr_app: tuple[StromApp, Keys], driver: Driver, http: httpx.AsyncClient) -> None:
    app, cp_keys = nostr_app
    cp_pub = cp_keys.public_key().to_hex()
    assert (await app.services.charge_points.get(CP)).ocpp_protocol == "ocpp2.0.1"
    answer = await zap_answer(app, http, driver, cp_pub)
    await dev_pay(app, http, answer["pr"])
    await driver.next(9735)  # the zap receipt
    sessions = app.services.sessions
    session = (await eventually(lambda: sessions.repo.list(cp_id=CP),
                                lambda found: bool(found) and found[0].state == State.CHARGING
                                and found[0].consumed_msat > 0))[0]
    stopped = await dm17(driver, cp_pub, "stop", answer_starts="Stopped.")
    session = await sessions.repo.get(session.id)
    assert session.state == State.STOPPED and 0 < session.refundable_msat < AMOUNT
    link = stopped.split("lightning:")[1].split()[0]
    assert lnurl_decode(link).endswith(f"/lnurlw/{session.token}")
    refund = await dm17(driver, cp_pub, "refund", answer_starts="Your refund")
    assert f"{session.refundable_msat // 1000:,} sat" in refund

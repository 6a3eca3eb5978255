"""Lightning sessions on a charger that keeps its backend: paid, charged, stopped and
refunded through strom while the backend sees only what the rules say (docs/architecture.md,
"Passthrough"); the conflicts resolved as documented."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from ocpp.v16 import call

from strom.passthrough.config import UpstreamConfig
from strom.timeutil import iso
from tests.money.conftest import CP, World
from tests.passthrough.backend import OWNER_TAG, PASSWORD, Backend
from tests.passthrough.conftest import RecordedCharger, recorded_charger, shared_strom
from tests.polling import eventually

SAT = 1000
SPARE_ID = 2**31 - 1


@dataclass
class Shared:
    world: World
    charger: RecordedCharger
    backend: Backend


@pytest.fixture
async def shared(request: pytest.FixtureRequest, data_dir: Path,
                 backend: Backend) -> AsyncIterator[Shared]:
    """strom (money and all) with CP passing through to `backend`; lightning unless the test
    is parametrized with False."""
    lightning = getattr(request, "param", True)
    async with shared_strom(data_dir, UpstreamConfig(
            backend.url(CP), password=PASSWORD, lightning=lightning)) as app:
        assert app.services is not None and app.services.central_system is not None
        async with recorded_charger(app.services.central_system.url, CP) as charger, \
                httpx.AsyncClient(base_url=app.http_url, timeout=30) as http:
            await eventually(lambda: app.services.charge_points.get(CP),  # type: ignore[union-attr]
                             lambda cp: cp is not None and cp.status == "Available")
            yield Shared(World(app, charger, http), charger, backend)  # type: ignore[arg-type]


async def test_a_lightning_session_between_the_backends_own(shared: Shared) -> None:
    world, charger, backend = shared.world, shared.charger, shared.backend
    # The owner's RFID session on connector 1, with the backend.
    await charger.call(call.Authorize(id_tag=OWNER_TAG))
    await charger._start(1, OWNER_TAG)
    assert charger.transactions[1] == 2  # the backend's id
    await charger.meter(1, 2000, 7000)

    # A driver pays: strom starts on the free connector 2 with an idTag of its own.
    session = await world.pay_to_charge(50_000 * SAT)
    url = session["url"]
    await eventually(lambda: _noop(), lambda _: 2 in charger.transactions)
    # strom's transaction id (2 in its store) is the backend's open one on this charger:
    # the charger gets a spare id instead, mapped both ways.
    assert charger.transactions[2] == SPARE_ID
    await charger.meter(2, 3000, 11000)
    await world.session_until(url, lambda s: s["state"] == "charging" and s["energy_wh"] > 0)

    # The backend cannot start on strom's connector, nor stop strom's transaction.
    refused = await backend.remote_start(2)
    assert refused.status == "Rejected"
    assert backend.charger is not None
    stop = await backend.charger.call(call.RemoteStopTransaction(transaction_id=SPARE_ID))
    assert stop.status == "Rejected"
    assert not [c for c in charger.received_calls() if c[2] == "RemoteStartTransaction"
                and c[3].get("idTag") == OWNER_TAG]

    # The driver stops with the withdraw link and takes the rest back.
    done, _ = await world.withdraw_all(session["lnurlw"])
    assert done.status == "OK"
    session = await world.session(url)
    assert session["state"] == "refunded" and session["energy_wh"] == pytest.approx(3000)
    assert session["consumed_msat"] > 0
    assert session["paid_msat"] == session["consumed_msat"] + session["refunded_msat"]
    assert SPARE_ID in charger.remote_stops  # strom's stop, in the charger's id
    await world.ledger_ok()

    # The backend saw none of it: not strom's idTag, its transaction, or its readings;
    # only connector 2's statuses (the connector was busy, as the rules say).
    tag = json.loads(next(raw for way, raw in charger.frames if way == "in"
                          and "RemoteStartTransaction" in raw))[3]["idTag"]
    assert not backend.saw(tag)
    assert not backend.saw(str(SPARE_ID))
    assert [c[3]["connectorId"] for c in backend.received("MeterValues")] == [1]
    statuses = [c[3]["status"] for c in backend.received("StatusNotification")
                if c[3]["connectorId"] == 2]
    assert statuses[-3:] == ["Preparing", "Charging", "Available"]

    # The owner's session goes on and ends with the backend, under the backend's id.
    await charger._stop(2)
    assert backend.received("StopTransaction")[-1][3]["transactionId"] == 2
    assert backend.received("StopTransaction")[-1][3]["meterStop"] == 2000


async def test_conflicts_resolved_as_documented(shared: Shared) -> None:
    world, charger, backend = shared.world, shared.charger, shared.backend
    await backend.connected.wait()
    assert backend.charger is not None
    session = await world.pay_to_charge(50_000 * SAT)
    url = session["url"]
    await eventually(lambda: _noop(), lambda _: 1 in charger.transactions)
    await charger.meter(1, 1000, 11000)
    await world.session_until(url, lambda s: s["state"] == "charging" and s["energy_wh"] > 0)

    # strom does not start where the backend's transaction runs.
    await charger.call(call.Authorize(id_tag=OWNER_TAG))
    await charger._start(2, OWNER_TAG)
    control = world.app.services.chargers  # type: ignore[union-attr]
    refused = await control.start(CP, 2, "somebody")
    assert refused.outcome == "rejected"

    # The backend changes a setting strom bills by: strom sets its own again, and says so.
    asked_before = len(charger.received_calls())
    changed = await backend.charger.call(call.ChangeConfiguration(
        key="MeterValueSampleInterval", value="900"))
    assert changed.status == "Accepted"
    await eventually(lambda: _noop(), lambda _: charger.config["MeterValueSampleInterval"]
                     != "900")
    assert [c[2] for c in charger.received_calls()[asked_before:]][:2] == [
        "ChangeConfiguration", "GetConfiguration"]
    log = world.app.services.event_log  # type: ignore[union-attr]
    entries = await eventually(lambda: log.recent(CP), lambda rows: any(
        r["kind"] == "passthrough_conflict" for r in rows))
    conflict = next(r["payload"] for r in entries if r["kind"] == "passthrough_conflict")
    assert conflict["key"] == "MeterValueSampleInterval"
    assert conflict["resolution"] == "re-applied"

    # The backend resets the charger mid-session: it goes through; the charger ends the
    # transactions (reason SoftReset) and strom's session is settled on the final reading.
    reset = await backend.charger.call(call.Reset(type="Soft"))
    assert reset.status == "Accepted"
    await charger.call(call.StopTransaction(meter_stop=1400, timestamp=iso(), reason="SoftReset",
                                            transaction_id=charger.transactions.pop(1)))
    session = await world.session_until(url, lambda s: s["state"] == "stopped")
    assert session["energy_wh"] == pytest.approx(1400)
    assert session["refundable_msat"] == session["paid_msat"] - session["consumed_msat"] > 0
    assert not backend.received("StopTransaction")  # strom's stop stays with strom
    await world.ledger_ok()


async def _noop() -> None:
    return None


@pytest.mark.parametrize("shared", [False], indirect=True)
async def test_a_pure_proxy_runs_no_sessions(shared: Shared) -> None:
    world, charger, backend = shared.world, shared.charger, shared.backend
    session = await world.pay_to_charge(20_000 * SAT)
    failed = await world.session_until(session["url"], lambda s: s["state"] == "failed")
    assert failed["refundable_msat"] == 20_000 * SAT
    # strom asked the charger nothing: no start, no metering setup.
    assert not charger.received_calls()
    assert not backend.received("StartTransaction")
    done, _ = await world.withdraw_all(failed["lnurlw"])
    assert done.status == "OK"
    await world.ledger_ok()

"""A running strom, a simulated charger on real OCPP, and a driver with an LNURL wallet."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bolt11
import httpx
import lnurl
import pytest

from strom.app import StromApp
from strom.lnurl.links import pay_links
from strom.paths import admin_token_path
from strom.simulator.charge_point import SimulatedChargePoint
from tests.conftest import free_settings
from tests.doubles.edges import make_invoice
from tests.polling import eventually

CP = "cp-m"


@dataclass
class World:
    app: StromApp
    charger: SimulatedChargePoint
    http: httpx.AsyncClient

    @property
    def admin(self) -> dict[str, str]:
        token = admin_token_path(self.app.data_dir).read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    async def pay_to_charge(self, amount_msat: int, target: str = CP) -> dict[str, Any]:
        """What a driver's wallet does with the sticker's QR; returns the session JSON."""
        links = pay_links(self.app.services.settings.public_url, CP)
        url = links.url if target == CP else links.url.replace(f"/{CP}", f"/{target}")
        pay = await lnurl.get(url)
        assert isinstance(pay, lnurl.LnurlPayResponse), pay
        action = await lnurl.execute_pay_request(pay, amount_msat, comment="thanks")
        invoice = bolt11.decode(str(action.pr))
        assert invoice.amount_msat == amount_msat
        assert invoice.description_hash == hashlib.sha256(
            pay.metadata.encode() if isinstance(pay.metadata, str)
            else str(pay.metadata).encode()).hexdigest()
        paid = await self.http.post("/api/v1/dev/pay", json={"bolt11": str(action.pr)},
                                    headers=self.admin)
        assert paid.json()["settled"], paid.text
        session_url = str(action.successAction.url)
        return await self.session_until(session_url, lambda s: s["paid_msat"] >= amount_msat)

    async def session(self, session_url: str) -> dict[str, Any]:
        answer = await self.http.get(session_url, headers={"Accept": "application/json"})
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def session_until(self, session_url: str, check) -> dict[str, Any]:  # noqa: ANN001
        return await eventually(lambda: self.session(session_url), check, seconds=20)

    async def withdraw_all(self, lnurlw: str) -> tuple[Any, str]:
        """Open the stop & refund link and withdraw with a fresh invoice for the full amount."""
        request = await lnurl.handle(lnurlw)
        assert isinstance(request, lnurl.LnurlWithdrawResponse), request
        invoice = make_invoice(int(request.maxWithdrawable), currency="bcrt")
        done = await lnurl.execute_withdraw(request, invoice)
        return done, invoice

    async def ledger_ok(self) -> None:
        check = await self.http.get("/api/v1/ledger/check", headers=self.admin)
        assert check.status_code == 200 and check.json()["ok"], check.text


@pytest.fixture
async def world(data_dir: Path) -> AsyncIterator[World]:
    async with running_world(data_dir) as running:
        yield running


@pytest.fixture
async def demo_world(data_dir: Path) -> AsyncIterator[World]:
    """The same world in demo mode (`strom run --demo`)."""
    async with running_world(data_dir, demo=True) as running:
        yield running


@asynccontextmanager
async def running_world(data_dir: Path, *, demo: bool = False, protocol: str = "ocpp1.6",
                        **sections: dict[str, Any]) -> AsyncIterator[World]:
    """strom with `CP` (two connectors, the simulator speaking `protocol`) connected and
    Available, and an HTTP client for it; `ocpp=` is the [ocpp] section like any other."""
    sections["sessions"] = {"stop_timeout": 5.0, **sections.get("sessions", {})}
    settings = free_settings(**sections)
    async with StromApp(settings, data_dir, demo=demo) as app:
        assert app.services is not None and app.services.central_system is not None
        await app.services.charge_points.add(CP, name="Money Street", lat=50.1, lon=8.7,
                                             num_connectors=2)
        charger = SimulatedChargePoint(CP, app.services.central_system.url, connectors=2,
                                       meter_interval=0.2, speed=600.0, battery_wh=80_000,
                                       start_soc=10.0, seed=7, ocpp=protocol)
        await charger.start()
        await eventually(lambda: app.services.charge_points.get(CP),
                         lambda cp: cp is not None and cp.status == "Available")
        async with httpx.AsyncClient(base_url=app.http_url, timeout=30) as http:
            yield World(app, charger, http)
        await charger.close()

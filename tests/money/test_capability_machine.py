"""Issue 16, property: random interleavings of payments, zaps, replays, top-ups, stops by the
payer and by a stranger, refunds and restarts. Whatever happens, no one but the payer stops a
session or withdraws its money, refunds never exceed what was paid and not consumed, and
`strom ledger check` agrees.

Everything goes through public interfaces (LNURL over HTTP, the dev wallet's pay endpoint, a
simulated charger on OCPP); the store is only read, to check. A restart closes the app and
builds it again on the same data dir and ports, while the simulated charger keeps charging and
reconnects, as a real one does. The stranger knows everything public or shareable: the zap
requests from the receipts, every session's view link and top-up link.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import bolt11
import httpx
import lnurl
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from nostr_sdk import Keys, uniffi_set_event_loop

from strom.app import StromApp
from strom.lnurl.codec import lnurl_decode
from strom.paths import admin_token_path
from strom.simulator.charge_point import SimulatedChargePoint
from tests.conftest import free_settings
from tests.doubles.edges import make_invoice
from tests.e2e.processes import free_port
from tests.nostr.conftest import CP, register
from tests.nostr.test_zaps_and_dms import zap_request
from tests.polling import eventually

# 25 examples of a few steps each start strom 25 times: about a minute on a quiet machine.
pytestmark = pytest.mark.timeout(300)
SAT = 1000
AMOUNTS = st.sampled_from([2_000 * SAT, 30_000 * SAT])
DRIVER_STOPS = ("stopped by the driver",)


class CapabilityMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        uniffi_set_event_loop(self.loop)
        self.dir = Path(tempfile.mkdtemp(prefix="strom-caps-"))
        self.ports = {"http": {"port": free_port()}, "ocpp": {"port": free_port()},
                      "relay": {"port": free_port()}}
        self.zapper = Keys.generate()
        self.payer_tokens: dict[str, str] = {}       # session id → the payer's token
        self.public_zaps: list[str] = []             # paid zap requests: in every receipt
        self.payer_invoices: set[str] = set()        # payment hashes of the payer's refunds
        self.stopped_by_payer: set[str] = set()
        self.zaps = 0
        self.run(register(self.dir))
        self.app: StromApp | None = None
        self.run(self._start())
        self.charger = SimulatedChargePoint(CP, self.app.services.central_system.url,
                                            connectors=2, meter_interval=0.2, speed=600.0,
                                            battery_wh=80_000, start_soc=10.0,
                                            reconnect_min=0.1, reconnect_max=0.3)
        self.run(self.charger.start())
        self.run(self._charger_online())

    # --- plumbing -----------------------------------------------------------------------------

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _start(self) -> None:
        self.app = StromApp(free_settings(sessions={"stop_timeout": 15.0}, **self.ports),
                            self.dir)
        await self.app.__aenter__()
        self.http = httpx.AsyncClient(base_url=self.app.http_url, timeout=20)
        self.admin = {"Authorization": "Bearer "
                      + admin_token_path(self.dir).read_text().strip()}

    async def _stop(self) -> None:
        await self.http.aclose()
        assert self.app is not None
        await self.app.__aexit__(None, None, None)

    async def _charger_online(self) -> None:
        await eventually(lambda: self.app.services.charge_points.get(CP),
                         lambda cp: cp is not None and cp.connected, seconds=15)

    def teardown(self) -> None:
        try:
            self.run(self.charger.close())
            self.run(self._stop())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    async def _sessions(self) -> list[Any]:
        return await self.app.services.sessions.repo.list(limit=1000)

    async def _pay(self, bolt11_invoice: str) -> None:
        paid = await self.http.post("/api/v1/dev/pay", json={"bolt11": bolt11_invoice},
                                    headers=self.admin)
        assert paid.status_code == 200 and paid.json()["settled"], paid.text
        # The wallet has it; the session applies it from the bus a moment later. Until then
        # the ledger check rightly says "the wallet received it, the ledger not".
        payment_hash = bolt11.decode(bolt11_invoice).payment_hash
        await eventually(lambda: self.app.services.db.fetchone(
            "SELECT paid_at FROM session_invoices WHERE payment_hash = ?", (payment_hash,)),
            lambda row: row is not None and row[0] is not None)

    def _secrets(self, sessions: list[Any]) -> list[str]:
        return [s.token for s in sessions]

    # --- the payer ------------------------------------------------------------------------------

    @rule(amount=AMOUNTS)
    def pay(self, amount: int) -> None:
        """A driver pays the charger's LNURL; the success action is their session link."""
        async def go() -> None:
            pay = (await self.http.get(f"/lnurlp/{CP}")).json()
            if pay.get("status") == "ERROR":
                return  # no free connector
            answer = (await self.http.get(pay["callback"], params={"amount": amount})).json()
            if "pr" not in answer:
                return
            token = answer["successAction"]["url"].rsplit("/", 1)[1]
            session = await self.app.services.sessions.repo.by_token(token)
            self.payer_tokens[session.id] = token
            await self._pay(answer["pr"])
        self.run(go())

    @rule(amount=AMOUNTS)
    def zap(self, amount: int) -> None:
        """The nostr driver zaps: a new session, or a top-up of their running one."""
        async def go() -> None:
            self.zaps += 1
            request = zap_request(self.zapper, self._cp_pubkey(), self.app.relay.url,
                                  amount=amount, content=f"zap {self.zaps}")
            answer = (await self.http.get(f"/lnurlp/{CP}/callback",
                                          params={"amount": amount, "nostr": request})).json()
            if "pr" not in answer:
                return
            await self._pay(answer["pr"])
            self.public_zaps.append(request)
            # The DM to the zapper carries the session link (tests/nostr show it arrive).
            mine = await self.app.services.sessions.repo.list(
                payer_pubkey=self.zapper.public_key().to_hex(), limit=1000)
            for s in mine:
                self.payer_tokens[s.id] = s.token
        self.run(go())

    def _cp_pubkey(self) -> str:
        return self.app.services.keyring.pubkey_hex(CP)

    @precondition(lambda self: self.payer_tokens)
    @rule(data=st.data())
    def payer_stops_and_withdraws(self, data: st.DataObject) -> None:
        session_id = data.draw(st.sampled_from(sorted(self.payer_tokens)))
        withdraw = data.draw(st.booleans())

        async def go() -> None:
            token = self.payer_tokens[session_id]
            link = f"{self.app.services.settings.public_url}/lnurlw/{token}"
            self.stopped_by_payer.add(session_id)
            request = await lnurl.handle(link)
            if not isinstance(request, lnurl.LnurlWithdrawResponse) or not withdraw:
                return
            invoice = make_invoice(int(request.maxWithdrawable), currency="bcrt")
            self.payer_invoices.add(bolt11.decode(invoice).payment_hash)
            # An offered withdraw is always claimable in full: a stop during `starting` holds
            # the payment until the charger's answer instead of offering it while a late
            # StartTransaction may still bill energy (then the claim was refused).
            await lnurl.execute_withdraw(request, invoice)  # raises if refused
        self.run(go())

    # --- everyone else --------------------------------------------------------------------------

    @precondition(lambda self: self.public_zaps)
    @rule(data=st.data())
    def stranger_replays_a_zap(self, data: st.DataObject) -> None:
        request = data.draw(st.sampled_from(self.public_zaps))

        async def go() -> None:
            amount = next(int(t[1]) for t in json.loads(request)["tags"] if t[0] == "amount")
            answer = await self.http.get(f"/lnurlp/{CP}/callback",
                                         params={"amount": amount, "nostr": request})
            # Whatever the answer hands out, the stranger tries to stop and withdraw with it
            # (the invariants then see who stopped and who got the money).
            for token in re.findall(r"/s/([A-Za-z0-9_-]{16,})", answer.text):
                await self._steal(token)
            assert answer.json()["status"] == "ERROR", answer.text
        self.run(go())

    async def _steal(self, token: str) -> None:
        link = f"{self.app.services.settings.public_url}/lnurlw/{token}"
        request = await lnurl.handle(link)
        if isinstance(request, lnurl.LnurlWithdrawResponse):
            await lnurl.execute_withdraw(
                request, make_invoice(int(request.maxWithdrawable), currency="bcrt"))

    @precondition(lambda self: self.payer_tokens)
    @rule(data=st.data(), amount=AMOUNTS, pay=st.booleans())
    def stranger_uses_the_shareable_links(self, data: st.DataObject, amount: int,
                                          pay: bool) -> None:
        """The view and top-up links: look, pay, try to stop and to withdraw."""
        session_id = data.draw(st.sampled_from(sorted(self.payer_tokens)))

        async def go() -> None:
            payer = await self.http.get(f"/s/{self.payer_tokens[session_id]}",
                                        headers={"Accept": "application/json"})
            shared = payer.json()
            base = self.app.services.settings.public_url
            view_token = shared["view_url"].rsplit("/", 1)[1]
            topup_token = lnurl_decode(shared["topup_lnurl"]).rsplit("/", 1)[1]
            secrets = self._secrets(await self._sessions())
            seen = await self.http.get(shared["view_url"], headers={"Accept": "application/json"})
            assert seen.json()["lnurlw"] is None
            assert not any(t in seen.text for t in secrets)
            for token in (view_token, topup_token):
                for probe in (f"{base}/lnurlw/{token}", f"{base}/lnurlp/{CP}?s={token}"):
                    refused = await lnurl.handle(probe)
                    assert isinstance(refused, lnurl.LnurlErrorResponse), (probe, refused)
            topup = await lnurl.handle(shared["topup_lnurl"])
            if not isinstance(topup, lnurl.LnurlPayResponse):
                return
            answer = await self.http.get(str(topup.callback), params={"amount": amount})
            assert not any(t in answer.text for t in secrets)
            if pay and "pr" in answer.json():
                await self._pay(answer.json()["pr"])  # a gift to the running session
        self.run(go())

    @rule()
    def time_passes(self) -> None:
        self.run(asyncio.sleep(0.3))

    @rule()
    def restart(self) -> None:
        """strom goes down and comes back on the same data dir; the charger reconnects."""
        async def go() -> None:
            await self._stop()
            await self._start()
            await self._charger_online()
        self.run(go())

    # --- what must always hold ------------------------------------------------------------------

    @invariant()
    def only_the_payer_stops_or_withdraws(self) -> None:
        async def go() -> None:
            for s in await self._sessions():
                words = f"{s.stop_reason} {s.failure_reason}"
                if any(reason in words for reason in DRIVER_STOPS):
                    assert s.id in self.stopped_by_payer, s
                assert s.refunded_msat <= s.paid_msat - s.consumed_msat - s.forfeited_msat
            for row in await self.app.services.db.fetchall(
                    "SELECT payment_hash, route FROM refunds"):
                assert row["payment_hash"] in self.payer_invoices, dict(row)
        self.run(go())

    @invariant()
    def the_ledger_check_agrees(self) -> None:
        async def go() -> None:
            check = await self.http.get("/api/v1/ledger/check", headers=self.admin)
            assert check.status_code == 200 and check.json()["ok"], check.text
        self.run(go())


CapabilityMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=6, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_capabilities_hold_under_random_interleavings = CapabilityMachine.TestCase

"""Site power end to end: the ocpp library's 1.6 ChargePoint as chargers on one 22 kW site.

Drivers pay over LNURL, the chargers charge, and strom shares the site's limit with
SetChargingProfile (TxDefaultProfile per connector, ChargePointMaxProfile for a charger's cap),
reads it back with GetCompositeSchedule, re-balances when a session ends and clears the ended
one's profile. A charger without SmartCharging is reported and charges on untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from strom.app import StromApp
from strom.store.sites import SiteRepository
from tests.api.charger import TestCharger, running_charger
from tests.api.conftest import add, ocpp_url
from tests.api.flows import eventually, pay_and_charge, wait_for_session
from tests.ocpp.charger201 import running_charger201
from tests.polling import eventually as polled


async def settled(check: Callable[[], bool]) -> None:
    """`check` holds within 15 s: each limit is three calls, and the test machine is busy."""
    await eventually(check, within=15)


async def shares(admin: httpx.AsyncClient, *fields: str,
                 expected: list[tuple[Any, ...]]) -> dict[str, Any]:
    """The site once its allocations' `fields` are `expected` (strom records a share when the
    charger has answered it and told it back: a moment after the charger got it)."""
    async def site() -> dict[str, Any]:
        return (await admin.get("/api/v1/sites/home")).json()

    def matches(found: dict[str, Any]) -> bool:
        return [tuple(x[f] for f in fields) for x in found["allocations"]] == expected

    return await polled(site, matches, seconds=15)


class SmartCharger(TestCharger):
    """Applies the profiles it takes and tells them back; `profiles` is what it reports in
    SupportedFeatureProfiles (a charger without SmartCharging refuses every profile)."""

    __test__ = False
    profiles = "Core,SmartCharging"
    timeline: list[tuple[str, str, dict[str, Any]]] | None = None  # shared by a site's chargers

    async def _answer(self, action: str, args: dict[str, Any]) -> None:
        if self.timeline is not None:
            self.timeline.append((self.id, action, args))
        await super()._answer(action, args)

    def limits(self, connector_id: int) -> list[float | None]:
        """Every limit strom sent this connector, in order (None: strom cleared it)."""
        sent: list[float | None] = []
        for action, args in self.asked:
            if action == "SetChargingProfile" and args["connector_id"] == connector_id:
                schedule = args["cs_charging_profiles"]["charging_schedule"]
                # (float: the library hands numbers over as Decimal, which it cannot send)
                sent.append(float(schedule["charging_schedule_period"][0]["limit"]))
            elif action == "ClearChargingProfile" and \
                    args.get("id") == 8400 + connector_id:
                sent.append(None)
        return sent

    def limit(self, connector_id: int) -> float | None:
        sent = self.limits(connector_id)
        return sent[-1] if sent else None

    @on(Action.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None,
                                   **_: Any) -> call_result.GetConfiguration:
        known = {"SupportedFeatureProfiles": self.profiles,
                 "ChargingScheduleAllowedChargingRateUnit": "Current,Power"}
        return call_result.GetConfiguration(
            configuration_key=[{"key": k, "readonly": True, "value": known[k]}
                               for k in key or known if k in known],
            unknown_key=[k for k in key or () if k not in known] or None)

    @on(Action.get_composite_schedule)
    async def on_composite(self, connector_id: int, duration: int,
                           **_: Any) -> call_result.GetCompositeSchedule:
        limit = self.limit(connector_id)
        if limit is None:
            return call_result.GetCompositeSchedule(status="Accepted", connector_id=connector_id)
        return call_result.GetCompositeSchedule(
            status="Accepted", connector_id=connector_id, charging_schedule={
                "charging_rate_unit": "W",
                "charging_schedule_period": [{"start_period": 0, "limit": limit}]})


class OldCharger(SmartCharger):
    __test__ = False
    profiles = "Core,FirmwareManagement"


async def _site(admin: httpx.AsyncClient, *chargers: str) -> None:
    created = await admin.put("/api/v1/sites/home", json={"limit_w": 22_000})
    assert created.status_code == 200, created.text
    for cp_id in chargers:
        await add(admin, cp_id, connectors=1)
        joined = await admin.put(f"/api/v1/sites/home/chargers/{cp_id}", json={})
        assert joined.status_code == 200, joined.text


async def test_two_chargers_share_22_kw_and_rebalance_when_one_stops(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    await _site(admin, "cp-a", "cp-b")
    url = ocpp_url(app)
    async with running_charger(url, "cp-a", 1, SmartCharger) as a, \
            running_charger(url, "cp-b", 1, SmartCharger) as b:
        assert isinstance(a, SmartCharger) and isinstance(b, SmartCharger)
        timeline: list[tuple[str, str, dict[str, Any]]] = []
        a.timeline = b.timeline = timeline
        first = await pay_and_charge(admin, a, "cp-a")
        await settled(lambda: a.limit(1) == 22_000.0)  # alone: the whole site
        await pay_and_charge(admin, b, "cp-b")
        await settled(lambda: (a.limit(1), b.limit(1)) == (11_000.0, 11_000.0))
        # cp-a was lowered before cp-b got its share: the fuse held at every step.
        assert a.limits(1) == [22_000.0, 11_000.0] and b.limits(1) == [11_000.0]
        site = await shares(admin, "cp_id", "watts", "outcome", "read_back_w", expected=[
            ("cp-a", 11_000, "accepted", 11_000.0), ("cp-b", 11_000, "accepted", 11_000.0)])
        assert site["allocated_w"] == 22_000
        # Sessions bound their worst case (holds, room before the budget ends) by the share.
        assert app.services is not None and app.services.site_power is not None
        assert app.services.site_power.cap_w("cp-a", 1) == 11_000.0

        stopped = await admin.post(f"/api/v1/sessions/{first['id']}/stop")
        assert stopped.status_code == 200, stopped.text
        await wait_for_session(admin, "cp-a", "stopped", "refunded", "settled")
        await settled(lambda: b.limit(1) == 22_000.0)
        await settled(lambda: a.limits(1)[-1:] == [None])  # ClearChargingProfile on end
        await shares(admin, "cp_id", "watts", expected=[("cp-b", 22_000)])
        # After every profile either charger got, the limits in force summed to ≤ 22 kW.
        in_force: dict[str, float] = {}
        for cp_id, action, args in timeline:
            if action == "SetChargingProfile":
                schedule = args["cs_charging_profiles"]["charging_schedule"]
                in_force[cp_id] = schedule["charging_schedule_period"][0]["limit"]
            elif action == "ClearChargingProfile":
                in_force.pop(cp_id, None)
            assert sum(in_force.values()) <= 22_000, timeline
        assert (await admin.get("/api/v1/ledger/check")).json()["ok"] is True


async def test_a_charger_without_smart_charging_is_reported_and_charges_on(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    await _site(admin, "cp-old", "cp-new")
    capped = await admin.put("/api/v1/sites/home/chargers/cp-old", json={"max_w": 11_000})
    assert capped.json()["chargers"][1] == {"cp_id": "cp-old", "max_w": 11_000,
                                            "refuses_limits": None}
    url = ocpp_url(app)
    async with running_charger(url, "cp-old", 1, OldCharger) as old, \
            running_charger(url, "cp-new", 1, SmartCharger) as new:
        assert isinstance(old, SmartCharger) and isinstance(new, SmartCharger)

        async def refusal() -> str | None:
            site = (await admin.get("/api/v1/sites/home")).json()
            return next(c["refuses_limits"] for c in site["chargers"] if c["cp_id"] == "cp-old")

        assert "SmartCharging" in (await polled(refusal, bool, seconds=5) or "")
        await pay_and_charge(admin, old, "cp-old")  # its session is not broken
        await pay_and_charge(admin, new, "cp-new")
        # cp-old charges untouched, counted at its 11 kW: cp-new shares only what is left.
        await settled(lambda: new.limit(1) == 11_000.0)
        assert not [a for a, _ in old.asked if a.endswith("ChargingProfile")]
        await shares(admin, "cp_id", "watts", "outcome", expected=[
            ("cp-old", 11_000, "rejected"), ("cp-new", 11_000, "accepted")])
        assert app.services is not None
        audit = [e["payload"] for e in await app.services.event_log.recent("cp-old")
                 if e["kind"] == "power_limit_refused"]
        assert audit and audit[0]["outcome"] == "not_supported"
        assert (await admin.get("/api/v1/ledger/check")).json()["ok"] is True


async def test_a_chargers_cap_is_its_max_profile(app: StromApp,
                                                 admin: httpx.AsyncClient) -> None:
    await _site(admin, "cp-a")
    async with running_charger(ocpp_url(app), "cp-a", 1, SmartCharger) as a:
        capped = await admin.put("/api/v1/sites/home/chargers/cp-a", json={"max_w": 7_400})
        assert capped.status_code == 200
        assert a.limit(0) == 7_400.0  # ChargePointMaxProfile on connector 0
        profile = next(args for action, args in reversed(a.asked)
                       if action == "SetChargingProfile")["cs_charging_profiles"]
        assert profile["charging_profile_purpose"] == "ChargePointMaxProfile"
        await pay_and_charge(admin, a, "cp-a")
        await settled(lambda: a.limit(1) == 7_400.0)  # its session: never above the cap
        await admin.put("/api/v1/sites/home/chargers/cp-a", json={})
        assert a.limit(0) is None  # the cap lifted: ClearChargingProfile
        await settled(lambda: a.limit(1) == 22_000.0)
        # `strom site` writes only the store: the running strom's sweep takes it up.
        assert app.services is not None and app.services.site_power is not None
        await SiteRepository(app.services.db).put("home", name="home", limit_w=5_000,
                                                   min_w=1_380)
        await app.services.site_power.sweep()
        await settled(lambda: a.limit(1) == 5_000.0)
        assert (await admin.delete("/api/v1/sites/home")).status_code == 204
        await settled(lambda: a.limit(1) is None)  # no site: strom's limit is gone
        assert (await admin.get("/api/v1/sites/home")).status_code == 404


async def test_a_session_whose_minimum_does_not_fit_waits_until_one_ends(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    await admin.put("/api/v1/sites/home", json={"limit_w": 2_000, "min_w": 1_380})
    for cp_id in ("cp-a", "cp-b"):
        await add(admin, cp_id, connectors=1)
        await admin.put(f"/api/v1/sites/home/chargers/{cp_id}", json={})
    url = ocpp_url(app)
    async with running_charger(url, "cp-a", 1, SmartCharger) as a, \
            running_charger(url, "cp-b", 1, SmartCharger) as b:
        assert isinstance(a, SmartCharger) and isinstance(b, SmartCharger)
        first = await pay_and_charge(admin, a, "cp-a")
        await pay_and_charge(admin, b, "cp-b")
        # Two minimums of 1380 W do not fit in 2 kW: the later session waits at 0 W.
        await settled(lambda: (a.limit(1), b.limit(1)) == (2_000.0, 0.0))
        await shares(admin, "cp_id", "watts", "waiting", expected=[
            ("cp-a", 2_000, False), ("cp-b", 0, True)])
        await admin.post(f"/api/v1/sessions/{first['id']}/stop")
        await settled(lambda: b.limit(1) == 2_000.0)  # its turn
        assert (await admin.get("/api/v1/ledger/check")).json()["ok"] is True


async def test_a_1_6_and_a_2_0_1_charger_share_one_site(app: StromApp,
                                                        admin: httpx.AsyncClient) -> None:
    """The site is protocol-neutral: the 2.0.1 charger (the library's v201 ChargePoint) gets
    its share as a 2.0.1 TxDefaultProfile of its EVSE."""
    await _site(admin, "cp-16", "cp-201")
    url = ocpp_url(app)
    async with running_charger(url, "cp-16", 1, SmartCharger) as old, \
            running_charger201(url, "cp-201", evses=1) as new:
        assert isinstance(old, SmartCharger)
        await pay_and_charge(admin, old, "cp-16")
        pay = (await admin.get("/lnurlp/cp-201/callback", params={"amount": 2_000_000})).json()
        assert (await admin.post("/api/v1/dev/pay", json={"bolt11": pay["pr"]})).is_success
        await wait_for_session(admin, "cp-201", "charging")

        def limit201() -> float | None:
            sent = [args["profile"] for action, args in new.asked
                    if action == "SetChargingProfile" and args["evse_id"] == 1]
            if not sent:
                return None
            return float(sent[-1]["charging_schedule"][0]["charging_schedule_period"][0]["limit"])

        await settled(lambda: (old.limit(1), limit201()) == (11_000.0, 11_000.0))
        await shares(admin, "cp_id", "watts", "outcome", "read_back_w", expected=[
            ("cp-16", 11_000, "accepted", 11_000.0), ("cp-201", 11_000, "accepted", None)])

"""Page wording (shared by the HTML and its live updates) and the pages' HTTP behaviour."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from strom.app import StromApp
from strom.web.page_views import availability, hms, price, sat, session_view

BASE = {"state": "charging", "paid_msat": 20_000_000, "consumed_msat": 1_234_567,
        "refunded_msat": 0, "forfeited_msat": 0, "refundable_msat": 18_765_433,
        "energy_wh": 4115.2, "power_w": 7400.0, "soc_percent": 41.6,
        "started_at": "2026-05-14T10:00:00.000Z", "stopped_at": None, "stop_reason": None,
        "failure_reason": None, "lnurlw": "LNURL1PAYERSLINK"}


def test_numbers_read_like_a_person_writes_them() -> None:
    assert sat(1_234_567) == "1,234 sat" and sat(999) == "0 sat"
    assert price(300_000) == "300 sat" and price(1_500) == "1.500 sat"
    assert hms(0) == "0:00:00" and hms(3_725.9) == "1:02:05" and hms(-3) == "0:00:00"


def test_charging_session_view() -> None:
    view = session_view(BASE, now=datetime(2026, 5, 14, 10, 42, 7, tzinfo=UTC))
    assert view.texts["state"] == "Charging"
    assert (view.texts["energy"], view.texts["power"], view.texts["soc"]) == ("4.12", "7.4", "42")
    assert view.texts["elapsed"] == "0:42:07" and view.texts["started"] == "10:00 UTC"
    assert view.texts["consumed"] == "1,234 sat" and view.texts["refundable"] == "18,765 sat"
    assert view.texts["stop-title"] == "Stop and refund"
    assert view.shown == {"stop-section": True, "topup-section": True,
                          "receipt-section": False, "waiting-section": False,
                          "reserve-section": False}
    assert view.bars["budget"] == (1_234_567, 20_000_000)


def test_receipt_says_where_the_money_is() -> None:
    stopped = {**BASE, "state": "stopped", "stopped_at": "2026-05-14T11:30:00.000Z",
               "stop_reason": "budget used up", "power_w": 0.0}
    view = session_view(stopped)
    assert view.texts["elapsed"] == "1:30:00" and view.texts["power"] == "–"
    assert view.texts["end-words"] == "Charging ended: budget used up."
    assert view.texts["refund-words"].startswith("18,765 sat are waiting for you")
    assert view.texts["stop-title"] == "Get your refund"
    assert view.shown["stop-section"] and view.shown["receipt-section"]
    assert not view.shown["topup-section"]
    refunded = {**stopped, "state": "refunded", "refunded_msat": 18_765_433, "refundable_msat": 0}
    view = session_view(refunded)
    assert view.texts["refund-words"] == "18,765 sat refunded to your wallet."
    assert not view.shown["stop-section"]

    settled = {**stopped, "state": "settled", "consumed_msat": 20_000_000, "refundable_msat": 0}
    assert session_view(settled).texts["refund-words"].startswith("Nothing to refund")
    failed = {**BASE, "state": "failed", "consumed_msat": 0, "refundable_msat": 20_000_000,
              "started_at": None, "failure_reason": "charger offline"}
    view = session_view(failed)
    assert view.texts["end-words"] == "The charger did not start (charger offline)."
    assert view.texts["elapsed"] == "–" and view.shown["stop-section"]


def test_a_stop_held_while_starting_offers_no_refund_yet() -> None:
    """The payer stopped before the charger started: the page says the stop is being applied
    and shows no stop & refund code (nor a top-up) until the charger's answer is in."""
    held = {**BASE, "state": "starting", "consumed_msat": 0, "refundable_msat": 20_000_000,
            "started_at": None, "power_w": None, "stop_reason": "stopped by the driver",
            "stop_requested": True}
    view = session_view(held)
    assert view.texts["state"].startswith("Stopping: the charger has not answered the start")
    assert not view.shown["stop-section"] and not view.shown["topup-section"]
    assert not view.shown["receipt-section"]
    starting = session_view({**held, "stop_reason": None, "stop_requested": False})
    assert starting.texts["state"] == "Starting the charger" and starting.shown["stop-section"]


def test_the_read_only_view_offers_no_stop_and_refund() -> None:
    """The view link's JSON has no `lnurlw`: nothing on its page stops or refunds."""
    for state in ("charging", "stopped"):
        view = session_view({**BASE, "state": state, "lnurlw": None})
        assert not view.shown["stop-section"]
    assert view.texts["refund-words"] == "18,765 sat are waiting for the payer."


def test_availability_words() -> None:
    def cp(status: str, *connectors: str) -> dict:
        return {"status": status, "connectors": [{"id": i + 1, "status": s}
                                                 for i, s in enumerate(connectors)]}
    assert "offline" in availability(cp("Offline", "Offline"))
    assert availability(cp("Available", "Available")).startswith("The connector is free")
    assert availability(cp("Available", "Charging", "Preparing")).startswith("1 of 2 connectors")
    assert availability(cp("Charging", "Charging", "Faulted")) == "No connector is free right now."


async def test_pages_send_a_same_origin_policy_and_404s_for_people_and_programs(app: StromApp) -> None:
    assert app.services is not None
    await app.services.charge_points.add("cp-h", name="Header Lane", lat=1.0, lon=2.0)
    async with httpx.AsyncClient(base_url=app.http_url) as http:
        for path in ("/", "/cp/cp-h", "/cp/cp-h/sticker"):
            page = await http.get(path)
            assert page.status_code == 200
            policy = page.headers["content-security-policy"]
            assert "default-src 'self'" in policy and "script-src 'self'" in policy
            assert page.headers["referrer-policy"] == "no-referrer"
        browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
        missing_cp = await http.get("/cp/nope", headers=browser)
        missing_session = await http.get("/s/not-a-token", headers=browser)
        missing_json = await http.get("/s/not-a-token", headers={"Accept": "application/json"})
        missing_other = await http.get("/cp/nope")
    assert missing_cp.status_code == 404 and "No such charge point" in missing_cp.text
    assert missing_session.status_code == 404 and "No such charging session" in missing_session.text
    assert missing_json.status_code == 404 and missing_json.json() == {"error": "no such session"}
    assert missing_other.json() == {"error": "unknown charge point"}  # programs get JSON

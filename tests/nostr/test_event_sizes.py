"""Every event strom publishes fits common relay limits (issue 19, "Events fit").

Public relays refuse events over ordinary limits (strfry, nostr-rs-relay and paid relays
commonly cap content at 4 KB, the whole event at 16 KB and tags at 100). Each test builds the
worst case strom accepts and measures the serialized event.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
from nostr_sdk import Event, EventBuilder, Filter, Keys, Kind, Tag

from bots import events
from bots.dm import fit_text, reply
from bots.signed import SignedEvent
from strom.app import StromApp
from strom.lnurl.links import pay_links
from strom.nostr.zap import MAX_REQUEST_BYTES, parse_zap_request, zap_receipt
from strom.tariffs.dynamic import PriceSlot
from strom.tariffs.model import Tariff
from strom.views import document_url, geohash
from tests.nostr.conftest import CP, Driver
from tests.nostr.test_zaps_and_dms import AMOUNT, zap_request
from tests.polling import eventually

MAX_CONTENT, MAX_EVENT, MAX_TAGS = 4096, 16384, 100
# The longest the operator can configure: 48-character id, 100-character name, 16 connectors.
PUBLIC_URL = "https://" + "charging-cooperative-" * 4 + ".example.ch/strom"
CP_ID = "C" * 48
NAME = '"😀\\' * 33 + "x"   # escapes and 4-byte characters: the longest JSON for 100 characters
CONNECTORS = 16
SLOTS = 96 * 2  # two days of quarter-hour slots (day-ahead prices arrive for tomorrow)


def assert_fits(built: Event | SignedEvent) -> None:
    # What strom signed itself, as nostr-sdk reads and checks it.
    event = built.sdk() if isinstance(built, SignedEvent) else built
    assert event.verify()
    content = event.content().encode()
    assert len(content) <= MAX_CONTENT, f"kind {event.kind().as_u16()} content {len(content)} B"
    size = len(event.as_json().encode())
    assert size <= MAX_EVENT, f"kind {event.kind().as_u16()} event {size} B"
    assert len(event.tags()) <= MAX_TAGS


def worst_charge_point() -> tuple[dict[str, object], dict[str, object]]:
    """The charge point JSON (as `charge_point_json` makes it) and its market, 15-minute slots."""
    start = datetime(2026, 11, 27, tzinfo=UTC)
    slots = [PriceSlot(start + timedelta(minutes=15 * i), start + timedelta(minutes=15 * i + 15),
                       -1234.567891, 9_999_999_999, "ceiling") for i in range(SLOTS)]
    tariff = Tariff(price_msat_per_kwh=9_999_999_999, session_fee_msat=999_999_999,
                    price_msat_per_minute=999_999, source="dynamic",
                    valid_until="2026-11-27T00:15:00Z", lock="slot",
                    later_prices=[[s.to_json()["start"], s.to_json()["end"], 9_999_999_999]
                                  for s in slots],
                    basis={"spot_eur_per_mwh": -1234.567891, "btc_eur": 123456.789,
                           "eur_per_kwh": 1.234567, "bound": "ceiling",
                           "slot_start": "2026-11-27T00:00:00Z", "slot_end": "2026-11-27T00:15:00Z",
                           "spot_age_seconds": 86400, "btc_age_seconds": 86400})
    links = pay_links(PUBLIC_URL, CP_ID)
    cp = {"id": CP_ID, "name": NAME, "pubkey": "a" * 64, "npub": "npub1" + "q" * 58,
          "lud16": links.address, "lnurl": links.lnurl, "url": f"{PUBLIC_URL}/cp/{CP_ID}",
          "status": "SuspendedEV",
          "location": {"lat": -89.123456789, "lon": -179.123456789,
                       "geohash": geohash(-89.123456789, -179.123456789)},
          "connectors": [{"id": n, "status": "SuspendedEV",
                          "lnurl": pay_links(PUBLIC_URL, CP_ID, n).lnurl}
                         for n in range(1, CONNECTORS + 1)],
          "tariff": tariff.to_json()}
    market = {"feeds": {"mode": "dynamic", "fallback": False, "reason": None,
                        "spot_age_seconds": 86400.0, "btc_age_seconds": 86400.0,
                        "spot_error": "failing", "btc_error": "failing", "btc_eur": 123456.789},
              "schedule": [s.to_json() for s in slots]}
    return cp, market


def test_status_of_a_quarter_hour_tariff_fits_and_links_the_full_schedule() -> None:
    cp, market = worst_charge_point()
    url = document_url(PUBLIC_URL, CP_ID)
    event = events.status(Keys.generate(), cp, 1_800_000_000, market, url)
    assert_fits(event)
    event = event.sdk()
    content = json.loads(event.content())
    assert content["tariff"]["price_msat_per_kwh"] == 9_999_999_999
    assert content["schedule"] == market["schedule"][:events.STATUS_SLOTS]  # type: ignore[index]
    assert content["tariff"]["later_prices"] == cp["tariff"]["later_prices"][  # type: ignore[index]
        :events.STATUS_SLOTS]
    assert content["schedule_url"] == url
    assert [c["status"] for c in content["connectors"]] == ["SuspendedEV"] * CONNECTORS
    # The contract's tags are all there (§5).
    tags = {t.to_vec()[0] for t in event.tags()}
    assert {"d", "status", "connector", "g", "location", "price", "lnurl", "alt"} <= tags


def test_profile_and_relay_lists_fit() -> None:
    cp, _ = worst_charge_point()
    keys = Keys.generate()
    assert_fits(events.profile(keys, cp, "x" * 200))
    relays = [f"wss://relay-{n}.{'r' * 100}.example" for n in range(20)]
    assert_fits(events.relay_list(keys, relays))
    assert_fits(events.dm_relays(keys, relays))


def test_direct_messages_fit_whatever_the_text() -> None:
    keys, driver = Keys.generate(), Keys.generate().public_key().to_hex()
    for text in ('"\\\n' * 5000, "😀" * 5000, "\x01" * 5000, "x" * 50_000):
        for protocol in ("nip17", "nip04"):
            assert_fits(reply(keys, driver, text, protocol))  # type: ignore[arg-type]
    assert fit_text("status: Available") == "status: Available"  # short answers unchanged


def test_zap_receipt_of_the_largest_accepted_request_fits() -> None:
    cp_keys, payer = Keys.generate(), Keys.generate()
    recipient = cp_keys.public_key().to_hex()
    tags = [["p", recipient], ["amount", "21000"], ["relays", "wss://relay.example"],
            ["a", f"30333:{recipient}:{CP_ID}"], ["e", "e" * 64]]

    def request(content: str) -> str:
        return (EventBuilder(Kind(9734), content).tags([Tag.parse(t) for t in tags])
                .finalize(payer).as_json())

    # The biggest request the callback takes, made of characters JSON escapes.
    low, high = 0, MAX_REQUEST_BYTES
    while low < high:
        middle = (low + high + 1) // 2
        try:
            parse_zap_request(request('"' * middle), recipient, 21000)
            low = middle
        except Exception:
            high = middle - 1
    biggest = parse_zap_request(request('"' * low), recipient, 21000)
    bolt11 = "lnbc210n1" + "q" * 1500  # an invoice with route hints
    assert_fits(zap_receipt(cp_keys, biggest, bolt11, "f" * 64, datetime.now(UTC)))


async def test_callback_refuses_a_zap_request_whose_receipt_would_not_fit(
        nostr_app: tuple[StromApp, Keys], http: httpx.AsyncClient) -> None:
    app, cp_keys = nostr_app
    # Under 8 KB as sent, over 8 KB once escaped into the receipt's description tag.
    request = zap_request(Keys.generate(), cp_keys.public_key().to_hex(), app.relay.url,
                          content='"' * 3000)
    assert len(request.encode()) < MAX_REQUEST_BYTES
    answer = (await http.get(f"/lnurlp/{CP}/callback",
                             params={"amount": AMOUNT, "nostr": request})).json()
    assert answer["status"] == "ERROR" and "too large" in answer["reason"], answer


async def test_published_status_links_the_charge_points_document(
        nostr_app: tuple[StromApp, Keys], driver: Driver, http: httpx.AsyncClient) -> None:
    app, cp_keys = nostr_app
    found = await eventually(lambda: driver.client.fetch(
        [Filter().kinds([Kind(events.STATUS)]).author(cp_keys.public_key())]), bool)
    content = json.loads(found[0].content())
    assert app.services is not None
    base = app.services.settings.public_url
    assert content["schedule_url"] == f"{base}/api/v1/public/charge-points/{CP}"
    document = (await http.get(content["schedule_url"].removeprefix(base))).json()
    assert document["id"] == CP and document["tariff"] == content["tariff"]


def test_status_with_every_connector_reserved_still_fits() -> None:
    """Paid reservations (issue 21) add `reserved_until` to connectors: the worst charge point
    with all 16 reserved still fits, the price horizon shortened if need be."""
    cp, market = worst_charge_point()
    for connector in cp["connectors"]:  # type: ignore[union-attr]
        connector["reserved_until"] = "2026-11-27T23:59:59.999Z"
    event = events.status(Keys.generate(), cp, 1_800_000_000, market,
                          document_url(PUBLIC_URL, CP_ID)).sdk()
    assert_fits(event)
    content = json.loads(event.content())
    assert [c["reserved_until"] for c in content["connectors"]] == \
        ["2026-11-27T23:59:59.999Z"] * CONNECTORS
    assert content["schedule"]

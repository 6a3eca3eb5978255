"""Each charge point on nostr: profile, relay lists, the 30333 status event, NIP-05."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest
from nostr_sdk import Client, Event, Filter, Keys, Kind, RelayUrl, ReqTarget

from bots import nostr_bots
from bots.signed import SignedEvent
from strom.app import StromApp
from strom.events import ConnectorStatusChanged
from tests.nostr.conftest import CP


async def fetch(app: StromApp, flt: Filter) -> list[Event]:
    assert app.relay is not None
    client = Client()
    await client.add_relay(RelayUrl.parse(app.relay.url))
    await client.connect()
    try:
        return await client.fetch_events(ReqTarget.auto([flt]), timeout=timedelta(seconds=3))
    finally:
        await client.shutdown()


async def wait_for(app: StromApp, flt: Filter, check) -> Event:  # noqa: ANN001
    async with asyncio.timeout(10):
        while True:
            for event in await fetch(app, flt):
                if check(event):
                    return event
            await asyncio.sleep(0.2)


def tags(event: Event) -> list[list[str]]:
    return [t.to_vec() for t in event.tags()]


async def test_profile_relays_and_status_are_published(nostr_app: tuple[StromApp, Keys]) -> None:
    app, keys = nostr_app
    author = keys.public_key()
    profile = await wait_for(app, Filter().kinds([Kind(0)]).author(author), lambda e: True)
    content = json.loads(profile.content())
    host = app.services.settings.public_url.split("//")[1]
    assert content["lud16"] == f"{CP}@{host}" and content["nip05"] == f"{CP}@{host}"
    assert content["website"].endswith(f"/cp/{CP}")
    relay_list = await wait_for(app, Filter().kinds([Kind(10002)]).author(author), lambda e: True)
    assert ["r", app.relay.url] in tags(relay_list)
    dm_relays = await wait_for(app, Filter().kinds([Kind(10050)]).author(author), lambda e: True)
    assert ["relay", app.relay.url] in tags(dm_relays)

    status = await wait_for(app, Filter().kinds([Kind(30333)]).author(author),
                            lambda e: ["status", "Available"] in tags(e))
    t = tags(status)
    assert t[0] == ["d", CP]
    assert ["connector", "1", "Available"] in t and ["connector", "2", "Available"] in t
    geohashes = [x[1] for x in t if x[0] == "g"]
    assert [len(g) for g in geohashes] == list(range(9, 0, -1))
    assert geohashes[0].startswith("u0qj")  # Zurich
    assert ["location", "47.3769,8.5417"] in t
    assert ["price", "300000", "msat/kWh"] in t
    assert any(x[0] == "lnurl" and x[1].startswith("lnurl1") for x in t)
    assert any(x[0] == "alt" for x in t)
    body = json.loads(status.content())
    assert body["tariff"]["price_msat_per_kwh"] == 300000 and body["id"] == CP


async def test_status_is_republished_on_change(nostr_app: tuple[StromApp, Keys]) -> None:
    app, keys = nostr_app
    assert app.services is not None
    await wait_for(app, Filter().kinds([Kind(30333)]).author(keys.public_key()), lambda e: True)
    await app.services.charge_points.set_connected(CP, True)
    await app.services.charge_points.set_connector_status(CP, 1, "Faulted", "GroundFailure")
    app.services.bus.publish(ConnectorStatusChanged(CP, 1, "Faulted", "GroundFailure"))
    updated = await wait_for(app, Filter().kinds([Kind(30333)]).author(keys.public_key()),
                             lambda e: ["connector", "1", "Faulted"] in tags(e))
    assert ["d", CP] in tags(updated)  # replaced, still one addressable event
    assert len(await fetch(app, Filter().kinds([Kind(30333)]).author(keys.public_key()))) == 1


async def test_nip05(nostr_app: tuple[StromApp, Keys]) -> None:
    app, keys = nostr_app
    async with httpx.AsyncClient(base_url=app.http_url) as http:
        one = (await http.get("/.well-known/nostr.json", params={"name": CP})).json()
        none = (await http.get("/.well-known/nostr.json", params={"name": "nobody"})).json()
    assert one["names"] == {CP: keys.public_key().to_hex()}
    assert one["relays"][keys.public_key().to_hex()] == [app.relay.url]
    assert none == {"names": {}, "relays": {}}


async def test_a_burst_of_changes_is_one_status_event_with_the_last(
        nostr_app: tuple[StromApp, Keys]) -> None:
    """A boot brings several changes at once: they are signed and published once, as they end."""
    app, keys = nostr_app
    assert app.services is not None and app.bots is not None
    # The boot's own burst first: published, and its half-second window over.
    await wait_for(app, Filter().kinds([Kind(30333)]).author(keys.public_key()),
                   lambda e: ["connector", "2", "Available"] in tags(e))
    await asyncio.sleep(0.8)
    published: list[Event] = []
    publish = app.bots._client.publish

    async def counting(event: SignedEvent) -> bool:  # what the bots sign themselves
        if event.kind == 30333 and event.pubkey == keys.public_key().to_hex():
            published.append(event.sdk())
        return await publish(event)

    app.bots._client.publish = counting  # type: ignore[method-assign]
    for status in ("Preparing", "Faulted", "Unavailable"):
        await app.services.charge_points.set_connector_status(CP, 2, status, "NoError")
        app.services.bus.publish(ConnectorStatusChanged(CP, 2, status, "NoError"))
    await wait_for(app, Filter().kinds([Kind(30333)]).author(keys.public_key()),
                   lambda e: ["connector", "2", "Unavailable"] in tags(e))
    await asyncio.sleep(0.3)
    assert len(published) == 1 and ["connector", "2", "Unavailable"] in tags(published[0])


async def test_the_start_announces_chargers_side_by_side(
        nostr_app: tuple[StromApp, Keys], monkeypatch: pytest.MonkeyPatch) -> None:
    """One charger after the other, 1,000 chargers' announcements were 4,000 commit round
    trips at the relay; side by side they are committed together. A failing one stops none."""
    app, _ = nostr_app
    assert app.bots is not None
    bots_ = app.bots
    identity = bots_._identities[CP]
    fleet = {f"cp-{n}": identity for n in range(100)}
    at_once, most, announced = 0, 0, []

    async def announce(cp_id: str) -> None:
        nonlocal at_once, most
        at_once += 1
        most = max(most, at_once)
        await asyncio.sleep(0.01)
        at_once -= 1
        announced.append(cp_id)
        if cp_id == "cp-3":
            raise RuntimeError("this charger's view could not be read")

    monkeypatch.setattr(bots_, "_announce", announce)
    monkeypatch.setattr(bots_, "_identities", fleet)
    await asyncio.wait_for(bots_._announce_all(), 1.0)  # one after the other: 1 s and more
    assert sorted(announced) == sorted(fleet) and most == nostr_bots.ANNOUNCE_AT_ONCE

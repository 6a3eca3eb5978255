"""A running strom with one registered, keyed charge point, and a driver on nostr."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from nostr_sdk import Event, Filter, Keys, Kind, UnsignedEvent, UnwrappedGift, uniffi_set_event_loop

from bots.client import NostrClient
from strom.app import StromApp
from strom.config import Settings
from strom.keys import ensure_cp_key, keys_path, load_identity
from strom.paths import database_path, ensure_data_dir
from strom.simulator.charge_point import SimulatedChargePoint
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from tests.conftest import free_settings
from tests.polling import eventually

CP = "cp-z"


async def register(data_dir: Path, cp_id: str = CP) -> Keys:
    db = await Database.open(database_path(ensure_data_dir(data_dir)))
    await ChargePointRepository(db).add(cp_id, name="Zap Charger", lat=47.3769, lon=8.5417,
                                        num_connectors=2)
    await db.close()
    path = keys_path(data_dir, "nostr-keys.toml")
    ensure_cp_key(path, cp_id)
    return load_identity(path, cp_id).keys


class Driver:
    """A nostr user with their own key, reading what is addressed to them."""

    def __init__(self, relay_url: str) -> None:
        self.keys = Keys.generate()
        self.inbox: asyncio.Queue[Event] = asyncio.Queue()
        self.client = NostrClient([relay_url], lambda: [self.keys], self.inbox.put)
        self.received = 0  # NIP-17 messages read by `dm` so far
        self._unread: list[tuple[int, str, str]] = []  # (number, sender, text) not taken yet

    @property
    def pubkey(self) -> str:
        return self.keys.public_key().to_hex()

    async def start(self) -> None:
        await self.client.start()
        await self.client.subscribe("inbox", [
            Filter().kinds([Kind(4), Kind(1059)]).pubkeys([self.keys.public_key()]),
            Filter().kinds([Kind(9735)])])  # receipts are p-tagged to the zapped charger

    async def next(self, kind: int) -> Event:
        async with asyncio.timeout(10):
            while True:
                event = await self.inbox.get()
                if event.kind().as_u16() == kind:
                    return event

    async def dm(self, starts: str = "", *, sender: str | None = None, after: int = 0) -> str:
        """Take the first NIP-17 message not taken yet that starts with `starts` (from `sender`,
        and read as number `after` or later), waiting for it.

        Messages that do not match stay for a later call: relays may deliver two DMs in either
        order, so a test must never lose one because another came first.
        """
        while True:
            for index, (number, who, text) in enumerate(self._unread):
                if number >= after and text.startswith(starts) and sender in (None, who):
                    del self._unread[index]
                    return text
            gift = UnwrappedGift.from_gift_wrap(self.keys, await self.next(1059))
            self._unread.append((self.received, gift.sender().to_hex(), gift.rumor().content()))
            self.received += 1

    async def rumors(self, count: int) -> list[UnsignedEvent]:
        """The next `count` NIP-17 messages, as a client shows them: sorted by the rumor's date.

        Relays may hand over gift wraps in any order (their own dates are random), so a test
        must never rely on arrival order.
        """
        rumors = [UnwrappedGift.from_gift_wrap(self.keys, await self.next(1059)).rumor()
                  for _ in range(count)]
        return sorted(rumors, key=lambda rumor: rumor.created_at().as_secs())


async def _ignore(event: Event) -> None:
    return None


@asynccontextmanager
async def client_on(*relays: str, keys: Keys | None = None) -> AsyncIterator[NostrClient]:
    """A NostrClient (strom's own class) connected to `relays`, handling nothing it receives."""
    uniffi_set_event_loop(asyncio.get_running_loop())
    signer = keys or Keys.generate()
    client = NostrClient(list(relays), lambda: [signer], _ignore)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def keyed_strom(data_dir: Path,
                      settings: Settings | None = None) -> AsyncIterator[tuple[StromApp, Keys]]:
    """strom running with the keyed charge point `CP` registered (no charger connected yet)."""
    uniffi_set_event_loop(asyncio.get_running_loop())
    cp_keys = await register(data_dir)
    async with StromApp(settings or free_settings(), data_dir) as app:
        assert app.services is not None and app.services.central_system is not None
        yield app, cp_keys


async def cp_available(app: StromApp) -> None:
    """Until strom has `CP` connected and Available."""
    assert app.services is not None
    charge_points = app.services.charge_points
    await eventually(lambda: charge_points.get(CP),
                     lambda cp: cp is not None and cp.status == "Available")


@pytest.fixture
async def nostr_app(data_dir: Path) -> AsyncIterator[tuple[StromApp, Keys]]:
    async with keyed_strom(data_dir) as (app, cp_keys):
        assert app.services is not None and app.services.central_system is not None
        charger = SimulatedChargePoint(CP, app.services.central_system.url, connectors=2,
                                       meter_interval=0.2, speed=60.0)
        await charger.start()
        await charger.wait_for(lambda: charger.booted)
        await cp_available(app)
        yield app, cp_keys
        await charger.close()


@pytest.fixture
async def driver(nostr_app: tuple[StromApp, Keys]) -> AsyncIterator[Driver]:
    app, _ = nostr_app
    assert app.relay is not None
    person = Driver(app.relay.url)
    await person.start()
    yield person
    await person.client.close()


@pytest.fixture
async def http(nostr_app: tuple[StromApp, Keys]) -> AsyncIterator[httpx.AsyncClient]:
    app, _ = nostr_app
    async with httpx.AsyncClient(base_url=app.http_url, timeout=20) as client:
        yield client

"""A real central system on a free port, over a real store, for OCPP tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from strom.config import OcppSettings
from strom.events import EventBus
from strom.ocpp.central_system import CentralSystem
from strom.security import hash_password
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.store.event_log import EventLogRepository
from strom.store.transactions import TransactionRepository

PASSWORD = "correct horse battery staple"


@dataclass
class Ocpp:
    central: CentralSystem
    charge_points: ChargePointRepository
    transactions: TransactionRepository
    event_log: EventLogRepository
    bus: EventBus

    def url(self, cp_id: str) -> str:
        return f"ws://127.0.0.1:{self.central.port}/ocpp/{cp_id}"


async def start_ocpp(db: Database, **settings: object) -> tuple[Ocpp, EventBus]:
    bus = EventBus()
    charge_points = ChargePointRepository(db)
    for cp_id in ("cp-1", "cp-2"):
        await charge_points.add(cp_id, name=cp_id, lat=52.5, lon=13.4, num_connectors=2)
    await charge_points.add("cp-pw", name="with password", lat=52.5, lon=13.4,
                            password_hash=hash_password(PASSWORD))
    transactions = TransactionRepository(db)
    event_log = EventLogRepository(db)
    central = CentralSystem(OcppSettings(port=0, **settings), charge_points, transactions,
                            event_log, bus)
    await central.start()
    return Ocpp(central, charge_points, transactions, event_log, bus), bus


@pytest.fixture
async def ocpp(db: Database) -> AsyncIterator[Ocpp]:
    server, bus = await start_ocpp(db, call_timeout=2.0)
    yield server
    await server.central.close()
    await bus.close()


class Accepting:
    """An authorizer that knows every idTag."""

    async def authorize(self, cp_id: str, connector_id: int | None, id_tag: str) -> str:
        return "Accepted"


@pytest.fixture
def accepting(ocpp: Ocpp) -> Ocpp:
    ocpp.central.authorizer = Accepting()
    return ocpp

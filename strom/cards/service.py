"""The owner cards as one service: the registry, card sessions and the chargers' lists, and
what the interfaces read of them (they never reach into the repository)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from strom.cards.charging import CardCharging
from strom.cards.local_list import LocalListSync
from strom.cards.registry import CardRegistry
from strom.chargers.control import ChargerControl
from strom.config import SessionSettings
from strom.events import EventBus
from strom.store.cards import Account, Card, CardRepository, CardSession, ChargerList
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.tariffs.model import Tariff
from strom.tariffs.pricing import TariffService


@dataclass
class CardService:
    registry: CardRegistry
    charging: CardCharging
    local_list: LocalListSync

    @classmethod
    def build(cls, *, db: Database, bus: EventBus, chargers: ChargerControl,
              connected: Callable[[], Iterable[str]], charge_points: ChargePointRepository,
              tariffs: TariffService, settings: SessionSettings,
              meter_interval: float) -> CardService:
        """`connected()`: the chargers connected now (their lists are kept)."""
        repo = CardRepository(db)
        local_list = LocalListSync(repo, bus, chargers, connected)

        async def tariff_of(cp_id: str) -> Tariff | None:
            cp = await charge_points.get(cp_id)
            return tariffs.current(cp) if cp is not None else None

        charging = CardCharging(repo=repo, bus=bus, chargers=chargers, tariff_of=tariff_of,
                                settings=settings, meter_interval=meter_interval,
                                on_list_change=local_list.changed)
        return cls(CardRegistry(repo, on_change=local_list.changed), charging, local_list)

    async def start(self) -> None:
        await self.charging.start()
        await self.local_list.start()

    async def close(self) -> None:
        await self.local_list.close()
        await self.charging.close()

    async def cards(self) -> list[Card]:
        """Every card, removed ones included (they stay as the lists' tombstones)."""
        return await self.registry.repo.cards()

    async def accounts(self) -> list[Account]:
        return await self.registry.repo.accounts()

    async def sessions(self, *, limit: int, offset: int) -> tuple[list[CardSession], int]:
        """One page of card sessions, newest first, and how many there are."""
        return await self.registry.repo.sessions(limit=limit, offset=offset)

    async def local_lists(self) -> tuple[int, list[ChargerList]]:
        """The card list's version and what each charger's list is known to hold."""
        repo = self.registry.repo
        return await repo.list_version(), await repo.charger_lists()

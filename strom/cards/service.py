"""The owner cards as one service: the registry, card sessions and the chargers' lists."""

from __future__ import annotations

from dataclasses import dataclass

from strom.cards.charging import CardCharging, StopControl
from strom.cards.local_list import LocalListControl, LocalListSync
from strom.cards.registry import CardRegistry
from strom.config import SessionSettings
from strom.events import EventBus
from strom.store.cards import CardRepository
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
    def build(cls, *, db: Database, bus: EventBus, chargers: StopControl,
              lists: LocalListControl, charge_points: ChargePointRepository,
              tariffs: TariffService, settings: SessionSettings,
              meter_interval: float) -> CardService:
        repo = CardRepository(db)
        local_list = LocalListSync(repo, bus, lists)

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

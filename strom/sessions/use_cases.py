"""The use cases every interface calls (web, nostr bots, API; OCPI and OCPP 2.0.1 next).

Each is one typed call whose refusals are `strom.sessions.refusals.Refused`; interfaces only
translate (docs/architecture.md, "Use cases"). Built once by the app, after the sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from strom.chargers.control import ChargerControl
from strom.config import Settings
from strom.events import EventBus
from strom.keys import KeyRing
from strom.sessions.address_refunds import AddressRefundService
from strom.sessions.checkout import Checkout
from strom.sessions.lifecycle import SessionService
from strom.sessions.payer_stop import PayerStop
from strom.sessions.refunds import RefundService
from strom.sessions.reservations import Reservations
from strom.sessions.topup import TopUps
from strom.sessions.withdrawals import Withdrawals
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.store.zaps import ZapRepository
from strom.tariffs.pricing import TariffService


@dataclass(frozen=True, slots=True)
class UseCases:
    checkout: Checkout  # pay: a new session's invoice, or a zap's
    topups: TopUps  # pay into a running session
    stops: PayerStop  # stop by the payer
    withdrawals: Withdrawals  # refund by withdraw link
    address_refunds: AddressRefundService  # refund to the payer's lightning address
    reservations: Reservations  # pay to hold a connector, cancel (issue 21)

    @classmethod
    def build(cls, *, settings: Settings, charge_points: ChargePointRepository,
              sessions: SessionService, tariffs: TariffService, refunds: RefundService,
              address_refunds: AddressRefundService, zaps: ZapRepository,
              keyring: KeyRing | None, db: Database, bus: EventBus,
              chargers: ChargerControl,
              takes_limits: Callable[[str], bool] = lambda cp_id: True) -> UseCases:
        stops = PayerStop(sessions)
        reservations = Reservations(db=db, sessions=sessions, charge_points=charge_points,
                                    tariffs=tariffs, chargers=chargers, bus=bus,
                                    settings=settings)
        return cls(
            checkout=Checkout(charge_points=charge_points, sessions=sessions, tariffs=tariffs,
                              zaps=zaps, keyring=keyring, settings=settings,
                              reservations=reservations, takes_limits=takes_limits,
                              reads=db.read),
            reservations=reservations,
            topups=TopUps(sessions), stops=stops,
            withdrawals=Withdrawals(sessions=sessions, stops=stops, refunds=refunds),
            address_refunds=address_refunds)

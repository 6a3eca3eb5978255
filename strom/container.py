"""The container of the running services, built once by `strom.app` and handed to interfaces."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from strom.chargers.control import ControlDispatcher
from strom.config import Settings
from strom.events import EventBus
from strom.keys import KeyRing
from strom.outbound import Outbound
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.store.event_log import EventLogRepository
from strom.store.zaps import ZapRepository

if TYPE_CHECKING:
    from bots.nostr_bots import NostrBots
    from strom.lightning.wallet import Wallet
    from strom.ocpp.central_system import CentralSystem
    from strom.sessions.address_refunds import AddressRefundService
    from strom.sessions.lifecycle import SessionService
    from strom.sessions.refunds import RefundService
    from strom.tariffs.pricing import TariffService
    from strom.tls.manager import CertManager


@dataclass
class Services:
    settings: Settings
    data_dir: Path
    demo: bool
    db: Database
    bus: EventBus
    charge_points: ChargePointRepository
    event_log: EventLogRepository
    admin_token: str
    zaps: ZapRepository
    outbound: Outbound  # every fetch for outsiders and config goes through it
    chargers: ControlDispatcher  # every call to a charger, whatever protocol it speaks
    keyring: KeyRing | None = None
    central_system: CentralSystem | None = None
    wallet: Wallet | None = None
    tariffs: TariffService | None = None
    sessions: SessionService | None = None
    refunds: RefundService | None = None
    address_refunds: AddressRefundService | None = None
    bots: NostrBots | None = None
    relay_url: str | None = None  # the embedded relay, when it runs
    tls: CertManager | None = None  # [tls]: HTTPS and OCPP wss certificate

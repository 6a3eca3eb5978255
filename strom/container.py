"""The container of the running services, built whole by `strom.app` before any interface.

Every field is there from the start: an interface never finds a service missing. What is
truly optional says so in its type (`tls`, `relay_url`). Interfaces beside the web (the nostr
bots) are not in here: the core names no interface; the web sees of them only `NostrStatus`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

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
    from strom.cards.service import CardService
    from strom.chargers.certificates import CertificateService
    from strom.chargers.firmware import FirmwareService
    from strom.chargers.site_power import SitePower
    from strom.lightning.wallet import Wallet
    from strom.ocpi.service import OcpiService
    from strom.ocpp.central_system import CentralSystem
    from strom.sessions.address_refunds import AddressRefundService
    from strom.sessions.lifecycle import SessionService
    from strom.sessions.refunds import RefundService
    from strom.sessions.use_cases import UseCases
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
    keyring: KeyRing
    central_system: CentralSystem
    wallet: Wallet
    tariffs: TariffService
    sessions: SessionService
    refunds: RefundService
    address_refunds: AddressRefundService
    cards: CardService  # the owner's RFID cards (issue 21)
    use_cases: UseCases  # what every interface calls: checkout, top-up, stop, refunds
    firmware: FirmwareService  # firmware updates, diagnostics and log uploads (issue 21)
    certificates: CertificateService  # chargers' certificate signing requests (issue 21)
    site_power: SitePower  # sites' limits shared among their sessions (issue 21)
    ocpi: OcpiService  # OCPI 2.2.1 CPO: eMSP parties, pushes, commands (issue 24)
    relay_url: str | None  # the embedded relay's URL; None: strom runs none ([relay] embedded)
    tls: CertManager | None  # None: no [tls], plain HTTP and ws:// only


class NostrStatus(Protocol):
    """What the web shows of the nostr bots (`/healthz`); `bots.NostrBots` implements it."""

    @property
    def identity_count(self) -> int | None:
        """Charge points on nostr (their key is loaded); None when nostr is off."""

    def relay_states(self) -> list[dict[str, object]]:
        """Per relay: publish counts, the last refusal, a rest, NIP-42 state (issue 19)."""


class NostrOff:
    """No relay configured: strom runs without nostr bots."""

    @property
    def identity_count(self) -> int | None:
        return None

    def relay_states(self) -> list[dict[str, object]]:
        return []


NOSTR_OFF = NostrOff()

"""The composition root: reads settings, builds every service once, runs them on one loop.

Nothing else constructs services. Start order is bottom-up (store, bus, adapters, services,
interfaces); stop order is the reverse.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bots.nostr_bots import NostrBots
from relay import Relay
from relay import database_path as relay_database_path
from strom.cards.charging import CardsBesideSessions
from strom.cards.service import CardService
from strom.chargers.certificates import certificate_service
from strom.chargers.control import ControlDispatcher
from strom.chargers.firmware import firmware_service
from strom.chargers.site_power import SitePower
from strom.config import Settings, require_https_public_url
from strom.container import NOSTR_OFF, NostrStatus, Services
from strom.errors import UserError
from strom.events import EventBus
from strom.http_server import HttpServer
from strom.keys import KeyRing, PubkeySet, ensure_cp_key, keys_path
from strom.lightning.factory import make_wallet
from strom.lightning.wallet import Wallet
from strom.lnurl.pay import load_image
from strom.logsetup import install_bus_log_handler
from strom.ocpi.service import OcpiService, RoamingBeside
from strom.ocpp.central_system import CentralSystem
from strom.outbound import Outbound, netloc_key
from strom.passthrough.connection import Passthrough
from strom.paths import admin_token_path, database_path, ensure_data_dir, runtime_path
from strom.security import read_or_create_secret, write_secret_file
from strom.sessions.address_refunds import AddressRefundService
from strom.sessions.lifecycle import DEFAULT_METER_INTERVAL, SessionService
from strom.sessions.refunds import RefundService
from strom.sessions.use_cases import UseCases
from strom.simulator.charge_point import SimulatedChargePoint
from strom.store.address_refunds import AddressRefundRepository
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.store.event_log import EventLogRepository
from strom.store.sites import SiteRepository
from strom.store.transactions import TransactionRepository
from strom.store.zaps import ZapRepository
from strom.tariffs.pricing import TariffService
from strom.tls.manager import CertManager
from strom.web.app import create_web_app

log = logging.getLogger(__name__)

DEMO_CP_ID = "demo-1"


@dataclass(frozen=True, slots=True)
class _Money:
    """The money services (the owner cards' accounts among them), started: what `Services`
    needs of them."""

    wallet: Wallet
    tariffs: TariffService
    sessions: SessionService
    refunds: RefundService
    address_refunds: AddressRefundService
    cards: CardService
    site_power: SitePower


class StartupError(UserError):
    """An unexpected error while starting: one line naming the step and what to do."""

    def __init__(self, step: str, cause: Exception) -> None:
        if isinstance(cause, ImportError | FileNotFoundError) and _inside_package(cause):
            advice = "the installation is incomplete: reinstall strom"
        elif isinstance(cause, OSError):
            advice = "check that path (or choose another --data-dir)"
        else:
            advice = "run with --debug for the details"
        reason = (f"{cause.strerror}: {cause.filename}" if isinstance(cause, OSError)
                  and cause.strerror and cause.filename else f"{type(cause).__name__}: {cause}")
        super().__init__(f"cannot start: {step} failed ({reason.splitlines()[0]}); {advice}")


def _inside_package(cause: Exception) -> bool:
    """A module or file of strom's own that is missing."""
    where = str(getattr(cause, "name", None) or getattr(cause, "filename", None) or "")
    return where.startswith("strom") or str(Path(__file__).parent) in where


class StromApp:
    """One running strom: `async with StromApp(...) as app: await app.wait()`."""

    def __init__(self, settings: Settings, data_dir: Path, *, demo: bool = False) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.demo = demo
        self._stack = AsyncExitStack()
        self._stopped = asyncio.Event()
        self.services: Services | None = None
        self.http: HttpServer | None = None
        self.https: HttpServer | None = None
        self.relay: Relay | None = None
        self.bots: NostrBots | None = None  # the nostr bots, when a relay is configured
        self._step = "reading the settings"

    async def __aenter__(self) -> StromApp:
        try:
            await self._start()
        except BaseException as exc:
            await self._stack.aclose()
            if isinstance(exc, Exception) and not isinstance(exc, UserError):
                raise StartupError(self._step, exc) from exc
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
        runtime_path(self.data_dir).unlink(missing_ok=True)

    async def _start(self) -> None:
        require_https_public_url(self.settings, demo=self.demo)
        self._step = "loading the LNURL image"
        if self.settings.lnurl.image_path:
            load_image(self.settings.lnurl.image_path)  # a bad image stops the start, not a payer
        self._step = f"creating the data dir {self.data_dir}"
        ensure_data_dir(self.data_dir)
        self._step = "opening the store"
        db = await Database.open(database_path(self.data_dir))
        self._stack.push_async_callback(db.close)
        bus = EventBus()
        self._stack.push_async_callback(bus.close)
        self._stack.callback(install_bus_log_handler(bus))  # log lines for the TUI and API
        charge_points = ChargePointRepository(db)
        await charge_points.mark_all_disconnected()
        event_log = EventLogRepository(db)
        key_file = keys_path(self.data_dir, self.settings.nostr.keys_file)
        keyring = KeyRing(key_file)
        outbound = Outbound(self.settings.outbound)
        chargers = ControlDispatcher()  # every call to a charger, whatever protocol it speaks
        # Bound first: with port 0 the real port must be known before any link is made. The
        # web app comes last, when the services it serves are built.
        proxies = self.settings.http.trusted_proxies
        http = HttpServer(None, self.settings.http.host, self.settings.http.port,
                          trusted_proxies=proxies)
        self._stack.push_async_callback(http.close)
        self.http = http
        self.settings.http.port = http.port
        tls: CertManager | None = None
        if self.settings.tls.enabled:
            self._step = "loading the TLS certificate"
            tls = CertManager(self.settings.tls, self.data_dir)
            tls.prepare()
            self._stack.push_async_callback(tls.close)
            self.https = HttpServer(None, self.settings.http.host, self.settings.tls.https_port,
                                    trusted_proxies=proxies, tls=tls.listener().context)
            self._stack.push_async_callback(self.https.close)
            self.settings.tls.https_port = self.https.port
        outbound.own.update(self._own_addresses())
        if self.demo and not await charge_points.exists(DEMO_CP_ID):
            await charge_points.add(DEMO_CP_ID, name="Demo charger", lat=52.5200, lon=13.4050)
            ensure_cp_key(key_file, DEMO_CP_ID)

        self._step = "starting the OCPP server"
        central = CentralSystem(self.settings.ocpp, charge_points, TransactionRepository(db),
                                event_log, bus,
                                tls=tls.listener().context if tls else None,
                                trusted_proxies=self.settings.http.trusted_proxies,
                                data_dir=self.data_dir)
        central.connection_factory = Passthrough(
            self.settings.passthrough, outbound=outbound,
            max_message_bytes=self.settings.ocpp.max_message_bytes)
        await central.start()
        self._stack.push_async_callback(central.close)
        for adapter in central.adapters:  # OCPP 1.6, 2.1, 2.0.1
            chargers.register(adapter)
        firmware = firmware_service(self.settings, db, charge_points, chargers, event_log,
                                    self.data_dir)
        certificates = certificate_service(db, charge_points, chargers, event_log)
        central.context.firmware = firmware.repository
        central.context.certificates = certificates.repository
        self._step = "starting the wallet, tariffs and sessions"
        money = await self._start_money(db, bus, charge_points, central, chargers, outbound)
        self._step = "starting the nostr relay"
        relay_url = await self._start_relay(keyring)
        self._step = "starting OCPI"
        ocpi = OcpiService(db=db, bus=bus, settings=self.settings, outbound=outbound,
                           charge_points=charge_points, tariffs=money.tariffs, chargers=chargers)
        await ocpi.start()
        self._stack.push_async_callback(ocpi.close)
        central.authorizer = RoamingBeside(central.authorizer, ocpi)

        zaps = ZapRepository(db)
        svc = Services(
            settings=self.settings, data_dir=self.data_dir, demo=self.demo, db=db, bus=bus,
            charge_points=charge_points, event_log=event_log,
            admin_token=read_or_create_secret(admin_token_path(self.data_dir)),
            zaps=zaps, outbound=outbound, chargers=chargers, keyring=keyring,
            central_system=central,
            wallet=money.wallet, tariffs=money.tariffs, sessions=money.sessions,
            refunds=money.refunds, address_refunds=money.address_refunds, cards=money.cards,
            use_cases=UseCases.build(
                settings=self.settings, charge_points=charge_points, sessions=money.sessions,
                tariffs=money.tariffs, refunds=money.refunds,
                address_refunds=money.address_refunds, zaps=zaps, keyring=keyring, db=db,
                bus=bus, chargers=chargers, takes_limits=money.site_power.takes_limits),
            ocpi=ocpi, firmware=firmware, certificates=certificates, site_power=money.site_power,
            relay_url=relay_url, tls=tls)
        self.services = svc
        ocpi.use_reservations(svc.use_cases.reservations)
        await svc.use_cases.reservations.start()
        self._stack.push_async_callback(svc.use_cases.reservations.close)

        # The interfaces, on the whole container: the bots, then the web (which shows them).
        self._step = "starting the nostr bots"
        nostr = await self._start_bots(svc)
        self._step = "starting the HTTP server"
        web = create_web_app(svc, nostr)
        await http.start(web)
        if self.https is not None and tls is not None:
            await self.https.start(web)
            await tls.start()  # ACME validates over the HTTP server just started
        if self.demo:
            self._step = "starting the demo charger"
            await self._start_demo_charger(central)
        self._step = "writing runtime.json"
        self._write_runtime()

    async def _start_money(self, db: Database, bus: EventBus,
                           charge_points: ChargePointRepository, central: CentralSystem,
                           chargers: ControlDispatcher, outbound: Outbound) -> _Money:
        """Wallet, tariffs, sessions and refunds; sessions listen before the wallet reports."""
        lightning = self.settings.lightning
        meter_interval = float(self.settings.ocpp.meter_sample_interval or DEFAULT_METER_INTERVAL)
        wallet = make_wallet(self.settings, self.data_dir, db, bus)
        tariffs = TariffService(self.settings.tariff, db, outbound=outbound,
                                quote_seconds=self.settings.lightning.invoice_expiry,
                                follow_btc=self.settings.ocpi.currency == "EUR")
        site_power = SitePower(sites=SiteRepository(db), chargers=chargers, bus=bus,
                               audit=EventLogRepository(db), charge_points=charge_points,
                               connector_max_w=self.settings.sessions.max_power_w,
                               ceiling=tariffs.power_ceiling_w)
        sessions = SessionService(
            db=db, bus=bus, settings=self.settings.sessions,
            charge_points=charge_points, wallet=wallet, chargers=chargers,
            invoice_expiry=lightning.invoice_expiry,
            meter_interval=meter_interval, power_cap=site_power.cap_w)
        refunds = RefundService(
            db=db, bus=bus, wallet=wallet, sessions=sessions,
            settings=self.settings.sessions, network=lightning.network,
            max_fee_msat=lightning.max_fee_msat, outbound=outbound)
        address_refunds = AddressRefundService(
            repo=AddressRefundRepository(db), bus=bus, refunds=refunds,
            settings=self.settings.sessions)
        await tariffs.start()
        self._stack.push_async_callback(tariffs.close)
        await sessions.start()
        self._stack.push_async_callback(sessions.close)
        cards = CardService.build(
            db=db, bus=bus, chargers=chargers, connected=central.connected_ids,
            charge_points=charge_points, tariffs=tariffs, settings=self.settings.sessions,
            meter_interval=meter_interval)
        central.authorizer = CardsBesideSessions(sessions, cards.charging)
        if isinstance(central.connection_factory, Passthrough):
            central.connection_factory.sessions = sessions
        await cards.start()
        self._stack.push_async_callback(cards.close)
        await site_power.start()
        self._stack.push_async_callback(site_power.close)
        await wallet.start()
        self._stack.push_async_callback(wallet.close)
        await refunds.start()
        self._stack.push_async_callback(refunds.close)
        await address_refunds.start()
        self._stack.push_async_callback(address_refunds.close)
        return _Money(wallet, tariffs, sessions, refunds, address_refunds, cards, site_power)

    async def _start_demo_charger(self, central: CentralSystem) -> None:
        """Demo mode: `demo-1` is a simulated charger connected over real OCPP."""
        sim = SimulatedChargePoint(DEMO_CP_ID, central.url, meter_interval=5.0, speed=10.0)
        await sim.start()
        self._stack.push_async_callback(sim.close)

    async def _start_relay(self, keyring: KeyRing) -> str | None:
        """The embedded relay, when on: the URL clients know it by."""
        if not self.settings.relay.embedded:
            return None
        ours = PubkeySet(keyring)  # also with the open policy: never rate limited
        await ours.load()
        refresher = asyncio.create_task(ours.refresh_forever(), name="relay-keys")
        self._stack.callback(refresher.cancel)
        relay = Relay(relay_database_path(self.data_dir), self.settings.relay.host,
                      self.settings.relay.port, write_policy=self.settings.relay.write_policy,
                      allowed_pubkeys=ours, trusted_pubkeys=ours,
                      public_url=self.settings.relay.public_url or None,
                      trusted_proxies=self.settings.http.trusted_proxies)
        await relay.start()
        self._stack.push_async_callback(relay.close)
        self.relay = relay
        return self.settings.relay.public_url or relay.url

    async def _start_bots(self, svc: Services) -> NostrStatus:
        """The bots use the embedded relay (when on) like any other relay; none: no nostr."""
        relays = list(self.settings.nostr.relays)
        if self.relay is not None:
            relays.insert(0, self.relay.url)
        if not relays:
            return NOSTR_OFF
        bots = NostrBots(svc, relays)
        await bots.start()
        self._stack.push_async_callback(bots.close)
        self.bots = bots
        return bots

    def _own_addresses(self) -> set[tuple[str, int]]:
        """Where strom itself answers HTTP: a fetch there (a payer's lud16 that is one of our
        chargers) would pay strom with strom's money, so outbound refuses it."""
        public = urlsplit(self.settings.public_url)
        own = {netloc_key(public.hostname or "", public.port, public.scheme)}
        host, port = self.settings.http.host, self.settings.http.port
        listen = ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::") \
            if host in ("0.0.0.0", "::", "", "localhost") else (host,)
        own.update(netloc_key(name, port) for name in listen)
        return own

    @property
    def http_url(self) -> str:
        assert self.http is not None
        return f"http://{self.http.host}:{self.http.port}"

    def _write_runtime(self) -> None:
        """Tell the CLI and TUI where this server listens (no secrets in here)."""
        info = {"pid": os.getpid(), "http_url": self.http_url}
        write_secret_file(runtime_path(self.data_dir), json.dumps(info, indent=2) + "\n")

    def urls(self) -> dict[str, str]:
        """What a user can try, printed at start."""
        urls = {"web": self.http_url + "/", "health": self.http_url + "/healthz"}
        if self.https is not None:
            urls["https"] = f"https://{self.https.host}:{self.https.port}/"
        if self.services is not None:
            urls["ocpp"] = self.services.central_system.url + "{charge point id}"
        if self.relay is not None:
            urls["relay"] = self.relay.url
        return urls

    def stop(self) -> None:
        self._stopped.set()

    async def wait(self) -> None:
        """Until SIGINT/SIGTERM or `stop()`."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopped.set)
        try:
            await self._stopped.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

"""Checkout: from "I want to charge here" to an invoice bound to its payer.

One place decides, whoever asks (the LNURL pay callback, a zap through it, the demo button):
which connector (`{cp_id}` any free one, `{cp_id}-{n}` that one), at which price (the quote
the wallet was shown, `strom/tariffs/quotes.py`), for whom (a zap's sender becomes the
session's payer; a zap from a driver charging here adds to their session), and only once per
zap request (fresh, and claimed in the store before the invoice is made). Interfaces translate
a `CheckoutRefused` into their own shape (LUD-06 `reason`, a 409 page) and never word one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from strom.config import Settings
from strom.keys import KeyRing
from strom.lightning.wallet import WalletError
from strom.lnurl import pay as lud06
from strom.lnurl.errors import LnurlError
from strom.nostr.zap import ZAP_REQUEST, ZapRequest, check_fresh, parse_zap_request
from strom.sessions.connectors import ConnectorChoice
from strom.sessions.lifecycle import PendingPayment, SessionService
from strom.sessions.model import Session, State
from strom.sessions.refusals import Refused
from strom.sessions.stopping import SessionError
from strom.store.charge_points import ChargePointRepository, ChargerRecord
from strom.store.zaps import ZapRepository
from strom.tariffs.model import Tariff, describe, describe_slow
from strom.tariffs.pricing import QuotedPrice, TariffService
from strom.tariffs.slow import NORMAL, RATES, SLOW
from strom.timeutil import iso

log = logging.getLogger(__name__)

# A session a zap from its payer tops up rather than opening a second one (a reservation:
# the zap pays to charge, the fee in the budget).
RUNNING_STATES = (State.RESERVED, State.PAID, State.STARTING, State.CHARGING)
# A zap whose comment is this word pays a reservation fee instead (issue 21).
RESERVE_WORD = "reserve"


class CheckoutRefused(Refused):
    """No invoice: the message says why, for the payer."""


class UnknownCharger(CheckoutRefused):
    pass


class ChargerBusy(CheckoutRefused):
    """Offline, no free connector, or the asked one is taken."""


class AmountRefused(CheckoutRefused):
    pass


class PriceChanged(CheckoutRefused):
    """The wallet's quote ended and the price it showed no longer holds."""


class ZapRefused(CheckoutRefused):
    """Not a zap this charger takes: invalid, stale, already used, or no key to sign for it."""


class PaymentsUnavailable(CheckoutRefused):
    """The wallet could not make an invoice."""


class RateRefused(CheckoutRefused):
    """An unknown rate, or the slow rate where the charger has none (or refuses limits)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A charge point and the connector asked for (None: any free one), by the name used."""

    cp: ChargerRecord
    connector_id: int | None
    name: str  # `demo-1` or `demo-1-2`, as in the URL: the metadata's identifier says it


@dataclass(frozen=True, slots=True)
class Offer:
    """What a payRequest shows: the price (kept under `quote` for the invoice), its metadata,
    the amounts, and the key that signs zap receipts (None: no zaps here)."""

    target: Target
    tariff: Tariff
    quote: str
    metadata: str
    min_msat: int
    max_msat: int
    nostr_pubkey: str | None


@dataclass(frozen=True, slots=True)
class Order:
    """One invoice request: `amount_msat` to `target`, at the price of `quote` (None: now),
    with the payer's `comment`, or for the raw `zap_request` (NIP-57) of the zap's sender."""

    target: str
    amount_msat: int
    quote: str | None = None
    comment: str | None = None
    zap_request: str | None = None
    rate: str | None = None  # "slow" or "normal"; None: normal, or slow for a zap saying "slow"


@dataclass(frozen=True, slots=True)
class Invoiced:
    """The invoice made for an order. `for_zap`: whoever presented the (public) zap request
    gets no session link; `topped_up`: it adds to the zap sender's running session."""

    pending: PendingPayment
    for_zap: bool
    topped_up: bool


@dataclass(frozen=True, slots=True)
class PaidElsewhere:
    """A zap paid to a charger's address served elsewhere, as its verified receipt says."""

    cp_id: str
    bolt11: str
    payment_hash: str
    amount_msat: int
    payer_pubkey: str


class ReservationDesk(Protocol):
    """What checkout asks of reservations (`strom/sessions/reservations.py`) for a zap whose
    comment is `reserve`: the fee's invoice, committed to `described` (the zap request)."""

    async def pay(self, name: str, amount_msat: int, comment: str | None = None,
                  payer_pubkey: str | None = None, described: str | None = None) -> Invoiced:
        ...


async def find_target(charge_points: ChargePointRepository, name: str) -> Target:
    """`demo-1` → (demo-1, any connector); `demo-1-2` → (demo-1, connector 2)."""
    cp = await charge_points.get(name)
    if cp is not None:
        return Target(cp, None, name)
    base, _, number = name.rpartition("-")
    if base and number.isdigit():
        cp = await charge_points.get(base)
        if cp is not None and 1 <= int(number) <= cp.num_connectors:
            return Target(cp, int(number), name)
    raise UnknownCharger(f"unknown charger {name[:64]!r}")


# Runs a coroutine of store reads and returns what it returns (`Database.read`).
Reads = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Awaitable[Any]]


async def _one_by_one(body: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return await body()


class Checkout:
    """`offer(target)` for the payRequest, `pay(order)` for the invoice: one path for all;
    `paid_elsewhere` for a zap another service was paid."""

    def __init__(self, *, charge_points: ChargePointRepository, sessions: SessionService,
                 tariffs: TariffService, zaps: ZapRepository, keyring: KeyRing | None,
                 settings: Settings, reservations: ReservationDesk,
                 clock: Callable[[], float] = time.time,
                 takes_limits: Callable[[str], bool] = lambda cp_id: True,
                 reads: Reads = _one_by_one) -> None:
        """`takes_limits(cp_id)`: False for a charger known to refuse power limits (it is
        offered no slow rate). `reads`: runs the reads of a request together (the store's
        `Database.read`: one hop to its thread for the charger and its free connector)."""
        self._reads = reads
        self._takes_limits = takes_limits
        self._charge_points = charge_points
        self._sessions = sessions
        self._tariffs = tariffs
        self._zaps = zaps
        self._keyring = keyring
        self._settings = settings
        self._clock = clock
        self._reservations = reservations

    async def target(self, name: str) -> Target:
        """`demo-1` → (demo-1, any connector); `demo-1-2` → (demo-1, connector 2)."""
        return await find_target(self._charge_points, name)

    async def offer(self, name: str, rate: str | None = None) -> Offer:
        """The price a payRequest shows (at `rate`), while a connector is free (or the
        charger's zapping driver may top up); the quote keeps it, and the rate, for the
        invoice even if the market moves."""
        target, choice = await self._look(name)
        rate = self._rate(target.cp, rate)
        try:
            self._ensure_free(choice)
        except ChargerBusy:
            # A driver who zapped may zap again to top up (nostr clients fetch this first);
            # the invoice is then made only for that driver's zap.
            if not await self._zapper_is_charging(target.cp):
                raise
        tariff, quote = self._tariffs.quote(target.cp, rate)
        return Offer(target, tariff, quote, self.metadata(target, tariff),
                     tariff.min_sendable_msat, tariff.max_prepay_msat,
                     self._nostr_pubkey(target.cp))

    async def pay(self, order: Order) -> Invoiced:
        """The invoice for `order`: a new session (`pending_payment`, price locked), or for a
        zap from a driver charging here a top-up of their session. Raises `CheckoutRefused`."""
        target, choice = await self._look(order.target)
        zap = self._zap_request(target.cp, order.zap_request, order.amount_msat)
        if zap and zap.content.strip().lower() == RESERVE_WORD:
            return await self._reserve_by_zap(order, zap)
        rate = self._rate(target.cp, order.rate)
        quote = order.quote
        if order.rate is None and zap and SLOW in zap.content.lower().split() \
                and self.slow_offered(target.cp):  # elsewhere "slow" is just words
            # A zap's sender saw the normal price and the slow one offered beside it: the
            # invoice commits to the zap request, so the slow price is quoted now.
            rate, quote = SLOW, None
        price = self._tariffs.quoted(target.cp, quote, rate)
        tariff = price.tariff
        if why := lud06.amount_refusal(order.amount_msat, tariff.min_sendable_msat,
                                       tariff.max_prepay_msat):
            raise AmountRefused(why)
        running = await self._running_session_of(target.cp, zap.sender) if zap else None
        if running is None:
            self._ensure_free(choice)
            self._still_as_shown(target, price)
        if zap and not await self._zaps.claim(zap.id, ZAP_REQUEST):
            raise ZapRefused("this zap request was already used; zap again (your client signs "
                             "a new request for every zap)")
        try:
            pending = await self._invoice(target, price, order, zap, running)
        except CheckoutRefused:
            if zap:  # no invoice was made: the request may be tried again
                await self._zaps.release(zap.id)
            raise
        return Invoiced(pending, for_zap=zap is not None, topped_up=running is not None)

    async def _reserve_by_zap(self, order: Order, zap: ZapRequest) -> Invoiced:
        """A zap commented `reserve`: the reservation fee's invoice, its sender the payer."""
        if not await self._zaps.claim(zap.id, ZAP_REQUEST):
            raise ZapRefused("this zap request was already used; zap again")
        try:
            invoiced = await self._reservations.pay(order.target, order.amount_msat,
                                                    payer_pubkey=zap.sender, described=zap.raw)
        except CheckoutRefused:
            await self._zaps.release(zap.id)  # no invoice was made: it may be tried again
            raise
        await self._record_zap(zap, invoiced.pending)
        return Invoiced(invoiced.pending, for_zap=True, topped_up=False)

    async def paid_elsewhere(self, payment: PaidElsewhere) -> Session | None:
        """A session for a zap another service received for `payment.cp_id` (its verified
        receipt: `external_lnurl`), at the current price, its sender the payer; None when the
        charger is gone or the payment hash was seen before (each receipt counts once)."""
        cp = await self._charge_points.get(payment.cp_id)
        if cp is None:
            return None
        return await self._sessions.paid_elsewhere(
            cp, self._tariffs.current(cp), bolt11=payment.bolt11,
            payment_hash=payment.payment_hash, amount_msat=payment.amount_msat,
            expires_at=iso(), payer_pubkey=payment.payer_pubkey)

    def slow_offered(self, cp: ChargerRecord) -> bool:
        """Whether drivers may pick the slow rate here: it is set, and the charger is not
        known to refuse power limits (strom could not keep the rate's promise there)."""
        return self._tariffs.slow_rate(cp) is not None and self._takes_limits(cp.id)

    def _rate(self, cp: ChargerRecord, rate: str | None) -> str:
        if rate is None or rate == NORMAL:
            return NORMAL
        if rate not in RATES:
            raise RateRefused(f"unknown rate {rate[:32]!r}: use rate=slow for the slow rate, "
                              "or leave it out for the normal one")
        if not self.slow_offered(cp):
            raise RateRefused(f"{cp.name} offers no slow rate; pay without rate=slow")
        return rate

    def metadata(self, target: Target, tariff: Tariff) -> str:
        """The LUD-06 metadata stating the price; its SHA-256 is the invoice's description.
        The normal price names the slow rate beside it, where one is offered."""
        where = f"connector {target.connector_id}" if target.connector_id else "any free connector"
        text = f"Charge at {target.cp.name} ({where}): {describe(tariff)}"
        if tariff.max_power_w is None and self.slow_offered(target.cp):
            # Made from the shown price, so the invoice's description matches it to the byte.
            slow = self._tariffs.at_rate(tariff, target.cp, SLOW)
            text += (f" Cheaper slow rate: {describe_slow(slow)}: pay the charger page's slow "
                     "QR code, or zap with the word \"slow\".")
        image = self._settings.lnurl.image_path
        host = urlsplit(self._settings.public_url).netloc
        return lud06.metadata(text, identifier=f"{target.name}@{host}",
                              image=lud06.load_image(image) if image else None)

    async def _look(self, name: str) -> tuple[Target, ConnectorChoice]:
        """The target and the connector a new session may use there now, read together."""
        async def look() -> tuple[Target, ConnectorChoice]:
            target = await find_target(self._charge_points, name)
            return target, await self._sessions.free_connector(target.cp, target.connector_id)

        found: tuple[Target, ConnectorChoice] = await self._reads(look)
        return found

    @staticmethod
    def _ensure_free(choice: ConnectorChoice) -> None:
        if choice.in_use:
            raise ChargerBusy(choice.reason + ". If it is your session, stop it with the stop & "
                              "refund link on your session page (your wallet showed it after "
                              "paying).")
        if choice.connector_id is None:
            raise ChargerBusy(choice.reason)

    async def _invoice(self, target: Target, price: QuotedPrice, order: Order,
                       zap: ZapRequest | None, running: Session | None) -> PendingPayment:
        # A zap's invoice commits to the zap request (NIP-57), a plain payment to the metadata.
        described = zap.raw if zap else self.metadata(target, price.tariff)
        try:
            if running is not None:
                pending = await self._sessions.create_topup(
                    running, order.amount_msat, description_hash=lud06.description_hash(described))
            else:
                pending = await self._sessions.create_pending(
                    target.cp, target.connector_id, price.tariff, order.amount_msat,
                    description_hash=lud06.description_hash(described), comment=order.comment,
                    payer_pubkey=zap.sender if zap else None, expiry=price.seconds_left)
        except SessionError as exc:
            raise CheckoutRefused(str(exc)) from None
        except WalletError:
            raise PaymentsUnavailable("payments temporarily unavailable, try again in a "
                                      "minute") from None
        if zap:
            await self._record_zap(zap, pending)
        return pending

    async def _record_zap(self, zap: ZapRequest, pending: PendingPayment) -> None:
        """The zap request its invoice answers, kept for the receipt (NIP-57) once paid."""
        await self._zaps.add(payment_hash=pending.payment_hash, session_id=pending.session.id,
                             cp_id=pending.session.cp_id, sender=zap.sender,
                             request_json=zap.raw, bolt11=pending.bolt11)

    def _still_as_shown(self, target: Target, price: QuotedPrice) -> None:
        """Refuse when the wallet's quote ended and the price text it showed no longer holds.

        The wallet checks the invoice's description hash against the metadata it showed; an
        invoice at a new price would fail that check with a cryptic error, or (for a zap) be
        paid at a price the driver never saw. Scanning again shows the current price.
        """
        if price.shown is not None and \
                self.metadata(target, price.shown) != self.metadata(target, price.tariff):
            raise PriceChanged(f"The price changed since your wallet loaded it; it is now "
                               f"{describe(price.tariff)} Scan the QR code again to pay at this "
                               "price.")

    async def _running_session_of(self, cp: ChargerRecord, payer: str) -> Session | None:
        mine = await self._sessions.list(cp_id=cp.id, payer_pubkey=payer, limit=5)
        # A session its payer stopped while starting is ending: a new zap is a new session.
        return next((s for s in mine if s.state in RUNNING_STATES and not s.stop_requested),
                    None)

    async def _zapper_is_charging(self, cp: ChargerRecord) -> bool:
        if self._nostr_pubkey(cp) is None:
            return False
        for state in (State.CHARGING, State.RESERVED):
            running = await self._sessions.list(cp_id=cp.id, state=state, limit=16)
            if any(s.payer_pubkey for s in running):
                return True
        return False

    def _nostr_pubkey(self, cp: ChargerRecord) -> str | None:
        """The charger's own key signs its zap receipts; none when its key is not loaded."""
        return self._keyring.pubkey_hex(cp.id) if self._keyring else None

    def _zap_request(self, cp: ChargerRecord, raw: str | None,
                     amount_msat: int) -> ZapRequest | None:
        if raw is None:
            return None
        pubkey = self._nostr_pubkey(cp)
        if pubkey is None:
            raise ZapRefused("this charger does not accept zaps")
        try:
            request = parse_zap_request(raw, pubkey, amount_msat)
            check_fresh(request, self._clock())
            return request
        except LnurlError as exc:
            log.warning("rejected zap request for %s: %s", cp.id, exc)
            raise ZapRefused(exc.reason) from None

"""A NIP-47 wallet service for tests, on a real relay: what Alby Hub or LNbits NWC would be.

It publishes its info event (kind 13194: methods, `encryption`, `notifications`), answers
kind 23194 requests from the connection's key with kind 23195 (NIP-44 when the request carries
`["encryption", "nip44_v2"]`, else NIP-04), refuses unknown keys with UNAUTHORIZED, keeps
invoices signed by its own node key (real BOLT11), and sends `payment_received` notifications
(kind 23197 NIP-44 and/or 23196 NIP-04). Test hooks: `settle()` (a payer paid), `stop()` /
`start()` (the service goes away and comes back), `pay_outcome` ("succeed", "fail", or "hang"
until `finish_payments()`), `ignore_requests` (it reads but never answers).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from datetime import timedelta
from typing import Any

import bolt11
from coincurve import PrivateKey
from nostr_sdk import (
    Client,
    ClientNotificationStream,
    Event,
    EventBuilder,
    Filter,
    Keys,
    Kind,
    Nip44Version,
    RelayOptions,
    RelayUrl,
    ReqTarget,
    Tag,
    nip04_decrypt,
    nip04_encrypt,
    nip44_decrypt,
    nip44_encrypt,
)

from tests.doubles.edges import make_invoice

CURRENCY = {"regtest": "bcrt", "testnet": "tb", "signet": "tbs", "mainnet": "bc"}
METHODS = ["get_info", "get_balance", "make_invoice", "lookup_invoice", "pay_invoice"]


class NwcService:
    """`NwcService(relay.url)`; `await start()`; hand `uri` to the client under test."""

    def __init__(self, relay_url: str, *, encryption: str = "nip44_v2 nip04",
                 notifications: bool = True, network: str = "regtest",
                 balance_msat: int = 10_000_000_000) -> None:
        self.relay_url = relay_url
        self.keys = Keys.generate()  # the service's nostr identity
        self.connection = Keys.generate()  # the secret in the URI the user was given
        self.node_key = PrivateKey()  # the lightning node behind it
        self.encryption = encryption
        self.notifications = notifications
        self.network = network
        self.balance_msat = balance_msat
        self.invoices: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.preimages: dict[str, str] = {}  # what "the network" reveals when a payment succeeds
        self.requests: list[str] = []  # methods asked, in order
        self.pay_calls: list[str] = []  # payment hashes sent
        self.pay_outcome = "succeed"
        self.ignore_requests = False
        self.fee_msat = 1_000
        self._release = asyncio.Event()
        self._client: Client | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def uri(self, secret: str | None = None) -> str:
        """The connection URI (with another `secret` to play a stranger)."""
        key = secret or self.connection.secret_key().to_hex()
        return (f"nostr+walletconnect://{self.keys.public_key().to_hex()}"
                f"?relay={self.relay_url}&secret={key}")

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        client = Client()
        options = RelayOptions().retry_interval(timedelta(seconds=0.3))
        await client.add_relay(RelayUrl.parse(self.relay_url), opts=options)
        stream = client.notifications()
        await client.connect(timedelta(seconds=5))
        requests = Filter().kind(Kind(23194)).pubkey(self.keys.public_key())
        await client.subscribe(ReqTarget.auto([requests]))
        self._client = client
        self._spawn(self._serve(stream))
        content = " ".join(METHODS + (["notifications"] if self.notifications else []))
        tags = [["encryption", self.encryption]]
        if self.notifications:
            tags.append(["notifications", "payment_received payment_sent"])
        await self._send(EventBuilder(Kind(13194), content)
                         .tags([Tag.parse(t) for t in tags]).finalize(self.keys))
        await asyncio.sleep(0.1)  # let the relay act on the REQ before anyone asks

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.shutdown()
            self._client = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, event: Event) -> bool:
        if self._client is None:
            return False
        try:
            output = await self._client.send_event(event)
        except Exception:  # relay down: like a real service, the message is lost
            return False
        return bool(output.success)

    # --- test hooks -------------------------------------------------------------------------

    def external_invoice(self, amount_msat: int) -> str:
        """An invoice of someone else on the network, payable through this wallet."""
        preimage = secrets.token_hex(32)
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
        self.preimages[payment_hash] = preimage
        return make_invoice(amount_msat, currency=CURRENCY[self.network],
                            payment_hash=payment_hash)

    async def settle(self, payment_hash: str, amount_msat: int | None = None) -> None:
        """A payer paid our invoice: record it and notify (lost if nobody listens)."""
        invoice = self.invoices[payment_hash]
        invoice.update(state="settled", settled_at=int(time.time()),
                       amount=amount_msat or invoice["amount"], preimage=invoice["_preimage"])
        if self.notifications:
            await self._notify("payment_received", self._public(invoice))

    def finish_payments(self) -> None:
        """Let hanging payments end with `pay_outcome`."""
        self._release.set()

    # --- the protocol -----------------------------------------------------------------------

    async def _serve(self, stream: ClientNotificationStream) -> None:
        while True:
            note = await stream.next()
            if note is None or note.is_shutdown():
                return
            if note.is_new_event() and note.event.kind().as_u16() == 23194:
                self._spawn(self._answer(note.event))

    async def _answer(self, request: Event) -> None:
        nip44 = any(t.to_vec()[:2] == ["encryption", "nip44_v2"] for t in request.tags())
        secret, author = self.keys.secret_key(), request.author()
        if nip44:
            text = nip44_decrypt(secret, author, request.content())
        else:
            text = nip04_decrypt(secret, author, request.content())
        body = json.loads(text)
        method = body.get("method", "")
        self.requests.append(method)
        if self.ignore_requests:
            return
        if author.to_hex() != self.connection.public_key().to_hex():
            answer = _error(method, "UNAUTHORIZED", "no wallet is connected to this key")
        else:
            answer = await self._handle(method, body.get("params") or {})
        plain = json.dumps(answer)
        content = (nip44_encrypt(secret, author, plain, Nip44Version.V2) if nip44
                   else nip04_encrypt(secret, author, plain))
        tags = [Tag.parse(["p", author.to_hex()]), Tag.parse(["e", request.id().to_hex()])]
        await self._send(EventBuilder(Kind(23195), content).tags(tags).finalize(self.keys))

    async def _handle(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "get_info":
            notes = ["payment_received", "payment_sent"] if self.notifications else []
            return _result(method, {
                "alias": "test wallet", "color": "#3399ff", "network": self.network,
                "pubkey": self.node_key.public_key.format().hex(), "block_height": 800_000,
                "block_hash": "00" * 32, "methods": METHODS, "notifications": notes})
        if method == "get_balance":
            return _result(method, {"balance": self.balance_msat})
        if method == "make_invoice":
            return self._make_invoice(params)
        if method == "lookup_invoice":
            payment_hash = params.get("payment_hash") or \
                bolt11.decode(params.get("invoice", "")).payment_hash
            found = self.invoices.get(payment_hash) or self.payments.get(payment_hash)
            if found is None:
                return _error(method, "NOT_FOUND", "invoice not found")
            return _result(method, self._public(found))
        if method == "pay_invoice":
            return await self._pay(params["invoice"])
        return _error(method, "NOT_IMPLEMENTED", f"{method} is not supported")

    def _make_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        preimage = secrets.token_hex(32)
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
        description_hash = params.get("description_hash")
        expiry = int(params.get("expiry") or 3600)
        created = int(time.time())
        invoice = make_invoice(
            int(params["amount"]), key=self.node_key, expiry=expiry,
            currency=CURRENCY[self.network], description=params.get("description") or "",
            description_hash=bytes.fromhex(description_hash) if description_hash else None,
            payment_hash=payment_hash, created=created)
        self.invoices[payment_hash] = {
            "type": "incoming", "state": "pending", "invoice": invoice,
            "description": params.get("description"), "description_hash": description_hash,
            "payment_hash": payment_hash, "amount": int(params["amount"]), "fees_paid": 0,
            "created_at": created, "expires_at": created + expiry, "_preimage": preimage}
        return _result("make_invoice", self._public(self.invoices[payment_hash]))

    async def _pay(self, invoice: str) -> dict[str, Any]:
        decoded = bolt11.decode(invoice)
        payment_hash, amount = decoded.payment_hash, int(decoded.amount_msat or 0)
        known = self.payments.get(payment_hash)
        if known is not None and known["state"] in ("pending", "settled"):
            # A node never pays one hash twice.
            return _error("pay_invoice", "PAYMENT_FAILED", "invoice is already paid or in flight")
        if amount + self.fee_msat > self.balance_msat:
            return _error("pay_invoice", "INSUFFICIENT_BALANCE", "not enough balance")
        self.pay_calls.append(payment_hash)
        payment = {"type": "outgoing", "state": "pending", "invoice": invoice,
                   "payment_hash": payment_hash, "amount": amount, "fees_paid": 0,
                   "created_at": int(time.time())}
        self.payments[payment_hash] = payment
        if self.pay_outcome == "hang":
            await self._release.wait()
        outcome = "succeed" if self.pay_outcome == "hang" else self.pay_outcome
        if outcome == "fail":
            payment["state"] = "failed"
            return _error("pay_invoice", "PAYMENT_FAILED", "no route to the payee")
        self.balance_msat -= amount + self.fee_msat
        payment.update(state="settled", fees_paid=self.fee_msat, settled_at=int(time.time()),
                       preimage=self.preimages.get(payment_hash, secrets.token_hex(32)))
        return _result("pay_invoice", {"preimage": payment["preimage"],
                                       "fees_paid": self.fee_msat})

    def _public(self, record: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in record.items() if not k.startswith("_") and v is not None}
        if record.get("state") != "settled":
            shown.pop("preimage", None)
        return shown

    async def _notify(self, kind: str, body: dict[str, Any]) -> None:
        plain = json.dumps({"notification_type": kind, "notification": body})
        secret, to = self.keys.secret_key(), self.connection.public_key()
        tag = [Tag.parse(["p", to.to_hex()])]
        if "nip44_v2" in self.encryption:
            content = nip44_encrypt(secret, to, plain, Nip44Version.V2)
            await self._send(EventBuilder(Kind(23197), content).tags(tag).finalize(self.keys))
        if "nip04" in self.encryption:
            content = nip04_encrypt(secret, to, plain)
            await self._send(EventBuilder(Kind(23196), content).tags(tag).finalize(self.keys))


def _result(method: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"result_type": method, "result": result}


def _error(method: str, code: str, message: str) -> dict[str, Any]:
    return {"result_type": method, "error": {"code": code, "message": message}}


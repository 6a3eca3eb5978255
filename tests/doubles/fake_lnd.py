"""A local stand-in for LND's REST API (lnrpc/routerrpc over grpc-gateway), on 127.0.0.1.

It speaks the wire shapes a real node does — int64 as strings, bytes as base64, streamed calls
as newline-delimited `{"result": …}` / `{"error": …}` objects, the macaroon in
`Grpc-Metadata-macaroon` — and signs real BOLT11 invoices with its own node key. Test hooks:
`settle()` (a payer paid), `drop()`/`restart()` (the node goes away and comes back),
`pay_outcome` (how payments end, "HANG" keeps them in flight until `complete_payment()`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any

import bolt11
import uvicorn
from bolt11 import Bolt11, MilliSatoshi, Tag, TagChar, Tags
from coincurve import PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

CURRENCY = {"regtest": "bcrt", "testnet": "tb", "signet": "tbs", "mainnet": "bc"}
_END = object()
# What a stream makes of a later event: (line to send, whether the stream is then done).
Follow = Callable[[tuple[str, str]], "tuple[dict[str, Any], bool] | None"]


class _Server(uvicorn.Server):
    # The test process owns its signals.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _error(code: int, message: str, status: int) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "details": []}, status_code=status)


# What an admin macaroon grants, as far as strom uses LND.
ADMIN_OPS = {"info": ("read",), "invoices": ("read", "write"), "offchain": ("read", "write")}


def lnd_identifier(ops: dict[str, tuple[str, ...]]) -> bytes:
    """LND's macaroon identifier: version 3, then a MacaroonId protobuf (nonce, storage id,
    ops of entity and actions), a random nonce as LND makes."""
    def field(number: int, value: bytes) -> bytes:
        return bytes([number << 3 | 2, len(value)]) + value

    body = field(1, secrets.token_bytes(16)) + field(2, b"0")
    for entity, actions in ops.items():
        body += field(3, field(1, entity.encode()) + b"".join(field(2, a.encode())
                                                              for a in actions))
    return b"\x03" + body


def macaroon_v2(identifier: bytes, caveats: tuple[bytes, ...] = ()) -> bytes:
    """A macaroon in the V2 binary format LND writes (location "lnd"; the signature is random:
    only the node checks it)."""
    def packet(kind: int, value: bytes) -> bytes:
        return bytes([kind, len(value)]) + value  # lengths here stay below 128: one varint byte

    body = b"".join(packet(2, caveat) + b"\x00" for caveat in caveats)
    return (b"\x02" + packet(1, b"lnd") + packet(2, identifier) + b"\x00" + body + b"\x00"
            + packet(6, secrets.token_bytes(32)))


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj) + "\n").encode()


class FakeLnd:
    """`url = await fake.start()`; `macaroon` is the hex the client must send."""

    def __init__(self, *, network: str = "regtest", balance_msat: int = 50_000_000_000,
                 tls: tuple[str, str] | None = None) -> None:
        """`tls=(cert_file, key_file)` serves https, as LND does."""
        self._tls = tls
        self._down = False
        self.key = PrivateKey()
        self.macaroon = macaroon_v2(lnd_identifier(ADMIN_OPS)).hex()
        self.network = network
        self.balance_msat = balance_msat
        self.invoices: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.add_index = 0
        self.settle_index = 0
        self.pay_outcome = "SUCCEEDED"  # or "FAILED", or "HANG" (in flight until completed)
        self.fee_msat = 1_000
        self.send_calls: list[str] = []
        self.subscribe_calls: list[dict[str, str]] = []
        self._listeners: set[asyncio.Queue[Any]] = set()
        self._raw: list[dict[str, Any]] = []
        self._server: _Server | None = None
        self._task: asyncio.Task[None]
        self._sock: socket.socket
        self.port = 0

    # --- server life ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> str:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it every response waits ~40 ms for a delayed ACK (LND itself does not).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_level="warning", lifespan="off",
                                access_log=False, timeout_graceful_shutdown=1,
                                ssl_certfile=self._tls[0] if self._tls else None,
                                ssl_keyfile=self._tls[1] if self._tls else None)
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="fake-lnd")
        while not server.started:
            if task.done():
                await task
            await asyncio.sleep(0.01)
        self._server, self._task, self._sock = server, task, sock
        return self.url

    async def drop(self) -> None:
        """Go away: end every stream, stop listening."""
        self._down = True  # until the socket is closed, answer as a node shutting down
        for queue in list(self._listeners):
            queue.put_nowait(_END)
        if self._server is not None:
            self._server.should_exit = True
            await self._task
            self._sock.close()
            self._server = None
        self._down = False

    async def restart(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.drop()

    # --- test hooks -------------------------------------------------------------------------

    def settle(self, payment_hash: str, amt_paid_msat: int | None = None) -> dict[str, Any]:
        """A payer paid this invoice (while the node is up or down: updates wait in the node)."""
        invoice = self.invoices[payment_hash]
        if invoice["state"] != "OPEN":
            raise ValueError(f"invoice is {invoice['state']}")
        self.settle_index += 1
        invoice.update(state="SETTLED", settle_index=self.settle_index,
                       settle_date=int(time.time()),
                       amt_paid_msat=amt_paid_msat or invoice["value_msat"])
        self.balance_msat += invoice["amt_paid_msat"]
        self._broadcast(("invoice", payment_hash))
        return invoice

    def send_raw(self, line: dict[str, Any]) -> None:
        """Push `line` as it is to every invoice subscriber (answers a client must survive)."""
        self._raw.append(line)
        self._broadcast(("raw", str(len(self._raw) - 1)))

    def complete_payment(self, payment_hash: str, status: str = "SUCCEEDED") -> None:
        """Finish a payment that was left in flight ("HANG")."""
        self._finish_payment(self.payments[payment_hash], status)

    # --- state ------------------------------------------------------------------------------

    def _broadcast(self, item: tuple[str, str]) -> None:
        for queue in list(self._listeners):
            queue.put_nowait(item)

    def _invoice_json(self, inv: dict[str, Any]) -> dict[str, Any]:
        if inv["state"] == "OPEN" and time.time() > inv["creation_date"] + inv["expiry"]:
            inv["state"] = "CANCELED"
        settled = inv["state"] == "SETTLED"
        return {
            "memo": inv["memo"], "r_preimage": _b64(inv["preimage"]) if settled else None,
            "r_hash": _b64(inv["r_hash"]), "value": str(inv["value_msat"] // 1000),
            "value_msat": str(inv["value_msat"]), "settled": settled,
            "creation_date": str(inv["creation_date"]),
            "settle_date": str(inv.get("settle_date", 0)),
            "payment_request": inv["payment_request"],
            "description_hash": _b64(inv["description_hash"]) if inv["description_hash"] else "",
            "expiry": str(inv["expiry"]), "add_index": str(inv["add_index"]),
            "settle_index": str(inv.get("settle_index", 0)),
            "amt_paid_sat": str(inv.get("amt_paid_msat", 0) // 1000),
            "amt_paid_msat": str(inv.get("amt_paid_msat", 0)), "state": inv["state"],
            "payment_addr": _b64(inv["payment_addr"]), "is_keysend": False, "htlcs": [],
        }

    def _payment_json(self, p: dict[str, Any]) -> dict[str, Any]:
        return {key: str(value) if isinstance(value, int) else value for key, value in p.items()}

    def _finish_payment(self, payment: dict[str, Any], status: str) -> None:
        payment["status"] = status
        if status == "SUCCEEDED":
            payment["payment_preimage"] = secrets.token_hex(32)
            payment["failure_reason"] = "FAILURE_REASON_NONE"
            self.balance_msat -= payment["value_msat"] + payment["fee_msat"]
        else:
            payment["fee_msat"] = 0
            payment["failure_reason"] = "FAILURE_REASON_NO_ROUTE"
        self._broadcast(("payment", payment["payment_hash"]))

    # --- HTTP -------------------------------------------------------------------------------

    def _app(self) -> Starlette:
        def authed(handler: Callable[[Request], Awaitable[Response]]
                   ) -> Callable[[Request], Awaitable[Response]]:
            async def check(request: Request) -> Response:
                if self._down:
                    return _error(14, "lnd is shutting down", 503)
                if request.headers.get("grpc-metadata-macaroon") != self.macaroon:
                    return _error(2, "verification failed: signature mismatch after caveat "
                                  "verification", 401)
                return await handler(request)
            return check

        return Starlette(routes=[
            Route("/v1/getinfo", authed(self._getinfo)),
            Route("/v1/invoices", authed(self._add_invoice), methods=["POST"]),
            Route("/v1/invoice/{r_hash_str}", authed(self._lookup_invoice)),
            Route("/v1/invoices/subscribe", authed(self._subscribe)),
            Route("/v2/router/send", authed(self._send), methods=["POST"]),
            Route("/v2/router/track/{payment_hash}", authed(self._track)),
            Route("/v1/payments", authed(self._list_payments)),
            Route("/v1/balance/channels", authed(self._balance)),
        ])

    async def _getinfo(self, request: Request) -> Response:
        return JSONResponse({
            "version": "0.18.3-beta fake", "identity_pubkey": self.key.public_key.format().hex(),
            "alias": "fake-lnd", "num_active_channels": 1, "block_height": 800,
            "synced_to_chain": True, "chains": [{"chain": "bitcoin", "network": self.network}],
        })

    async def _add_invoice(self, request: Request) -> Response:
        body = await request.json()
        value_msat = int(body.get("value_msat") or 0) or int(body.get("value") or 0) * 1000
        expiry = int(body.get("expiry") or 86400)
        description_hash = base64.b64decode(body.get("description_hash") or "")
        if description_hash and len(description_hash) != 32:
            return _error(2, "description hash must be 32 bytes", 500)
        preimage = base64.b64decode(body.get("r_preimage") or "") or secrets.token_bytes(32)
        r_hash = hashlib.sha256(preimage).digest()
        payment_addr = secrets.token_bytes(32)
        created = int(time.time())
        tags = [Tag(TagChar.payment_hash, r_hash.hex()),
                Tag(TagChar.payment_secret, payment_addr.hex()),
                Tag(TagChar.expire_time, expiry), Tag(TagChar.min_final_cltv_expiry, 80)]
        if description_hash:
            tags.append(Tag(TagChar.description_hash, description_hash.hex()))
        else:
            tags.append(Tag(TagChar.description, body.get("memo", "")))
        request_str = bolt11.encode(
            Bolt11(currency=CURRENCY[self.network], date=created,
                   amount_msat=MilliSatoshi(value_msat) if value_msat else None, tags=Tags(tags)),
            self.key.secret.hex())
        self.add_index += 1
        self.invoices[r_hash.hex()] = {
            "memo": body.get("memo", ""), "preimage": preimage, "r_hash": r_hash,
            "value_msat": value_msat, "creation_date": created, "expiry": expiry,
            "payment_request": request_str, "description_hash": description_hash,
            "add_index": self.add_index, "payment_addr": payment_addr, "state": "OPEN"}
        self._broadcast(("invoice", r_hash.hex()))
        return JSONResponse({"r_hash": _b64(r_hash), "payment_request": request_str,
                             "add_index": str(self.add_index), "payment_addr": _b64(payment_addr)})

    async def _lookup_invoice(self, request: Request) -> Response:
        invoice = self.invoices.get(request.path_params["r_hash_str"])
        if invoice is None:
            return _error(5, "unable to locate invoice", 404)
        return JSONResponse(self._invoice_json(invoice))

    def _stream(self, first: list[dict[str, Any]], follow: Follow | None) -> StreamingResponse:
        """Send `first`, then what `follow` makes of each later event, until it says done."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._listeners.add(queue)

        async def body() -> AsyncIterator[bytes]:
            try:
                for item in first:
                    yield _line(item)
                while follow is not None:
                    event = await queue.get()
                    if event is _END:
                        return
                    out = follow(event)
                    if out is not None:
                        yield _line(out[0])
                        if out[1]:
                            return
            finally:
                self._listeners.discard(queue)

        return StreamingResponse(body(), media_type="application/json")

    async def _subscribe(self, request: Request) -> Response:
        self.subscribe_calls.append(dict(request.query_params))
        settle_from = int(request.query_params.get("settle_index") or 0)
        add_from = int(request.query_params.get("add_index") or 0)
        backlog = []
        for inv in sorted(self.invoices.values(), key=lambda i: i["add_index"]):
            if (add_from and inv["add_index"] > add_from) or (
                    settle_from and inv.get("settle_index", 0) > settle_from):
                backlog.append({"result": self._invoice_json(inv)})

        def follow(event: tuple[str, str]) -> tuple[dict[str, Any], bool] | None:
            kind, key = event
            if kind == "raw":
                return self._raw[int(key)], False
            if kind != "invoice":
                return None
            return {"result": self._invoice_json(self.invoices[key])}, False

        return self._stream(backlog, follow)

    async def _send(self, request: Request) -> Response:
        body = await request.json()
        try:
            decoded = bolt11.decode(body.get("payment_request", ""))
        except Exception as exc:
            return self._stream([{"error": {"code": 2, "message": f"invalid payment request: "
                                            f"{exc}", "details": []}}], None)
        if decoded.currency != CURRENCY[self.network]:
            return self._stream([{"error": {"code": 2, "message": "invoice not for current "
                                            f"active network '{self.network}'"}}], None)
        payment_hash = decoded.payment_hash
        self.send_calls.append(payment_hash)
        existing = self.payments.get(payment_hash)
        if existing is not None and existing["status"] == "SUCCEEDED":
            return self._stream([{"error": {"code": 6, "message": "invoice is already paid"}}],
                                None)
        if existing is not None and existing["status"] == "IN_FLIGHT":
            return self._stream([{"error": {"code": 6, "message": "payment is in transition"}}],
                                None)
        fee = min(self.fee_msat, int(body.get("fee_limit_msat") or 0))
        payment = {"payment_hash": payment_hash, "value_msat": int(decoded.amount_msat or 0),
                   "payment_request": body["payment_request"], "status": "IN_FLIGHT",
                   "fee_msat": fee, "payment_preimage": "0" * 64,
                   "creation_time_ns": time.time_ns(), "failure_reason": "FAILURE_REASON_NONE",
                   "payment_index": len(self.payments) + 1, "htlcs": []}
        self.payments[payment_hash] = payment
        if self.pay_outcome != "HANG":
            asyncio.get_running_loop().call_later(0.02, self._finish_payment, payment,
                                                  self.pay_outcome)
        return self._payment_stream(payment_hash)

    def _payment_stream(self, payment_hash: str) -> StreamingResponse:
        payment = self.payments[payment_hash]

        def follow(event: tuple[str, str]) -> tuple[dict[str, Any], bool] | None:
            kind, key = event
            if kind != "payment" or key != payment_hash:
                return None
            return ({"result": self._payment_json(payment)},
                    payment["status"] in ("SUCCEEDED", "FAILED"))

        first = [{"result": self._payment_json(payment)}]
        return self._stream(first, None if payment["status"] != "IN_FLIGHT" else follow)

    async def _track(self, request: Request) -> Response:
        raw = request.path_params["payment_hash"]
        try:
            payment_hash = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).hex()
        except ValueError:
            return self._stream([{"error": {"code": 3, "message": "bad payment hash"}}], None)
        if payment_hash not in self.payments:
            return self._stream([{"error": {"code": 5, "message": "payment isn't initiated"}}],
                                None)
        return self._payment_stream(payment_hash)

    async def _list_payments(self, request: Request) -> Response:
        items = [self._payment_json(p) for p in self.payments.values()]
        if request.query_params.get("include_incomplete") != "true":
            items = [p for p in items if p["status"] == "SUCCEEDED"]
        return JSONResponse({"payments": items, "first_index_offset": "1",
                             "last_index_offset": str(len(self.payments))})

    async def _balance(self, request: Request) -> Response:
        return JSONResponse({
            "balance": str(self.balance_msat // 1000),
            "local_balance": {"sat": str(self.balance_msat // 1000),
                              "msat": str(self.balance_msat)},
            "remote_balance": {"sat": "0", "msat": "0"},
        })

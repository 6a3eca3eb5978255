"""What a passthrough connection does whatever OCPP it speaks: one loop reads the charger's
frames, a worker hands each call to strom or to the backend (the protocol's connection says
which, `_is_stroms`), strom's handler answers are captured instead of sent when they are not
the charger's, and the backend's calls go to the charger with wire ids of strom's after the
protocol's rules (`rules.ProtocolRules`) had their say.

`connection.PassthroughConnection` (1.6J) and `v201.V201PassthroughConnection` (2.0.1) put
this in front of strom's own connection class of their protocol.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from ocpp.routing import after
from websockets.exceptions import ConnectionClosed

from strom.bounded import Bounded
from strom.config import PassthroughSettings
from strom.ocpp.charge_point import OcppContext, SharedHandlers
from strom.ocpp.frames import CALL, CALLRESULT, Frame, FrameError, parse_frame
from strom.outbound import Outbound
from strom.passthrough.config import UpstreamConfig
from strom.passthrough.ids import MessageIds, NamedTx, Transactions, with_unique_id
from strom.passthrough.rules import ProtocolRules
from strom.passthrough.upstream import Backlog, UpstreamLink
from strom.ratelimit import TokenBucket

log = logging.getLogger(__name__)

# Charger calls waiting for the worker; OCPP-J allows one in flight, so more is a flood.
INBOX = 16
# idTags the backend accepted, remembered to answer for it while it is away (a charger's
# authorization cache); bounded, oldest forgotten first.
ACCEPTED_TAGS = 1000


class LightningSessions(Protocol):
    """What the passthrough asks strom's sessions (`SessionService`)."""

    async def owns_id_tag(self, cp_id: str, id_tag: str) -> bool: ...

    async def busy_connectors(self, cp_id: str) -> set[int]: ...


@dataclass
class ChargerState:
    """What strom keeps of one charger across its reconnections: its open transactions (1.6:
    `transactions`, ids mapped; 2.0.1: `named`, the charger's own ids), the idTags its
    backend accepted, and the calls still on their way to the backend."""

    transactions: Transactions = field(default_factory=Transactions)
    named: Bounded[str, NamedTx] = field(default_factory=Bounded)
    accepted: OrderedDict[str, None] = field(default_factory=OrderedDict)
    backlog: Backlog = field(default_factory=Backlog)


class PassthroughCore(SharedHandlers):
    """The protocol-neutral part; a subclass decides ownership and answers (see module doc)."""

    rules: ProtocolRules
    _ctx: OcppContext  # set by strom's connection class of the protocol

    def _setup_passthrough(self, *, config: UpstreamConfig, settings: PassthroughSettings,
                           sessions: LightningSessions | None, outbound: Outbound | None,
                           max_message_bytes: int, state: ChargerState | None
                           ) -> ChargerState:
        """Set up the backend link and the call routing (called by the protocol's
        constructor after strom's connection class's); the charger's kept state (`state`, or
        a new one for a charger seen the first time), whose transactions the protocol keeps."""
        state = state or ChargerState()
        self.upstream = UpstreamLink(self.id, config, settings, self._backend_call,
                                     outbound=outbound, max_message_bytes=max_message_bytes,
                                     backlog=state.backlog, replayed=self.rules.replayed,
                                     sheddable=self.rules.sheddable)
        self._sessions = sessions if config.lightning else None
        self._ids = MessageIds()
        self._inbox: asyncio.Queue[tuple[Frame, str]] = asyncio.Queue(INBOX)
        self._captured: dict[str, str | None] = {}
        self._accepted = state.accepted
        self._backend_bucket = TokenBucket(settings.backend_rate_per_second,
                                           settings.backend_rate_burst)
        self._backend_in_flight = settings.backend_calls_in_flight
        return state

    @property
    def lightning(self) -> bool:
        """Whether strom runs lightning sessions here (else: a pure proxy)."""
        return self._sessions is not None

    @after("BootNotification")
    def after_boot(self, **kwargs: Any) -> None:
        # A pure proxy makes no calls of its own: the backend configures the charger.
        if self.lightning:
            super().after_boot(**kwargs)

    async def start(self) -> None:
        self.upstream.start()
        worker = asyncio.create_task(self._work(), name=f"passthrough:{self.id}")
        try:
            await super().start()
        finally:
            worker.cancel()
            await self.upstream.close()

    # --- frames from the charger ------------------------------------------------------------

    async def route_message(self, raw: str | bytes) -> None:
        try:
            frame = parse_frame(raw)
        except FrameError:
            await super().route_message(raw)  # strom answers it with a CALLERROR
            return
        assert isinstance(raw, str)
        if frame.message_type != CALL:
            opened = self._ids.answered(frame.unique_id)
            if opened is None:
                await self.route_frame(frame)  # an answer to one of strom's calls
                return
            backend_id, action, payload = opened
            await self.upstream.send(with_unique_id(raw, backend_id))
            self._after_backend_call(action, payload, frame)
            return
        if not self._bucket.take():
            await self._send_error(frame.unique_id, "GenericError",
                                   "too many messages; slow down")
            return
        try:
            self._inbox.put_nowait((frame, raw))
        except asyncio.QueueFull:
            await self._send_error(frame.unique_id, "GenericError",
                                   "one call at a time, please (OCPP-J)")

    def _admit(self) -> bool:
        return True  # the token was taken when the call arrived (route_message above)

    async def _work(self) -> None:
        while True:
            frame, raw = await self._inbox.get()
            try:
                if await self._is_stroms(frame):
                    await self._send(await self._strom_answer(frame))
                else:
                    await self._backends(frame, raw)
            except ConnectionClosed:
                return
            except Exception:
                log.exception("%s: passing %s through failed", self.id, frame.action)
                await self._send_error(frame.unique_id, "InternalError",
                                       "the central system failed on this message")

    async def _is_stroms(self, frame: Frame) -> bool:
        """Whether strom's handler answers this call (else: the backend)."""
        raise NotImplementedError

    async def _strom_answer(self, frame: Frame) -> str:
        """strom's answer to a call that is strom's, as the charger is to get it."""
        raise NotImplementedError

    async def _backends(self, frame: Frame, raw: str) -> None:
        """Forward a call that is the backend's and answer the charger."""
        raise NotImplementedError

    async def _capture(self, frame: Frame) -> str:
        """Run strom's handler on the charger's call `frame`; its answer is returned, not
        sent."""
        self._captured[frame.unique_id] = None
        try:
            await self.route_frame(frame)
            answer = self._captured[frame.unique_id]
        finally:
            self._captured.pop(frame.unique_id, None)
        assert answer is not None, "every call gets an answer"
        return answer

    async def _answer(self, unique_id: str, text: str) -> None:
        if self._captured.get(unique_id, "") is None:
            self._captured[unique_id] = text  # strom's handler's answer, kept (`_capture`)
            return
        await super()._answer(unique_id, text)

    # --- the authorization cache ------------------------------------------------------------

    def _remember(self, tag: Any, info: Any) -> None:
        if not isinstance(tag, str) or not isinstance(info, dict):
            return
        if info.get("status") == "Accepted":
            self._accepted[tag] = None
            self._accepted.move_to_end(tag)
            while len(self._accepted) > ACCEPTED_TAGS:
                self._accepted.popitem(last=False)
        else:
            self._accepted.pop(tag, None)

    def _cached(self, tag: Any) -> str:
        return "Accepted" if tag in self._accepted else "Invalid"

    # --- the backend's calls to the charger -------------------------------------------------

    async def _backend_call(self, frame: Frame, raw: str) -> None:
        action, payload = frame.action or "", frame.payload
        if not self._backend_bucket.take() or len(self._ids.open) >= self._backend_in_flight:
            await self.upstream.send(json.dumps(
                [4, frame.unique_id, "GenericError", "too many calls; slow down", {}]))
            return
        refusal = await self._refusal(action, payload)
        if refusal is not None:
            log.info("%s: the backend's %s refused: %s", self.id, action, refusal)
            await self.upstream.send(json.dumps([CALLRESULT, frame.unique_id, refusal]))
            return
        raw = self._for_charger(action, payload, raw)
        wire = self._ids.outbound(frame.unique_id, action, payload)
        try:
            await self._send(with_unique_id(raw, wire))
        except ConnectionClosed:
            self._ids.answered(wire)

    async def _refusal(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """strom's answer to a backend call it does not let through, or None."""
        raise NotImplementedError

    def _for_charger(self, action: str, payload: dict[str, Any], raw: str) -> str:
        """A backend call as the charger is to get it (ids mapped); as written by default."""
        return raw

    def _after_backend_call(self, action: str, payload: dict[str, Any], answer: Frame) -> None:
        if (self.lightning and answer.message_type == CALLRESULT
                and self.rules.changes_strom_key(action, payload, answer.payload)):
            # Rule: strom re-applies its metering settings (and records that it did).
            log.warning("%s: the backend changed a setting strom's billing relies on (%s); "
                        "strom sets its metering again", self.id, action)
            ctx = self._ctx
            ctx.event_log.append_soon(
                "passthrough_conflict", {"backend": action, **self.rules.what_changed(payload),
                                         "resolution": "re-applied"}, self.id)
            if ctx.on_booted is not None:
                ctx.on_booted(self.id)

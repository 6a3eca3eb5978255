"""OCPP-J over one websocket, owned by strom: framing, a rate limit, calls and their answers.

The ocpp library's `ChargePoint` cannot do what a central system needs here without reaching
into its private parts: it stays silent on malformed frames, has no rate limit, queues every
CALLRESULT whether anyone asked, and answers a charger's CALL with 1.6 codes spelled the 2.0
way. So strom owns the envelope (`frames.parse_frame`) and the matching of answers, and uses
only the library's public API for the payloads: `@on`/`@after` routing (`create_route_map`),
schema validation (`validate_payload`, after the compiled check of `validation`), the key case
conversion and the typed `call`/`call_result` classes (but for the handlers of the calls sent
all day, `on_payload`, which read and answer payloads as sent). One class for every OCPP-J
version: a subclass names its version, its `call_result` module, its actions and how it spells
error codes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, ClassVar

from ocpp.charge_point import (
    camel_to_snake_case,
    remove_nones,
    serialize_as_dict,
    snake_to_camel_case,
)
from ocpp.exceptions import NotImplementedError as CallNotImplemented
from ocpp.exceptions import NotSupportedError, OCPPError, SecurityError, ValidationError
from ocpp.messages import Call, CallError, CallResult
from ocpp.routing import create_route_map, on
from websockets.exceptions import ConnectionClosed

from strom.chargers.control import StillWanted
from strom.ocpp.frames import CALL, CALLERROR, Frame, FrameError, parse_frame
from strom.ocpp.validation import compiled, validate
from strom.ratelimit import TokenBucket

log = logging.getLogger(__name__)


Payload = dict[str, Any]


class CallWithdrawn(Exception):
    """A call its caller no longer wanted when its turn came (`OcppRpc.call`'s `still_wanted`):
    nothing was sent."""


def on_payload(action: str) -> Callable[[Callable[[Any, Payload], Awaitable[Payload]]],
                                        Callable[[Any, Payload], Awaitable[Payload]]]:
    """Route `action` (as `@on`) to an async handler that takes the checked payload as the peer
    sent it (camelCase keys) and returns its answer's payload the same way.

    For the calls every charger sends all day (MeterValues, Heartbeat; 2.0.1's TransactionEvent
    while a car charges): the library's key case conversion (a regex per key, recursive) and
    payload classes cost more CPU than the rest of such a call's handling
    (docs/performance.md). The schema checks of the call and of its answer are the same as for
    any `@on` handler.
    """
    def mark(func: Callable[[Any, Payload], Awaitable[Payload]]
             ) -> Callable[[Any, Payload], Awaitable[Payload]]:
        routed = on(action)(func)
        routed._takes_payload = True
        return routed

    return mark


class OcppRpc:
    """One peer's OCPP-J session: routes its CALLs to `@on` handlers (and `@after` hooks),
    sends strom's CALLs one at a time and matches each answer to the call by its unique id.

    Every CALL gets exactly one answer: its handler's CALLRESULT or a CALLERROR (malformed
    frame, too many messages, unknown action, a payload the schema refuses, a handler that
    raised). A CALLRESULT or CALLERROR nobody waits for is dropped.
    """

    ocpp_version: ClassVar[str]
    call_results: ClassVar[ModuleType]  # e.g. ocpp.v16.call_result
    actions: ClassVar[frozenset[str]]  # the version's actions: NotSupported, else NotImplemented
    # Error codes as this version spells them (the library and `frames` use other spellings).
    spelling: ClassVar[dict[str, str]] = {}
    # The code for each kind of broken frame (`FrameError.kind`) where the version has its own
    # (2.0.1: MessageTypeNotSupported, RpcFrameworkError); else the frame check's code.
    frame_codes: ClassVar[dict[str, str]] = {}
    # The `@on`/`@after` routes, made once per class: functions to call with the connection
    # (bound methods made per connection were ~3.8 KiB and 31 objects in reference cycles per
    # charger, docs/performance.md).
    route_map: ClassVar[dict[str, dict[str, Any]]] = {}
    # Other schemas every connection needs at once, compiled by `prepare` too: (message type,
    # action) of its boot and of strom's calls right after it.
    prepared: ClassVar[tuple[tuple[int, str], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.route_map = create_route_map(cls)

    def __init__(self, cp_id: str, websocket: Any, *, response_timeout: float,
                 rate_per_second: float, rate_burst: int) -> None:
        self.id = cp_id
        self.websocket = websocket
        self._response_timeout = response_timeout
        self._bucket = TokenBucket(rate_per_second, rate_burst)
        # OCPP-J: one CALL of ours in flight at a time; its answer is awaited under this lock.
        self._calling = asyncio.Lock()
        self._waiting: dict[str, asyncio.Future[CallResult | CallError]] = {}
        self._hooks: set[asyncio.Task[Any]] = set()
        # The answer to its last BootNotification: while Pending or Rejected the charger may
        # send nothing but another boot (OCPP 1.6 §4.2, 2.0.1 B02/B03).
        self.registration: str | None = None

    async def start(self) -> None:
        """Serve the peer's frames until the connection closes (raises ConnectionClosed)."""
        try:
            while True:
                await self.route_message(await self.websocket.recv())
        finally:
            # A call in flight gets no answer now: it ends at once, not at its timeout.
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionClosed(None, None))

    @classmethod
    def prepare(cls) -> None:
        """Compile the schema checks of the calls sent all day (the `on_payload` handlers' and
        their answers') and of a boot (`prepared`) now, before a charger waits for one: 1-120
        ms each (2.0.1's TransactionEvent is the largest), paid by the first chargers otherwise."""
        for action, handlers in cls.route_map.items():
            if getattr(handlers.get("_on_action"), "_takes_payload", False):
                compiled(2, action, cls.ocpp_version)
                compiled(3, action, cls.ocpp_version)
        for message_type, action in cls.prepared:
            compiled(message_type, action, cls.ocpp_version)

    # --- frames from the peer ---------------------------------------------------------------

    async def route_message(self, raw: str | bytes) -> None:
        """Route one frame; anything malformed gets a CALLERROR, never silence or a crash."""
        try:
            frame = parse_frame(raw)
        except FrameError as exc:
            log.warning("%s: rejected frame: %s", self.id, exc.description)
            await self._send_error(exc.unique_id, self.frame_codes.get(exc.kind, exc.code),
                                   exc.description)
            return
        await self.route_frame(frame)

    async def route_frame(self, frame: Frame) -> None:
        """Route one parsed frame: an answer to its waiting call, a CALL to its handler."""
        if frame.message_type != CALL:
            waiter = self._waiting.get(frame.unique_id)
            if waiter is None or waiter.done():
                log.debug("%s: dropped an answer to no call of ours (%s)", self.id,
                         frame.unique_id)
                return
            waiter.set_result(CallResult(frame.unique_id, frame.payload)
                              if frame.message_type != CALLERROR
                              else CallError(frame.unique_id, *(frame.error or ("", "", {}))))
            return
        assert frame.action is not None
        msg = Call(frame.unique_id, frame.action, frame.payload)
        if not self._admit():
            await self._send_error(msg.unique_id, "GenericError", "too many messages; slow down")
            return
        try:
            await self._dispatch(msg)
        except ConnectionClosed:
            raise  # the receive loop ends; the central system cleans up
        except OCPPError as exc:
            log.info("%s: %s %s answered %s: %s", self.id, msg.action, msg.unique_id,
                     exc.code, exc.description)
            await self._send_error(msg.unique_id, exc.code, exc.description, exc.details)
        except Exception:
            log.exception("%s: handling %s failed", self.id, msg.action)
            await self._send_error(msg.unique_id, "InternalError",
                                   "the central system failed on this message")

    def _admit(self) -> bool:
        """Whether the rate limit lets one more CALL in (a subclass may count elsewhere)."""
        return self._bucket.take()

    async def _dispatch(self, msg: Call) -> None:
        if self.registration in ("Pending", "Rejected") and msg.action != "BootNotification":
            raise SecurityError(description=f"BootNotification is {self.registration};"
                                " boot again later")
        handlers = self.route_map.get(msg.action, {})
        handler = handlers.get("_on_action")
        if handler is None:
            # OCPP 1.6 §4.2.3 (the ocpp library has these two the other way round).
            if msg.action in self.actions:
                raise NotSupportedError(description=f"{msg.action} is not supported here")
            raise CallNotImplemented(
                description=f"{msg.action} is not an OCPP {self.ocpp_version} action")
        checked = not handlers.get("_skip_schema_validation", False)
        if checked:
            await validate(msg, self.ocpp_version)
        kwargs = None
        if getattr(handler, "_takes_payload", False):
            answer = await handler(self, msg.payload)
            result = msg.create_call_result(answer)
        else:
            kwargs = camel_to_snake_case(msg.payload)
            answer = handler(self, **kwargs)
            if inspect.isawaitable(answer):
                answer = await answer
            result = msg.create_call_result(
                snake_to_camel_case(remove_nones(serialize_as_dict(answer))))
        if checked:
            await validate(result, self.ocpp_version)
        await self._answer(msg.unique_id, result.to_json())
        hook = handlers.get("_after_action")
        if hook is not None:
            # After the answer is out: a hook may call the peer, whose answer this loop reads.
            after = hook(self, **(kwargs if kwargs is not None
                                  else camel_to_snake_case(msg.payload)))
            if inspect.isawaitable(after):
                task = asyncio.ensure_future(after)
                self._hooks.add(task)
                task.add_done_callback(self._hooks.discard)

    # --- strom's calls to the peer ----------------------------------------------------------

    async def call(self, payload: Any, *, still_wanted: StillWanted | None = None) -> Any:
        """Send one CALL and return the version's typed answer.

        Calls go one at a time: one may wait for the one before it to be answered.
        `still_wanted`, asked once it has its turn if it had to wait for it, withdraws it
        (`CallWithdrawn`, nothing sent) when it answers False. Raises the OCPPError of a CALLERROR answer
        (`UnknownCallErrorCodeError` for a code the version does not have), `ValidationError`
        for an answer the schema refuses, `TimeoutError` after `response_timeout`, or
        ConnectionClosed.
        """
        action = type(payload).__name__
        answer = await self.call_payload(
            action, remove_nones(snake_to_camel_case(serialize_as_dict(payload))),
            still_wanted=still_wanted)
        try:
            return getattr(self.call_results, action)(**camel_to_snake_case(answer))
        except TypeError as exc:
            raise ValidationError(f"the answer to {action} does not fit OCPP"
                                  f" {self.ocpp_version}: {exc}") from None

    async def call_payload(self, action: str, payload: Payload, *,
                           still_wanted: StillWanted | None = None) -> Payload:
        """`call` with the payload as on the wire (camelCase keys) and the answer's payload
        the same way, checked by the same schemas: for the calls strom sends every charger at
        each boot (the metering set-up), without the library's key case conversion and payload
        classes (as `on_payload` for the calls chargers send). A subclass that vets strom's
        calls (passthrough: starts and stops) overrides `call`; these calls are not those."""
        msg = Call(str(uuid.uuid4()), action, payload)
        await validate(msg, self.ocpp_version)
        # `still_wanted` is asked only of a call that had to wait for its turn: one sent at
        # once was decided a moment ago, and asking (a store read) would cost every call.
        waits = self._calling.locked()
        async with self._calling:
            if still_wanted is not None and waits and not await still_wanted():
                raise CallWithdrawn(action)
            waiter: asyncio.Future[CallResult | CallError] = \
                asyncio.get_running_loop().create_future()
            self._waiting[msg.unique_id] = waiter
            try:
                await self._send(msg.to_json())
                async with asyncio.timeout(self._response_timeout):
                    answer = await waiter
            finally:
                del self._waiting[msg.unique_id]
        if isinstance(answer, CallError):
            raise answer.to_exception()
        answer.action = action
        try:
            await validate(answer, self.ocpp_version)
        except OCPPError as exc:
            raise ValidationError(f"the answer to {action} does not fit OCPP"
                                  f" {self.ocpp_version}: {exc.description}") from None
        return answer.payload

    # --- sending ----------------------------------------------------------------------------

    async def _send(self, text: str) -> None:
        await self.websocket.send(text)

    async def _answer(self, unique_id: str, text: str) -> None:
        """Send `text`, the answer to the peer's call `unique_id` (a subclass may keep it)."""
        await self._send(text)

    async def _send_error(self, unique_id: str, code: str, description: str,
                          details: dict[str, Any] | None = None) -> None:
        error = CallError(unique_id, self.spelling.get(code, code), description, details or {})
        await self._answer(unique_id, error.to_json())


"""Publishing to one relay: its own queue, publish budget, rests and state (issue 19).

Each relay of strom's shared client gets a `RelayLane`: events wait in its queue and go out in
that order, at most `IN_FLIGHT` awaiting that relay's `OK` at once (`OWN_IN_FLIGHT` for strom's
own relay, which commits the events that arrive together in one transaction), each at most
`OK_SECONDS`. A silent, slow or refusing relay holds up its own lane only; the others keep
publishing at their own pace.

What a relay answers (NIP-01 `OK` prefixes) decides what the lane does:

| answer | the lane |
| --- | --- |
| `OK true`, `duplicate:` | accepted |
| `rate-limited:` | rests that relay (5 s doubling to 10 min, ±20 % jitter), then sends the event again |
| `auth-required:` | sends it again once, after the NIP-42 challenge has been answered |
| no answer in time | rests like `rate-limited:`, then tries again (at most `MAX_TRIES` sends) |
| `invalid:`, `blocked:`, `pow:`, `restricted:`, anything else | drops it there, with a log line |

Pacing: a token bucket per relay (`BUDGET_RATE` events per second, `BUDGET_BURST` at once)
keeps strom under public relays' usual limits; strom's embedded relay has none (it never
limits strom's own keys). A replaceable or addressable event waiting in
the queue is replaced by its newer version (a status refreshed twice goes out once). The queue
holds at most `MAX_QUEUED` events; past that the oldest is dropped (counted).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

from bots.signed import Replaces, SignedEvent
from strom.ratelimit import TokenBucket

log = logging.getLogger(__name__)

OK_SECONDS = 5.0
REST_FIRST, REST_MAX = 5.0, 600.0
JITTER = 0.2
AUTH_RETRY_DELAY = 0.5
MAX_TRIES = 3
IN_FLIGHT = 16
OWN_IN_FLIGHT = 128
BUDGET_RATE, BUDGET_BURST = 5.0, 50
MAX_QUEUED = 200
MAX_REASON = 200  # a relay's words are shown to the operator: bounded

# (ok, the relay's message); "timeout" when it did not answer within `OK_SECONDS`.
Send = Callable[[SignedEvent, str], Awaitable[tuple[bool, str]]]


@dataclass
class RelayState:
    """What the operator sees of one relay (`/healthz`, the TUI)."""

    url: str
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    unanswered: int = 0
    dropped: int = 0
    queued: int = 0
    last_refusal: str | None = None  # the prefix: rate-limited, auth-required, invalid, …
    last_reason: str | None = None
    last_refusal_at: float | None = None  # unix seconds
    resting_until: float | None = None  # unix seconds
    auth: str = "none"  # none | required | answered

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _Item:
    event: SignedEvent
    done: asyncio.Future[bool]
    key: Replaces
    tries: int = 0
    auth_retried: bool = False


@dataclass
class RelayLane:
    """One relay's queue and worker; `put` returns a future: accepted there or not."""

    url: str
    send: Send
    metered: bool = True
    state: RelayState = field(init=False)
    _queue: deque[_Item] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _bucket: TokenBucket = field(init=False)
    _rest_until: float = 0.0  # monotonic
    _rest: float = 0.0
    _task: asyncio.Task[None] | None = None
    _sending: set[asyncio.Task[None]] = field(default_factory=set)
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.state = RelayState(self.url)
        self._bucket = TokenBucket(BUDGET_RATE, BUDGET_BURST)
        self._slots = asyncio.Semaphore(IN_FLIGHT if self.metered else OWN_IN_FLIGHT)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"nostr:lane {self.url[:60]}")

    async def close(self) -> None:
        for task in [self._task, *self._sending]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*filter(None, [self._task, *self._sending]),
                             return_exceptions=True)
        while self._queue:
            _resolve(self._queue.popleft().done, False)

    def put(self, event: SignedEvent) -> asyncio.Future[bool]:
        """Queue `event` for this relay; a queued older version of it is replaced."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        item = _Item(event, done, event.replaces)
        for index, queued in enumerate(self._queue):
            if item.key is not None and queued.key == item.key and queued.tries == 0:
                self._queue[index] = item
                done.add_done_callback(_passed_on_to(queued.done))
                return done
        self._queue.append(item)
        if len(self._queue) > MAX_QUEUED:
            _resolve(self._queue.popleft().done, False)
            self.state.dropped += 1
            if self.state.dropped % 100 == 1:
                log.warning("nostr: %s: %d events waiting; the oldest dropped (%d so far)",
                            self.url, MAX_QUEUED, self.state.dropped)
        self.state.queued = len(self._queue)
        self._wake.set()
        return done

    def authenticated(self) -> None:
        """The relay's NIP-42 challenge was answered."""
        self.state.auth = "answered"

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if (wait := self._rest_until - time.monotonic()) > 0:
                await asyncio.sleep(wait)
                continue
            if self.metered and not self._bucket.take():
                await asyncio.sleep(1.0 / BUDGET_RATE)
                continue
            await self._slots.acquire()
            if not self._queue:  # closed meanwhile
                self._slots.release()
                continue
            item = self._queue.popleft()
            self.state.queued = len(self._queue)
            task = asyncio.create_task(self._sending_one(item), name="nostr:lane-send")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _sending_one(self, item: _Item) -> None:
        try:
            await self._send_one(item)
        except Exception:  # a binding error must not end the lane
            log.exception("nostr: publishing to %s failed", self.url)
            _resolve(item.done, False)
        finally:
            self._slots.release()

    async def _send_one(self, item: _Item) -> None:
        item.tries += 1
        self.state.sent += 1
        ok, message = await self.send(item.event, self.url)
        prefix = message.split(":", 1)[0].strip() if not ok else ""
        if ok or prefix == "duplicate":
            self.state.accepted += 1
            # An event sent before the relay asked for a rest may be accepted during it: the
            # rest stands (seen as a flaky test_a_rate_limiting_relay_slows_nothing_else).
            if time.monotonic() >= self._rest_until:
                self._rest = 0.0
                self.state.resting_until = None
            _resolve(item.done, True)
            return
        kind = item.event.kind
        said_before = self.state.last_reason == message[:MAX_REASON]
        if prefix == "timeout":
            self.state.unanswered += 1
        else:
            self.state.refused += 1
            self.state.last_refusal, self.state.last_reason = prefix, message[:MAX_REASON]
            self.state.last_refusal_at = time.time()
        if prefix == "auth-required":
            self.state.auth = "required"
            if not item.auth_retried:
                item.auth_retried = True
                await asyncio.sleep(AUTH_RETRY_DELAY)  # the challenge is answered meanwhile
                self._again(item)
                return
        if prefix in ("rate-limited", "timeout"):
            self._rest_a_while(message)
            if item.tries < MAX_TRIES:
                self._again(item)
                return
        # One warning per new reason: a relay that blocks everything does not flood the log
        # (the operator sees the counts in /healthz and the TUI).
        log.log(logging.DEBUG if said_before else logging.WARNING,
                "nostr: kind %d %s dropped by %s: %s", kind, item.event.id,
                self.url, message[:MAX_REASON])
        _resolve(item.done, False)

    def _again(self, item: _Item) -> None:
        self._queue.appendleft(item)
        self.state.queued = len(self._queue)
        self._wake.set()

    def _rest_a_while(self, message: str) -> None:
        """Doubling rests with jitter: many stroms told to slow down do not come back at once."""
        if time.monotonic() < self._rest_until:
            return  # the answers to events sent together count as one
        self._rest = min(REST_MAX, max(REST_FIRST, self._rest * 2))
        rest = self._rest * (1 + JITTER * (2 * random.random() - 1))
        self._rest_until = time.monotonic() + rest
        self.state.resting_until = time.time() + rest
        log.info("nostr: %s answered %r: resting it %.0f s", self.url, message[:MAX_REASON],
                 rest)


def _passed_on_to(older: asyncio.Future[bool]) -> Callable[[asyncio.Future[bool]], None]:
    """The caller of a replaced event learns what became of its newer version."""
    def pass_on(newer: asyncio.Future[bool]) -> None:
        _resolve(older, newer.result())
    return pass_on


def _resolve(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)

"""Invoice signing off the event loop: `bolt11.encode` in a small process pool.

`bolt11.encode` costs ~1.8 ms of CPU per invoice (most of it bitstring's 5-bit conversion
inside the library, measured in docs/performance.md), pure Python under the GIL: in a thread
it would still stop the loop, which at that cost could sign no more than ~550 invoices a
second while serving nothing else. The dev wallet's invoices are signed in worker processes
instead, so the loop keeps serving HTTP and OCPP meanwhile: one per core, the loop's
included, since the loop needs only part of its core (~1.2 ms of a callback's ~3 ms) and a
single worker capped a 2-core machine at ~1/1.9 ms = 526 invoices a second (measured in
docs/performance.md). On a single core a pool would only add the hop: there signing stays on
the loop.

The loop talks to its workers over their stdin and stdout, one JSON line per invoice each
way, in order (`python -m strom.lightning.signing`). Not `ProcessPoolExecutor`: its results
come back through a thread of the loop's process that waits for the GIL behind the busy loop
(up to the 5 ms switch interval per result), which measured slower than signing on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import signal
import sys
from collections import deque

import bolt11
from bolt11 import Bolt11, MilliSatoshi, Tag, TagChar, Tags
from bolt11.models.features import Feature, Features, FeatureState
from coincurve import PrivateKey

log = logging.getLogger(__name__)

MIN_FINAL_CLTV_DELTA = 80
MAX_WORKERS = 4
# Invoices waiting at one worker beyond which the loop signs the next one itself: a stalled
# worker costs latency, never an unbounded queue.
MAX_WAITING = 64
STOP_TIMEOUT = 2.0
_FEATURES = Features.from_feature_list({Feature.var_onion_optin: FeatureState.required,
                                        Feature.payment_secret: FeatureState.required})

Args = tuple[bytes, str, int, bytes, int, int, "str | None", "bytes | None"]
# -P: the working directory is not on the worker's import path (a `bolt11.py` left there must
# not run as strom). The node key goes over the pipe, never in argv or the environment.
WORKER_COMMAND = (sys.executable, "-P", "-m", __name__)


def signed(secret: bytes, currency: str, amount_msat: int, preimage: bytes, created: int,
           expiry: int, description: str | None,
           description_hash: bytes | None) -> tuple[str, str]:
    """A BOLT11 invoice signed with the node key `secret`, and its payment hash (hex)."""
    payment_hash = hashlib.sha256(preimage).hexdigest()
    tags = [Tag(TagChar.payment_hash, payment_hash),
            Tag(TagChar.payment_secret, secrets.token_hex(32)),
            Tag(TagChar.expire_time, expiry),
            Tag(TagChar.min_final_cltv_expiry, MIN_FINAL_CLTV_DELTA),
            Tag(TagChar.features, _FEATURES)]
    if description_hash is not None:
        tags.append(Tag(TagChar.description_hash, description_hash.hex()))
    else:
        tags.append(Tag(TagChar.description, description or ""))
    unsigned = Bolt11(currency=currency, date=created, amount_msat=MilliSatoshi(amount_msat),
                      tags=Tags(tags))
    return bolt11.encode(unsigned, secret.hex()), payment_hash


def default_workers() -> int:
    """One signing process per core of the machine (at most `MAX_WORKERS`); 0 on a single
    core. The machine's cores, not this process's affinity: a process pinned to one core (a
    benchmark's server) may have its workers moved to others."""
    cores = os.cpu_count() or 1
    return 0 if cores < 2 else min(MAX_WORKERS, cores)


class WorkerGone(Exception):
    """A signing worker exited before it answered."""


class _Worker:
    """One signing process and the invoices it was asked for, answered in order."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.waiting: deque[asyncio.Future[tuple[str, str]]] = deque()
        self.answered = 0
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            *WORKER_COMMAND, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return cls(proc)

    @property
    def alive(self) -> bool:
        return not self._reader.done()

    async def sign(self, args: Args) -> tuple[str, str]:
        assert self.proc.stdin is not None
        if not self.alive:
            raise WorkerGone("the signing worker exited")
        secret, currency, amount, preimage, created, expiry, description, digest = args
        line = json.dumps([secret.hex(), currency, amount, preimage.hex(), created, expiry,
                           description, digest.hex() if digest is not None else None])
        answer = asyncio.get_running_loop().create_future()
        self.waiting.append(answer)
        self.proc.stdin.write(line.encode() + b"\n")
        return await answer

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                invoice, result = json.loads(line)
                self.answered += 1
                answer = self.waiting.popleft()
                if answer.done():  # its caller gave up (cancelled)
                    continue
                if invoice is None:  # the worker's exception, as text
                    answer.set_exception(ValueError(result))
                else:
                    answer.set_result((invoice, result))
        except (ValueError, IndexError) as exc:  # not our protocol: this worker is done for
            log.warning("invoice signing: a worker answered out of turn (%s); stopping it", exc)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
            while self.waiting:
                if not (answer := self.waiting.popleft()).done():
                    answer.set_exception(WorkerGone("the signing worker exited"))

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class InvoiceSigner:
    """`await signer.sign(key, …)`: `signed(…)` in a worker process (started on first use),
    or on the loop with `workers=0`. A worker that exits is replaced; the invoices it held
    are signed on the loop, so a caller never sees a worker fail. `close()` stops them."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._pool: list[_Worker] = []
        self._starting: asyncio.Lock | None = None

    async def sign(self, key: PrivateKey, currency: str, amount_msat: int, preimage: bytes,
                   created: int, expiry: int, description: str | None,
                   description_hash: bytes | None) -> tuple[str, str]:
        """The signed invoice and its payment hash, as `signed`."""
        args: Args = (key.secret, currency, amount_msat, preimage, created, expiry,
                      description, description_hash)
        worker = await self._least_busy() if self.workers > 0 else None
        if worker is None:
            return signed(*args)
        try:
            return await worker.sign(args)
        except WorkerGone:
            if worker.answered == 0 and self.workers > 0:
                # It never signed: starting more would fail alike (no `strom` to import?).
                log.warning("invoice signing: a worker process exited before signing "
                            "anything; invoices are signed on the loop from now on")
                self.workers = 0
            else:
                log.warning("invoice signing: a worker process exited; signing on the loop")
            return signed(*args)

    async def _least_busy(self) -> _Worker | None:
        if sum(w.alive for w in self._pool) < self.workers:
            self._starting = self._starting or asyncio.Lock()
            async with self._starting:  # one caller starts the missing workers
                self._pool = [w for w in self._pool if w.alive]
                while len(self._pool) < self.workers:
                    try:
                        started = await _Worker.start()
                    except OSError as exc:
                        log.warning("invoice signing: no worker process (%s)", exc)
                        break
                    self._pool.append(started)
        worker = min((w for w in self._pool if w.alive), key=lambda w: len(w.waiting),
                     default=None)
        return worker if worker is not None and len(worker.waiting) < MAX_WAITING else None

    async def close(self) -> None:
        """Stop the workers (signing starts new ones when needed)."""
        pool, self._pool = self._pool, []
        await asyncio.gather(*(w.stop() for w in pool))


def serve() -> None:
    """A worker: a JSON array of `signed`'s arguments per line in, `[invoice, payment hash]`
    (or `[null, error]`) per line out, until stdin closes (its parent stopped or died)."""
    # Ctrl-C reaches the whole process group: the parent decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for line in sys.stdin.buffer:
        answer: list[str | None]
        try:
            secret, currency, amount, preimage, created, expiry, description, digest = \
                json.loads(line)
            answer = list(signed(bytes.fromhex(secret), currency, amount,
                                 bytes.fromhex(preimage), created, expiry, description,
                                 bytes.fromhex(digest) if digest is not None else None))
        except Exception as exc:  # the caller's error to raise, not the worker's end
            answer = [None, f"{type(exc).__name__}: {exc}"]
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()

"""Invoice signing in worker processes: the same invoices as on the loop, each answer to its own
request, and a worker that dies costs no invoice."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import bolt11
import pytest
from coincurve import PrivateKey

from strom.lightning import signing
from strom.lightning.signing import InvoiceSigner, default_workers, signed

KEY = PrivateKey()


def _args(amount_msat: int, description_hash: bytes | None = None,
          description: str | None = None) -> tuple[PrivateKey, str, int, bytes, int, int,
                                                   str | None, bytes | None]:
    return (KEY, "bcrt", amount_msat, secrets.token_bytes(32), int(time.time()), 600,
            description, description_hash)


def _signing_processes() -> set[int]:
    """This process's children that are signing workers (no stray ones were started)."""
    pids = {int(p) for task in Path("/proc/self/task").iterdir()
            for p in (task / "children").read_text().split()}
    return {p for p in pids if b"strom.lightning.signing" in _cmdline(p)}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # exited meanwhile
        return b""


@pytest.fixture
async def signer() -> AsyncIterator[InvoiceSigner]:
    signing = InvoiceSigner(workers=2)
    yield signing
    await signing.close()


async def test_a_worker_signs_what_the_loop_would(signer: InvoiceSigner) -> None:
    digest = hashlib.sha256(b'[["text/plain","Charge at demo-1"]]').digest()
    args = _args(21_000, description_hash=digest)
    invoice, payment_hash = await signer.sign(*args)
    decoded = bolt11.decode(invoice)
    assert decoded.amount_msat == 21_000
    assert decoded.description_hash == digest.hex()
    assert decoded.payment_hash == payment_hash == hashlib.sha256(args[3]).hexdigest()
    assert decoded.payee == KEY.public_key.format().hex()  # signed by the node key
    assert decoded.expiry == 600 and decoded.date == args[4]
    assert signer._pool and all(w.proc.pid != os.getpid() for w in signer._pool)
    # The loop's signature of the same fields: only the random payment secret and the
    # signature differ, so the invoice has the loop's length and prefix.
    on_loop, _ = signed(KEY.secret, *args[1:])
    assert len(on_loop) == len(invoice) and on_loop[:12] == invoice[:12]


async def test_concurrent_requests_get_their_own_invoices(signer: InvoiceSigner) -> None:
    amounts = list(range(1_000, 1_060))
    memos = [f"memo {n} ✓" for n in range(60)]
    signed_ = await asyncio.gather(*(signer.sign(*_args(a, description=m))
                                     for a, m in zip(amounts, memos, strict=True)))
    decoded = [bolt11.decode(invoice) for invoice, _ in signed_]
    assert [d.amount_msat for d in decoded] == amounts
    assert [d.description for d in decoded] == memos
    assert [d.payment_hash for d in decoded] == [h for _, h in signed_]
    assert len(signer._pool) == 2 and _signing_processes() == {w.proc.pid for w in signer._pool}


async def test_a_dead_worker_costs_no_invoice(signer: InvoiceSigner) -> None:
    await signer.sign(*_args(1_000, description="warm"))
    victim = signer._pool[0]
    waiting = [asyncio.create_task(signer.sign(*_args(2_000 + n, description="x")))
               for n in range(6)]
    os.kill(victim.proc.pid, signal.SIGKILL)
    done = await asyncio.gather(*waiting)  # signed by the other worker or on the loop
    assert [bolt11.decode(i).amount_msat for i, _ in done] == [2_000 + n for n in range(6)]
    later, _ = await signer.sign(*_args(3_000, description="after"))
    assert bolt11.decode(later).amount_msat == 3_000
    assert victim not in signer._pool and len(signer._pool) == 2  # replaced
    assert _signing_processes() == {w.proc.pid for w in signer._pool}


async def test_a_refused_invoice_raises_for_its_caller(signer: InvoiceSigner) -> None:
    too_long = _args(1_000, description="x" * 1_100)  # no room in a tagged field's length
    with pytest.raises(ValueError, match="too large"):
        signed(KEY.secret, *too_long[1:])  # on the loop, bitstring's own ValueError
    with pytest.raises(ValueError, match="too large"):
        await signer.sign(*too_long)
    ok, _ = await signer.sign(*_args(1_000, description="fine"))  # the worker goes on
    assert bolt11.decode(ok).description == "fine"


async def test_a_worker_that_cannot_start_leaves_signing_to_the_loop(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(signing, "WORKER_COMMAND", (sys.executable, "-c", "raise SystemExit(3)"))
    signer = InvoiceSigner(workers=1)
    try:
        invoices = await asyncio.gather(*(signer.sign(*_args(1_000 + n, description="x"))
                                          for n in range(5)))
        assert [bolt11.decode(i).amount_msat for i, _ in invoices] == [1_000 + n for n in range(5)]
        assert signer.workers == 0  # no endless restarts
        assert "before signing anything" in caplog.text
        later, _ = await signer.sign(*_args(7_000, description="y"))
        assert bolt11.decode(later).amount_msat == 7_000
    finally:
        await signer.close()


async def test_a_worker_out_of_protocol_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    chatty = "import sys\nfor line in sys.stdin: print('hello', flush=True)"
    monkeypatch.setattr(signing, "WORKER_COMMAND", (sys.executable, "-c", chatty))
    signer = InvoiceSigner(workers=1)
    try:
        invoice, _ = await signer.sign(*_args(4_000, description="z"))
        assert bolt11.decode(invoice).amount_msat == 4_000  # signed on the loop instead
        worker = signer._pool[0]
        assert await asyncio.wait_for(worker.proc.wait(), 5) is not None  # killed, not left
    finally:
        await signer.close()


async def test_no_workers_signs_on_the_loop() -> None:
    signing = InvoiceSigner(workers=0)
    invoice, _ = await signing.sign(*_args(5_000, description="here"))
    assert bolt11.decode(invoice).amount_msat == 5_000
    assert signing._pool == []
    cores = os.cpu_count() or 1
    assert default_workers() == (0 if cores < 2 else min(4, cores))

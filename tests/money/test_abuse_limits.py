"""Unauthenticated LNURL callbacks used to fill the store (~115 pending sessions and invoices a
second, never purged). Now each client address has a token bucket, and pending sessions whose
invoice expired are purged — unless the wallet says the invoice was paid after all."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import bolt11
import lnurl
import pytest
import websockets
from nostr_sdk import Keys

from relay.event import parse_event
from strom.lightning.wallet import InvoiceStatus, WalletError
from strom.sessions import expiry
from strom.store.lightning import LightningRepository
from strom.timeutil import iso
from tests.money.conftest import CP, World, running_world
from tests.polling import eventually
from tests.unit.relay_support import sign


async def _callback(world: World) -> str:
    pay = (await world.http.get(f"/lnurlp/{CP}")).json()
    return str(pay["callback"])


async def test_a_flood_of_pay_callbacks_is_refused_per_address(data_dir: Path) -> None:
    # The default burst; a refill slow enough that the test's own pace does not matter.
    async with running_world(data_dir, lnurl={"callbacks_per_minute": 0.1}) as world:
        callback = await _callback(world)
        answers = [(await world.http.get(callback, params={"amount": 1_000_000})).json()
                   for _ in range(25)]
        assert ["pr" in a for a in answers] == [True] * 10 + [False] * 15
        for body in answers[10:]:
            assert body["status"] == "ERROR" and "too many payment requests" in body["reason"]
        assert await world.app.services.sessions.repo.count() == 10
        # A made-up forwarding header changes nothing while no proxy is configured.
        spoofed = await world.http.get(callback, params={"amount": 1_000_000},
                                       headers={"X-Forwarded-For": "203.0.113.9"})
        assert spoofed.json()["status"] == "ERROR"
        # A wallet (the lnurl library) shows the driver why.
        pay = await lnurl.get(f"{world.app.http_url}/lnurlp/{CP}")
        assert isinstance(pay, lnurl.LnurlPayResponse)
        with pytest.raises(lnurl.LnurlResponseException, match="too many payment requests"):
            await lnurl.execute_pay_request(pay, 1_000_000)


async def test_behind_a_trusted_proxy_each_client_has_its_own_bucket(data_dir: Path) -> None:
    async with running_world(data_dir, http={"trusted_proxies": ["127.0.0.1"]},
                             lnurl={"callback_burst": 2, "callbacks_per_minute": 0.1}) as world:
        callback = await _callback(world)

        async def invoice_for(client: str) -> bool:
            answer = await world.http.get(callback, params={"amount": 1_000_000},
                                          headers={"X-Forwarded-For": f"10.0.0.1, {client}"})
            return "pr" in answer.json()

        assert [await invoice_for("198.51.100.1") for _ in range(4)] == [True, True, False, False]
        assert await invoice_for("198.51.100.2")


PURGING = {"unpaid_grace_seconds": 0.0, "purge_interval_seconds": 0.1}


async def _ask_invoice(world: World, callback: str) -> tuple[str, str]:
    """A wallet's callback: (bolt11, session URL)."""
    answer = (await world.http.get(callback, params={"amount": 1_000_000})).json()
    return answer["pr"], answer["successAction"]["url"]


async def _let_invoices_expire(world: World) -> None:
    """Time passes: every unpaid invoice (and the sessions made then) is an hour old."""
    db = world.app.services.db
    async with db.transaction() as conn:
        for table in ("session_invoices", "ln_invoices"):
            await conn.execute(f"UPDATE {table} SET expires_at = '2020-01-01T00:00:00.000Z'"
                               " WHERE paid_at IS NULL")
        await conn.execute("UPDATE sessions SET created_at = '2020-01-01T00:00:00.000Z'"
                           " WHERE paid_msat = 0")


async def _count(world: World, table: str) -> int:
    row = await world.app.services.db.fetchone(f"SELECT COUNT(*) FROM {table}")
    return int(row[0])


async def test_unpaid_invoices_and_their_sessions_are_purged(data_dir: Path) -> None:
    async with running_world(data_dir, sessions=PURGING) as world:
        callback = await _callback(world)
        forgotten = [await _ask_invoice(world, callback) for _ in range(3)]
        paid = await world.pay_to_charge(1_000_000)
        await _let_invoices_expire(world)
        await eventually(lambda: _count(world, "sessions"), lambda n: n == 1)
        assert await _count(world, "session_invoices") == 1
        assert await _count(world, "ln_invoices") == 1
        for _, session_url in forgotten:
            gone = await world.http.get(session_url, headers={"Accept": "application/json"})
            assert gone.status_code == 404
        assert (await world.session(paid["url"]))["state"] == "charging"
        await world.ledger_ok()


async def test_an_invoice_paid_unheard_of_is_honoured_not_purged(data_dir: Path) -> None:
    async with running_world(data_dir, sessions=PURGING) as world:
        invoice, session_url = await _ask_invoice(world, await _callback(world))
        # The wallet was paid, but strom never heard (say it was down when the event came).
        payment_hash = bolt11.decode(invoice).payment_hash
        wallet_store = LightningRepository(world.app.services.db)
        assert await wallet_store.mark_paid(payment_hash, received_msat=1_000_000,
                                            preimage="00" * 32, paid_at=iso(), backend="dev")
        await _let_invoices_expire(world)
        session = await world.session_until(session_url, lambda s: s["state"] == "charging")
        assert session["paid_msat"] == 1_000_000
        done, _ = await world.withdraw_all(session["lnurlw"])
        assert done.status == "OK"
        await world.ledger_ok()


HEAVY = [{"kinds": [1], "limit": 5000, "#t": [f"tag{i}" for i in range(7)]}] * 10


async def test_a_req_flood_is_rate_limited_and_lnurl_stays_fast(world: World) -> None:
    relay = world.app.relay
    assert relay is not None
    author = Keys.generate()
    saved = [relay.store.save(parse_event(sign(author, 1, f"note {i}", tags=[["t", f"tag{i % 7}"]])))
             for i in range(2000)]
    assert all(r.accepted for r in await asyncio.gather(*saved))
    flooder = await websockets.connect(relay.url, max_size=None)
    answers: list[str] = []

    began = time.monotonic()

    async def flood() -> None:
        for _ in range(200):  # one subscription id, replaced each time: only the rate limit
            await flooder.send(json.dumps(["REQ", "flood", *HEAVY]))
        while len(answers) < 200:
            message = await flooder.recv()
            assert isinstance(message, str)
            if message.startswith(('["EOSE","flood"', '["CLOSED","flood"')):
                answers.append(message)

    async def lnurlp_median() -> float:
        took = []
        for _ in range(11):
            began = time.perf_counter()
            assert (await world.http.get(f"/lnurlp/{CP}")).json()["tag"] == "payRequest"
            took.append(time.perf_counter() - began)
            await asyncio.sleep(0.02)
        return statistics.median(took)

    flooding = asyncio.create_task(flood())
    median = await lnurlp_median()
    await asyncio.wait_for(flooding, 60)
    elapsed = time.monotonic() - began
    await flooder.close()
    limited = [a for a in answers if '"rate-limited: ' in a]
    # Admitted: answered in full, or cut by the relay's query deadline on a loaded machine.
    served = [a for a in answers if a not in limited]
    assert all(a.startswith(('["EOSE"', '["CLOSED","flood","error: the query took'))
               for a in served), served
    # The burst and what refills meanwhile are served; the rest costs the relay nothing.
    limits = relay.limits
    allowed = limits.req_burst + limits.reqs_per_second * elapsed + 1
    assert len(served) <= allowed and len(limited) == 200 - len(served), answers[:3]
    assert median < 0.05, f"/lnurlp median {median * 1000:.1f} ms during the REQ flood"


async def test_a_session_other_records_refer_to_is_kept(data_dir: Path) -> None:
    async with running_world(data_dir, sessions=PURGING) as world:
        callback = await _callback(world)
        _, kept_url = await _ask_invoice(world, callback)
        await _ask_invoice(world, callback)
        kept = await world.session(kept_url)
        db = world.app.services.db
        # A record a later feature adds, which the purge does not know about.
        await db.execute("CREATE TABLE notes (session_id TEXT REFERENCES sessions(id))")
        await db.execute("INSERT INTO notes VALUES (?)", (kept["id"],))
        await _let_invoices_expire(world)
        await eventually(lambda: _count(world, "sessions"), lambda n: n == 1)
        assert (await world.session(kept_url))["state"] == "pending_payment"
        await world.ledger_ok()


async def test_an_invoice_the_wallet_cannot_answer_for_is_kept_and_hides_nothing(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expiry, "BATCH", 1)  # one invoice a page: the stuck one comes first
    async with running_world(data_dir, sessions=PURGING) as world:
        callback = await _callback(world)
        stuck_bolt11, stuck_url = await _ask_invoice(world, callback)
        for _ in range(3):
            await _ask_invoice(world, callback)
        stuck = bolt11.decode(stuck_bolt11).payment_hash
        wallet = world.app.services.wallet
        answer = wallet.invoice_status

        async def unreachable_for_one(payment_hash: str) -> InvoiceStatus | None:
            if payment_hash == stuck:
                raise WalletError("the node is not answering")
            return await answer(payment_hash)

        monkeypatch.setattr(wallet, "invoice_status", unreachable_for_one)
        await _let_invoices_expire(world)
        async with world.app.services.db.transaction() as conn:  # the stuck one is the oldest
            await conn.execute("UPDATE session_invoices SET expires_at = '2019-01-01T00:00:00.000Z'"
                               " WHERE payment_hash = ?", (stuck,))
        await eventually(lambda: _count(world, "sessions"), lambda n: n == 1)
        assert (await world.session(stuck_url))["state"] == "pending_payment"
        assert await _count(world, "session_invoices") == 1

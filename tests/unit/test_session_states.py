"""The one session state machine: the table, and the repository refusing anything else."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strom.sessions.model import Session, State
from strom.sessions.repository import SessionRepository
from strom.sessions.states import TRANSITIONS, IllegalTransition, allowed
from strom.store.db import Database
from strom.tariffs.model import Tariff
from strom.timeutil import iso


def _session() -> Session:
    now = iso()
    return Session(
        id=secrets.token_hex(8), token=secrets.token_urlsafe(16), cp_id="cp-1", connector_id=1,
        active_connector_id=None, id_tag=secrets.token_hex(10), state=State.PENDING_PAYMENT,
        tariff=Tariff(price_msat_per_kwh=300_000), paid_msat=0, consumed_msat=0,
        refunded_msat=0, forfeited_msat=0, held_msat=0, unbilled_msat=0, energy_wh=0.0,
        power_w=None, soc_percent=None, meter_start_wh=None, max_power_w=None,
        last_reading_at=None, transaction_id=None, payer_pubkey=None, payer_lud16=None,
        comment=None, created_at=now, paid_at=None, start_requested_at=None, started_at=None,
        stopped_at=None, stop_reason=None, failure_reason=None, updated_at=now)


def test_every_state_is_in_the_table_and_reachable() -> None:
    assert set(TRANSITIONS) == set(State)
    seen, todo = {State.PENDING_PAYMENT}, [State.PENDING_PAYMENT]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(State)
    assert all(TRANSITIONS[s] for s in State), "no state is a dead end"
    assert not any(s in TRANSITIONS[s] for s in State), "staying is not a transition"


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(targets=st.lists(st.sampled_from(list(State)), min_size=1, max_size=25))
async def test_random_writes_never_leave_the_table(db: Database, targets: list[State]) -> None:
    repo = SessionRepository(db)
    session = _session()
    async with db.transaction() as conn:
        await repo.insert(conn, session)
    current = State.PENDING_PAYMENT
    for target in targets:
        async with db.transaction() as conn:
            if allowed(current, target) or target == current:
                assert await repo.update(conn, session.id, state=target)
                current = target
            else:
                with pytest.raises(IllegalTransition):
                    await repo.update(conn, session.id, state=target)
        stored = await repo.get(session.id)
        assert stored is not None and stored.state == current


async def test_expect_state_refuses_quietly(db: Database) -> None:
    """A guarded write from a state that moved on is a race lost, not a bug: False, no raise."""
    repo = SessionRepository(db)
    session = _session()
    async with db.transaction() as conn:
        await repo.insert(conn, session)
        assert not await repo.update(conn, session.id, expect_state=State.STOPPING,
                                     state=State.STOPPING_UNCONFIRMED)
        assert await repo.update(conn, session.id, expect_state=State.PENDING_PAYMENT,
                                 state=State.PAID)


def test_the_diagram_in_the_docs_shows_every_transition() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    diagram = docs.split("stateDiagram-v2", 1)[1].split("```", 1)[0]
    drawn = {tuple(line.split(":")[0].strip().split(" --> "))
             for line in diagram.splitlines() if " --> " in line}
    table = {(a.value, b.value) for a, nexts in TRANSITIONS.items() for b in nexts}
    assert table <= drawn
    assert drawn - table == {("[*]", "pending_payment")}

"""Fixed data for the console's snapshots: the same chargers, keys and sessions every run.

Sessions are written through the session repository and the ledger functions strom itself
uses, with fixed ids and times, so the ledger check passes and nothing on screen is random.
Money is booked now, so it counts as earned today.
"""

from __future__ import annotations

from pathlib import Path

from strom.container import Services
from strom.keys import import_key, keys_path
from strom.sessions import ledger
from strom.sessions.model import Session, State
from strom.tariffs.model import Tariff

PUBLIC_URL = "https://strom.example"
SECRETS = {"demo-1": "11" * 32, "garage-7": "22" * 32}
DAY = "2026-01-02T"


def session(id_: str, cp_id: str, state: State, paid: int, consumed: int, refunded: int,
            energy_wh: float, power_w: float | None, stop_reason: str | None) -> Session:
    stopped = state in (State.STOPPED, State.REFUNDED)
    return Session(
        id=id_, token=f"token-{id_}", cp_id=cp_id, connector_id=1, active_connector_id=1,
        id_tag=f"tag-{id_}", state=state, tariff=Tariff(price_msat_per_kwh=300_000),
        paid_msat=paid, consumed_msat=consumed, refunded_msat=refunded, forfeited_msat=0,
        energy_wh=energy_wh, power_w=power_w, soc_percent=None, meter_start_wh=0.0,
        transaction_id=None, payer_pubkey=None, payer_lud16=None, comment=None,
        created_at=DAY + "10:00:00.000Z", paid_at=DAY + "10:00:05.000Z",
        start_requested_at=DAY + "10:00:05.000Z", started_at=DAY + "10:00:09.000Z",
        stopped_at=DAY + "10:40:00.000Z" if stopped else None, stop_reason=stop_reason,
        failure_reason=None, updated_at=DAY + "10:40:00.000Z")


SESSIONS = [
    session("a1b2c3d4e5f60718", "demo-1", State.CHARGING, 2_000_000, 450_000, 0, 1500, 7400,
            None),
    session("0f1e2d3c4b5a6978", "garage-7", State.STOPPED, 1_000_000, 600_000, 0, 2000, 0,
            "car unplugged"),
    session("9a8b7c6d5e4f3021", "demo-1", State.REFUNDED, 1_500_000, 1_000_000, 500_000, 3333,
            0, "stopped by the driver"),
]


async def seed(svc: Services, data_dir: Path) -> None:
    repo = svc.charge_points
    await repo.add("demo-1", name="Market Square", lat=52.52, lon=13.405, num_connectors=2)
    await repo.add("garage-7", name="Garage", lat=48.137, lon=11.575,
                   tariff={"price_msat_per_kwh": 250_000})
    key_file = keys_path(data_dir, svc.settings.nostr.keys_file)
    for cp_id, secret in SECRETS.items():
        import_key(key_file, cp_id, secret)
    await repo.set_connected("demo-1", True)
    await repo.record_boot("demo-1", vendor="Acme", model="Wallbox 22", serial_number=None,
                           firmware="1.4.2")
    await repo.set_connector_status("demo-1", 1, "Charging")
    await repo.set_connector_status("demo-1", 2, "Available")
    assert svc.sessions is not None
    async with svc.db.transaction() as conn:
        for s in SESSIONS:
            await svc.sessions.repo.insert(conn, s)
            await svc.sessions.repo.update(
                conn, s.id, state=s.state, active_connector_id=1, paid_msat=s.paid_msat,
                consumed_msat=s.consumed_msat, refunded_msat=s.refunded_msat,
                energy_wh=s.energy_wh, power_w=s.power_w, paid_at=s.paid_at,
                started_at=s.started_at, stopped_at=s.stopped_at, stop_reason=s.stop_reason)
            await ledger.payment_received(conn, s.id, s.paid_msat, f"hash-{s.id}")
            await ledger.energy_consumed(conn, s.id, s.consumed_msat)
            if s.refunded_msat:
                await ledger.refund_paid(conn, s.id, s.refunded_msat, f"refund-{s.id}")
                await conn.execute(
                    "INSERT INTO refunds (payment_hash, session_id, amount_msat, bolt11,"
                    " destination, state, created_at) VALUES (?, ?, ?, ?, 'lnurlw', 'succeeded',"
                    " ?)", (f"refund-{s.id}", s.id, s.refunded_msat, "lnbcrt1seed", s.stopped_at))

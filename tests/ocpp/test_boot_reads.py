"""A boot storm's store reads: the subscribers that look something up for a charger that
connected or booted (site power, the local list, OCPI's pushes) read once per batch of
chargers, not once each, and the first boot is answered from the handshake's read."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.chargers import RawCharger, boot_all
from bench.paid_profile import Hops
from strom.app import StromApp
from strom.chargers.site_power import ARRIVALS_WINDOW
from tests.conftest import free_settings

CHARGERS = 40


async def test_a_boot_storm_costs_few_store_reads_per_charger(data_dir: Path) -> None:
    async with StromApp(free_settings(), data_dir) as app:
        assert app.services is not None and app.services.central_system is not None
        ids = [f"storm-{n}" for n in range(CHARGERS)]
        for cp_id in ids:
            await app.services.charge_points.add(cp_id, name=cp_id, lat=52.5, lon=13.4)
        await app.services.site_power.define("yard", name="Yard", limit_w=22_000, min_w=0)
        await app.services.site_power.join("yard", ids[0], None)
        chargers = [RawCharger(cp_id, app.services.central_system.url) for cp_id in ids]
        try:
            with Hops() as hops:
                await boot_all(chargers, CHARGERS)
                await asyncio.sleep(ARRIVALS_WINDOW + 0.7)  # the batches and the bots' status
            # Before: 8.6 per charger (the handshake's read, the boot mode, site power twice,
            # the local list, OCPI, sessions, the bots' status, the batched records).
            assert hops.count / CHARGERS < 5
            cp = await app.services.charge_points.get(ids[-1])
            assert cp is not None and cp.vendor == "bench" and cp.status == "Available"
        finally:
            await asyncio.gather(*(c.close() for c in chargers))

"""Each benchmark end to end at a small size: real servers on 127.0.0.1, figures that add up."""

from __future__ import annotations

from bench import memory, money_path, nostr, ocpp, passthrough, steady_lnurl
from bench.figures import Figure


def _by_name(figures: list[Figure]) -> dict[str, Figure]:
    return {f.name: f for f in figures}


async def test_ocpp_figures_for_a_small_fleet_and_the_baseline() -> None:
    plan = ocpp.Plan(scales=(10, 30), ramp_seconds=0.5, nominal_seconds=1.0, silent=5)
    got = _by_name(await ocpp.run(plan))
    for size in (10, 30):
        booted = got[f"{size} chargers: all booted"]
        assert booted.value > 0 and booted.baseline is not None and booted.baseline > 0
        assert got[f"{size} chargers: server CPU to boot all"].value > 0
    # The fleet grows: booting 30 takes longer than booting the first 10 of them.
    assert got["30 chargers: all booted"].value > got["10 chargers: all booted"].value
    nominal_p50, nominal_p99 = got["nominal load: p50 latency"], got["nominal load: p99 latency"]
    assert 0 < nominal_p50.value <= nominal_p99.value
    assert got["calls/s with p99 <= 100 ms (30 chargers)"].baseline is not None
    # After the storm both servers count every charger once, on one socket each.
    counted = got["reconnect storm: chargers the server counts"]
    assert counted.value == 30 and counted.baseline == 30
    assert got["reconnect storm: zombie sockets"].value == 0
    # strom replaces a silent socket when its charger comes back; the baseline keeps it open.
    zombies = got["silent drop of 5: zombie sockets"]
    assert zombies.value == 0 and zombies.baseline == 5
    # The same fleet on OCPP 2.0.1, next to its 1.6 figures.
    booted_201 = got["OCPP 2.0.1: 30 chargers: all booted"]
    assert booted_201.value > 0 and booted_201.baseline == got["30 chargers: all booted"].value
    p50_201 = got["OCPP 2.0.1: nominal load: p50 latency"]
    assert 0 < p50_201.value <= got["OCPP 2.0.1: nominal load: p99 latency"].value
    # The longest stall of the server's loop in the window: the keeper's count showed only there.
    stall = got["OCPP 2.0.1: nominal load: longest server loop stall"]
    assert stall.value > 0 and stall.baseline is not None and stall.baseline > 0


async def test_memory_figures_for_a_small_fleet() -> None:
    got = await memory.measure(chargers=20, seconds=1.0)
    assert got.chargers == 20 and got.nominal_calls_per_s > 0
    assert got.rss_kib_per_charger > 0 and got.full_collection_cpu_ms > 0
    assert 0 <= got.nominal_gc_longest_cpu_ms <= got.nominal_gc_longest_ms + 1


async def test_money_path_figures() -> None:
    got = _by_name(await money_path.run(chargers=4))
    p50 = got["paid → RemoteStart at charger, p50"]
    p99 = got["paid → RemoteStart at charger, p99"]
    assert 0 < p50.value <= p99.value and p50.baseline is not None and p50.baseline > 0
    charging = got["paid → session charging, p50"]
    # The session is charging only after the charger received the start and answered it.
    assert charging.value > p50.value


async def test_lnurl_callback_figures() -> None:
    got = _by_name(await steady_lnurl.run(callbacks=30))
    callbacks = got["LNURL callbacks (invoice + session)"]
    assert callbacks.value > 0 and callbacks.baseline is not None and callbacks.baseline > 0
    cpu = got["server CPU per LNURL callback (with signing)"]
    assert cpu.baseline is not None and 0 < cpu.baseline < cpu.value


async def test_nostr_figures() -> None:
    got = _by_name(await nostr.run(identities=20))
    assert got["status events built + signed"].value > 0
    for name in ("status sign+publish, one at a time",
                 f"status sign+publish, {nostr.CONCURRENCY} in flight",
                 f"CPU per status signed+published, {nostr.CONCURRENCY} in flight"):
        assert got[name].value > 0 and got[name].baseline is not None


async def test_passthrough_figures() -> None:
    got = _by_name(await passthrough.run(count=5, calls=2, spacing=0.05))
    p50, p99 = got["forwarded call p50 through strom"], got["forwarded call p99 through strom"]
    assert 0 < p50.value <= p99.value and p50.baseline is not None and p50.baseline > 0
    assert got["added latency p50"].value == p50.value - p50.baseline


def test_charger_view_has_what_the_status_event_reads() -> None:
    from nostr_sdk import Keys

    from bots import events

    view = nostr.charger_view("cp-7", 7)
    event = events.status(Keys.generate(), view, 1_700_000_000).sdk()
    assert event.verify()
    tags = [t.to_vec() for t in event.tags()]
    assert ["d", "cp-7"] in tags and ["status", "Available"] in tags
    assert any(t[0] == "lnurl" and t[1].startswith("lnurl1") for t in tags)

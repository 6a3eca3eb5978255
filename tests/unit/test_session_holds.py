"""What an unconfirmed stop holds back: the worst case since the last reading, no more than
is left, and steady enough that a withdraw link's amount stays valid for a while."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from strom.sessions.holds import hold_msat, max_power_w, worst_case_msat
from strom.tariffs.model import Tariff
from strom.timeutil import iso, utcnow
from tests.unit.test_session_states import _session

TARIFF = Tariff(price_msat_per_kwh=300_000, price_msat_per_minute=1000)


def test_worst_case_is_max_power_over_the_time_in_energy_and_minutes() -> None:
    # 22 kW for 60 s = 366.7 Wh at 300 sat/kWh, plus one minute at 1 sat.
    assert worst_case_msat(TARIFF, 22_000, 60) == 110_000 + 1000
    assert worst_case_msat(TARIFF, 22_000, -5) == 0


def test_hold_grows_with_the_silence_is_steady_for_half_the_horizon_and_capped() -> None:
    now = utcnow().replace(microsecond=0)
    session = replace(_session(), tariff=TARIFF, paid_msat=10_000_000, consumed_msat=1_000_000,
                      last_reading_at=iso(now - timedelta(seconds=10)), max_power_w=11_000)
    first = hold_msat(session, configured_w=22_000, now=now, horizon_seconds=30)
    assert first == worst_case_msat(TARIFF, 22_000, 40)  # configured max beats observed
    held = replace(session, held_msat=first)
    assert hold_msat(held, configured_w=22_000, now=now + timedelta(seconds=14),
                     horizon_seconds=30) == first
    later = hold_msat(held, configured_w=22_000, now=now + timedelta(seconds=20),
                      horizon_seconds=30)
    assert later == worst_case_msat(TARIFF, 22_000, 60) > first
    hour = hold_msat(held, configured_w=22_000, now=now + timedelta(hours=5), horizon_seconds=30)
    assert hour == session.paid_msat - session.consumed_msat  # never more than is left
    refunded = replace(held, refunded_msat=8_500_000)
    assert hold_msat(refunded, configured_w=22_000, now=now + timedelta(hours=5),
                     horizon_seconds=30) == 500_000  # what is left after the refund


def test_a_power_limit_the_charger_accepted_lowers_the_worst_case_not_below_what_it_drew(
        ) -> None:
    """A site's share (say 7.4 kW of 22) bounds what the charger may still deliver; a charger
    that drew more than its limit is held for what it drew."""
    now = utcnow().replace(microsecond=0)
    session = replace(_session(), tariff=TARIFF, paid_msat=10_000_000, consumed_msat=1_000_000,
                      last_reading_at=iso(now - timedelta(seconds=10)), max_power_w=3_000)
    capped = hold_msat(session, configured_w=22_000, now=now, horizon_seconds=30, cap_w=7_400)
    assert capped == worst_case_msat(TARIFF, 7_400, 40)
    assert max_power_w(session, 22_000, cap_w=30_000) == 22_000  # a cap never raises it
    liar = replace(session, max_power_w=9_000)
    assert max_power_w(liar, 22_000, cap_w=7_400) == 9_000
    assert max_power_w(session, 22_000, cap_w=0) == 3_000  # waiting at 0 W, but it drew 3 kW

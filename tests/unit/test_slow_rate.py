"""The slow rate: its configuration, its price, and its lock with the quote (issue 21)."""

from __future__ import annotations

import bolt11
import pytest
from nostr_sdk import EventBuilder, Keys, Kind, Tag
from pydantic import ValidationError

from strom.config import Settings, TariffSettings
from strom.lnurl import pay as lud06
from strom.sessions.checkout import Order, RateRefused
from strom.tariffs.model import Tariff, describe
from strom.tariffs.pricing import TariffService
from strom.tariffs.slow import NORMAL, SLOW, SlowRate, slow_rate, slowed
from tests.conftest import loopback_outbound
from tests.unit import test_checkout
from tests.unit.test_checkout import AMOUNT, Shop
from tests.unit.test_tariffs import _cp

checkout_shop = test_checkout.shop  # the `shop` fixture: a checkout on a session harness

SLOW_CONFIG = {"max_power_w": 3680, "price_msat_per_kwh": 200_000}


def _settings(**slow: int) -> TariffSettings:
    return TariffSettings(price_msat_per_kwh=300_000, slow_rate=slow)


def test_no_slow_rate_unless_configured() -> None:
    assert slow_rate(TariffSettings(), _cp({})) is None
    assert slow_rate(_settings(**SLOW_CONFIG), _cp({})) == SlowRate(3680, 200_000, 0)


def test_the_toml_table_parses_and_bad_values_name_the_key() -> None:
    settings = Settings.model_validate({"tariff": {"slow_rate": SLOW_CONFIG}})
    assert settings.tariff.slow_rate.max_power_w == 3680
    for bad in ({"discount_percent": 101}, {"max_power_w": -1}, {"max_power_w": "fast"},
                {"limit": 3}):
        with pytest.raises(ValidationError, match="slow_rate"):
            Settings.model_validate({"tariff": {"slow_rate": bad}})


def test_a_charger_overrides_its_slow_rate_or_turns_it_off() -> None:
    default = _settings(**SLOW_CONFIG)
    assert slow_rate(default, _cp({"slow_max_power_w": 0})) is None
    own = slow_rate(default, _cp({"slow_max_power_w": 7400, "slow_discount_percent": 10}))
    assert own == SlowRate(7400, 200_000, 10)
    assert slow_rate(_settings(), _cp({"slow_max_power_w": 2000})) == SlowRate(2000, None, 0)


def test_the_slow_price_is_never_dearer_and_follows_a_discount() -> None:
    normal = Tariff(price_msat_per_kwh=300_000,
                    later_prices=[["2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", 100_000]])
    fixed = slowed(normal, SlowRate(3680, 200_000, 0))
    assert (fixed.price_msat_per_kwh, fixed.max_power_w) == (200_000, 3680)
    assert slowed(normal, SlowRate(3680, 400_000, 0)).price_msat_per_kwh == 300_000
    discounted = slowed(normal, SlowRate(3680, None, 25))
    assert discounted.price_msat_per_kwh == 225_000
    assert discounted.later_prices == [["2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", 75_000]]
    assert "Slow rate: charging at most 3.7 kW" in describe(fixed)
    assert "Slow rate" not in describe(normal)
    assert Tariff.from_json(fixed.to_json()) == fixed  # the session keeps its rate


def test_a_quote_locks_the_rate_with_the_price() -> None:
    service = TariffService(_settings(**SLOW_CONFIG), outbound=loopback_outbound())
    cp = _cp({})
    shown, quote_id = service.quote(cp, SLOW)
    assert (shown.price_msat_per_kwh, shown.max_power_w) == (200_000, 3680)
    taken = service.quoted(cp, quote_id, SLOW)
    assert taken.tariff == shown and taken.shown is None
    # Once taken it is gone: a second invoice is quoted afresh (still the slow rate).
    again = service.quoted(cp, quote_id, SLOW)
    assert again.tariff.max_power_w == 3680 and again.shown == shown
    # A slow quote does not buy the normal rate, nor a normal quote the slow one.
    _, slow_id = service.quote(cp, SLOW)
    normal = service.quoted(cp, slow_id, NORMAL)
    assert normal.tariff.max_power_w is None and normal.shown is not None
    _, normal_id = service.quote(cp, NORMAL)
    switched = service.quoted(cp, normal_id, SLOW)
    assert switched.tariff.max_power_w == 3680 and switched.shown is not None
    assert switched.shown.max_power_w is None


def test_a_changed_slow_rate_ends_the_quote() -> None:
    service = TariffService(_settings(**SLOW_CONFIG), outbound=loopback_outbound())
    _, quote_id = service.quote(_cp({}), SLOW)
    cheaper = service.quoted(_cp({"slow_price_msat_per_kwh": 150_000}), quote_id, SLOW)
    assert cheaper.tariff.price_msat_per_kwh == 150_000 and cheaper.shown is not None


# --- checkout: the choice at payment ---------------------------------------------------------

def _zap(shop: Shop, content: str) -> str:
    tags = [["p", shop.charger_pubkey], ["relays", "wss://relay.example"],
            ["amount", str(AMOUNT)]]
    return EventBuilder(Kind(9734), content).tags([Tag.parse(t) for t in tags]) \
        .finalize(Keys.generate()).as_json()


async def test_checkout_offers_and_sells_the_slow_rate_only_where_it_is_set(
        checkout_shop: Shop) -> None:
    shop = checkout_shop
    with pytest.raises(RateRefused, match="offers no slow rate"):
        await shop.checkout.offer("cp-1", SLOW)
    with pytest.raises(RateRefused, match="unknown rate 'fast'"):
        await shop.checkout.pay(Order("cp-1", AMOUNT, rate="fast"))
    # "slow" in a zap where no slow rate is set is just words: the normal rate.
    plain = await shop.checkout.pay(Order("cp-1", AMOUNT, zap_request=_zap(shop, "slow")))
    assert plain.pending.session.tariff.max_power_w is None

    await shop.h.cps.update("cp-1", tariff={"slow_max_power_w": 3680,
                                            "slow_discount_percent": 50})
    normal = await shop.checkout.offer("cp-1")
    assert "Cheaper slow rate: at most 3.7 kW" in normal.metadata
    offer = await shop.checkout.offer("cp-1", SLOW)
    invoiced = await shop.checkout.pay(Order("cp-1", AMOUNT, quote=offer.quote, rate=SLOW))
    tariff = invoiced.pending.session.tariff
    assert tariff.max_power_w == 3680
    assert tariff.price_msat_per_kwh == normal.tariff.price_msat_per_kwh // 2
    # The invoice commits to the slow metadata the wallet showed.
    assert bolt11.decode(invoiced.pending.bolt11).description_hash == \
        lud06.description_hash(offer.metadata).hex()
    zapped = await shop.checkout.pay(Order("cp-1", AMOUNT,
                                           zap_request=_zap(shop, "charge me SLOW please")))
    assert zapped.pending.session.tariff.max_power_w == 3680

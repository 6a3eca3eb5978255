"""Every event is handled once: after a restart the relay hands the bots their old DMs again
(back-dated gift wraps defeat any `since` filter), and none is answered twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nostr_sdk import PublicKey, UnwrappedGift, nip17_make_private_msg, uniffi_set_event_loop

from strom.app import StromApp
from tests.conftest import free_settings
from tests.nostr.conftest import Driver, register


async def answers(driver: Driver, seconds: float) -> list[str]:
    """Every DM answer that arrives within `seconds`."""
    texts = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                event = await driver.next(1059)
                texts.append(UnwrappedGift.from_gift_wrap(driver.keys, event).rumor().content())
    except TimeoutError:
        return texts


async def test_old_dms_are_not_answered_again_after_a_restart(data_dir: Path) -> None:
    uniffi_set_event_loop(asyncio.get_running_loop())
    cp_keys = await register(data_dir)
    cp = PublicKey.parse(cp_keys.public_key().to_hex())
    driver_keys = None
    for round_ in range(2):
        async with StromApp(free_settings(), data_dir) as app:
            driver = Driver(app.relay.url)
            driver.keys = driver_keys or driver.keys
            driver_keys = driver.keys
            await driver.start()
            try:
                await driver.client.publish(nip17_make_private_msg(driver.keys, cp,
                                                                   f"price {round_}"))
                got = await answers(driver, 3.0)
            finally:
                await driver.client.close()
        # The relay keeps the first round's answer, so round 2 sees it plus one new answer;
        # a third would mean the old question was answered again.
        assert len([t for t in got if "per kWh" in t]) == (1 if round_ == 0 else 2), got

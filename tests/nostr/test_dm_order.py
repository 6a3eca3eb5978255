"""DMs to one payer keep the order strom decided them in (issue: payer DMs in order)."""

from __future__ import annotations

import asyncio

from nostr_sdk import Event, Keys, UnwrappedGift, nip04_decrypt

from bots.dm import DirectMessenger


class SlowRelay:
    """Takes longer for the first event it is given than for the later ones."""

    def __init__(self) -> None:
        self.received: list[Event] = []
        self.calls = 0

    async def publish(self, event: Event) -> bool:
        self.calls += 1
        await asyncio.sleep(0.2 if self.calls == 1 else 0.0)
        self.received.append(event)
        return True


async def test_messages_decided_in_one_second_get_rising_dates_and_leave_in_order() -> None:
    relay = SlowRelay()
    messenger = DirectMessenger(relay.publish, clock=lambda: 1_700_000_000.5)
    cp, payer = Keys.generate(), Keys.generate()
    texts = [f"message {n}" for n in range(5)]
    # Decided one after the other but sent from separate tasks, as bus and DM handlers do.
    await asyncio.gather(*(messenger.send(cp, payer.public_key().to_hex(), text, "nip17")
                           for text in texts))
    rumors = [UnwrappedGift.from_gift_wrap(payer, event).rumor() for event in relay.received]
    assert [r.content() for r in rumors] == texts  # published in decision order
    assert [r.created_at().as_secs() for r in rumors] == list(range(1_700_000_000,
                                                                     1_700_000_005))


async def test_nip04_answers_are_dated_in_order_too() -> None:
    relay = SlowRelay()
    messenger = DirectMessenger(relay.publish, clock=lambda: 1_700_000_000.0)
    cp, payer = Keys.generate(), Keys.generate()
    await asyncio.gather(messenger.send(cp, payer.public_key().to_hex(), "first", "nip04"),
                         messenger.send(cp, payer.public_key().to_hex(), "second", "nip04"))
    assert [nip04_decrypt(payer.secret_key(), cp.public_key(), e.content())
            for e in relay.received] == ["first", "second"]
    assert [e.created_at().as_secs() for e in relay.received] == [1_700_000_000, 1_700_000_001]


async def test_other_conversations_are_not_held_up_and_lanes_are_forgotten() -> None:
    relay = SlowRelay()
    now = [1_700_000_000.0]
    messenger = DirectMessenger(relay.publish, clock=lambda: now[0])
    cp, alice, bob = Keys.generate(), Keys.generate(), Keys.generate()
    slow = asyncio.create_task(messenger.send(cp, alice.public_key().to_hex(), "to alice", "nip17"))
    await asyncio.sleep(0.01)
    await messenger.send(cp, bob.public_key().to_hex(), "to bob", "nip17")
    assert not slow.done()  # bob's message did not wait behind alice's slow one
    await slow
    now[0] += 10  # once their dates are in the past, idle conversations need no memory
    await messenger.send(cp, alice.public_key().to_hex(), "later", "nip17")
    assert list(messenger._lanes) == [(cp.public_key().to_hex(), alice.public_key().to_hex())]

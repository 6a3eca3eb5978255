"""Token buckets: rate, burst, debt for work measured afterwards, bounded memory per key."""

from __future__ import annotations

from strom.ratelimit import KeyedBuckets, TokenBucket


def test_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    now = [0.0]
    bucket = TokenBucket(2.0, 3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5
    assert bucket.take() and not bucket.take()
    now[0] += 100.0
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_charged_work_puts_the_bucket_in_debt() -> None:
    now = [0.0]
    bucket = TokenBucket(1.0, 2, clock=lambda: now[0])
    assert bucket.take()
    bucket.charge(5.0)  # a REQ that turned out to send 500 events
    now[0] += 4.0
    assert not bucket.take()
    now[0] += 1.0
    assert bucket.take()


def test_keyed_buckets_are_separate_and_memory_is_bounded() -> None:
    now = [0.0]
    buckets = KeyedBuckets(1.0, 1, max_keys=100, clock=lambda: now[0])
    assert buckets.take("a") and not buckets.take("a") and buckets.take("b")
    for n in range(1000):  # made-up addresses
        buckets.take(f"10.0.{n // 256}.{n % 256}")
    assert len(buckets) <= 100
    now[0] += 10.0
    buckets.take("c")
    assert len(buckets) == 1  # refilled ones are forgotten: a new one starts full

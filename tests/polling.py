"""Waiting for something that happens asynchronously (a store row, a state), with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], check: Callable[[T], bool],
                     seconds: float = 10.0) -> T:
    """Call `probe` until `check` accepts its value; fail with the last value after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    value = await probe()
    for _ in iter(int, 1):  # until the deadline
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still not as expected after {seconds} s: {value!r}")
        await asyncio.sleep(0.05)
        value = await probe()
    raise AssertionError("unreachable")

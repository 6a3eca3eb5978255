"""A dict that outsiders fill but cannot grow: it forgets its oldest entries past a limit."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

REMEMBERED = 10_000  # entries kept (oldest out first)


class Bounded(OrderedDict[K, V], Generic[K, V]):
    """A dict that forgets its oldest entries past `REMEMBERED`: chargers, eMSPs and relays
    cannot grow it."""

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > REMEMBERED:
            self.popitem(last=False)

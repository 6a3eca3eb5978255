"""Crash points for the crash-recovery tests.

With `STROM_FAILPOINT=<name>` in its environment, the process kills itself with SIGKILL when it
reaches that point: exactly what `kill -9` at the worst moment does, but at a chosen state.
Without the variable this costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "STROM_FAILPOINT"


def crash_point(name: str) -> None:
    """Die here, without any cleanup, if the environment asks for it."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)

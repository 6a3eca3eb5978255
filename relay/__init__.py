"""strom's embedded nostr relay: NIP-01, 09, 11, 33, 40, 42, 45, persisted in SQLite.

It runs inside strom's event loop (or alone: `strom relay`); the bots use it over the nostr
protocol like any other relay.
"""

from __future__ import annotations

from relay.limits import Limits
from relay.server import Relay, RelayError, database_path

__all__ = ["Limits", "Relay", "RelayError", "database_path"]

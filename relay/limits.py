"""What one connection (and one address) may do on the relay."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection may do; advertised in the NIP-11 `limitation` object.

    Events signed by a trusted pubkey (strom's own identities, see `Relay(trusted_pubkeys=…)`)
    do not count against `events_per_second`, so one bot connection publishing for many charge
    points is never throttled; everyone else gets a sustained rate with a burst.
    """

    max_message_length: int = 131_072
    max_subscriptions: int = 50
    max_filters: int = 20
    max_filter_items: int = 1000
    max_limit: int = 5000
    default_limit: int = 500
    max_subid_length: int = 64
    events_per_second: float = 20.0
    event_burst: int = 200
    # NIP-22-style bound: an event dated further ahead is refused.
    created_at_upper_limit: int = 900
    # A connection whose unsent live events pile up beyond this is too slow and gets closed.
    max_pending_messages: int = 20_000
    # Events of one connection waiting for their commit; beyond it the relay stops reading.
    max_unconfirmed_events: int = 2000
    max_connections: int = 1024

    def __post_init__(self) -> None:
        if not 0 < self.default_limit <= self.max_limit:
            raise ValueError("default_limit must be between 1 and max_limit")
        if self.events_per_second <= 0 or self.event_burst < 1:
            raise ValueError("events_per_second must be > 0 and event_burst >= 1")

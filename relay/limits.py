"""What one connection (and one address) may do on the relay."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection may do; advertised in the NIP-11 `limitation` object.

    Events signed by a trusted pubkey (strom's own identities, see `Relay(trusted_pubkeys=…)`)
    do not count against `events_per_second`, so one bot connection publishing for many charge
    points is never throttled; everyone else gets a sustained rate with a burst. Likewise a
    connection authenticated (NIP-42) as a trusted pubkey is not held to the REQ/COUNT rates
    or the query time, so the relay never slows strom's own bots; for everyone else they keep
    the relay (in strom's event loop) from slowing LNURL and OCPP.
    """

    max_message_length: int = 131_072
    max_subscriptions: int = 50
    max_filters: int = 10
    max_filter_items: int = 1000
    max_limit: int = 1000
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
    # REQ and COUNT messages: per connection, and per client address over all its connections.
    # A REQ costs one token, plus one per `req_cost_events` stored events it was sent.
    req_cost_events: int = 100
    # NIP-47 clients (nostr-sdk's among them) open one REQ per wallet request, so a wallet
    # making invoices in a burst needs room for its in-flight requests at once.
    reqs_per_second: float = 20.0
    req_burst: int = 100
    address_reqs_per_second: float = 50.0
    address_req_burst: int = 300
    # What one REQ may cost: tag values in one filter (all its #x lists together), stored
    # events sent for the whole REQ (every filter's limit is also capped by max_limit), and
    # the time its query may take before it is cut short.
    max_tag_values: int = 1000
    max_events_per_req: int = 2000
    max_query_ms: int = 200

    def __post_init__(self) -> None:
        if not 0 < self.default_limit <= self.max_limit:
            raise ValueError("default_limit must be between 1 and max_limit")
        if self.events_per_second <= 0 or self.event_burst < 1:
            raise ValueError("events_per_second must be > 0 and event_burst >= 1")
        if min(self.reqs_per_second, self.address_reqs_per_second) <= 0 \
                or min(self.req_burst, self.address_req_burst) < 1:
            raise ValueError("REQ rates must be > 0 and REQ bursts >= 1")
        if self.req_cost_events < 1:
            raise ValueError("req_cost_events must be >= 1")

"""strom: sell EV charging for bitcoin over Lightning, with OCPP 1.6J and nostr."""

__version__ = "0.1.0"

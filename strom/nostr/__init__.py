"""Nostr protocol pieces the core needs (zaps); the bots in `bots/` build on them."""

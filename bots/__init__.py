"""Every charge point as a nostr identity: profile, status, zaps and encrypted DMs.

`bots.nostr_bots.NostrBots` is what the app starts; the modules below it are small pieces:
`client` (one nostr-sdk Client for all identities, NIP-42 auth for each), `profile` and
`status` (what a charger publishes), `zaps` (receipts, external zaps), `dm` (commands).
"""

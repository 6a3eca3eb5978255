-- Nostr: zap requests behind session invoices, and events handled once across restarts.
CREATE TABLE zap_requests (
    payment_hash  TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES sessions(id),
    cp_id         TEXT NOT NULL,
    sender        TEXT NOT NULL,
    request_json  TEXT NOT NULL,
    bolt11        TEXT NOT NULL,
    receipt_id    TEXT,             -- set once the 9735 receipt is published
    created_at    TEXT NOT NULL
);

CREATE TABLE nostr_handled (
    event_id    TEXT PRIMARY KEY,   -- DMs and external zap receipts: each handled once
    kind        INTEGER NOT NULL,
    handled_at  TEXT NOT NULL
);

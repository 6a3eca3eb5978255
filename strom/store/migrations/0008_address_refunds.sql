-- Refunds to a payer's lightning address (zap payers' lud16): a bounded number of tries with
-- backoff, kept across restarts so a restart neither resets nor repeats them.
CREATE TABLE address_refunds (
    session_id  TEXT PRIMARY KEY REFERENCES sessions(id),
    address     TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    state       TEXT NOT NULL CHECK (state IN ('trying', 'done', 'abandoned')),
    next_at     TEXT,               -- when the next try is due (state 'trying'); 'done': sent or nothing left
    last_error  TEXT,
    updated_at  TEXT NOT NULL
);
CREATE INDEX address_refunds_trying ON address_refunds (state, next_at);

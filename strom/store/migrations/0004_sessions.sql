-- Charging sessions, the invoices that fund them, and the double-entry money ledger.
-- The CHECK constraints are the money invariant's last line of defence.
CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY,
    token               TEXT NOT NULL UNIQUE,        -- 128-bit secret: /s/{token}, /lnurlw/{token}
    cp_id               TEXT NOT NULL,               -- no FK: money history outlives a charger
    connector_id        INTEGER,                     -- as requested; NULL = any free connector
    active_connector_id INTEGER,                     -- the connector actually used
    id_tag              TEXT NOT NULL UNIQUE,        -- OCPP idTag (CiString20)
    state               TEXT NOT NULL,
    tariff_json         TEXT NOT NULL,               -- the tariff locked at payment
    paid_msat           INTEGER NOT NULL DEFAULT 0 CHECK (paid_msat >= 0),
    consumed_msat       INTEGER NOT NULL DEFAULT 0 CHECK (consumed_msat >= 0),
    refunded_msat       INTEGER NOT NULL DEFAULT 0 CHECK (refunded_msat >= 0),
    forfeited_msat      INTEGER NOT NULL DEFAULT 0 CHECK (forfeited_msat >= 0),
    energy_wh           REAL NOT NULL DEFAULT 0,
    power_w             REAL,
    soc_percent         REAL,
    meter_start_wh      REAL,
    transaction_id      INTEGER,
    payer_pubkey        TEXT,
    payer_lud16         TEXT,
    comment             TEXT,
    created_at          TEXT NOT NULL,
    paid_at             TEXT,
    start_requested_at  TEXT,
    started_at          TEXT,
    stopped_at          TEXT,
    stop_reason         TEXT,
    failure_reason      TEXT,
    updated_at          TEXT NOT NULL,
    CHECK (consumed_msat + refunded_msat + forfeited_msat <= paid_msat)
);
CREATE INDEX sessions_cp_state ON sessions (cp_id, state);
CREATE INDEX sessions_transaction ON sessions (cp_id, transaction_id);

CREATE TABLE session_invoices (
    payment_hash TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES sessions(id),
    purpose      TEXT NOT NULL CHECK (purpose IN ('prepay', 'topup')),
    amount_msat  INTEGER NOT NULL CHECK (amount_msat > 0),
    bolt11       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    paid_at      TEXT
);
CREATE INDEX session_invoices_session ON session_invoices (session_id);

-- Accounts: 'wallet' (our lightning balance), 'session:<id>' (a driver's prepaid balance),
-- 'revenue' (energy, fees and time sold), 'forfeited' (refunds left unclaimed past expiry).
CREATE TABLE ledger (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    kind        TEXT NOT NULL CHECK (kind IN ('payment_received', 'energy_consumed',
                                              'refund_paid', 'refund_reversed',
                                              'refund_forfeited')),
    debit       TEXT NOT NULL,
    credit      TEXT NOT NULL,
    amount_msat INTEGER NOT NULL CHECK (amount_msat > 0),
    ref         TEXT,                                 -- payment hash where there is one
    UNIQUE (kind, ref)
);
CREATE INDEX ledger_session ON ledger (session_id);

-- LUD-03 withdraw links: each k1 is a fresh secret bound to one session, usable once.
CREATE TABLE withdraw_links (
    k1         TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    created_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX withdraw_links_session ON withdraw_links (session_id);

-- Refund payments. The row (and the session's refunded_msat) is written before the wallet pays,
-- so a refund is paid at most once; a failed payment is reversed, a pending one looked up.
CREATE TABLE refunds (
    payment_hash   TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL REFERENCES sessions(id),
    amount_msat    INTEGER NOT NULL CHECK (amount_msat > 0),
    bolt11         TEXT NOT NULL,
    destination    TEXT NOT NULL,                 -- 'lnurlw' or the lightning address paid
    state          TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
    fee_msat       INTEGER NOT NULL DEFAULT 0,
    failure_reason TEXT,
    created_at     TEXT NOT NULL,
    finished_at    TEXT
);
CREATE INDEX refunds_session ON refunds (session_id);

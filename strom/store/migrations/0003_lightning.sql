-- Lightning invoices and payments, as the wallet backends (strom/lightning/) see them.
-- An invoice moves from open to paid exactly once; that transition is what publishes InvoicePaid.
CREATE TABLE ln_invoices (
    payment_hash     TEXT PRIMARY KEY,
    backend          TEXT NOT NULL,                  -- 'dev', 'lnd', …
    bolt11           TEXT NOT NULL,
    amount_msat      INTEGER NOT NULL CHECK (amount_msat > 0),
    description      TEXT,
    description_hash TEXT,                           -- hex
    state            TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'paid', 'expired')),
    preimage         TEXT,                           -- hex; the dev wallet knows it from the start
    received_msat    INTEGER CHECK (received_msat > 0),
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    paid_at          TEXT,
    CHECK (state != 'paid' OR (paid_at IS NOT NULL AND received_msat IS NOT NULL))
);
CREATE INDEX ln_invoices_state ON ln_invoices (backend, state);

-- Outgoing payments. The row is claimed (pending) before the backend is asked to pay, so the
-- same payment hash is never sent twice; a failed one may be tried again.
CREATE TABLE ln_payments (
    payment_hash   TEXT PRIMARY KEY,
    backend        TEXT NOT NULL,
    bolt11         TEXT NOT NULL,
    amount_msat    INTEGER NOT NULL CHECK (amount_msat > 0),
    fee_msat       INTEGER NOT NULL DEFAULT 0 CHECK (fee_msat >= 0),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    failure_reason TEXT,
    preimage       TEXT,
    attempts       INTEGER NOT NULL DEFAULT 1,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX ln_payments_status ON ln_payments (backend, status);

-- Where a backend's stream of settled invoices resumes (LND: settle_index).
CREATE TABLE ln_cursors (
    backend TEXT PRIMARY KEY,
    value   INTEGER NOT NULL
);

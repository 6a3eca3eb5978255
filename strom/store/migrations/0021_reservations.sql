-- Paid reservations (issue 21): a session whose invoice is a reservation fee holds its
-- connector (ReserveNow with the session's idTag and `reservation_id`) until `reserved_until`.
-- The fee becomes the session's budget when the reserver pays to charge in time; otherwise it
-- is kept (ledger kind `reservation_fee`, session → revenue) or refundable, per tariff.
ALTER TABLE sessions ADD COLUMN reservation_fee_msat INTEGER NOT NULL DEFAULT 0
    CHECK (reservation_fee_msat >= 0);
ALTER TABLE sessions ADD COLUMN reservation_id INTEGER;
ALTER TABLE sessions ADD COLUMN reserved_until TEXT;

-- The ledger's kinds are a CHECK: the table is rebuilt with the new kind.
CREATE TABLE ledger_new (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    kind        TEXT NOT NULL CHECK (kind IN ('payment_received', 'energy_consumed',
                                              'refund_paid', 'refund_reversed',
                                              'refund_forfeited', 'reservation_fee')),
    debit       TEXT NOT NULL,
    credit      TEXT NOT NULL,
    amount_msat INTEGER NOT NULL CHECK (amount_msat > 0),
    ref         TEXT,
    UNIQUE (kind, ref)
);
INSERT INTO ledger_new (id, at, session_id, kind, debit, credit, amount_msat, ref)
    SELECT id, at, session_id, kind, debit, credit, amount_msat, ref FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_new RENAME TO ledger;
CREATE INDEX ledger_session ON ledger (session_id);

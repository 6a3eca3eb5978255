-- A second, different transaction a charger started with a session's idTag after the session
-- had its own (a misbehaving or replaying charger): not the session's, so never billed to its
-- payer. Kept so strom asks the charger to stop it until it does (also after a restart), and
-- so the operator sees the energy it delivered as unbilled (`strom ledger check`).
CREATE TABLE IF NOT EXISTS extra_transactions (
    transaction_id INTEGER PRIMARY KEY,  -- ocpp_transactions.id
    session_id     TEXT NOT NULL,
    noted_at       TEXT NOT NULL
);

-- The sessions' reconcile (every few seconds) reads only what it needs: unpaid session invoices
-- (also the purger's page order) and sessions in one state.
CREATE INDEX session_invoices_unpaid ON session_invoices (expires_at, payment_hash)
    WHERE paid_at IS NULL;
CREATE INDEX sessions_state ON sessions (state);

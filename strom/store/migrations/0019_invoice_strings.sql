-- The dev wallet finds an invoice to settle by its exact string, without decoding it.
CREATE INDEX IF NOT EXISTS ln_invoices_bolt11 ON ln_invoices (bolt11);

-- OCPI in EUR (issue 24): the BTC/EUR rate a roaming session's CDR was converted at, and
-- when the feed gave it; NULL: the CDR is in BTC. Recorded once at completion, so every pull
-- of a CDR shows the same amount.
ALTER TABLE ocpi_sessions ADD COLUMN eur_per_btc REAL;
ALTER TABLE ocpi_sessions ADD COLUMN rate_at TEXT;

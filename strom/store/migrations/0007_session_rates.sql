-- Slot-by-slot billing (`[tariff] price_lock = "slot"`): the energy price of the spot slot a
-- session is in (NULL = its tariff's price), the energy reading when that price began, and what
-- the session's energy before then cost. Written with consumed_msat in one transaction.
ALTER TABLE sessions ADD COLUMN rate_msat_per_kwh INTEGER;
ALTER TABLE sessions ADD COLUMN rate_since_wh REAL NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN rated_msat INTEGER NOT NULL DEFAULT 0 CHECK (rated_msat >= 0);

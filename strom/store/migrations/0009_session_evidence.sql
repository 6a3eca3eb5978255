-- Settle on evidence (issue 17): money held while a stop is unconfirmed, energy delivered
-- beyond the payment (reported to the operator, never a ledger error), and what the worst
-- case until the next reading is computed from: the highest power the charger reported and
-- the time of its last usable meter reading.
ALTER TABLE sessions ADD COLUMN held_msat INTEGER NOT NULL DEFAULT 0 CHECK (held_msat >= 0);
ALTER TABLE sessions ADD COLUMN unbilled_msat INTEGER NOT NULL DEFAULT 0 CHECK (unbilled_msat >= 0);
ALTER TABLE sessions ADD COLUMN max_power_w REAL;
ALTER TABLE sessions ADD COLUMN last_reading_at TEXT;
-- The old CHECK cannot see held_msat (SQLite cannot alter a table CHECK): a trigger can.
CREATE TRIGGER sessions_held_fits BEFORE UPDATE ON sessions WHEN NEW.consumed_msat + NEW.refunded_msat + NEW.forfeited_msat + NEW.held_msat > NEW.paid_msat BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: held money exceeds the payment'); END;

-- Owner cards (issue 21): RFID idTags the operator registers, each free or billed to a prepaid
-- operator account; the sessions they start; the accounts' own double-entry book; and the
-- local authorization list each charger holds. No lightning money is in any of these tables.

CREATE TABLE card_accounts (
    id           TEXT PRIMARY KEY,                 -- the operator's name for it (CLI, API)
    name         TEXT NOT NULL,
    balance_msat INTEGER NOT NULL DEFAULT 0 CHECK (balance_msat >= 0),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- A removed card stays as a tombstone (removed_at, list_status NULL): a Differential list
-- tells chargers to delete it, and its sessions keep their history. OCPP idTags are
-- case-insensitive (CiString20).
CREATE TABLE cards (
    id_tag       TEXT PRIMARY KEY COLLATE NOCASE CHECK (length(id_tag) BETWEEN 1 AND 20),
    label        TEXT NOT NULL DEFAULT '',
    rule         TEXT NOT NULL CHECK (rule IN ('free', 'account')),
    account_id   TEXT REFERENCES card_accounts(id),
    list_status  TEXT CHECK (list_status IN ('Accepted', 'Blocked')),  -- NULL: removed
    list_version INTEGER NOT NULL CHECK (list_version > 0),  -- the list version that last changed it
    created_at   TEXT NOT NULL,
    removed_at   TEXT,
    CHECK ((rule = 'account') = (account_id IS NOT NULL)),
    CHECK ((removed_at IS NULL) = (list_status IS NOT NULL))
);
CREATE INDEX cards_version ON cards (list_version);
CREATE INDEX cards_account ON cards (account_id);

-- What each charger's local list holds, as far as strom knows.
CREATE TABLE card_list_chargers (
    cp_id        TEXT PRIMARY KEY,
    list_version INTEGER,            -- the version the charger accepted from strom (NULL: none)
    supported    INTEGER,            -- 1 yes, 0 no (reported to the operator), NULL not known
    detail       TEXT,               -- why not, or the last failure
    checked_at   TEXT NOT NULL
);

CREATE TABLE card_sessions (
    id                TEXT PRIMARY KEY,
    cp_id             TEXT NOT NULL,                -- no FK: money history outlives a charger
    connector_id      INTEGER NOT NULL,
    transaction_id    INTEGER NOT NULL UNIQUE,      -- the OCPP transaction it accounts for
    id_tag            TEXT NOT NULL COLLATE NOCASE,
    rule              TEXT NOT NULL CHECK (rule IN ('free', 'account')),
    account_id        TEXT REFERENCES card_accounts(id),
    state             TEXT NOT NULL CHECK (state IN ('charging', 'stopping', 'stopped')),
    tariff_json       TEXT NOT NULL,                -- the charger's tariff when it started
    meter_start_wh    REAL NOT NULL,
    energy_wh         REAL NOT NULL DEFAULT 0,
    consumed_msat     INTEGER NOT NULL DEFAULT 0 CHECK (consumed_msat >= 0),
    unbilled_msat     INTEGER NOT NULL DEFAULT 0 CHECK (unbilled_msat >= 0),
    rate_msat_per_kwh INTEGER,
    rate_since_wh     REAL NOT NULL DEFAULT 0,
    rated_msat        INTEGER NOT NULL DEFAULT 0,
    power_w           REAL,
    max_power_w       REAL,
    last_reading_at   TEXT,
    started_at        TEXT NOT NULL,
    stopped_at        TEXT,
    stop_reason       TEXT,
    updated_at        TEXT NOT NULL,
    CHECK ((rule = 'account') = (account_id IS NOT NULL)),
    CHECK (rule = 'account' OR consumed_msat = 0)
);
CREATE INDEX card_sessions_open ON card_sessions (state) WHERE state != 'stopped';
CREATE INDEX card_sessions_account ON card_sessions (account_id);

-- Accounts: 'operator' (money from outside strom: the operator's top-ups), 'card_account:<id>'
-- (a prepaid balance), 'card_revenue' (energy sold to cards).
CREATE TABLE card_ledger (
    id              INTEGER PRIMARY KEY,
    at              TEXT NOT NULL,
    account_id      TEXT NOT NULL REFERENCES card_accounts(id),
    card_session_id TEXT REFERENCES card_sessions(id),
    kind            TEXT NOT NULL CHECK (kind IN ('account_topup', 'account_withdrawn',
                                                  'card_energy')),
    debit           TEXT NOT NULL,
    credit          TEXT NOT NULL,
    amount_msat     INTEGER NOT NULL CHECK (amount_msat > 0),
    note            TEXT,
    CHECK ((kind = 'card_energy') = (card_session_id IS NOT NULL))
);
CREATE INDEX card_ledger_account ON card_ledger (account_id);
CREATE INDEX card_ledger_session ON card_ledger (card_session_id);

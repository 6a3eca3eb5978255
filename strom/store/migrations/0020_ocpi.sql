-- OCPI 2.2.1 CPO role (issue 24): one row per eMSP party strom roams with.
-- Secrets strom checks are stored as SHA-256 hashes (the tokens are 256-bit random, so no
-- salt or stretching is needed): token_a_hash while the party has not registered, token_c_hash
-- once it has. token_b is the eMSP's token strom presents when it calls the eMSP, so it is
-- kept as given (the data dir is 0700, the database 0600).
CREATE TABLE ocpi_parties (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'registered', 'unregistered')),
    token_a_hash TEXT UNIQUE,
    token_c_hash TEXT UNIQUE,
    token_b TEXT,
    country_code TEXT,
    party_id TEXT,
    versions_url TEXT,
    version TEXT,
    endpoints_json TEXT NOT NULL DEFAULT '[]',
    credentials_json TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX ocpi_parties_party ON ocpi_parties (country_code, party_id)
    WHERE state = 'registered';

-- Roaming sessions: started by an eMSP's START_SESSION command, billed to that eMSP (postpaid,
-- not prepaid): their own kind, beside lightning sessions and card sessions. id_tag is the
-- OCPP idTag strom gave the charger; transaction_id the OCPP transaction once it started.
CREATE TABLE ocpi_sessions (
    id TEXT PRIMARY KEY,
    party INTEGER NOT NULL REFERENCES ocpi_parties (id),
    id_tag TEXT NOT NULL,
    token_json TEXT NOT NULL,
    authorization_reference TEXT,
    cp_id TEXT NOT NULL,
    connector_id INTEGER NOT NULL,
    transaction_id INTEGER UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'completed', 'invalid')),
    tariff_json TEXT NOT NULL,
    meter_start_wh REAL NOT NULL DEFAULT 0,
    energy_wh REAL NOT NULL DEFAULT 0,
    cost_msat INTEGER NOT NULL DEFAULT 0 CHECK (cost_msat >= 0),
    started_at TEXT NOT NULL,
    stopped_at TEXT,
    stop_reason TEXT,
    updated_at TEXT NOT NULL
);

-- The roaming book: what each eMSP owes strom, one entry per billed reading
-- (`emsp:<party>` → `roaming_revenue`). A session's cost always equals its entries' sum.
CREATE INDEX ocpi_sessions_tag ON ocpi_sessions (id_tag);

CREATE TABLE roaming_ledger (
    id INTEGER PRIMARY KEY,
    ocpi_session_id TEXT NOT NULL REFERENCES ocpi_sessions (id),
    kind TEXT NOT NULL,
    debit TEXT NOT NULL,
    credit TEXT NOT NULL,
    amount_msat INTEGER NOT NULL CHECK (amount_msat > 0),
    at TEXT NOT NULL
);
CREATE INDEX roaming_ledger_session ON roaming_ledger (ocpi_session_id);

-- The eMSPs' token lists (the Tokens module, strom the Receiver): a charger's idTag that is
-- one of these may charge, billed to the token's party. uid_key: the uid upper-cased, as
-- OCPP compares idTags case-insensitively.
CREATE TABLE ocpi_tokens (
    party INTEGER NOT NULL REFERENCES ocpi_parties (id),
    uid TEXT NOT NULL,
    uid_key TEXT NOT NULL,
    type TEXT NOT NULL,
    valid INTEGER NOT NULL,
    whitelist TEXT NOT NULL,
    token_json TEXT NOT NULL,
    last_updated TEXT NOT NULL,
    PRIMARY KEY (party, uid, type)
);
CREATE INDEX ocpi_tokens_uid ON ocpi_tokens (uid_key);

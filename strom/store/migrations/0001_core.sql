-- Charge points, their connectors and an event log.
CREATE TABLE charge_points (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    lat            REAL NOT NULL,
    lon            REAL NOT NULL,
    num_connectors INTEGER NOT NULL DEFAULT 1 CHECK (num_connectors BETWEEN 1 AND 16),
    password_hash  TEXT,              -- scrypt, see strom/security.py; NULL = no password
    tariff_json    TEXT,              -- per-charger tariff overrides, NULL = the default tariff
    vendor         TEXT,
    model          TEXT,
    serial_number  TEXT,
    firmware       TEXT,
    connected      INTEGER NOT NULL DEFAULT 0,
    last_seen      TEXT,
    booted_at      TEXT,
    created_at     TEXT NOT NULL
);

CREATE TABLE connectors (
    cp_id        TEXT NOT NULL REFERENCES charge_points(id) ON DELETE CASCADE,
    connector_id INTEGER NOT NULL,    -- 0 = the charge point as a whole
    status       TEXT NOT NULL DEFAULT 'Unavailable',
    error_code   TEXT NOT NULL DEFAULT 'NoError',
    updated_at   TEXT,
    PRIMARY KEY (cp_id, connector_id)
);

CREATE TABLE event_log (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    cp_id   TEXT,
    kind    TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX event_log_cp ON event_log (cp_id, id);

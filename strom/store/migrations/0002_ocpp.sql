-- OCPP transactions and meter values.
-- A transaction's id is the transactionId strom gave the charger in StartTransaction.conf.
-- A charger that did not get our answer sends the same StartTransaction again: the UNIQUE key
-- makes the retry find the transaction it already has instead of creating a second one.
CREATE TABLE ocpp_transactions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    cp_id          TEXT NOT NULL REFERENCES charge_points(id) ON DELETE CASCADE,
    connector_id   INTEGER NOT NULL,
    id_tag         TEXT NOT NULL,
    meter_start_wh REAL NOT NULL,
    started_at     TEXT NOT NULL,
    reservation_id INTEGER,
    auth_status    TEXT NOT NULL,
    meter_stop_wh  REAL,
    stopped_at     TEXT,
    stop_reason    TEXT,
    stop_id_tag    TEXT,
    UNIQUE (cp_id, connector_id, id_tag, started_at)
);
CREATE INDEX ocpp_transactions_open ON ocpp_transactions (cp_id, stopped_at);

CREATE TABLE meter_values (
    id             INTEGER PRIMARY KEY,
    cp_id          TEXT NOT NULL REFERENCES charge_points(id) ON DELETE CASCADE,
    connector_id   INTEGER NOT NULL,
    transaction_id INTEGER,
    at             TEXT NOT NULL,
    measurand      TEXT NOT NULL,
    value          REAL NOT NULL,
    unit           TEXT NOT NULL,
    context        TEXT,
    phase          TEXT,
    location       TEXT
);
CREATE INDEX meter_values_tx ON meter_values (transaction_id, at);
CREATE INDEX meter_values_cp ON meter_values (cp_id, at);

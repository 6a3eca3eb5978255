-- Issue 21: firmware updates, diagnostics and security logs of chargers.
-- Files live in the data dir under names strom picks (`stored_as`); the names operators and
-- chargers give (`name`) are for display only and never become a path.
CREATE TABLE firmware_files (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    stored_as TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded_at TEXT NOT NULL
);

-- One UpdateFirmware (or SignedUpdateFirmware) sent to one charger. The download link's token
-- is kept as its sha256 only: the store grants nothing to whoever reads it.
CREATE TABLE firmware_updates (
    id INTEGER PRIMARY KEY,
    cp_id TEXT NOT NULL,
    file_id INTEGER NOT NULL REFERENCES firmware_files (id),
    token_sha256 TEXT NOT NULL,
    signed INTEGER NOT NULL DEFAULT 0,
    retrieve_at TEXT NOT NULL,
    retries INTEGER,
    retry_interval INTEGER,
    expires_at TEXT NOT NULL,
    downloaded_at TEXT,
    downloads_refused INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    outcome TEXT,
    reason TEXT,
    history TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX firmware_updates_cp ON firmware_updates (cp_id, id);

-- One GetDiagnostics (kind 'diagnostics') or GetLog (kind 'DiagnosticsLog' / 'SecurityLog')
-- and the file the charger uploaded for it.
CREATE TABLE diagnostics (
    id INTEGER PRIMARY KEY,
    cp_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT,
    reason TEXT,
    history TEXT NOT NULL DEFAULT '[]',
    name TEXT,
    stored_as TEXT UNIQUE,
    size INTEGER,
    sha256 TEXT,
    uploaded_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX diagnostics_cp ON diagnostics (cp_id, id);

-- A charger's certificate signing request (SignCertificate, security extensions) and the chain
-- the operator's CA signed for it (sent with CertificateSigned). One pending request per
-- charger: a newer CSR replaces the one still waiting.
CREATE TABLE certificate_requests (
    id INTEGER PRIMARY KEY,
    cp_id TEXT NOT NULL,
    csr TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL,
    certificate_chain TEXT,
    answered_at TEXT,
    reason TEXT
);
CREATE INDEX certificate_requests_cp ON certificate_requests (cp_id, id);

-- The last values of the dynamic tariff's feeds (spot prices, BTC/EUR), so a restart has prices
-- at once. One row per feed; a failed fetch keeps the last good values and records the error.
CREATE TABLE tariff_feeds (
    name         TEXT PRIMARY KEY,   -- 'spot' or 'btc'
    source       TEXT NOT NULL,      -- the URL or path the values came from
    payload_json TEXT,               -- the parsed values; NULL until a fetch has worked
    fetched_at   TEXT,               -- last successful fetch
    error        TEXT,               -- why the last fetch failed; NULL when it worked
    checked_at   TEXT NOT NULL       -- last attempt, good or bad
);

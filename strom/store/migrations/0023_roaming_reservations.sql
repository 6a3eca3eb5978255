-- An eMSP's reservations (OCPI RESERVE_NOW): no fee and no session row, but the hold outlives
-- a restart (the charger keeps its reservation until `until`): strom keeps refusing payers
-- there and the eMSP's START_SESSION can still use it.
CREATE TABLE roaming_holds (
    holder         TEXT PRIMARY KEY,            -- ocpi:<party>:<reservation_id>
    cp_id          TEXT NOT NULL,
    connector_id   INTEGER NOT NULL,
    until          TEXT NOT NULL,
    id_tag         TEXT NOT NULL,
    reservation_id INTEGER NOT NULL,            -- the charger's (ReserveNow)
    about          TEXT NOT NULL DEFAULT '{}'   -- the holder's: token, authorization_reference
);

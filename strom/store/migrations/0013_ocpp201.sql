-- OCPP 2.0.1 beside 1.6 (issue 20).
-- ocpp_protocols: the websocket subprotocols this charger may use, space-separated
-- (NULL: every one strom speaks); strom picks the highest the charger offers.
-- ocpp_protocol: the one it last connected with.
ALTER TABLE charge_points ADD COLUMN ocpp_protocols TEXT;
ALTER TABLE charge_points ADD COLUMN ocpp_protocol TEXT;

-- A 2.0.1 charger names its transactions itself (a string of up to 36 characters); strom keeps
-- its own integer id for sessions and the ledger, and finds the row again by the charger's
-- name across reconnects and restarts. seq_no: the last TransactionEvent seqNo applied.
ALTER TABLE ocpp_transactions ADD COLUMN charger_tx_id TEXT;
ALTER TABLE ocpp_transactions ADD COLUMN seq_no INTEGER;
CREATE UNIQUE INDEX ocpp_transactions_charger_tx ON ocpp_transactions (cp_id, charger_tx_id)
    WHERE charger_tx_id IS NOT NULL;

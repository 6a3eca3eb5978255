-- Passthrough (issue 25): the backend (CSMS) a charger stays connected to through strom.
-- JSON of strom.passthrough.config.UpstreamConfig: url, password, subprotocol, client
-- certificate paths, lightning on/off. NULL: strom is the charger's only central system.
ALTER TABLE charge_points ADD COLUMN upstream_json TEXT;

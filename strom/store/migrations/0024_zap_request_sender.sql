-- The DM path finds a payer's newest zap request by sender (their relays when they publish no
-- relay list): an index, not a scan of every zap request.
CREATE INDEX IF NOT EXISTS zap_requests_sender ON zap_requests (sender, created_at);

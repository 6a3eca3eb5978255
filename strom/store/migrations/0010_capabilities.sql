-- Issue 16: capabilities, not lookups.
-- Separate rights, separate tokens. `sessions.token` stays the payer's credential (view, stop,
-- refund: /s/{token}, /lnurlw/{token}); `view_token` only reads the session (a shareable
-- page); `topup_token` only pays into it (the top-up LNURL that others may scan).
ALTER TABLE sessions ADD COLUMN view_token TEXT;
ALTER TABLE sessions ADD COLUMN topup_token TEXT;
UPDATE sessions SET view_token = lower(hex(randomblob(16))),
                    topup_token = lower(hex(randomblob(16)));
CREATE UNIQUE INDEX sessions_view_token ON sessions (view_token);
CREATE UNIQUE INDEX sessions_topup_token ON sessions (topup_token);

-- Which capability issued a withdraw link ('payer_token': opened with the payer's token).
ALTER TABLE withdraw_links ADD COLUMN issued_via TEXT;
UPDATE withdraw_links SET issued_via = 'payer_token';

-- The route of each refund, written when it is claimed, so `strom ledger check` can prove it
-- went to the payer: 'withdraw_link' (with the k1 used) or 'payer_lud16' (the zap sender's
-- own lightning address). `final_reading` = 1 when the charger's final meter reading (its
-- StopTransaction) was in when the refund was claimed; NULL for refunds older than this.
ALTER TABLE refunds ADD COLUMN route TEXT;
ALTER TABLE refunds ADD COLUMN k1 TEXT;
ALTER TABLE refunds ADD COLUMN claimed_state TEXT;
ALTER TABLE refunds ADD COLUMN final_reading INTEGER;

-- A zap request is used once: NIP-57 requests are public (they ride in the receipt), so the
-- LNURL callback claims each request's event id in `nostr_handled` (kind 9734) before it makes
-- an invoice. The requests strom already took count as used.
INSERT OR IGNORE INTO nostr_handled (event_id, kind, handled_at)
SELECT json_extract(request_json, '$.id'), 9734, created_at FROM zap_requests
 WHERE json_extract(request_json, '$.id') IS NOT NULL;

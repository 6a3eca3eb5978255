-- Security profiles per charger (issue 20): NULL or 1 = password (Basic auth) if it has one,
-- 2 = that over TLS only (wss), 3 = a TLS client certificate from [ocpp] tls_client_ca whose
-- common name is the charger's id; client_cert_sha256 pins one certificate in addition.
ALTER TABLE charge_points ADD COLUMN security_profile INTEGER;
ALTER TABLE charge_points ADD COLUMN client_cert_sha256 TEXT;

-- The operator's word on a charger's BootNotification (issue 20): NULL = Accepted, 'Rejected' =
-- answered Rejected with a retry interval, and every other message refused until a boot is
-- accepted (OCPP 1.6 §4.2, 2.0.1 B03).
ALTER TABLE charge_points ADD COLUMN boot_status TEXT;

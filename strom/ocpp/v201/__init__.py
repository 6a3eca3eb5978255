"""OCPP 2.0.1 (and 2.1) chargers: the same store rows and bus events as 1.6."""

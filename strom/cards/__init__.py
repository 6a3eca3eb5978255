"""The owner's own RFID cards (OCPP Local Auth List): free or billed to a prepaid account."""

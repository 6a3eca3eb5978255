"""OCPP 1.6J central system: the websocket server chargers connect to, and calls to them."""

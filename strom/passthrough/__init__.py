"""OCPP 1.6J and 2.0.1 passthrough: strom between a charger and the backend (CSMS) it keeps.

`config` is what an operator sets per charger (`upstream`), `upstream` the socket to the
backend (reconnects, the replay queue), `ids` the mapping of message and transaction ids,
`rules` who owns which call (per protocol), `core` what every passthrough connection does, and
`connection` (1.6) and `v201` (2.0.1) the charger's connection that ties them to strom's own
OCPP handlers. See docs/architecture.md, "Passthrough".
"""

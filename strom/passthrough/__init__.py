"""OCPP 1.6J passthrough: strom between a charger and the backend (CSMS) it keeps.

`config` is what an operator sets per charger (`upstream`), `upstream` the socket to the
backend (reconnects, the replay queue), `ids` the mapping of message and transaction ids,
`rules` who owns which call, and `connection` the charger's connection that ties them to
strom's own OCPP handlers. See docs/architecture.md, "Passthrough".
"""

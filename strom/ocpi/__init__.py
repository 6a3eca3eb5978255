"""OCPI 2.2.1, the CPO role (issue 24): eMSPs list strom's chargers, get their status, tariffs,
sessions and CDRs, and send commands. Written to the spec (no OCPI library fits: see
docs/architecture.md, "OCPI")."""

VERSION = "2.2.1"

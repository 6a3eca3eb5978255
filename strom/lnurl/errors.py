"""LUD-06 errors: `{"status": "ERROR", "reason": "…"}` with a reason a person understands."""

from __future__ import annotations

from typing import Any


class LnurlError(Exception):
    """A refusal that a wallet shows to its user as it is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def to_json(self) -> dict[str, Any]:
        return {"status": "ERROR", "reason": self.reason}

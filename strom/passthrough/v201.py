"""An OCPP 2.0.1 charger that keeps its backend: the 1.6 design (`connection`) on 2.0.1's
messages, strom's `V201Connection` handlers behind `PassthroughCore`.

- **strom's**: Authorize with an idToken of a lightning session; a TransactionEvent whose
  transaction carries such an idToken or a remoteStartId strom sent (and every later event of
  that transaction). strom answers; the backend never sees them.
- **the backend's**: everything else, StatusNotification included, forwarded as written and
  observed by strom after the backend's answer is out. While the backend is away strom
  answers (idTokens the backend accepted stay Accepted) and TransactionEvents queue for it.

Transaction ids are the charger's own strings, the same on both sides: nothing is mapped.
"""

from __future__ import annotations

import json
from typing import Any

from ocpp.v201 import call, call_result

from strom.chargers.control import StillWanted
from strom.config import PassthroughSettings
from strom.ocpp.frames import CALLRESULT, Frame
from strom.ocpp.v201.connection import V201Connection
from strom.ocpp.v201.state import V201Context
from strom.outbound import Outbound
from strom.passthrough.config import UpstreamConfig
from strom.passthrough.core import ChargerState, LightningSessions, PassthroughCore
from strom.passthrough.ids import NamedTx
from strom.passthrough.rules import RULES201, refuse_backend_call201
from strom.passthrough.upstream import Outgoing

# Charger calls whose idToken the backend's answer accepts or refuses (the cache).
ID_TOKEN_CALLS = frozenset({"Authorize", "TransactionEvent"})


class V201PassthroughConnection(PassthroughCore, V201Connection):
    """A 2.0.1 charger with a backend of its own; see the module docstring."""

    rules = RULES201

    def __init__(self, cp_id: str, websocket: Any, context: V201Context,
                 response_timeout: float, *, config: UpstreamConfig,
                 settings: PassthroughSettings, sessions: LightningSessions | None,
                 outbound: Outbound | None, max_message_bytes: int,
                 state: ChargerState | None = None) -> None:
        super().__init__(cp_id, websocket, context, response_timeout)
        self.named = self._setup_passthrough(
            config=config, settings=settings, sessions=sessions, outbound=outbound,
            max_message_bytes=max_message_bytes, state=state).named

    # --- whose call ---------------------------------------------------------------------------

    async def _is_stroms(self, frame: Frame) -> bool:
        sessions, payload = self._sessions, frame.payload
        if sessions is None:
            return False
        tag = _id_token(payload)
        if frame.action == "Authorize":
            return tag is not None and await sessions.owns_id_tag(self.id, tag)
        name = _transaction(payload)
        if frame.action != "TransactionEvent" or name is None:
            return False
        known = self.named.get(name)
        if known is not None and known.owner == "strom":
            return True
        remote = payload["transactionInfo"].get("remoteStartId")
        mine = (tag is not None and await sessions.owns_id_tag(self.id, tag)) or (
            isinstance(remote, int) and (self.id, remote) in self._v2.remote_starts)
        if not mine and known is None:
            # After a restart the map is empty: strom's open transactions are in its store.
            tx = await self._ctx.transactions.named(self.id, name)
            mine = (tx is not None and tx.open
                    and await sessions.owns_id_tag(self.id, tx.id_tag))
        evse = payload.get("evse")
        evse_id = evse.get("id") if isinstance(evse, dict) else None
        if known is None or mine:
            self.named[name] = NamedTx("strom" if mine else "backend",
                                       evse_id if isinstance(evse_id, int)
                                       else known.evse if known else None)
        return mine

    def _evses(self, owner: str) -> set[int]:
        return {n.evse for n in self.named.values() if n.owner == owner and n.evse is not None}

    def _forget_ended(self, frame: Frame) -> None:
        if frame.action == "TransactionEvent" and frame.payload.get("eventType") == "Ended":
            self.named.pop(_transaction(frame.payload) or "", None)

    # --- the charger's calls ------------------------------------------------------------------

    async def _strom_answer(self, frame: Frame) -> str:
        answer = await self._capture(frame)
        self._forget_ended(frame)
        return answer

    async def _backends(self, frame: Frame, raw: str) -> None:
        action, payload = frame.action or "", frame.payload

        def answered(answer: Frame) -> None:
            if action in ID_TOKEN_CALLS and answer.message_type == CALLRESULT:
                self._remember(_id_token(payload), answer.payload.get("idTokenInfo"))

        got = await self.upstream.forward(
            Outgoing(action, frame.unique_id, lambda: raw, len(raw.encode()), answered=answered))
        if got is not None:
            await self._send(got[1])  # as the backend wrote it
            if action != "Authorize":
                await self._capture(frame)  # strom takes note
        else:
            await self._send(await self._answer_for_backend(frame))
        self._forget_ended(frame)

    async def _answer_for_backend(self, frame: Frame) -> str:
        """strom's answer while the backend is away: its own, with idTokens the backend had
        accepted Accepted (as a charger's authorization cache would), others Invalid."""
        tag = _id_token(frame.payload)
        if frame.action == "Authorize":
            return json.dumps([CALLRESULT, frame.unique_id,
                               {"idTokenInfo": {"status": self._cached(tag)}}])
        mine = await self._capture(frame)
        data = json.loads(mine)
        if frame.action != "TransactionEvent" or tag is None or data[0] != CALLRESULT:
            return mine
        data[2]["idTokenInfo"] = {"status": self._cached(tag)}
        return json.dumps(data, separators=(",", ":"))

    # --- the backend's calls and strom's own --------------------------------------------------

    async def _refusal(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if self._sessions is None:
            return None
        strom_evses = await self._sessions.busy_connectors(self.id) | self._evses("strom")
        return refuse_backend_call201(
            action, payload, strom_evses=strom_evses,
            strom_transactions={k for k, n in self.named.items() if n.owner == "strom"})

    async def call(self, payload: Any, *, still_wanted: StillWanted | None = None) -> Any:
        """strom's own calls: none in a pure proxy; never a start on the backend's EVSE."""
        if isinstance(payload, call.RequestStartTransaction) and (
                not self.lightning or payload.evse_id in self._evses("backend")):
            return call_result.RequestStartTransaction(status="Rejected")
        return await super().call(payload, still_wanted=still_wanted)


def _id_token(payload: dict[str, Any]) -> str | None:
    token = payload.get("idToken")
    value = token.get("idToken") if isinstance(token, dict) else None
    return value if isinstance(value, str) and value else None


def _transaction(payload: dict[str, Any]) -> str | None:
    info = payload.get("transactionInfo")
    name = info.get("transactionId") if isinstance(info, dict) else None
    return name if isinstance(name, str) else None

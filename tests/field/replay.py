"""A charger made of recorded frames: it sends a field fixture's frames exactly as posted.

Only three things change on the way out: the idTag (the paid session's, so strom knows the
driver), the transactionId (the one strom assigned, so the frames belong to that session) and
the timestamps (shifted as one block so the last one is now; the intervals stay as recorded).
Calls from strom get the answer a cooperative charger gives (RemoteStart/RemoteStop accepted);
everything else a recorded charger cannot act on is declined, as OCPP allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

FIELD_DIR = Path(__file__).resolve().parent.parent / "data" / "field"
CALL, CALLRESULT, CALLERROR = 2, 3, 4
# Actions with a timestamp of their own (MeterValues carry one per meterValue entry).
_TIMESTAMPED = ("StartTransaction", "StopTransaction", "StatusNotification", "TransactionEvent")


@dataclass
class Fixture:
    """One charger's recorded session (tests/data/field/*.json)."""

    name: str
    model: str
    vendor: str
    source: str
    expected_energy_wh: float
    tolerance_wh: float
    transaction_id: int | None
    frames: list[tuple[str, list[Any]]]
    notes: str = ""
    expected_power_w: float | None = None
    expected_soc_percent: float | None = None

    @classmethod
    def load(cls, path: Path) -> Fixture:
        data = json.loads(path.read_text())
        return cls(path.stem, data["model"], data["vendor"], data["source"],
                   float(data["expected_energy_wh"]), float(data.get("tolerance_wh", 1.0)),
                   data.get("transaction_id"),
                   [(direction, frame) for direction, frame in data["frames"]],
                   data.get("notes", ""), data.get("expected_power_w"),
                   data.get("expected_soc_percent"))

    def calls(self) -> list[list[Any]]:
        """The charger's own requests, in order (its answers and strom's are not replayed)."""
        return [frame for direction, frame in self.frames
                if direction == "cp" and frame[0] == CALL]

    def connector_id(self) -> int:
        """The connector the recorded transaction runs on."""
        start = next(f for f in self.calls() if f[2] == "StartTransaction")
        return int(start[3]["connectorId"])

    def has_stop(self) -> bool:
        """Whether the charger's StopTransaction is part of the recording."""
        return any(f[2] == "StopTransaction" for f in self.calls())


def all_fixtures() -> list[Fixture]:
    """Every fixture of the corpus, by file name."""
    return [Fixture.load(path) for path in sorted(FIELD_DIR.glob("*.json"))]


def _parse(value: str) -> datetime:
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _timestamps(call: list[Any]) -> list[datetime]:
    payload = call[3]
    found = [payload["timestamp"]] if call[2] in _TIMESTAMPED and "timestamp" in payload else []
    for entry in payload.get("meterValue", []) + payload.get("transactionData", []):
        if "timestamp" in entry:
            found.append(entry["timestamp"])
    return [_parse(v) for v in found]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class RecordedCharger:
    """A raw OCPP 1.6J websocket that replays a fixture's frames as its charger sent them."""

    fixture: Fixture
    url: str
    ws: ClientConnection | None = None
    id_tag: str | None = None  # what strom's RemoteStartTransaction asked for
    transaction_id: int | None = None  # what strom answered to StartTransaction
    remote_start: asyncio.Event = field(default_factory=asyncio.Event)
    received_calls: list[list[Any]] = field(default_factory=list)
    _pending: dict[str, asyncio.Future[list[Any]]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None
    _shift: timedelta = timedelta(0)
    _counter: int = 0
    subprotocol = "ocpp1.6"

    async def connect(self) -> None:
        self.ws = await connect(self.url, subprotocols=[self.subprotocol])  # type: ignore[list-item]
        self._reader = asyncio.create_task(self._read())
        stamps = [at for call in self.fixture.calls() for at in _timestamps(call)]
        if stamps:
            self._shift = datetime.now(UTC) - max(stamps)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self.ws is not None:
            await self.ws.close()

    async def call(self, frame: list[Any]) -> list[Any]:
        """Send one CALL and wait for strom's CALLRESULT or CALLERROR."""
        assert self.ws is not None
        answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[str(frame[1])] = answer
        await self.ws.send(json.dumps(frame))
        return await asyncio.wait_for(answer, timeout=10)

    async def send_synthetic(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """A frame the fixture does not have but the harness needs (boot, first status)."""
        self._counter += 1
        return await self.call([CALL, f"harness-{self._counter}", action, payload])

    async def replay(self, frame: list[Any]) -> list[Any]:
        """Send a recorded CALL with the session's idTag, transactionId and shifted times."""
        action, payload = frame[2], copy.deepcopy(frame[3])
        if "idTag" in payload and action in ("Authorize", "StartTransaction", "StopTransaction"):
            assert self.id_tag is not None, "strom never asked this charger to start"
            payload["idTag"] = self.id_tag
        original = self.fixture.transaction_id
        if ("transactionId" in payload and self.transaction_id is not None
                and (original is None or payload["transactionId"] == original)):
            payload["transactionId"] = self.transaction_id
        if action in _TIMESTAMPED and "timestamp" in payload:
            payload["timestamp"] = self._shifted(payload["timestamp"])
        for entry in payload.get("meterValue", []) + payload.get("transactionData", []):
            if "timestamp" in entry:
                entry["timestamp"] = self._shifted(entry["timestamp"])
        answer = await self.call([CALL, frame[1], action, payload])
        if action == "StartTransaction" and answer[0] == CALLRESULT:
            self.transaction_id = int(answer[2]["transactionId"])
        return answer

    def _shifted(self, value: str) -> str:
        return _iso(_parse(value) + self._shift)

    async def _read(self) -> None:
        assert self.ws is not None
        async for raw in self.ws:
            frame = json.loads(raw)
            if frame[0] in (CALLRESULT, CALLERROR):
                waiting = self._pending.pop(str(frame[1]), None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(frame)
            elif frame[0] == CALL:
                self.received_calls.append(frame)
                await self.ws.send(json.dumps(self._answer(frame)))

    def _answer(self, frame: list[Any]) -> list[Any]:
        unique_id, action, payload = frame[1], frame[2], frame[3]
        if action == "RemoteStartTransaction":
            self.id_tag = payload["idTag"]
            self.remote_start.set()
            return [CALLRESULT, unique_id, {"status": "Accepted"}]
        if action in ("RemoteStopTransaction", "ChangeAvailability"):
            return [CALLRESULT, unique_id, {"status": "Accepted"}]
        if action == "GetConfiguration":
            return [CALLRESULT, unique_id, {"configurationKey": [],
                                            "unknownKey": payload.get("key", [])}]
        if action in ("ChangeConfiguration", "TriggerMessage"):
            # A recording cannot change what it sends nor send something new.
            return [CALLRESULT, unique_id, {"status": "Rejected"}]
        return [CALLERROR, unique_id, "NotSupported", f"{action} is not supported", {}]

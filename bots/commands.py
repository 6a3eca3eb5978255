"""The DM conversation: `help`, `status`, `price`, `stop`, `refund`, `history`, `reserve`,
`cancel` (a paid reservation, issue 21), and for
operators `reset`, `unlock N`, `availability N on|off`, `limit N WATTS|off` (the operator
commands of `strom.chargers.operator`: checked, sent, audited).

Only a session's payer (the key that zapped, or the key linked to the session) may stop it or
get its refund link; everybody else is told so, and nothing happens.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from nostr_sdk import PublicKey

from strom.chargers.control import ControlResult
from strom.chargers.operator import CommandRefused, OperatorCommands
from strom.container import Services
from strom.keys import operator_npubs
from strom.lnurl.codec import lnurl_encode
from strom.sessions.model import ACTIVE_STATES, REFUNDABLE_STATES, Session
from strom.sessions.payer_stop import PayerKey
from strom.sessions.refusals import Refused
from strom.tariffs.model import describe

log = logging.getLogger(__name__)

HELP = """Commands:
status – charger status and your session
price – the current price
stop – stop your charging session (payer only)
refund – your refund link (payer only)
history – your last sessions here
reserve – how to hold a connector for you (paid)
cancel – cancel your reservation (payer only)
help – this text"""
# A stop asked while the charger had not started yet: the refund waits for its answer (the
# notifier sends the refund link once the session stopped or failed).
STOP_HELD = ("Your stop is being applied: the charger has not answered the start yet. I will "
             "send your refund link as soon as it has (at most a few minutes).")
OPERATOR_HELP = "\nOperator: reset · unlock N · availability N on|off · limit N WATTS|off"


def _sat(msat: int) -> str:
    return f"{msat // 1000:,} sat"


class Commands:
    """Answers one DM; `operators` are hex pubkeys allowed to run operator commands."""

    def __init__(self, svc: Services, operators: frozenset[str]) -> None:
        self._svc = svc
        self._operators = operators

    @classmethod
    def from_services(cls, svc: Services, key_file: Path) -> Commands:
        hexes = set()
        for npub in operator_npubs(key_file):
            try:
                hexes.add(PublicKey.parse(npub).to_hex())
            except Exception:
                log.warning("nostr-keys.toml: [operator] npubs has an invalid key; ignored")
        return cls(svc, frozenset(hexes))

    async def answer(self, cp_id: str, sender: str, text: str) -> str:
        words = text.strip().lower().split()
        command, args = (words[0], words[1:]) if words else ("help", [])
        operator = sender in self._operators
        match command:
            case "help" | "?":
                return HELP + (OPERATOR_HELP if operator else "")
            case "status":
                return await self._status(cp_id, sender)
            case "price":
                return await self._price(cp_id)
            case "stop":
                return await self._stop(cp_id, sender)
            case "refund":
                return await self._refund(cp_id, sender)
            case "history":
                return await self._history(cp_id, sender)
            case "reserve":
                return await self._reserve(cp_id)
            case "cancel":
                return await self._cancel(cp_id, sender)
            case "reset" | "unlock" | "availability" | "limit" if operator:
                return await self._operate(cp_id, sender, command, args)
            case "reset" | "unlock" | "availability" | "limit":
                return "Only operators may do that."
        return f"Unknown command {command[:40]!r}.\n{HELP}"  # the help must fit a DM

    async def _mine(self, cp_id: str, sender: str) -> list[Session]:
        return await self._svc.sessions.list(cp_id=cp_id, payer_pubkey=sender, limit=10)

    async def _status(self, cp_id: str, sender: str) -> str:
        cp = await self._svc.charge_points.get(cp_id)
        if cp is None:
            return "This charger was removed."
        lines = [f"{cp.name}: {cp.status}"]
        lines += [f"connector {c.connector_id}: {c.status if cp.connected else 'Offline'}"
                  for c in cp.connectors if c.connector_id > 0]
        active = [s for s in await self._mine(cp_id, sender) if s.state in ACTIVE_STATES]
        for s in active:
            lines.append(f"Your session: {s.state.value}, {s.energy_wh / 1000:.2f} kWh, "
                         f"{_sat(s.consumed_msat)} of {_sat(s.paid_msat)} used.")
        return "\n".join(lines)

    async def _price(self, cp_id: str) -> str:
        cp = await self._svc.charge_points.get(cp_id)
        return describe(self._svc.tariffs.current(cp)) if cp else "This charger was removed."

    async def _stop(self, cp_id: str, sender: str) -> str:
        try:  # the DM's signer is the capability: only their own session stops
            session = await self._svc.use_cases.stops.stop(PayerKey(cp_id, sender))
        except Refused as exc:
            return exc.reason
        if session.stop_requested:
            return STOP_HELD
        return (f"Stopped. {session.energy_wh / 1000:.2f} kWh, {_sat(session.consumed_msat)}. "
                f"{self._refund_text(session)}")

    async def _refund(self, cp_id: str, sender: str) -> str:
        mine = await self._mine(cp_id, sender)
        refundable = [s for s in mine if s.refundable_msat > 0 and s.state in REFUNDABLE_STATES]
        if not refundable and any(s.stop_requested for s in mine):
            return STOP_HELD
        if not refundable:
            return "Nothing to refund for you here. Only the payer of a session gets its refund."
        return self._refund_text(refundable[0])

    def _refund_text(self, session: Session) -> str:
        if session.refundable_msat <= 0:
            return "Nothing left to refund."
        url = f"{self._svc.settings.public_url}/lnurlw/{session.token}"
        return (f"Your refund: {_sat(session.refundable_msat)}. Withdraw it with your wallet: "
                f"lightning:{lnurl_encode(url)}")

    async def _reserve(self, cp_id: str) -> str:
        try:
            words = await self._svc.use_cases.reservations.words(cp_id)
        except Refused as exc:
            return f"No reservation: {exc.reason}"
        link = lnurl_encode(f"{self._svc.settings.public_url}/reserve/{cp_id}")
        fee = self._svc.settings.tariff.reservation.fee_msat
        return (f"Zap me {_sat(fee)} with the comment `reserve`, or pay lightning:{link}. "
                f"{words}")

    async def _cancel(self, cp_id: str, sender: str) -> str:
        try:  # the DM's signer is the capability: only their own reservation is cancelled
            session = await self._svc.use_cases.reservations.cancel(PayerKey(cp_id, sender))
        except Refused as exc:
            return exc.reason
        if session.refundable_msat > 0:
            return f"Reservation cancelled. {self._refund_text(session)}"
        return "Reservation cancelled; the fee is kept."

    async def _history(self, cp_id: str, sender: str) -> str:
        sessions = (await self._mine(cp_id, sender))[:5]
        if not sessions:
            return "No sessions of yours here yet."
        return "\n".join(f"{s.created_at[:16]} {s.state.value}: {s.energy_wh / 1000:.2f} kWh, "
                         f"paid {_sat(s.paid_msat)}, used {_sat(s.consumed_msat)}, "
                         f"refunded {_sat(s.refunded_msat)}" for s in sessions)

    async def _operate(self, cp_id: str, sender: str, command: str, args: list[str]) -> str:
        ops = OperatorCommands(self._svc.charge_points, self._svc.chargers, self._svc.event_log)
        by = f"nostr:{sender}"
        try:
            if command == "reset":
                result = await ops.reset(cp_id, by=by)
                if result.answered:
                    return "Reset accepted." if result.ok else "The charger refused the reset."
                return result.reason
            usage = {"unlock": "unlock N", "availability": "availability N on|off",
                     "limit": "limit N WATTS|off"}[command]
            if not args or not args[0].isdigit() or len(args[0]) > 3:
                return f"Usage: {usage}"
            connector = int(args[0])
            if command == "unlock":
                result = await ops.unlock(cp_id, connector, by=by)
                return _told("Unlock", result)
            if command == "availability":
                if len(args) < 2 or args[1] not in ("on", "off"):
                    return f"Usage: {usage}"
                result = await ops.set_availability(cp_id, connector, args[1] == "on", by=by)
                return _told("Availability", result)
            watts = _watts(args[1]) if len(args) > 1 else None
            if watts is None and args[1:] != ["off"]:
                return f"Usage: {usage}"
            result = await ops.set_power_limit(cp_id, connector, watts, by=by)
            return _told("Limit", result)
        except CommandRefused as exc:
            return f"Not sent: {exc.message}."


def _told(what: str, result: ControlResult) -> str:
    """The charger's own word when it answered one, else why not (never "Limit: None")."""
    return f"{what}: {result.status}" if result.answered and result.status else result.reason


def _watts(word: str) -> float | None:
    """`11000`, `11000w` or `11kw` in W; None for anything else."""
    word = word.lower()
    scale = 1000.0 if word.endswith("kw") else 1.0
    number = word.removesuffix("kw").removesuffix("w")
    try:
        value = float(number) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) else None

"""Ledger: where the money stands, today's takings per charger, and the full invariant check."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from tui.format import sat
from tui.screens.base import ConsoleScreen, nav_bar


def summary_text(summary: dict[str, Any]) -> Text:
    lines = [(label, sat(summary[key])) for label, key in (
        ("received from payers", "received_msat"), ("used for charging", "consumed_msat"),
        ("refunded", "refunded_msat"), ("forfeited (unclaimed)", "forfeited_msat"),
        ("still refundable", "refundable_msat"))]
    balance = summary.get("wallet_balance_msat")
    lines += [("sessions", f"{summary['sessions']:,}"),
              ("wallet balance", sat(balance) if balance is not None else "unknown"),
              ("earned today", sat(summary["earned_today_msat"]))]
    lines += [(f"  {cp_id}", sat(msat))
              for cp_id, msat in sorted(summary["earned_today_by_cp"].items())]
    text = Text()
    for label, value in lines:
        text.append(f"{label:<24}", style="dim")
        text.append(f"{value:>16}\n")
    return text


def check_text(report: dict[str, Any]) -> Text:
    if report["ok"]:
        return Text(f"Ledger OK: for all {report['sessions']} sessions, paid = used + refunded"
                    " + forfeited + refundable, and every payment is recorded once.",
                    style="green")
    text = Text(f"Ledger has {len(report['problems'])} problem(s):\n", style="bold red")
    for problem in report["problems"]:
        text.append(f"• {problem}\n")
    return text


class LedgerScreen(ConsoleScreen):
    BINDINGS = [Binding("c", "check", "Check ledger"), Binding("r", "refresh", "Refresh")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield nav_bar("ledger")
        with VerticalScroll():
            yield Static("", id="summary")
            yield Static("Press c to verify the money invariant of every session.",
                         id="check", classes="status-line")
        yield Footer()

    async def on_mount(self) -> None:
        await super().on_mount()
        self.title = "Ledger"
        await self.action_refresh()

    async def action_refresh(self) -> None:
        summary = await self.attempt(self.client.ledger())
        if summary is not None:
            self.query_one("#summary", Static).update(summary_text(summary))

    async def action_check(self) -> None:
        self.query_one("#check", Static).update("checking every session…")
        report = await self.attempt(self.client.ledger_check())
        if report is not None:
            self.query_one("#check", Static).update(check_text(report))

    async def on_live(self, name: str, data: dict[str, Any]) -> None:
        if name in ("session", "reconnected"):
            await self.action_refresh()

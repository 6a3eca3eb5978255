"""Small modal dialogs: a form of text fields and checkboxes, and a message (or QR) to read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    value: str = ""
    password: bool = False
    checkbox: bool = False
    checked: bool = False
    placeholder: str = ""


class FormScreen(ModalScreen[dict[str, Any] | None]):
    """Fields in, `{name: str | bool}` out on submit (Enter or the button), None on Escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, fields: list[Field], submit: str = "OK",
                 note: str = "") -> None:
        super().__init__()
        self._title = title
        self._fields = fields
        self._submit = submit
        self._note = note

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self._title), classes="dialog-title")
            if self._note:
                yield Static(Text(self._note), classes="dialog-note")
            with VerticalScroll(classes="dialog-body"):
                for field in self._fields:
                    if field.checkbox:
                        yield Checkbox(field.label, field.checked, id=f"f-{field.name}",
                                       compact=True)
                        continue
                    with Horizontal(classes="form-row"):
                        yield Label(Text(field.label), classes="form-label")
                        yield Input(field.value, placeholder=field.placeholder,
                                    password=field.password, id=f"f-{field.name}", compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self._submit, variant="primary", id="submit", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field in self._fields:
            kind: type[Checkbox] | type[Input] = Checkbox if field.checkbox else Input
            widget = self.query_one(f"#f-{field.name}", kind)
            values[field.name] = widget.value
        return values

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.values() if event.button.id == "submit" else None)

    def on_input_submitted(self) -> None:
        self.dismiss(self.values())

    def action_cancel(self) -> None:
        self.dismiss(None)


class MessageScreen(ModalScreen[None]):
    """Text to read (a QR code, an npub, a report); Escape, Enter or q closes it."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, title: str, body: str, *, wide: bool = False) -> None:
        super().__init__()
        self._title = title
        self._body = body
        self._wide = wide

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide" if self._wide else "dialog"):
            yield Label(Text(self._title), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(Text(self._body), classes="message")
            yield Label(Text("Esc closes", style="dim"), classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)

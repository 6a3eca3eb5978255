"""`strom firmware upload|list|update|status` and `strom diagnostics request|list|get`: the
admin API of the running server, for scripts (`strom.web.api_firmware`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx

from strom.cli.common import CliEnv, call_server, common_options, echo_json, running_server
from strom.errors import UserError

TIMEOUT = httpx.Timeout(60, connect=5)


def _api(env: CliEnv, method: str, path: str, **kwargs: Any) -> Any:
    """One admin API call; its JSON answer, or a UserError with the server's reason."""
    status, body = call_server(env, method, path, timeout=TIMEOUT, **kwargs)
    if status >= 400:
        raise UserError(str(body.get("error") or f"server answered HTTP {status}"))
    return body


def _send(env: CliEnv, path: str, body: dict[str, Any]) -> Any:
    """POST `body` without its unset (None) fields."""
    return _api(env, "POST", path, json={k: v for k, v in body.items() if v is not None})


def _items(env: CliEnv, path: str, cp_id: str | None) -> list[dict[str, Any]]:
    """A list route's items, of one charge point when given."""
    items: list[dict[str, Any]] = _api(env, "GET", path,
                                       params={"cp_id": cp_id} if cp_id else {})["items"]
    return items


def _show(data: Any, as_json: bool, lines: Iterator[str]) -> None:
    if as_json:
        echo_json(data)
    else:
        for line in lines:
            click.echo(line)


@click.group()
def firmware() -> None:
    """Firmware files and updates of chargers."""


@firmware.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Name to show (default: the file's name).")
@common_options
def upload(env: CliEnv, path: Path, name: str | None) -> None:
    """Upload a firmware file to the running server; prints its id."""
    with path.open("rb") as handle:
        added = _api(env, "POST", "/api/v1/firmware", params={"name": name or path.name},
                     content=handle)
    click.echo(f"firmware {added['id']}: {added['name']}, {added['size']} bytes,"
               f" sha256 {added['sha256']}")


@firmware.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@common_options
def list_(env: CliEnv, as_json: bool) -> None:
    """Firmware files uploaded, newest first."""
    items = _api(env, "GET", "/api/v1/firmware")["items"]
    _show(items, as_json, (f"{f['id']:>4}  {f['name']}  {f['size']} bytes  {f['uploaded_at']}"
                           for f in items))


@firmware.command("update")
@click.argument("cp_id")
@click.argument("file_id", type=click.IntRange(1))
@click.option("--retrieve-at", default=None, help="ISO 8601 time the charger may fetch it.")
@click.option("--retries", type=click.IntRange(0, 100), default=None)
@click.option("--retry-interval", type=click.IntRange(0, 86_400), default=None,
              help="Seconds between retries.")
@common_options
def update(env: CliEnv, cp_id: str, file_id: int, retrieve_at: str | None,
           retries: int | None, retry_interval: int | None) -> None:
    """Send firmware FILE_ID to charger CP_ID (a one-time download link)."""
    sent = _send(env, "/api/v1/firmware/updates", {
        "cp_id": cp_id, "file_id": file_id, "retrieve_at": retrieve_at, "retries": retries,
        "retry_interval": retry_interval})
    click.echo(f"update {sent['update']['id']} sent to {cp_id}; follow it with:"
               f" strom firmware status {cp_id}")


@firmware.command("status")
@click.argument("cp_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@common_options
def status(env: CliEnv, cp_id: str | None, as_json: bool) -> None:
    """Firmware updates and the charger's status notifications, newest first."""
    items = _items(env, "/api/v1/firmware/updates", cp_id)
    _show(items, as_json, (
        f"{u['id']:>4}  {u['cp_id']}  file {u['file_id']}  {u['status']}  "
        + " → ".join(h["status"] for h in u["history"]) for u in items))


@click.group()
def diagnostics() -> None:
    """Diagnostics and log uploads of chargers."""


@diagnostics.command("request")
@click.argument("cp_id")
@click.option("--log", type=click.Choice(["DiagnosticsLog", "SecurityLog"]), default=None,
              help="A security extensions' log (GetLog) instead of the diagnostics.")
@click.option("--since", default=None, help="ISO 8601: oldest entries wanted.")
@common_options
def request(env: CliEnv, cp_id: str, log: str | None, since: str | None) -> None:
    """Ask charger CP_ID to upload its diagnostics (or a log) to strom."""
    sent = _send(env, "/api/v1/diagnostics", {"cp_id": cp_id, "log": log, "since": since})
    click.echo(f"request {sent['diagnostics']['id']} sent to {cp_id}; follow it with:"
               f" strom diagnostics list {cp_id}")


@diagnostics.command("list")
@click.argument("cp_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@common_options
def list_diagnostics(env: CliEnv, cp_id: str | None, as_json: bool) -> None:
    """Diagnostics requests and their files, newest first."""
    items = _items(env, "/api/v1/diagnostics", cp_id)
    _show(items, as_json, (
        f"{d['id']:>4}  {d['cp_id']}  {d['kind']}  {d['status']}  "
        + (f"{d['file']['name']} ({d['file']['size']} bytes)" if d["file"] else "no file yet")
        for d in items))


@diagnostics.command("get")
@click.argument("request_id", type=click.IntRange(1))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write it (default: the uploaded file's name, here).")
@common_options
def get(env: CliEnv, request_id: int, output: Path | None) -> None:
    """Download the file a charger uploaded for REQUEST_ID."""
    found = _api(env, "GET", f"/api/v1/diagnostics/{request_id}")
    if found["file"] is None:
        raise UserError(f"nothing was uploaded for request {request_id} yet")
    url, token = running_server(env)
    target = output or Path(found["file"]["name"])
    with httpx.stream("GET", f"{url}/api/v1/diagnostics/{request_id}/file", timeout=TIMEOUT,
                      headers={"Authorization": f"Bearer {token}"}) as answer:
        if answer.status_code != 200:
            raise UserError(f"server answered HTTP {answer.status_code}")
        with target.open("wb") as handle:
            for chunk in answer.iter_bytes():
                handle.write(chunk)
    click.echo(f"wrote {target} ({found['file']['size']} bytes)")

"""`strom tui`: the Textual operator console against the running server."""

from __future__ import annotations

import json
from pathlib import Path

import click
import httpx

from strom.cli.common import CliEnv, common_options
from strom.errors import UserError
from strom.paths import admin_token_path, runtime_path


def _server_url(data_dir: Path) -> str | None:
    """The URL a running server wrote into the data dir, if any."""
    try:
        info = json.loads(runtime_path(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    url = info.get("http_url") if isinstance(info, dict) else None
    return url if isinstance(url, str) else None


def _preflight(url: str, token: str, not_running: str) -> None:
    """Fail with one line before the console starts if the server is gone or refuses us."""
    from tui.client import WRONG_TOKEN

    try:
        answer = httpx.get(f"{url.rstrip('/')}/api/v1/charge-points", params={"limit": 1},
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)
    except httpx.HTTPError:
        raise UserError(not_running) from None
    if answer.status_code == 401:
        raise UserError(WRONG_TOKEN)
    if answer.status_code != 200:
        raise UserError(f"{url} did not answer like strom (HTTP {answer.status_code})")


@click.command()
@click.option("--url", default=None,
              help="Server URL (default: the running server's, from <data-dir>/runtime.json).")
@click.option("--token", envvar="STROM_ADMIN_TOKEN", default=None,
              help="Admin token (default: $STROM_ADMIN_TOKEN, else <data-dir>/admin.token).")
@common_options
def tui(env: CliEnv, url: str | None, token: str | None) -> None:
    """The operator console: chargers, sessions, keys, ledger and the live log."""
    not_running = (f"strom is not running in {env.data_dir}; start it with `strom run`"
                   if url is None else f"strom is not reachable at {url}; is it running?")
    url = url or _server_url(env.data_dir)
    if url is None:
        raise UserError(not_running)
    if token is None:
        try:
            token = admin_token_path(env.data_dir).read_text(encoding="utf-8").strip()
        except OSError:
            raise UserError(f"no admin token in {admin_token_path(env.data_dir)}; "
                            "give --token or the data dir of the server") from None
    _preflight(url, token, not_running)

    from tui.app import StromConsole
    from tui.client import StromClient

    StromConsole(StromClient(url, token)).run()

"""What every command shares: `--data-dir`, `--config`, settings, the store, async running."""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from strom.config import Settings, load_settings
from strom.errors import UserError
from strom.paths import (
    admin_token_path,
    database_path,
    ensure_data_dir,
    resolve_data_dir,
    runtime_path,
)
from strom.store.db import Database

T = TypeVar("T")


@dataclass
class CliEnv:
    data_dir: Path
    config_path: Path | None
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def demo(self) -> bool:
        """No config file means demo mode (contract §1)."""
        return self.config_path is None


def _resolve_config(given: str | None) -> Path | None:
    if given:
        return Path(given).expanduser()
    if os.environ.get("STROM_CONFIG"):
        return Path(os.environ["STROM_CONFIG"]).expanduser()
    default = Path("strom.toml")
    return default if default.exists() else None


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--data-dir` and `--config` and pass a `CliEnv` as the first argument."""

    @click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                  help="strom.toml (default: $STROM_CONFIG, else ./strom.toml if present).")
    @click.option("--data-dir", "data_dir", type=click.Path(file_okay=False), default=None,
                  help="Data directory (default: $STROM_DATA_DIR, else ./.strom).")
    @functools.wraps(func)
    def wrapper(*args: Any, data_dir: str | None, config: str | None, **kwargs: Any) -> Any:
        env = CliEnv(resolve_data_dir(data_dir), _resolve_config(config))
        return func(env, *args, **kwargs)

    return wrapper


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@asynccontextmanager
async def open_store(env: CliEnv) -> AsyncIterator[Database]:
    db = await Database.open(database_path(ensure_data_dir(env.data_dir)))
    try:
        yield db
    finally:
        await db.close()


def with_store(env: CliEnv, work: Callable[[Database], Awaitable[T]]) -> T:
    """Open the store, run `work` on it and close it: a command's whole visit to the store."""

    async def go() -> T:
        async with open_store(env) as db:
            return await work(db)

    return run_async(go())


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def echo_listing(rows: Sequence[T], as_json: bool, empty: str,
                 to_json: Callable[[T], Any] | None = None) -> bool:
    """A `list` command's shared part: `--json` prints the rows (through `to_json`), no rows
    prints the hint `empty`. True when the caller is to print its own table."""
    if as_json:
        echo_json([to_json(r) for r in rows] if to_json else list(rows))
        return False
    if not rows:
        click.echo(empty)
        return False
    return True


def _not_running(env: CliEnv) -> UserError:
    return UserError(f"strom is not running in {env.data_dir}; start it with `strom run`")


def running_server(env: CliEnv) -> tuple[str, str]:
    """The running server's URL and the admin token, or a UserError saying how to start it."""
    try:
        url = json.loads(runtime_path(env.data_dir).read_text(encoding="utf-8"))["http_url"]
        token = admin_token_path(env.data_dir).read_text(encoding="utf-8").strip()
    except (OSError, ValueError, KeyError, TypeError):
        raise _not_running(env) from None
    return str(url), token


def call_server(env: CliEnv, method: str, path: str, *, timeout: httpx.Timeout | float,
                **kwargs: Any) -> tuple[int, Any]:
    """One admin API call to the running server: its HTTP status and JSON answer ({} when the
    answer is not JSON), or a UserError when it cannot be reached or does not answer."""
    url, token = running_server(env)
    try:
        answer = httpx.request(method, url + path, headers={"Authorization": f"Bearer {token}"},
                               timeout=timeout, **kwargs)
    except httpx.ConnectError:
        raise _not_running(env) from None  # runtime.json left behind by a strom that is gone
    except httpx.HTTPError as exc:
        raise UserError(f"strom in {env.data_dir} did not answer: {type(exc).__name__}") from None
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, {}

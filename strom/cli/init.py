"""`strom init`: write a commented strom.toml by asking, or from flags, checking each answer."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from strom.cli.common import CliEnv
from strom.cli.cp import CP_ID, register_charge_point
from strom.config import load_settings
from strom.errors import UserError
from strom.onboarding.checks import (
    LndNode,
    Problem,
    check_lnd_sync,
    check_nwc,
    check_public_url,
)
from strom.onboarding.config_file import Answers, render
from strom.paths import ensure_data_dir, resolve_data_dir
from strom.security import write_secret_file

T = TypeVar("T")
MACAROON_FILE = "lnd.macaroon"


def _ask(interactive: bool, given: str | None, prompt: str, check: Callable[[str], T],
         problems: list[str], *, default: str | None = None, hide: bool = False) -> T | None:
    """The checked answer: from the flag, else (interactive) asked until it passes; a wrong
    flag is a problem either way, so a script never hangs on a prompt."""
    if given is not None or not interactive:
        try:
            return check(given if given is not None else (default or ""))
        except Problem as exc:
            problems.append(str(exc))
            return None
    while True:
        answer = click.prompt(prompt, default=default, hide_input=hide, err=True)
        try:
            return check(answer)
        except Problem as exc:
            click.echo(str(exc), err=True)


def _write_macaroon(data_dir: Path, macaroon: bytes) -> Path:
    """A macaroon given as hex goes to a 0600 file in the data dir, so strom.toml holds none."""
    path = ensure_data_dir(data_dir) / MACAROON_FILE
    write_secret_file(path, macaroon)
    return path.resolve()


def _lnd(interactive: bool, url: str | None, macaroon: str | None, cert: str | None,
         problems: list[str]) -> LndNode | None:
    """LND's answers are checked together: the node must answer getinfo with the macaroon."""
    while True:
        if interactive:
            url = url or click.prompt("LND REST URL", default="https://127.0.0.1:8080", err=True)
            macaroon = macaroon or click.prompt("LND macaroon (admin.macaroon path, or hex)",
                                                err=True, hide_input=True)
            if cert is None:
                cert = click.prompt("LND tls.cert path (empty: system trust store)",
                                    default="", show_default=False, err=True)
        try:
            return check_lnd_sync(url or "", macaroon or "", cert or None)
        except Problem as exc:
            if not interactive:
                problems.append(str(exc))
                return None
            click.echo(str(exc), err=True)
            url = macaroon = cert = None


def _ask_charger() -> str | None:
    """The first charger's id, asked until valid; empty: none now (`strom cp add` later)."""
    while True:
        answer = click.prompt("First charge point id (empty: none now)", default="",
                              show_default=False, err=True).strip()
        if not answer or CP_ID.match(answer):
            return answer or None
        click.echo(f"{answer!r}: use 1-48 letters, digits, '.', '_' or '-'", err=True)


def _backend(value: str) -> str:
    if value not in ("dev", "lnd", "nwc"):
        raise Problem(f"--backend {value!r}: choose dev, lnd or nwc")
    return value


@click.command()
@click.option("--non-interactive", is_flag=True,
              help="Ask nothing: flags only, exit 1 on problems.")
@click.option("--public-url", default=None,
              help="https URL wallets reach strom by (http only on localhost/.onion).")
@click.option("--backend", default=None, help="Lightning backend: dev, lnd or nwc.")
@click.option("--network", type=click.Choice(["regtest", "testnet", "signet", "mainnet"]),
              default=None, help="Bitcoin network (lnd: read from the node; dev: regtest).")
@click.option("--lnd-rest-url", default=None, help="LND REST URL, e.g. https://127.0.0.1:8080.")
@click.option("--lnd-macaroon", default=None, help="admin.macaroon path, or its hex.")
@click.option("--lnd-cert", default=None, help="LND's tls.cert path.")
@click.option("--nwc-uri", default=None, help="nostr+walletconnect://… URI of your wallet.")
@click.option("--charger", "charger_id", default=None, help="Register a first charge point.")
@click.option("--lat", type=click.FloatRange(-90, 90), default=None, help="Its latitude.")
@click.option("--lon", type=click.FloatRange(-180, 180), default=None, help="Its longitude.")
@click.option("--name", default=None, help="Its display name (default: the id).")
@click.option("--force", is_flag=True, help="Overwrite an existing strom.toml.")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="File to write (default: $STROM_CONFIG, else ./strom.toml).")
@click.option("--data-dir", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Data directory (default: $STROM_DATA_DIR, else ./.strom).")
def init(non_interactive: bool, public_url: str | None, backend: str | None,
         network: str | None, lnd_rest_url: str | None, lnd_macaroon: str | None,
         lnd_cert: str | None, nwc_uri: str | None, charger_id: str | None, lat: float | None,
         lon: float | None, name: str | None, force: bool, config: str | None,
         data_dir: str | None) -> None:
    """Write a commented strom.toml: public URL, lightning backend, first charger."""
    interactive = not non_interactive
    path = Path(config or os.environ.get("STROM_CONFIG") or "strom.toml").expanduser()
    if path.exists() and not force:
        raise UserError(f"{path} exists: edit it, or run strom init --force to replace it")
    data = resolve_data_dir(data_dir).resolve()
    problems: list[str] = []

    url = _ask(interactive, public_url, "Public URL wallets reach strom by", check_public_url,
               problems, default="http://127.0.0.1:8000")
    chosen = _ask(interactive, backend, "Lightning backend (dev, lnd, nwc)", _backend, problems,
                  default="dev")
    answers_extra: dict[str, str] = {}
    node: LndNode | None = None
    if chosen == "lnd":
        node = _lnd(interactive, lnd_rest_url, lnd_macaroon, lnd_cert, problems)
    elif chosen == "nwc":
        uri = _ask(interactive, nwc_uri, "NWC URI (nostr+walletconnect://…)", check_nwc,
                   problems, hide=True)
        answers_extra["nwc_uri"] = uri or ""
    if interactive and charger_id is None:
        charger_id = _ask_charger()
        if charger_id is not None:
            lat = click.prompt("Its latitude", type=click.FloatRange(-90, 90), err=True)
            lon = click.prompt("Its longitude", type=click.FloatRange(-180, 180), err=True)
    if charger_id is not None and not CP_ID.match(charger_id):
        problems.append(f"--charger {charger_id!r}: use 1-48 letters, digits, '.', '_' or '-'")
    if charger_id is not None and (lat is None or lon is None):
        problems.append("--charger needs --lat and --lon (its location on the map)")
    if node is not None and network is not None and network != node.network:
        problems.append(f"--network {network}: LND at {node.url} is on {node.network}")
    if chosen == "dev" and network not in (None, "regtest"):
        problems.append("--network: the dev wallet is regtest only (no real money)")
    if problems or url is None or chosen is None:
        for problem in problems:
            click.echo(f"strom init: {problem}", err=True)
        raise SystemExit(1)

    if node is not None:
        macaroon_path = node.macaroon_file or _write_macaroon(data, node.macaroon)
        answers_extra |= {"lnd_url": node.url, "lnd_macaroon_path": str(macaroon_path),
                          "lnd_cert": node.tls_cert}
    answers = Answers(public_url=url, backend=chosen,
                      network=node.network if node else network or
                      ("regtest" if chosen == "dev" else "mainnet"), **answers_extra)
    write_secret_file(path, render(answers, data))
    load_settings(path, {})  # what was written must load; a ConfigError here is a bug
    click.echo(f"wrote {path} (mode 0600)" + (f", alias {node.alias}" if node else ""), err=True)

    if charger_id is not None and lat is not None and lon is not None:
        cp, npub = register_charge_point(CliEnv(ensure_data_dir(data), path), charger_id,
                                         lat=lat, lon=lon, name=name)
        click.echo(f"added charge point {cp.id} npub {npub}; it connects to "
                   f"ws://HOST:9000/ocpp/{cp.id}", err=True)
    flags = "" if path.resolve() == Path("strom.toml").resolve() else f" --config {path}"
    flags += "" if data == resolve_data_dir(None).resolve() else f" --data-dir {data}"
    click.echo(f"next: strom run{flags}", err=True)

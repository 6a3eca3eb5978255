"""`strom keys generate|import|export|list|encrypt|rotate`: the charge points' nostr keys.

Secrets are read from a prompt or stdin, never from the command line (argv shows in `ps`), and
are never printed. Passwords come from `$STROM_KEY_PASSWORD`, else a prompt (or stdin).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from strom.cli.common import CliEnv, common_options, echo_listing, open_store, run_async
from strom.errors import UserError
from strom.keys import (
    ROTATE_WARNING,
    KeyInfo,
    encrypt_key,
    generate_key,
    import_key,
    key_info,
    key_infos,
    keys_path,
    rotate_key,
)
from strom.store.charge_points import ChargePointRepository


def _path(env: CliEnv) -> Path:
    return keys_path(env.data_dir, env.settings.nostr.keys_file)


def _ask(label: str, *, confirm: bool = False) -> str:
    """A hidden prompt in a terminal; otherwise the next line of stdin (for scripts)."""
    if sys.stdin.isatty():
        return str(click.prompt(label, hide_input=True, confirmation_prompt=confirm))
    line = sys.stdin.readline()
    if not line.strip():
        raise UserError(f"{label.lower()}: expected on stdin (or run in a terminal)")
    return line.rstrip("\r\n")


def _password(*, confirm: bool) -> str:
    return os.environ.get("STROM_KEY_PASSWORD") or _ask("Key password", confirm=confirm)


def _require_charge_point(env: CliEnv, cp_id: str) -> None:
    async def exists() -> bool:
        async with open_store(env) as db:
            return await ChargePointRepository(db).exists(cp_id)

    if not run_async(exists()):
        raise UserError(f"no charge point {cp_id!r}; add it first with: strom cp add {cp_id} …")


def _info_json(info: KeyInfo) -> dict[str, object]:
    return {"cp_id": info.cp_id, "npub": info.npub, "pubkey": info.pubkey_hex,
            "encrypted": info.encrypted}


@click.group()
def keys() -> None:
    """Nostr keys of the charge points (nsec, or NIP-49 ncryptsec at rest)."""


@keys.command("generate")
@click.argument("cp_id")
@click.option("--encrypt", is_flag=True, help="Store it encrypted (NIP-49) with a password.")
@common_options
def generate(env: CliEnv, cp_id: str, encrypt: bool) -> None:
    """Create a key for a charge point that has none."""
    _require_charge_point(env, cp_id)
    npub = generate_key(_path(env), cp_id, password=_password(confirm=True) if encrypt else None)
    click.echo(f"{cp_id} {npub}")


@keys.command("import")
@click.argument("cp_id")
@click.option("--encrypt", is_flag=True, help="Store an nsec encrypted (NIP-49).")
@click.option("--replace", is_flag=True, help="Replace an existing key (a new identity).")
@common_options
def import_(env: CliEnv, cp_id: str, encrypt: bool, replace: bool) -> None:
    """Import a key from stdin or a prompt: nsec, 64 hex digits or ncryptsec."""
    _require_charge_point(env, cp_id)
    secret = _ask("Secret key (nsec, hex or ncryptsec)").strip()
    sealed = secret.startswith("ncryptsec1")
    password = _password(confirm=encrypt and not sealed) if sealed or encrypt else None
    npub = import_key(_path(env), cp_id, secret, password=password, encrypt=encrypt,
                      replace=replace)
    click.echo(f"{cp_id} {npub}" + (" (encrypted)" if sealed or encrypt else ""))


@keys.command("export")
@click.argument("cp_id")
@click.option("--hex", "as_hex", is_flag=True, help="The public key in hex instead of npub.")
@common_options
def export(env: CliEnv, cp_id: str, as_hex: bool) -> None:
    """Print a charge point's public key (npub). Secret keys are never exported."""
    info = key_info(_path(env), cp_id)
    if info.npub is None:
        raise UserError(f"the key of {cp_id} is encrypted and has no npub stored; "
                        "set STROM_KEY_PASSWORD to open it")
    click.echo(info.pubkey_hex if as_hex else info.npub)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@common_options
def list_(env: CliEnv, as_json: bool) -> None:
    """List the keys: charge point, npub, encrypted or not."""
    infos = key_infos(_path(env))
    if not echo_listing(infos, as_json, "no keys; `strom cp add` creates one for each charge"
                        " point", _info_json):
        return
    click.echo(f"{'CHARGE POINT':<20} {'AT REST':<10} NPUB")
    for info in infos:
        at_rest = "ncryptsec" if info.encrypted else "nsec"
        npub = info.npub or "(locked: set STROM_KEY_PASSWORD)"
        click.echo(f"{info.cp_id:<20} {at_rest:<10} {npub}")


@keys.command("encrypt")
@click.argument("cp_ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every key that is not encrypted yet.")
@common_options
def encrypt(env: CliEnv, cp_ids: tuple[str, ...], all_: bool) -> None:
    """Encrypt keys at rest (NIP-49 ncryptsec). strom then needs STROM_KEY_PASSWORD to start."""
    path = _path(env)
    chosen = list(cp_ids) or [i.cp_id for i in key_infos(path) if not i.encrypted and all_]
    if not chosen:
        raise UserError("name the charge points to encrypt, or give --all")
    password = _password(confirm=True)
    for cp_id in chosen:
        click.echo(f"{cp_id} {encrypt_key(path, cp_id, password)} encrypted")


@keys.command("rotate")
@click.argument("cp_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@common_options
def rotate(env: CliEnv, cp_id: str, yes: bool) -> None:
    """Replace a charge point's key: it becomes a new nostr identity."""
    path = _path(env)
    old = key_info(path, cp_id)
    click.echo(ROTATE_WARNING.format(cp_id=cp_id), err=True)
    if not yes:
        click.confirm(f"Rotate the key of {cp_id}?", abort=True, err=True)
    rotation = rotate_key(path, cp_id, password=_password(confirm=True) if old.encrypted else None)
    click.echo(f"{cp_id} {rotation.old_npub or '?'} -> {rotation.new_npub}")
    click.echo("Restart strom so that its nostr bots sign with the new key.", err=True)

"""`strom cp add|update|list|show|remove`: register and inspect charge points."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from strom import qr
from strom.cli.common import (
    CliEnv,
    common_options,
    echo_json,
    echo_listing,
    open_store,
    run_async,
    with_store,
)
from strom.errors import UserError
from strom.keys import ensure_cp_key, keys_path, remove_cp_key
from strom.lnurl.links import pay_links
from strom.ocpp.protocols import SUPPORTED, parse_allowed
from strom.passthrough.config import (
    SUBPROTOCOLS,
    UpstreamError,
    merged_upstream,
    public_upstream,
)
from strom.security import hash_password
from strom.store.charge_points import (
    CERT_SHA256_PATTERN,
    CP_ID_PATTERN,
    MIN_PASSWORD,
    ChargePointRepository,
    ChargerRecord,
)
from strom.store.event_log import EventLogRepository
from strom.store.firmware import FirmwareRepository

CP_ID = re.compile(CP_ID_PATTERN)
CERT_SHA256 = re.compile(CERT_SHA256_PATTERN)
SHOWN_EVENTS = 10  # security events `cp show` lists, newest first


def cp_json(cp: ChargerRecord) -> dict[str, Any]:
    return {
        "id": cp.id, "name": cp.name, "status": cp.status,
        "location": {"lat": cp.lat, "lon": cp.lon},
        "connectors": [{"id": c.connector_id, "status": c.status, "error_code": c.error_code}
                       for c in cp.connectors if c.connector_id > 0],
        "tariff": cp.tariff, "password": cp.password_hash is not None,
        "vendor": cp.vendor, "model": cp.model, "firmware": cp.firmware,
        "connected": cp.connected, "last_seen": cp.last_seen, "booted_at": cp.booted_at,
        "ocpp_protocol": cp.ocpp_protocol, "ocpp_protocols": list(cp.ocpp_protocols or SUPPORTED),
        "security_profile": cp.security_profile or 1, "client_cert_sha256": cp.client_cert_sha256,
        "upstream": public_upstream(cp.upstream),
        "boot": cp.boot_status or "Accepted",
    }


def upstream_options(command: Any) -> Any:
    """Passthrough (`strom.passthrough`): the backend the charger stays connected to."""
    for option in reversed([
        click.option("--upstream", default=None, metavar="URL",
                     help="Backend (CSMS) ws:// or wss:// URL for this charger: strom passes "
                          "its traffic through and adds lightning sessions. \"\" removes it."),
        click.option("--upstream-password", default=None, envvar="STROM_UPSTREAM_PASSWORD",
                     help="Basic-auth password strom presents to the backend as the charger "
                          "(or STROM_UPSTREAM_PASSWORD; kept when omitted for the same URL)."),
        click.option("--upstream-client-cert", default=None, type=click.Path(dir_okay=False),
                     help="PEM file of a TLS client certificate for the backend."),
        click.option("--upstream-client-key", default=None, type=click.Path(dir_okay=False),
                     help="Its key's PEM file."),
        click.option("--upstream-ocpp", type=click.Choice(SUBPROTOCOLS), default=SUBPROTOCOLS[0],
                     show_default=True, help="The OCPP the charger and its backend speak "
                     "(strom relays, never translates)."),
        click.option("--lightning/--no-lightning", default=True, show_default=True,
                     help="--no-lightning: a pure proxy, no lightning sessions here."),
    ]):
        command = option(command)
    return command


def _upstream(url: str | None, password: str | None, cert: str | None, key: str | None,
              ocpp: str, lightning: bool,
              stored: dict[str, Any] | None) -> dict[str, Any] | None:
    if not url:
        return None
    try:
        return merged_upstream({"url": url, "password": password, "client_cert": cert,
                                "client_key": key, "subprotocol": ocpp,
                                "lightning": lightning}, stored)
    except UpstreamError as exc:
        raise UserError(str(exc)) from None


@click.group()
def cp() -> None:
    """Register and inspect charge points."""


@cp.command("add")
@click.argument("cp_id")
@click.option("--lat", type=click.FloatRange(-90, 90), required=True, help="Latitude.")
@click.option("--lon", type=click.FloatRange(-180, 180), required=True, help="Longitude.")
@click.option("--name", default=None, help="Display name (default: the id).")
@click.option("--connectors", type=click.IntRange(1, 16), default=1, show_default=True)
@click.option("--price-per-kwh", "price_sat", type=click.IntRange(0), default=None,
              help="Price in sat per kWh (default: the configured tariff).")
@click.option("--password", default=None,
              help=f"OCPP Basic-auth password, {MIN_PASSWORD}+ characters (security profile 1).")
@click.option("--ocpp", "protocols", default=None,
              help=f"OCPP versions it may use, e.g. 'ocpp1.6' (default: all: "
                   f"{' '.join(SUPPORTED)}); strom picks the highest it offers.")
@click.option("--security-profile", "profile", type=click.IntRange(1, 3), default=None,
              help="OCPP security profile: 1 password, 2 password over wss only, 3 a TLS client "
                   "certificate for this id from [ocpp] tls_client_ca.")
@click.option("--client-cert-sha256", "pin", default=None,
              help="Profile 3: accept only the client certificate with this SHA-256 (hex).")
@click.option("--boot", type=click.Choice(["accepted", "rejected"]), default="accepted",
              show_default=True, help="Answer its BootNotification: rejected refuses it (and "
                                      "everything it sends) until the operator accepts it.")
@upstream_options
@common_options
def add(env: CliEnv, cp_id: str, lat: float, lon: float, name: str | None, connectors: int,
        price_sat: int | None, password: str | None, protocols: str | None,
        profile: int | None, pin: str | None, boot: str, upstream: str | None,
        upstream_password: str | None, upstream_client_cert: str | None,
        upstream_client_key: str | None, upstream_ocpp: str, lightning: bool) -> None:
    """Register a charge point and create its nostr key."""
    tariff = {"price_msat_per_kwh": price_sat * 1000} if price_sat is not None else None
    if pin is not None and not CERT_SHA256.match(pin):
        raise UserError("--client-cert-sha256: 64 hex digits (the certificate's SHA-256)")
    backend = _upstream(upstream, upstream_password, upstream_client_cert, upstream_client_key,
                        upstream_ocpp, lightning, None)
    created, npub = register_charge_point(env, cp_id, lat=lat, lon=lon, name=name,
                                          connectors=connectors, password=password, tariff=tariff,
                                          protocols=parse_allowed(protocols), profile=profile,
                                          pin=pin, boot=boot)
    if backend:
        _store_upstream(env, cp_id, backend)
    click.echo(f"added {created.id} ({created.num_connectors} connector(s)) npub {npub}")
    click.echo(f"connect it to ws://{env.settings.ocpp.host}:{env.settings.ocpp.port}/ocpp/{cp_id}")


def register_charge_point(env: CliEnv, cp_id: str, *, lat: float, lon: float,
                          name: str | None = None, connectors: int = 1,
                          password: str | None = None, tariff: dict[str, int] | None = None,
                          protocols: tuple[str, ...] | None = None,
                          profile: int | None = None, pin: str | None = None,
                          boot: str | None = None) -> tuple[ChargerRecord, str]:
    """Store a new charge point and create its nostr key: the charge point and its npub."""
    if not CP_ID.match(cp_id):
        raise UserError(f"charge point id {cp_id!r}: use 1-48 letters, digits, '.', '_' or '-'")
    if password is not None and len(password) < MIN_PASSWORD:
        raise UserError(f"--password must have at least {MIN_PASSWORD} characters")

    async def go() -> ChargerRecord:
        async with open_store(env) as db:
            return await ChargePointRepository(db).add(
                cp_id, name=name or cp_id, lat=lat, lon=lon, num_connectors=connectors,
                password_hash=hash_password(password) if password else None, tariff=tariff,
                ocpp_protocols=protocols, security_profile=profile, client_cert_sha256=pin,
                boot_status=boot)

    created = run_async(go())
    npub = ensure_cp_key(keys_path(env.data_dir, env.settings.nostr.keys_file), cp_id)
    return created, npub


@cp.command("update")
@click.argument("cp_id")
@upstream_options
@common_options
def update(env: CliEnv, cp_id: str, upstream: str | None, upstream_password: str | None,
           upstream_client_cert: str | None, upstream_client_key: str | None,
           upstream_ocpp: str, lightning: bool) -> None:
    """Change a charge point's backend (passthrough); it applies at its next connection."""
    if upstream is None:
        raise UserError("nothing to change: give --upstream URL (or --upstream '' to remove)")

    found = _stored(env, cp_id)
    backend = _upstream(upstream, upstream_password, upstream_client_cert, upstream_client_key,
                        upstream_ocpp, lightning, found.upstream)
    _store_upstream(env, cp_id, backend)
    click.echo(f"{cp_id}: " + (f"passes through to {backend['url']}"
                               + ("" if lightning else " (pure proxy)") if backend
                               else "no backend; strom is its central system"))


def _store_upstream(env: CliEnv, cp_id: str, backend: dict[str, Any] | None) -> None:
    with_store(env, lambda db: ChargePointRepository(db).update(cp_id, upstream=backend))


@cp.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@common_options
def list_(env: CliEnv, as_json: bool) -> None:
    """List charge points with their live status."""
    cps = with_store(env, lambda db: ChargePointRepository(db).list())
    if not echo_listing(cps, as_json, "no charge points; add one with: strom cp add ID"
                        " --lat LAT --lon LON", cp_json):
        return
    click.echo(f"{'ID':<16} {'STATUS':<12} {'CONNECTORS':<24} {'LOCATION':<20} NAME")
    for c in cps:
        conns = " ".join(f"{x.connector_id}:{x.status}" for x in c.connectors if x.connector_id > 0)
        click.echo(f"{c.id:<16} {c.status:<12} {conns:<24} {f'{c.lat:.4f},{c.lon:.4f}':<20} {c.name}")


@cp.command("show")
@click.argument("cp_id")
@common_options
def show(env: CliEnv, cp_id: str) -> None:
    """Show one charge point as JSON, with its latest firmware update and security events."""

    async def go() -> dict[str, Any] | None:
        async with open_store(env) as db:
            found = await ChargePointRepository(db).get(cp_id)
            if found is None:
                return None
            updates = await FirmwareRepository(db).updates(cp_id, limit=1)
            events = await EventLogRepository(db).recent(cp_id, SHOWN_EVENTS,
                                                         kind="security_event")
            return {**cp_json(found),
                    "firmware_update": updates[0].to_json() if updates else None,
                    "security_events": [{"at": e["at"], **e["payload"]} for e in events]}

    shown = run_async(go())
    if shown is None:
        raise UserError(f"no charge point {cp_id!r}; see: strom cp list")
    echo_json(shown)


def _stored(env: CliEnv, cp_id: str) -> ChargerRecord:
    """One charge point from the store, or a UserError naming the way to list them."""
    found = with_store(env, lambda db: ChargePointRepository(db).get(cp_id))
    if found is None:
        raise UserError(f"no charge point {cp_id!r}; see: strom cp list")
    return found


@cp.command("remove")
@click.argument("cp_id")
@common_options
def remove(env: CliEnv, cp_id: str) -> None:
    """Remove a charge point and its key."""
    if not with_store(env, lambda db: ChargePointRepository(db).remove(cp_id)):
        raise UserError(f"no charge point {cp_id!r}; see: strom cp list")
    remove_cp_key(keys_path(env.data_dir, env.settings.nostr.keys_file), cp_id)
    click.echo(f"removed {cp_id}")


@cp.command("qr")
@click.argument("cp_id")
@click.option("--connector", type=click.IntRange(1, 16), default=None,
              help="QR for one connector (default: any free connector).")
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the QR as SVG to this file.")
@click.option("--png", "png_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the QR as PNG to this file (for printing).")
@common_options
def qr_code(env: CliEnv, cp_id: str, connector: int | None, svg_path: str | None,
            png_path: str | None) -> None:
    """Print the charger's pay QR in the terminal (and write SVG/PNG for the sticker)."""
    found = _stored(env, cp_id)
    if connector is not None and connector > found.num_connectors:
        raise UserError(f"{cp_id} has {found.num_connectors} connector(s), not {connector}")
    links = pay_links(env.settings.public_url, cp_id, connector)
    click.echo(qr.terminal(links.web))
    click.echo(f"\n{links.web}\n{links.lnurl}\n{links.lud17}\nlightning address {links.address}")
    if svg_path:
        Path(svg_path).write_text(qr.svg(links.web, scale=10), encoding="utf-8")
        click.echo(f"wrote {svg_path}")
    if png_path:
        Path(png_path).write_bytes(qr.png(links.web))
        click.echo(f"wrote {png_path}")

"""`strom ocpp ca init|show`: strom's own CA that signs chargers' client certificates."""

from __future__ import annotations

import click

from strom.cli.common import CliEnv, common_options
from strom.errors import UserError
from strom.ocpp.cert_signing import create_ca, load_ca
from strom.paths import ensure_data_dir


@click.group()
def ocpp() -> None:
    """OCPP settings beyond the charge points."""


@ocpp.group()
def ca() -> None:
    """strom's CA for chargers' certificates (SignCertificate, security profile 3)."""


@ca.command("init")
@common_options
def init(env: CliEnv) -> None:
    """Create the CA in the data dir (its key 0600); chargers' CSRs are then signed with it."""
    ensure_data_dir(env.data_dir)
    try:
        cert, key = create_ca(env.data_dir)
    except FileExistsError as exc:
        raise UserError(f"{exc}: strom keeps its CA (chargers' certificates chain to it)") \
            from None
    click.echo(f"CA certificate {cert}\nCA key {key} (0600)")
    click.echo("chargers get a certificate for their id by SignCertificate; give them the CA "
               "certificate, and set [ocpp] tls_cert/tls_key for wss://")


@ca.command("show")
@common_options
def show(env: CliEnv) -> None:
    """Print the CA certificate (PEM) chargers' certificates chain to."""
    settings = env.settings.ocpp
    found = load_ca(settings.ca_cert, settings.ca_key, env.data_dir)
    if found is None:
        raise UserError("no CA: set [ocpp] ca_cert and ca_key, or run strom ocpp ca init")
    click.echo(found.cert_pem, nl=False)

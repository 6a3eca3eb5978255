"""`strom site set|list|show|remove|add-charger|remove-charger`: sites and their power limits.

These write the store; a running strom takes a change up within a minute (its site power
sweep), or at once when made through the admin API (`/api/v1/sites`, the TUI).
"""

from __future__ import annotations

import re
from typing import Any

import click

from strom.chargers.power import DEFAULT_MIN_W, MAX_SITE_W
from strom.cli.common import CliEnv, common_options, echo_json, echo_listing, with_store
from strom.errors import UserError
from strom.store.charge_points import CP_ID_PATTERN, ChargePointRepository
from strom.store.db import Database
from strom.store.sites import Site, SiteRepository

SITE_ID = re.compile(CP_ID_PATTERN)
WATTS = click.IntRange(1, MAX_SITE_W)


def site_json(site: Site) -> dict[str, Any]:
    return {"id": site.id, "name": site.name, "limit_w": site.limit_w, "min_w": site.min_w,
            "chargers": [{"cp_id": c.cp_id, "max_w": c.max_w} for c in site.chargers]}


@click.group()
def site() -> None:
    """Sites: chargers behind one grid connection and the power they share."""


@site.command("set")
@click.argument("site_id")
@click.option("--limit-w", type=WATTS, required=True,
              help="The grid connection's limit in W (22000: 32 A three-phase).")
@click.option("--min-w", type=click.IntRange(0, MAX_SITE_W), default=DEFAULT_MIN_W,
              show_default=True, help="The least a session charges at; below it, it waits.")
@click.option("--name", default=None, help="Display name (default: the id).")
@common_options
def set_(env: CliEnv, site_id: str, limit_w: int, min_w: int, name: str | None) -> None:
    """Define a site or change its limit."""
    if not SITE_ID.match(site_id):
        raise UserError(f"site id {site_id!r}: use 1-48 letters, digits, '.', '_' or '-'")
    if min_w > limit_w:
        raise UserError(f"--min-w {min_w} is more than --limit-w {limit_w}")
    with_store(env, lambda db: SiteRepository(db).put(site_id, name=name or site_id,
                                                      limit_w=limit_w, min_w=min_w))
    click.echo(f"site {site_id}: {limit_w} W shared, at least {min_w} W per session")


@site.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@common_options
def list_(env: CliEnv, as_json: bool) -> None:
    """List sites and their chargers."""
    sites = with_store(env, lambda db: SiteRepository(db).list())
    if not echo_listing(sites, as_json, "no sites; define one with: strom site set ID"
                        " --limit-w 22000", site_json):
        return
    click.echo(f"{'ID':<16} {'LIMIT W':>9} {'MIN W':>7}  CHARGERS (cap W)")
    for s in sites:
        chargers = " ".join(f"{c.cp_id}({c.max_w})" if c.max_w else c.cp_id for c in s.chargers)
        click.echo(f"{s.id:<16} {s.limit_w:>9} {s.min_w:>7}  {chargers or '-'}")


@site.command("show")
@click.argument("site_id")
@common_options
def show(env: CliEnv, site_id: str) -> None:
    """Show one site as JSON (the running shares: the admin API or the TUI)."""
    echo_json(site_json(_get(env, site_id)))


@site.command("remove")
@click.argument("site_id")
@common_options
def remove(env: CliEnv, site_id: str) -> None:
    """Remove a site (its chargers' limits are lifted)."""
    if not with_store(env, lambda db: SiteRepository(db).remove(site_id)):
        raise UserError(f"no site {site_id!r}; see: strom site list")
    click.echo(f"removed site {site_id}")


@site.command("add-charger")
@click.argument("site_id")
@click.argument("cp_id")
@click.option("--max-w", type=WATTS, default=None,
              help="The whole charger's cap in W (default: only the site's limit).")
@common_options
def add_charger(env: CliEnv, site_id: str, cp_id: str, max_w: int | None) -> None:
    """Put a charger in a site (out of any other)."""
    _get(env, site_id)

    async def add(db: Database) -> bool:
        if await ChargePointRepository(db).get(cp_id) is None:
            return False
        await SiteRepository(db).add_charger(site_id, cp_id, max_w)
        return True

    if not with_store(env, add):
        raise UserError(f"no charge point {cp_id!r}; see: strom cp list")
    click.echo(f"{cp_id} is in site {site_id}" + (f", capped at {max_w} W" if max_w else ""))


@site.command("remove-charger")
@click.argument("site_id")
@click.argument("cp_id")
@common_options
def remove_charger(env: CliEnv, site_id: str, cp_id: str) -> None:
    """Take a charger out of a site."""
    if not with_store(env, lambda db: SiteRepository(db).remove_charger(site_id, cp_id)):
        raise UserError(f"{cp_id!r} is not in site {site_id!r}; see: strom site list")
    click.echo(f"{cp_id} left site {site_id}")


def _get(env: CliEnv, site_id: str) -> Site:
    found = with_store(env, lambda db: SiteRepository(db).get(site_id))
    if found is None:
        raise UserError(f"no site {site_id!r}; see: strom site list")
    return found

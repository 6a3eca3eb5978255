"""The `strom.toml` that `strom init` writes: only the keys it asked about, each commented,
with the names of strom.example.toml (every other key keeps its default)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomli_w


@dataclass(frozen=True)
class Answers:
    """What the operator chose; secrets are already moved to files where they can be."""

    public_url: str
    backend: str  # dev | lnd | nwc
    network: str
    lnd_url: str = ""
    lnd_macaroon_path: str = ""
    lnd_cert: str = ""
    nwc_uri: str = ""


def _value(value: object) -> str:
    """A TOML literal, quoted and escaped by tomli-w."""
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def _line(key: str, value: object, comment: str) -> str:
    return f"{f'{key} = {_value(value)}':<40}# {comment}"


def render(answers: Answers, data_dir: Path) -> str:
    """The file's text."""
    lines = [
        "# strom.toml, written by `strom init`. Every key strom reads is documented in",
        "# strom.example.toml; a key not set here keeps its default there. Each one can also",
        "# be set from the environment as STROM_<SECTION>_<KEY>, e.g. STROM_HTTP_PORT=8080.",
        f"# Data dir (store, admin token, nostr keys): {data_dir}",
        "# This file is readable by its owner only (0600): it may hold a wallet secret.",
        "",
        "[http]",
        _line("host", "127.0.0.1", "bind address; 0.0.0.0 to serve the network directly"),
        _line("port", 8000, "web pages, LNURL, REST API"),
        _line("public_url", answers.public_url,
              "what wallets reach: https, or http on localhost/.onion (LUD-01)"),
        "",
        "[ocpp]",
        _line("host", "127.0.0.1", "0.0.0.0 so chargers on the network can connect"),
        _line("port", 9000, "chargers connect to ws://HOST:9000/ocpp/{cp_id}"),
        "",
        "[lightning]",
        _line("backend", answers.backend, "dev (embedded, regtest, no real money), lnd or nwc"),
        _line("network", answers.network, "regtest | testnet | signet | mainnet"),
    ]
    if answers.backend == "lnd":
        lines += [
            "",
            "[lightning.lnd]",
            _line("url", answers.lnd_url, "LND's REST API"),
            _line("macaroon_path", answers.lnd_macaroon_path,
                  "needs invoices and offchain (admin.macaroon)"),
            _line("tls_cert", answers.lnd_cert, "LND's tls.cert; empty = system trust store"),
        ]
    if answers.backend == "nwc":
        lines += [
            "",
            "[lightning.nwc]",
            _line("uri", answers.nwc_uri, "Nostr Wallet Connect; holds the connection's secret"),
        ]
    return "\n".join(lines) + "\n"


"""Choose and build the wallet backend named in `[lightning] backend`."""

from __future__ import annotations

from pathlib import Path

from strom.config import Settings
from strom.events import EventBus
from strom.lightning.dev import DevWallet
from strom.lightning.lnd import LndWallet
from strom.lightning.nwc import NwcWallet
from strom.lightning.wallet import Wallet, WalletConfigError
from strom.store.db import Database


def make_wallet(settings: Settings, data_dir: Path, db: Database, bus: EventBus) -> Wallet:
    """The configured backend, not yet started (the caller starts and closes it)."""
    lightning = settings.lightning
    if lightning.backend == "dev":
        return DevWallet(db, bus, data_dir, network=lightning.network,
                         signing_workers=None if lightning.signing_workers < 0
                         else lightning.signing_workers)
    if lightning.backend == "lnd":
        return LndWallet(db, bus, lightning.lnd, lightning.network,
                         max_fee_msat=lightning.max_fee_msat)
    if lightning.backend == "nwc":
        return NwcWallet(db, bus, lightning.nwc, lightning.network)
    raise WalletConfigError(f"unknown [lightning] backend {lightning.backend!r}; "
                            "use \"dev\", \"lnd\" or \"nwc\"")

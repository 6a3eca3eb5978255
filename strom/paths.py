"""Where strom keeps its files inside the data dir."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = ".strom"


def resolve_data_dir(given: str | os.PathLike[str] | None) -> Path:
    """`--data-dir`, else `$STROM_DATA_DIR`, else `./.strom`."""
    return Path(given or os.environ.get("STROM_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()


def database_path(data_dir: Path) -> Path:
    return data_dir / "strom.sqlite3"


def admin_token_path(data_dir: Path) -> Path:
    return data_dir / "admin.token"


def runtime_path(data_dir: Path) -> Path:
    """Written by a running server: its bound URLs, so the CLI and TUI can find it."""
    return data_dir / "runtime.json"


def ensure_data_dir(data_dir: Path) -> Path:
    """Create the data dir readable by its owner only: it holds keys and tokens."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return data_dir

"""Where strom keeps its files inside the data dir."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from strom.errors import UserError

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
    """Create the data dir, or make an existing one private: it holds keys, tokens and the store.

    The dir (and any dir inside) becomes 0700 and every file in it 0600, whatever mode it was
    created with; raises UserError naming the path and the fix when that is not possible
    (another user owns it). Symbolic links are left alone: their target is not ours to change.
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    real = data_dir.resolve()  # a data dir that is a link is made private where it points
    _make_private(real, 0o700, data_dir)
    for root, dirs, files in os.walk(real):
        for name in dirs:
            _make_private(Path(root, name), 0o700, data_dir)
        for name in files:
            _make_private(Path(root, name), 0o600, data_dir)
    return data_dir


def _make_private(path: Path, mode: int, data_dir: Path) -> None:
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or not stat.S_IMODE(info.st_mode) & 0o077:
            return
        os.chmod(path, mode)
    except FileNotFoundError:
        return  # removed meanwhile (a -shm file of a closing process)
    except OSError as exc:
        raise UserError(
            f"{path} is readable by other users and strom cannot make it private "
            f"({exc.strerror}); as its owner run `chmod -R go-rwx {data_dir}`, "
            "or use another --data-dir") from None

"""strom as an operator installs it: the wheel built once per session, installed with the
locked dependencies into a fresh venv that can see nothing of the source tree."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def uv() -> list[str]:
    """uv as the Makefile bootstraps it: on PATH, else a module of the system Python."""
    found = shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]


def base_python() -> str:
    """Debian's Python (what a slim image has) when it is new enough, else this one."""
    system = Path("/usr/bin/python3")
    if system.exists():
        version = subprocess.run([str(system), "-c", "import sys; print(sys.version_info >= "
                                  "(3, 11))"], capture_output=True, text=True).stdout.strip()
        if version == "True":
            return str(system)
    return sys.executable


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{cmd[:3]}: {done.stderr[-2000:]}"
    return done


@dataclass(frozen=True)
class Installed:
    wheel: Path
    sdist: Path
    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment: no STROM_*, no PYTHONPATH, the venv first on PATH."""
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("STROM_", "PYTHON", "VIRTUAL_ENV", "UV_"))}
        return {**keep, "PATH": f"{self.bin}:/usr/bin:/bin", **extra}


@pytest.fixture(scope="session")
def installed() -> Iterator[Installed]:
    # Outside pytest's 0700 temp root, so an unprivileged user (the image's) can run it too.
    top = Path(tempfile.mkdtemp(prefix="strom-wheel-"))
    top.chmod(0o755)
    try:
        dist = top / "dist"
        # sdist first, the wheel built from it: what the wheel holds, the sdist held.
        run([*uv(), "build", "--out-dir", str(dist), str(ROOT)], cwd=ROOT)
        wheel = next(dist.glob("strom-*.whl"))
        requirements = top / "requirements.txt"
        run([*uv(), "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes",
             "--output-file", str(requirements)], cwd=ROOT)
        venv = top / "venv"
        run([*uv(), "venv", "--python", base_python(), str(venv)], cwd=top)
        run([*uv(), "pip", "install", "--python", str(venv / "bin" / "python"), "-r",
             str(requirements), str(wheel)], cwd=top)
        for path in [venv, *venv.rglob("*")]:  # read-only, as in the image
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        yield Installed(wheel, next(dist.glob("strom-*.tar.gz")), venv)
    finally:
        for path in [top, *top.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(top, ignore_errors=True)

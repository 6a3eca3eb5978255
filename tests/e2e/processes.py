"""Running `strom` commands as separate processes, the way an operator does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

STROM = [sys.executable, "-m", "strom"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "STROM_DATA_DIR": str(data_dir), **extra}
    env.pop("STROM_CONFIG", None)
    return env


def strom(*args: str, data_dir: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STROM, *args], capture_output=True, text=True, timeout=60,
                          env=env_for(data_dir, **extra), cwd=data_dir.parent)


def start(*args: str, data_dir: Path, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    """A long-running command with its output in `log` (pipes could fill up and block it)."""
    handle = log.open("ab")
    return subprocess.Popen([*STROM, *args], stdout=handle, stderr=subprocess.STDOUT,
                            env=env_for(data_dir, **extra), cwd=data_dir.parent)


def wait_running(data_dir: Path, proc: subprocess.Popen[bytes], seconds: float = 60) -> str:
    """The server's HTTP URL once it answers /healthz (from `<data-dir>/runtime.json`)."""
    import httpx

    runtime = data_dir / "runtime.json"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"strom exited with {proc.returncode}"
        if runtime.exists():
            try:
                info = json.loads(runtime.read_text())
                if json.loads(str(info.get("pid"))) == proc.pid and httpx.get(
                        info["http_url"] + "/healthz", timeout=2).status_code in (200, 503):
                    return str(info["http_url"])
            except (ValueError, OSError, httpx.HTTPError):
                pass
        time.sleep(0.1)
    raise AssertionError("strom did not start in time")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=30)

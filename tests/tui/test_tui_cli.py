"""`strom tui` before the console starts: one clear line when it cannot work, never a traceback."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from strom.app import StromApp

STROM = [sys.executable, "-m", "strom"]


async def strom_tui(data_dir: Path, *args: str) -> tuple[int, str]:
    env = {**os.environ, "STROM_DATA_DIR": str(data_dir)}
    for name in ("STROM_CONFIG", "STROM_ADMIN_TOKEN"):
        env.pop(name, None)
    process = await asyncio.create_subprocess_exec(
        *STROM, "tui", *args, env=env, cwd=data_dir.parent, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    assert stderr.count("\n") == 1, stderr
    return stderr.strip()


async def test_not_running(tmp_path: Path) -> None:
    code, stderr = await strom_tui(tmp_path / "data")
    assert code == 1
    assert one_line(stderr) == (f"strom: error: strom is not running in {tmp_path / 'data'}; "
                                "start it with `strom run`")
    code, stderr = await strom_tui(tmp_path / "data", "--url", "http://127.0.0.1:9",
                                   "--token", "x")
    assert code == 1 and "not reachable at http://127.0.0.1:9" in one_line(stderr)


async def test_stale_runtime_file_and_wrong_token(app: StromApp) -> None:
    runtime = app.data_dir / "runtime.json"
    assert runtime.exists()
    code, stderr = await strom_tui(app.data_dir, "--token", "not-the-token")
    assert code == 1 and "refused the admin token" in one_line(stderr)
    text = runtime.read_text()
    runtime.write_text(text.replace(app.http_url, "http://127.0.0.1:9"))
    code, stderr = await strom_tui(app.data_dir)
    assert code == 1 and "strom is not running in" in one_line(stderr)

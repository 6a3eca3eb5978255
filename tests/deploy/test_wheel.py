"""The wheel as operators install it (`pipx install`, `uv tool install`): it carries every file
strom reads, and `strom init` then `strom run` work from an empty directory."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import tarfile
import zipfile
from pathlib import Path

import httpx

from tests.deploy.conftest import ROOT, Installed
from tests.e2e.processes import wait_running

PACKAGES = ("strom", "bots", "relay", "tui")


def test_the_wheel_carries_every_file_of_the_packages(installed: Installed) -> None:
    tracked = subprocess.run(["git", "ls-files", *PACKAGES], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    missing = [path for path in tracked if path not in names]
    assert not missing, f"left out of the wheel: {missing}"
    # The data files strom opens at run time, by kind.
    assert any(n.startswith("strom/store/migrations/") and n.endswith(".sql") for n in names)
    assert any(n.startswith("strom/web/templates/") for n in names)
    assert any(n.startswith("strom/web/static/") for n in names)
    assert "tui/console.tcss" in names
    assert not any(n.startswith("tests/") for n in names)
    with tarfile.open(installed.sdist) as sdist:
        held = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"strom.example.toml", "LICENSE", "README.md", "uv.lock"} <= held
    assert not any(re.search(r"(^|/)(\.strom|strom\.toml|nostr-keys\.toml)$|\.pem$", n)
                   for n in held), "no local state or secrets in the sdist"


def test_init_then_run_from_an_empty_directory(installed: Installed, tmp_path: Path) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    env = installed.env(STROM_HTTP_PORT="0", STROM_OCPP_PORT="0", STROM_RELAY_PORT="0")
    strom = str(installed.bin / "strom")
    where = subprocess.run([str(installed.bin / "python"), "-c", "import strom, bots, relay, "
                            "tui; print(strom.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(installed.venv)), where  # the installed copy, not the source

    init = subprocess.run([strom, "init", "--non-interactive", "--public-url",
                           "http://127.0.0.1:8000", "--backend", "dev", "--charger", "cp-1",
                           "--lat", "48.14", "--lon", "11.58"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    assert sorted(p.name for p in work.iterdir()) == [".strom", "strom.toml"]

    log = tmp_path / "strom.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([strom, "run"], cwd=work, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        url = wait_running(work / ".strom", proc)
        health = httpx.get(url + "/healthz", timeout=5).json()
        assert health["status"] == "ok" and health["demo"] is False, health
        assert health["checks"]["lightning"]["backend"] == "dev"
        page = httpx.get(url + "/cp/cp-1", timeout=5)  # a template and a migration at work
        assert page.status_code == 200 and "cp-1" in page.text
        assert httpx.get(url + "/static/style.css", timeout=5).status_code == 200
        ledger = subprocess.run([strom, "ledger", "check"], cwd=work, env=env,
                                capture_output=True, text=True, timeout=60)
        assert ledger.returncode == 0, ledger.stdout + ledger.stderr
        listed = subprocess.run([strom, "cp", "list", "--json"], cwd=work, env=env,
                                capture_output=True, text=True, timeout=60, check=True)
        assert [cp["id"] for cp in json.loads(listed.stdout)] == ["cp-1"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert code == 0, text[-3000:]
    assert "strom stopped" in text and "Traceback" not in text

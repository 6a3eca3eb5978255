"""The container image without a container runtime (this machine has none): the Dockerfile
and compose.yaml are checked for their properties, and the image's command runs from the
installed wheel with the image's environment, as its unprivileged user, with the venv and the
config read-only and the data dir the only place it may write."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import ROOT, Installed
from tests.e2e.processes import free_port, wait_running

NOBODY = 65534
SECRET_WORDS = re.compile(r"macaroon_hex|nwc_uri|secret|password|token|nsec1|PRIVATE KEY",
                          re.IGNORECASE)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last:]


def image_env(steps: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in final_stage(steps):
        if word == "ENV":
            env |= dict(item.split("=", 1) for item in shlex.split(args))
    return env


def exec_form(args: str) -> list[str]:
    command = json.loads(args)
    assert isinstance(command, list), "exec form, so SIGTERM reaches strom, not a shell"
    return command


def test_dockerfile_properties() -> None:
    steps = instructions(ROOT / "Dockerfile")
    stages = [args for word, args in steps if word == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS builder")
    builder = "\n".join(args for word, args in steps[:steps.index(final_stage(steps)[0])])
    assert "uv build --wheel" in builder and "--frozen" in builder
    final = final_stage(steps)
    assert any(w == "COPY" and a.startswith("--from=builder") for w, a in final)
    assert not any(w == "COPY" and not a.startswith("--from=") for w, a in final), \
        "the runtime stage gets the built venv only, never the source tree"
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    assert ("STOPSIGNAL", "SIGTERM") in final
    assert ("VOLUME", '["/data"]') in final
    env = image_env(steps)
    assert env["STROM_DATA_DIR"] == "/data" and env["HOME"] == "/data"
    assert env["STROM_HTTP_HOST"] == env["STROM_OCPP_HOST"] == "0.0.0.0"
    health = [args for word, args in final if word == "HEALTHCHECK"]
    assert len(health) == 1 and "/healthz" in health[0] and "curl" not in health[0]
    assert exec_form(health[0].split(" CMD ", 1)[1])[0] == "python"
    assert exec_form(next(a for w, a in final if w == "CMD")) == ["strom", "run"]
    for word, args in steps:
        if word in ("ENV", "ARG", "LABEL"):
            assert not SECRET_WORDS.search(args), f"{word} {args}"
        if word in ("COPY", "ADD"):
            assert not re.search(r"\.macaroon|strom\.toml|nostr-keys|\.pem|\.strom", args), args
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    assert ignore[0] == "*", "the build context is an allow-list"
    assert not any(re.search(r"strom\.toml|\.strom|nostr-keys|\.macaroon", x) for x in ignore)


def test_compose_properties() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {tuple(s["profiles"]) for s in services.values()} == {("dev",), ("lnd",)}
    for name, service in services.items():
        assert service["read_only"] is True, name
        assert "/tmp" in service["tmpfs"]
        assert "strom-data:/data" in service["volumes"]
        assert service["cap_drop"] == ["ALL"]
        assert "user" not in service or service["user"] not in ("root", "0")
        http = next(p for p in service["ports"] if p.endswith(":8000"))
        assert http.startswith("${STROM_HTTP_BIND:-127.0.0.1}"), "the proxy in front does TLS"
        for key, value in service["environment"].items():
            assert not SECRET_WORDS.search(f"{key}={value}"), key
            assert key.startswith("STROM_"), key
    assert services["strom-dev"]["environment"]["STROM_LIGHTNING_BACKEND"] == "dev"
    lnd = services["strom-lnd"]
    assert lnd["environment"]["STROM_LIGHTNING_BACKEND"] == "lnd"
    assert any(v.endswith(":/lnd:ro") for v in lnd["volumes"]), "LND's files read-only"
    assert lnd["environment"]["STROM_LIGHTNING_LND_MACAROON_PATH"].startswith("/lnd/")
    assert "strom-data" in compose["volumes"]


@pytest.fixture
def root_fs() -> Iterator[Path]:
    """A stand-in for the image's filesystem that the unprivileged user can reach."""
    top = Path(tempfile.mkdtemp(prefix="strom-image-"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def snapshot(*trees: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.lstat().st_mtime_ns, p.lstat().st_size)
            for tree in trees for p in [tree, *tree.rglob("*")]}


def test_the_image_command_with_the_image_environment(installed: Installed,
                                                       root_fs: Path) -> None:
    steps = instructions(ROOT / "Dockerfile")
    data, etc = root_fs / "data", root_fs / "etc" / "strom"
    data.mkdir(mode=0o700)
    os.chown(data, NOBODY, NOBODY)
    etc.mkdir(parents=True)

    def mapped(text: str) -> str:
        return (text.replace("/etc/strom", str(etc)).replace("/tmp/strom-init",
                str(root_fs / "init")).replace("/data", str(data)))

    env = installed.env(**{k: mapped(v) for k, v in image_env(steps).items() if k != "PATH"})
    # The build step that writes the image's config, as the build runs it (root).
    build = next(args for word, args in final_stage(steps) if word == "RUN" and "strom init" in args)
    subprocess.run(["sh", "-c", mapped(build)], env=env, check=True, capture_output=True,
                   timeout=60)
    assert (etc / "strom.toml").stat().st_mode & 0o777 == 0o644
    before = snapshot(installed.venv, etc)

    env |= {"STROM_HTTP_PORT": str(free_port()), "STROM_OCPP_PORT": "0", "STROM_RELAY_PORT": "0"}
    command = exec_form(next(a for w, a in final_stage(steps) if w == "CMD"))
    log = root_fs / "strom.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=data, env=env, stdout=out,
                                stderr=subprocess.STDOUT, user=NOBODY, group=NOBODY,
                                extra_groups=[])
    try:
        url = wait_running(data, proc)
        assert url == f"http://0.0.0.0:{env['STROM_HTTP_PORT']}"  # the container's network
        health = next(a for w, a in final_stage(steps) if w == "HEALTHCHECK")
        check = subprocess.run(exec_form(health.split(" CMD ", 1)[1]), env=env, user=NOBODY,
                               capture_output=True, text=True, timeout=10)
        assert check.returncode == 0, check.stderr
    finally:
        proc.send_signal(signal.Signals[next(a for w, a in steps if w == "STOPSIGNAL")])
        code = proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert code == 0 and "strom stopped" in text and "demo" not in text.split("strom is")[1][:40], \
        text[-3000:]
    assert snapshot(installed.venv, etc) == before, "nothing written outside the data volume"
    written = {p.name for p in data.iterdir()}
    assert {"strom.sqlite3", "admin.token"} <= written
    assert all(p.stat().st_uid == NOBODY for p in data.rglob("*"))

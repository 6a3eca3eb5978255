"""The container image without a container runtime (this machine has none): the Dockerfile
and compose.yaml are checked for their properties, and the image's command runs from the
installed wheel with the image's environment, as its unprivileged user, with the venv and the
config read-only and the data dir the only place it may write."""

from __future__ import annotations

import asyncio
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

import httpx
import pytest
import trustme
import yaml

from strom.lnurl.codec import lnurl_decode
from tests.deploy.conftest import ROOT, Installed
from tests.doubles.fake_lnd import FakeLnd
from tests.e2e.processes import free_port, wait_running

NOBODY = 65534
UMBREL_USER = 1000  # docs/umbrel/strom/docker-compose.yml: user "1000:1000"
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


MOUNTS = ("/data", "/etc/strom", "/tmp/strom-init", "/lnd")


class ImageFs:
    """The image's paths mapped to directories here (outside pytest's 0700 temp root, so the
    image's unprivileged user can reach them); `/data` is owned by that user."""

    def __init__(self, root: Path, uid: int) -> None:
        self.root, self.uid = root, uid
        self.steps = instructions(ROOT / "Dockerfile")
        self.data, self.etc = self.host("/data"), self.host("/etc/strom")
        self.data.mkdir(mode=0o700)
        os.chown(self.data, uid, uid)
        self.etc.mkdir(parents=True)

    def host(self, value: str) -> Path:
        for mount in MOUNTS:
            if value == mount or value.startswith(mount + "/"):
                return self.root / mount.strip("/").replace("/", "-") / value[len(mount) + 1:]
        return Path(value)

    def host_value(self, value: str) -> str:
        return str(self.host(value)) if value.startswith("/") else value

    def last(self, word: str) -> str:
        return [args for w, args in final_stage(self.steps) if w == word][-1]

    def build(self, installed: Installed, **run_env: str) -> dict[str, str]:
        """The environment the container runs with (the image's ENV, then `run_env`), after
        the build step that writes the image's config, run as the build runs it (root)."""
        env = installed.env(**{k: self.host_value(v) for k, v in
                               {**image_env(self.steps), **run_env}.items() if k != "PATH"})
        step = next(args for word, args in final_stage(self.steps)
                    if word == "RUN" and "strom init" in args)
        tokens = [t if t == "&&" else shlex.quote(self.host_value(t)) for t in shlex.split(step)]
        subprocess.run(["sh", "-c", " ".join(tokens)], env=env, check=True, capture_output=True,
                       timeout=60)
        assert (self.etc / "strom.toml").stat().st_mode & 0o777 == 0o644
        return env | {"STROM_HTTP_PORT": str(free_port()), "STROM_OCPP_PORT": "0",
                      "STROM_RELAY_PORT": "0"}

    def as_user(self, env: dict[str, str]) -> dict[str, object]:
        return {"env": env, "cwd": self.host(self.last("WORKDIR")), "user": self.uid,
                "group": self.uid, "extra_groups": []}


@pytest.fixture
def root_fs() -> Iterator[Path]:
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
    image = ImageFs(root_fs, NOBODY)
    env = image.build(installed)
    before = snapshot(installed.venv, image.etc)
    log = root_fs / "strom.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(exec_form(image.last("CMD")), stdout=out,
                                stderr=subprocess.STDOUT, **image.as_user(env))
    try:
        url = wait_running(image.data, proc)
        assert url == f"http://0.0.0.0:{env['STROM_HTTP_PORT']}"  # the container's network
        check = subprocess.run(exec_form(image.last("HEALTHCHECK").split(" CMD ", 1)[1]),
                               capture_output=True, text=True, timeout=10,
                               **image.as_user(env))
        assert check.returncode == 0, check.stderr
    finally:
        proc.send_signal(signal.Signals[image.last("STOPSIGNAL")])
        code = proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert code == 0 and "strom stopped" in text, text[-3000:]
    assert "demo mode" not in text  # a config file: production
    assert snapshot(installed.venv, image.etc) == before, "nothing written outside the volume"
    assert {"strom.sqlite3", "admin.token"} <= {p.name for p in image.data.iterdir()}
    assert all(p.stat().st_uid == NOBODY for p in image.data.rglob("*"))


def compose_env(path: Path, service: str, values: dict[str, str]) -> dict[str, str]:
    """A service's environment with the `${VAR}` the platform sets filled in."""
    env = yaml.safe_load(path.read_text())["services"][service]["environment"]
    return {key: re.sub(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", lambda m: values[m.group(1)], str(value))
            for key, value in env.items()}


async def test_the_image_on_umbrel_with_its_lnd(installed: Installed, root_fs: Path) -> None:
    """What Umbrel starts: the image's environment, then the app's compose environment with
    the Lightning app's exported variables, LND's directory read-only at /lnd, user 1000."""
    image = ImageFs(root_fs, UMBREL_USER)
    lnd_dir = image.host("/lnd")
    chain = lnd_dir / "data" / "chain" / "bitcoin" / "regtest"
    chain.mkdir(parents=True)
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    issued.private_key_pem.write_to_path(str(root_fs / "tls.key"))
    issued.cert_chain_pems[0].write_to_path(str(lnd_dir / "tls.cert"))
    ca.cert_pem.write_to_path(str(lnd_dir / "tls.cert"), append=True)
    node = FakeLnd(network="regtest", tls=(str(lnd_dir / "tls.cert"), str(root_fs / "tls.key")))
    await node.start()
    (chain / "admin.macaroon").write_bytes(bytes.fromhex(node.macaroon))
    onion = "a" * 56 + ".onion"
    umbrel = compose_env(ROOT / "docs/umbrel/strom/docker-compose.yml", "web", {
        "APP_STROM_HIDDEN_SERVICE": onion, "APP_BITCOIN_NETWORK": "regtest",
        "APP_LIGHTNING_NODE_IP": "127.0.0.1", "APP_LIGHTNING_NODE_REST_PORT": str(node.port)})
    env = image.build(installed, **umbrel)
    added = await asyncio.create_subprocess_exec(
        "strom", "cp", "add", "cp-1", "--lat", "1", "--lon", "2", **image.as_user(env))
    assert await added.wait() == 0
    log = root_fs / "strom.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *exec_form(image.last("CMD")), stdout=out, stderr=asyncio.subprocess.STDOUT,
            **image.as_user(env))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{env['STROM_HTTP_PORT']}",
                                     timeout=5) as client:
            health = None
            for _ in range(300):
                assert proc.returncode is None, log.read_text()[-3000:]
                try:
                    health = (await client.get("/healthz")).json()
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            assert health is not None, log.read_text()[-3000:]
            assert health["checks"]["lightning"] == {"backend": "lnd", "reachable": True}
            cp = (await client.get("/api/v1/public/charge-points/cp-1")).json()
            assert cp["url"] == f"http://{onion}/cp/cp-1"  # wallets come over Tor
            assert lnurl_decode(cp["lnurl"]).startswith(f"http://{onion}/")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        await node.close()
    assert code == 0, log.read_text()[-3000:]

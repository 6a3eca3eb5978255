"""The umbrelOS app package (docs/umbrel/strom/) against Umbrel's documented app format.

The rules are those of Umbrel's app store linter and packaging guide
(github.com/getumbrel/umbrel-apps: `.tools/lint-apps.mjs`, `.claude/skills/umbrel-package-app/
SKILL.md`); the LND variables are those the Lightning Node app exports (`lightning/exports.sh`),
the network the one the Bitcoin app exports (`bitcoin/exports.sh`)."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.deploy.conftest import ROOT

APP = ROOT / "docs" / "umbrel" / "strom"

# lint-apps.mjs: REQUIRED_MANIFEST_FIELDS, STRING_MANIFEST_FIELDS, VALID_CATEGORIES.
REQUIRED = ["manifestVersion", "id", "category", "name", "version", "tagline", "description",
            "developer", "website", "dependencies", "repo", "support", "port", "gallery", "path",
            "submitter", "submission"]
STRINGS = ["id", "category", "name", "version", "tagline", "description", "website", "support",
           "path", "submission", "releaseNotes", "defaultUsername", "defaultPassword"]
CATEGORIES = {"ai", "automation", "bitcoin", "crypto", "developer", "files", "finance", "media",
              "networking", "social"}
# SKILL.md, "Umbrel Environment Variables": what umbrelOS sets for every app.
UMBREL = {"APP_ID", "APP_VERSION", "APP_MANIFEST_FILE", "APP_DATA_DIR", "APP_DOMAIN",
          "APP_HIDDEN_SERVICE", "APP_PROXY_HOSTNAME", "APP_PROXY_PORT", "APP_SEED",
          "APP_PASSWORD", "DEVICE_HOSTNAME", "DEVICE_DOMAIN_NAME", "UMBREL_ROOT", "NETWORK_IP",
          "TOR_PROXY_IP", "TOR_PROXY_PORT", "TOR_DATA_DIR"}
EXPORTS_CONTEXT = {"EXPORTS_APP_ID", "EXPORTS_APP_DIR", "EXPORTS_APP_DATA_DIR",
                   "EXPORTS_TOR_DATA_DIR"}
LIGHTNING = {"APP_LIGHTNING_IP", "APP_LIGHTNING_NODE_IP", "APP_LIGHTNING_NODE_PORT",
             "APP_LIGHTNING_NODE_GRPC_PORT", "APP_LIGHTNING_NODE_REST_PORT",
             "APP_LIGHTNING_NODE_DATA_DIR"}
BITCOIN = {"APP_BITCOIN_NETWORK"}
VARIABLE = re.compile(r"\$\{?([A-Z_][A-Z0-9_]*)")
PINNED = re.compile(r"^(?P<name>.+):(?P<tag>[^:@/]+)@sha256:[a-fA-F0-9]{64}$")


def manifest() -> dict:
    return yaml.safe_load((APP / "umbrel-app.yml").read_text())


def compose() -> dict:
    return yaml.safe_load((APP / "docker-compose.yml").read_text())


def own_exports() -> set[str]:
    return set(re.findall(r"^export ([A-Z_][A-Z0-9_]*)=", (APP / "exports.sh").read_text(),
                          re.MULTILINE))


def test_manifest_has_every_field_of_the_format() -> None:
    app = manifest()
    assert [field for field in REQUIRED if field not in app] == []
    for field in STRINGS:
        assert isinstance(app[field], str), field
    for field in ["name", "version", "tagline", "description", "website", "support",
                  "submitter", "submission"]:
        assert app[field].strip(), field
    assert app["id"] == APP.name and re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", app["id"])
    assert app["manifestVersion"] in (1, 1.1)
    assert app["category"] in CATEGORIES
    assert isinstance(app["port"], int) and 0 < app["port"] <= 65535
    assert app["path"] == "" or app["path"].startswith("/")
    assert app["dependencies"] == ["lightning"]
    assert app["gallery"] == [] and app["releaseNotes"] == ""  # a new submission
    for field in ["website", "repo", "support", "submission"]:
        assert app[field].startswith("https://"), field
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert app["version"] == version


def test_compose_follows_the_format() -> None:
    app, services = manifest(), compose()["services"]
    proxy = services["app_proxy"]["environment"]
    assert proxy["APP_HOST"] == f"{app['id']}_web_1"  # <app-id>_<service>_1
    assert proxy["APP_PORT"] == 8000  # strom's HTTP port in the container
    assert "PROXY_AUTH_ADD" not in proxy  # the operator's view stays behind Umbrel's login
    for name, service in services.items():
        if name == "app_proxy":
            continue
        match = PINNED.match(service["image"])
        assert match, f"{name}: image needs a tag and a sha256 digest"
        assert service["restart"] == "on-failure"
        assert "build" not in service and "container_name" not in service
        for volume in service.get("volumes", []):
            assert isinstance(volume, str), "short syntax: umbrelOS patches volume strings"
            source = volume.split(":")[0]
            assert source != "${APP_DATA_DIR}", "mount a subdirectory of APP_DATA_DIR"
            if source.startswith("${APP_DATA_DIR}/data/"):
                assert (APP / source.removeprefix("${APP_DATA_DIR}/")).is_dir(), source
        for port in service.get("ports", []):
            assert not port.split(":")[0].endswith(str(app["port"]))  # app_proxy's port
    web = services["web"]
    assert PINNED.match(web["image"])["tag"] == app["version"]
    assert web["read_only"] is True and web["user"] == "1000:1000"
    env = web["environment"]
    assert env["STROM_LIGHTNING_BACKEND"] == "lnd"
    assert env["STROM_LIGHTNING_LND_URL"] == \
        "https://${APP_LIGHTNING_NODE_IP}:${APP_LIGHTNING_NODE_REST_PORT}"
    assert "${APP_LIGHTNING_NODE_DATA_DIR}:/lnd:ro" in web["volumes"]
    assert env["STROM_LIGHTNING_LND_TLS_CERT"] == "/lnd/tls.cert"
    assert env["STROM_LIGHTNING_LND_MACAROON_PATH"] == \
        "/lnd/data/chain/bitcoin/${APP_BITCOIN_NETWORK}/admin.macaroon"
    assert env["STROM_HTTP_PUBLIC_URL"] == "http://${APP_STROM_HIDDEN_SERVICE}"


def test_only_documented_variables() -> None:
    exported = own_exports()
    known = UMBREL | LIGHTNING | BITCOIN | exported
    for name in ("docker-compose.yml", "torrc.template"):
        used = set(VARIABLE.findall((APP / name).read_text()))
        assert used <= known, f"{name}: {sorted(used - known)}"
    exports = (APP / "exports.sh").read_text()
    used = set(VARIABLE.findall(exports)) - exported
    assert used <= EXPORTS_CONTEXT, f"exports.sh: {sorted(used - EXPORTS_CONTEXT)}"
    assert all(name.startswith("APP_STROM_") for name in exported)


def test_tor_serves_the_public_pages_and_ocpp() -> None:
    torrc = (APP / "torrc.template").read_text()
    assert "HiddenServiceDir /data/app-$APP_ID-public" in torrc
    assert "HiddenServicePort 80 $APP_STROM_IP:8000" in torrc
    assert "HiddenServicePort 9000 $APP_STROM_IP:9000" in torrc
    tor = compose()["services"]["tor"]
    assert "${APP_DATA_DIR}/torrc:/etc/tor/torrc:ro" in tor["volumes"]
    assert "${TOR_DATA_DIR}:/data" in tor["volumes"]
    web = compose()["services"]["web"]
    assert web["networks"]["default"]["ipv4_address"] == "${APP_STROM_IP}"
    assert "app-${EXPORTS_APP_ID}-public/hostname" in (APP / "exports.sh").read_text()

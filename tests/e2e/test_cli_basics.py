"""The `strom` command as a user runs it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import strom as strom_package

STROM = [sys.executable, "-m", "strom"]


def strom(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "STROM_DATA_DIR": str(data_dir), **(env or {})}
    full_env.pop("STROM_CONFIG", None)
    return subprocess.run([*STROM, *args], capture_output=True, text=True, env=full_env,
                          timeout=60, cwd=data_dir.parent)


def test_cp_add_list_show_remove(tmp_path: Path) -> None:
    d = tmp_path / "data"
    added = strom("cp", "add", "cp-9", "--lat", "48.1", "--lon", "11.5", "--connectors", "2",
                  "--price-per-kwh", "250", "--password", "a-long-enough-secret", data_dir=d)
    assert added.returncode == 0, added.stderr
    assert "npub1" in added.stdout
    listed = strom("cp", "list", "--json", data_dir=d)
    cps = json.loads(listed.stdout)
    assert [c["id"] for c in cps] == ["cp-9"]
    assert cps[0]["tariff"] == {"price_msat_per_kwh": 250_000}
    assert cps[0]["password"] is True
    assert len(cps[0]["connectors"]) == 2
    keys = (d / "nostr-keys.toml").read_text()
    assert "[charge_points.cp-9]" in keys and "nsec1" in keys
    assert oct((d / "nostr-keys.toml").stat().st_mode & 0o777) == "0o600"
    assert "a-long-enough-secret" not in (d / "strom.sqlite3").read_bytes().decode("latin-1")
    shown = strom("cp", "show", "cp-9", data_dir=d)
    assert json.loads(shown.stdout)["location"] == {"lat": 48.1, "lon": 11.5}
    assert strom("cp", "remove", "cp-9", data_dir=d).returncode == 0
    assert "cp-9" not in (d / "nostr-keys.toml").read_text()


def test_cp_add_with_ocpp_versions_and_security_profile(tmp_path: Path) -> None:
    d = tmp_path / "data"
    pin = "0f" * 32
    added = strom("cp", "add", "cp-s", "--lat", "1", "--lon", "2", "--ocpp", "ocpp1.6,ocpp2.0.1",
                  "--security-profile", "3", "--client-cert-sha256", pin, data_dir=d)
    assert added.returncode == 0, added.stderr
    shown = json.loads(strom("cp", "show", "cp-s", data_dir=d).stdout)
    assert shown["ocpp_protocols"] == ["ocpp2.0.1", "ocpp1.6"]
    assert shown["ocpp_protocol"] is None
    assert (shown["security_profile"], shown["client_cert_sha256"]) == (3, pin)


def test_user_errors_are_one_line_with_exit_1(tmp_path: Path) -> None:
    d = tmp_path / "data"
    for args in (["cp", "show", "nope"], ["cp", "remove", "nope"],
                 ["cp", "add", "bad id!", "--lat", "1", "--lon", "1"],
                 ["cp", "add", "x", "--lat", "1", "--lon", "1", "--password", "short"],
                 ["cp", "add", "x", "--lat", "1", "--lon", "1", "--ocpp", "ocpp3"],
                 ["cp", "add", "x", "--lat", "1", "--lon", "1", "--client-cert-sha256", "zz"]):
        result = strom(*args, data_dir=d)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.startswith("strom: error:")
        assert result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr


def test_usage_error_exit_2(tmp_path: Path) -> None:
    result = strom("cp", "add", "x", "--lat", "100", "--lon", "1", data_dir=tmp_path / "d")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_bad_config_one_line(tmp_path: Path) -> None:
    config = tmp_path / "strom.toml"
    config.write_text('[ocpp]\nport = "nine thousand"\n')
    result = strom("run", "--config", str(config), data_dir=tmp_path / "d")
    assert result.returncode == 1
    assert "[ocpp] port" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cp_qr_prints_and_writes_a_decodable_code(tmp_path: Path) -> None:
    import io

    import zxingcpp
    from PIL import Image

    from strom.lnurl.codec import lnurl_decode

    d = tmp_path / "data"
    assert strom("cp", "add", "cp-q", "--lat", "1", "--lon", "2", "--connectors", "2",
                 data_dir=d).returncode == 0
    png, svg = tmp_path / "q.png", tmp_path / "q.svg"
    result = strom("cp", "qr", "cp-q", "--png", str(png), "--svg", str(svg), data_dir=d)
    assert result.returncode == 0, result.stderr
    assert "█" in result.stdout and "lnurlp://127.0.0.1:8000/lnurlp/cp-q" in result.stdout
    assert svg.read_text().startswith("<svg")
    decoded = [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png.read_bytes())))]
    assert len(decoded) == 1
    web, _, lnurl = decoded[0].partition("?lightning=")
    assert web == "http://127.0.0.1:8000/cp/cp-q"
    assert lnurl_decode(lnurl) == "http://127.0.0.1:8000/lnurlp/cp-q"
    one = strom("cp", "qr", "cp-q", "--connector", "2", data_dir=d)
    assert "/lnurlp/cp-q-2" in one.stdout
    too_far = strom("cp", "qr", "cp-q", "--connector", "3", data_dir=d)
    assert too_far.returncode == 1 and "has 2 connector(s)" in too_far.stderr


def _broken_install(tmp_path: Path) -> Path:
    """A copy of strom's packages without the migrations, as a broken install would be."""
    root = Path(strom_package.__file__).resolve().parent.parent
    copy = tmp_path / "broken-install"
    for name in ("strom", "bots", "relay", "tui"):
        shutil.copytree(root / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(copy / "strom" / "store" / "migrations")
    return copy


def test_failed_start_stops_and_exits_1_with_one_line(tmp_path: Path) -> None:
    """Issue 26: a fatal start-up error ends `strom run` at once, with one line and code 1.

    The unreadable data dir is a regular file: the tests run as root, which chmod 000 does not
    stop, but nobody can create a database inside a file.
    """
    not_a_dir = tmp_path / "data-file"
    not_a_dir.write_text("not a directory\n")
    cases = {
        "missing migrations": (tmp_path / "data", {"PYTHONPATH": str(_broken_install(tmp_path))},
                               "reinstall strom"),
        "data dir is a file": (not_a_dir, {}, str(not_a_dir)),
    }
    for case, (data_dir, extra, advice) in cases.items():
        began = time.monotonic()
        result = strom("run", data_dir=data_dir, env=extra)
        assert time.monotonic() - began < 15, case
        assert result.returncode == 1, (case, result.stderr)
        assert result.stderr.startswith("strom: error: cannot start:"), (case, result.stderr)
        assert result.stderr.count("\n") == 1 and advice in result.stderr, (case, result.stderr)
        assert "Traceback" not in result.stderr
    debug = strom("run", "--debug", data_dir=not_a_dir)
    assert debug.returncode == 1 and "Traceback" in debug.stderr

"""`strom init` as an operator runs it: flags or prompts, each answer checked, one line per
problem, a file strom's loader reads with strom.example.toml's keys, secrets kept 0600."""

from __future__ import annotations

import asyncio
import os
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from nostr_sdk import Keys

from strom.config import load_settings
from tests.deploy.test_macaroon import POLAR_INVOICE
from tests.doubles.fake_lnd import ADMIN_OPS, FakeLnd, lnd_identifier, macaroon_v2

ROOT = Path(__file__).resolve().parents[2]


async def strom_init(*args: str, cwd: Path, stdin: str = "") -> tuple[int, str, str]:
    """`strom init …` in its own process, while this loop keeps serving the fake node."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STROM_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "strom", "init", *args, cwd=cwd, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)  # no tty: secrets from stdin
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def example_keys() -> dict[str, set[str]]:
    example = tomllib.loads((ROOT / "strom.example.toml").read_text())

    def walk(node: dict, prefix: str) -> dict[str, set[str]]:
        found = {prefix: {k for k, v in node.items() if not isinstance(v, dict)}}
        for key, value in node.items():
            if isinstance(value, dict):
                found |= walk(value, f"{prefix}.{key}".strip("."))
        return found

    return walk(example, "")


def assert_example_keys(written: dict, prefix: str = "") -> None:
    known = example_keys()
    for key, value in written.items():
        if isinstance(value, dict):
            assert f"{prefix}.{key}".strip(".") in known, key
            assert_example_keys(value, f"{prefix}.{key}".strip("."))
        else:
            assert key in known[prefix], f"[{prefix}] {key} is not in strom.example.toml"


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
async def lnd() -> AsyncIterator[FakeLnd]:
    node = FakeLnd(network="testnet")
    await node.start()
    yield node
    await node.close()


@pytest.fixture
async def tls_lnd(tmp_path: Path) -> AsyncIterator[tuple[FakeLnd, Path]]:
    """LND over https with its own self-signed certificate, as a real node serves REST."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "tls.cert", tmp_path / "tls.key"
    issued.private_key_pem.write_to_path(str(key))
    issued.cert_chain_pems[0].write_to_path(str(cert))
    ca.cert_pem.write_to_path(str(cert), append=True)
    node = FakeLnd(network="signet", tls=(str(cert), str(key)))
    await node.start()
    yield node, cert
    await node.close()


async def test_lnd_with_a_hex_macaroon(lnd: FakeLnd, tmp_path: Path) -> None:
    # As long as an admin macaroon: its hex is longer than any file name may be.
    lnd.macaroon = macaroon_v2(lnd_identifier(ADMIN_OPS), (b"a" * 100, b"b" * 100)).hex()
    assert len(lnd.macaroon) > 256
    work = tmp_path / "work"
    work.mkdir()
    code, _, err = await strom_init(
        "--non-interactive", "--public-url", "https://charge.example.com/", "--backend", "lnd",
        "--lnd-rest-url", lnd.url, "--lnd-macaroon", lnd.macaroon,
        "--charger", "cp-1", "--lat", "48.14", "--lon", "11.58", "--name", "Yard", cwd=work)
    assert code == 0, err
    toml = work / "strom.toml"
    assert mode(toml) == 0o600 and mode(work / ".strom") == 0o700
    text = toml.read_text()
    assert lnd.macaroon not in text  # the hex went to a file of its own
    macaroon = work / ".strom" / "lnd.macaroon"
    assert mode(macaroon) == 0o600 and macaroon.read_bytes().hex() == lnd.macaroon
    settings = load_settings(toml, {})
    assert settings.lightning.backend == "lnd"
    assert settings.lightning.network == "testnet"  # as the node said
    assert settings.lightning.lnd.url == lnd.url
    assert settings.lightning.lnd.macaroon_path == str(macaroon)
    assert settings.public_url == "https://charge.example.com"
    assert_example_keys(tomllib.loads(text))
    assert all(line.startswith("#") or "#" in line for line in text.splitlines()
               if "=" in line), "every key is commented"
    assert "added charge point cp-1 npub npub1" in err and "next: strom run" in err


async def test_lnd_over_tls_with_a_macaroon_file(tls_lnd: tuple[FakeLnd, Path],
                                                 tmp_path: Path) -> None:
    node, cert = tls_lnd
    macaroon = tmp_path / "admin.macaroon"
    macaroon.write_bytes(bytes.fromhex(node.macaroon))
    config, data = tmp_path / "etc" / "strom.toml", tmp_path / "var"
    code, _, err = await strom_init(
        "--non-interactive", "--public-url", "https://charge.example.com", "--backend", "lnd",
        "--lnd-rest-url", node.url, "--lnd-macaroon", str(macaroon), "--lnd-cert", str(cert),
        "--config", str(config), "--data-dir", str(data), cwd=tmp_path)
    assert code == 0, err
    settings = load_settings(config, {})
    assert settings.lightning.network == "signet"
    assert settings.lightning.lnd.macaroon_path == str(macaroon)  # referenced, not copied
    assert settings.lightning.lnd.tls_cert == str(cert)
    assert not (data / "lnd.macaroon").exists()
    assert f"next: strom run --config {config} --data-dir {data}" in err


async def test_lnd_over_tls_without_its_certificate(tls_lnd: tuple[FakeLnd, Path],
                                                    tmp_path: Path) -> None:
    node, _ = tls_lnd
    code, out, err = await strom_init(
        "--non-interactive", "--public-url", "https://c.example.com", "--backend", "lnd",
        "--lnd-rest-url", node.url, "--lnd-macaroon", node.macaroon, cwd=tmp_path)
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0, err
    assert "--lnd-rest-url" in err and "--lnd-cert" in err
    assert not (tmp_path / "strom.toml").exists()


async def test_problems_one_line_each_and_nothing_written(lnd: FakeLnd, tmp_path: Path) -> None:
    refused = FakeLnd().macaroon  # a well-formed macaroon of another node
    code, _, err = await strom_init(
        "--non-interactive", "--public-url", "http://charge.example.com", "--backend", "lnd",
        "--lnd-rest-url", lnd.url, "--lnd-macaroon", refused, "--charger", "bad id!",
        "--lat", "1", "--lon", "2", cwd=tmp_path)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 3, err
    assert "LUD-01" in lines[0] and "https://" in lines[0]
    assert lines[1].startswith("strom init: --lnd-macaroon:") and "refused our macaroon" in lines[1]
    assert "--charger" in lines[2]
    assert "Traceback" not in err and refused not in err
    assert not (tmp_path / "strom.toml").exists()


@pytest.mark.parametrize(("given", "says"), [
    (os.urandom(32).hex(), "not in the binary V2 format"),  # a bare token, not a macaroon
    ("0201036c6e6402", "ends early"),
    ("/no/such/admin.macaroon", "cannot read"),
])
async def test_what_is_not_a_macaroon(lnd: FakeLnd, tmp_path: Path, given: str,
                                      says: str) -> None:
    code, _, err = await strom_init(
        "--non-interactive", "--public-url", "https://c.example.com", "--backend", "lnd",
        "--lnd-rest-url", lnd.url, "--lnd-macaroon", given, cwd=tmp_path)
    assert code == 1 and err.startswith("strom init: --lnd-macaroon: not an LND macaroon")
    assert says in err and err.count("\n") == 1


async def test_a_macaroon_without_the_permissions_strom_needs(lnd: FakeLnd,
                                                              tmp_path: Path) -> None:
    lnd.macaroon = POLAR_INVOICE  # invoices, but neither info nor offchain (no refunds)
    code, _, err = await strom_init(
        "--non-interactive", "--public-url", "https://c.example.com", "--backend", "lnd",
        "--lnd-rest-url", lnd.url, "--lnd-macaroon", POLAR_INVOICE, cwd=tmp_path)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("strom init: --lnd-macaroon: it does not allow info:read "
                          "offchain:read offchain:write; use admin.macaroon")


async def test_lnd_that_does_not_answer(tmp_path: Path) -> None:
    closed = FakeLnd()
    await closed.start()
    url = closed.url
    await closed.close()
    code, _, err = await strom_init(
        "--non-interactive", "--public-url", "https://c.example.com", "--backend", "lnd",
        "--lnd-rest-url", url, "--lnd-macaroon", closed.macaroon, cwd=tmp_path)
    assert code == 1 and f"cannot reach lnd at {url}" in err and err.count("\n") == 1


async def test_nwc_on_an_onion(tmp_path: Path) -> None:
    wallet, secret = Keys.generate(), Keys.generate()
    uri = (f"nostr+walletconnect://{wallet.public_key().to_hex()}?relay=wss%3A%2F%2Frelay"
           f".example.com&secret={secret.secret_key().to_hex()}")
    onion = "http://" + "a" * 56 + ".onion"
    bad, _, err = await strom_init("--non-interactive", "--public-url", onion, "--backend",
                                   "nwc", "--nwc-uri", "nostr+walletconnect://nope",
                                   cwd=tmp_path)
    assert bad == 1 and "--nwc-uri is not a valid nostr+walletconnect:// URI" in err
    code, _, err = await strom_init("--non-interactive", "--public-url", onion, "--backend",
                                    "nwc", "--nwc-uri", uri, "--network", "mainnet",
                                    cwd=tmp_path)
    assert code == 0, err
    toml = tmp_path / "strom.toml"
    assert mode(toml) == 0o600  # it holds the connection's secret
    settings = load_settings(toml, {})
    assert (settings.lightning.backend, settings.lightning.nwc.uri) == ("nwc", uri)
    assert settings.public_url == onion
    again, _, err = await strom_init("--non-interactive", "--public-url", onion, "--backend",
                                     "dev", cwd=tmp_path)
    assert again == 1 and "strom.toml exists" in err and "--force" in err
    forced, _, err = await strom_init("--non-interactive", "--public-url", onion, "--backend",
                                      "dev", "--force", cwd=tmp_path)
    assert forced == 0, err
    assert load_settings(toml, {}).lightning.backend == "dev"
    assert uri not in toml.read_text()


async def test_prompts_ask_again_until_an_answer_passes(tmp_path: Path) -> None:
    answers = ("http://charge.example.com\nhttps://charge.example.com\nlnbits\ndev\n"
               "bad id\ncp-7\n48.1\n11.5\n")
    code, _, err = await strom_init(cwd=tmp_path, stdin=answers)
    assert code == 0, err
    assert err.count("LUD-01") == 1 and "choose dev, lnd or nwc" in err
    assert "'bad id': use 1-48 letters" in err and "added charge point cp-7" in err
    settings = load_settings(tmp_path / "strom.toml", {})
    assert settings.public_url == "https://charge.example.com"
    assert (settings.lightning.backend, settings.lightning.network) == ("dev", "regtest")


async def test_prompts_for_lnd_ask_the_three_again(lnd: FakeLnd, tmp_path: Path) -> None:
    refused = FakeLnd().macaroon
    answers = (f"https://c.example.com\nlnd\n{lnd.url}\n{refused}\n\n"
               f"{lnd.url}\n{lnd.macaroon}\n\n\n")
    code, _, err = await strom_init(cwd=tmp_path, stdin=answers)
    assert code == 0, err
    assert err.count("refused our macaroon") == 1 and refused not in err
    settings = load_settings(tmp_path / "strom.toml", {})
    assert (settings.lightning.backend, settings.lightning.network) == ("lnd", "testnet")
    assert settings.lightning.lnd.url == lnd.url
    stored = tmp_path / ".strom" / "lnd.macaroon"  # typed at the prompt as hex
    assert settings.lightning.lnd.macaroon_path == str(stored)
    assert stored.read_bytes().hex() == lnd.macaroon

from __future__ import annotations

from pathlib import Path

import pytest

from strom.config import ConfigError, load_settings, require_https_public_url


def test_defaults_without_file() -> None:
    settings = load_settings(None, environ={})
    assert settings.http.host == "127.0.0.1"
    assert settings.http.port == 8000
    assert settings.ocpp.port == 9000
    assert settings.relay.port == 7777
    assert settings.lightning.backend == "dev"
    assert settings.public_url == "http://127.0.0.1:8000"


def test_file_and_environment_override(tmp_path: Path) -> None:
    path = tmp_path / "strom.toml"
    path.write_text('[http]\nport = 8100\n[lightning.lnd]\nurl = "https://lnd:8080"\n')
    settings = load_settings(path, environ={"STROM_HTTP_PORT": "8200",
                                            "STROM_NOSTR_RELAYS": "wss://a, wss://b"})
    assert settings.http.port == 8200
    assert settings.lightning.lnd.url == "https://lnd:8080"
    assert settings.nostr.relays == ["wss://a", "wss://b"]


def test_nested_env_override() -> None:
    settings = load_settings(None, environ={"STROM_LIGHTNING_LND_MACAROON_HEX": "abcd"})
    assert settings.lightning.lnd.macaroon_hex == "abcd"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[http]\nport = "abc"\n', "[http] port"),
        ("[http]\nport = 70000\n", "[http] port"),
        ("[htp]\nport = 1\n", "unknown key htp"),
        ('[lightning]\nbackend = "paypal"\n', "[lightning] backend"),
        ("[http\n", "not valid TOML"),
        ('[http]\ntrusted_proxies = ["nginx"]\n', "trusted_proxies: 'nginx' is not an address"),
        ('[ocpi]\ncurrency = "JPY"\n', "[ocpi] currency: input should be 'BTC' or 'EUR'"),
    ],
)
def test_bad_file_names_the_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "strom.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="STROM_OCPP_PORT"):
        load_settings(None, environ={"STROM_OCPP_PORT": "nine"})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_example_file_documents_every_key() -> None:
    example = Path(__file__).parents[2] / "strom.example.toml"
    settings = load_settings(example, environ={})
    assert settings == load_settings(None, environ={})
    from strom.config import _ENV_PATHS

    text = example.read_text()
    for path in _ENV_PATHS.values():
        assert f"\n{path[-1]} =" in text, f"{'.'.join(path)} is not in strom.example.toml"


@pytest.mark.parametrize(("url", "demo", "allowed"), [
    ("https://charge.example.org", False, True),
    ("http://127.0.0.1:8000", False, True),
    ("http://localhost:8000", False, True),
    ("http://[::1]:8000", False, True),
    ("http://abcdefghijklmnop.onion", False, True),
    ("http://charge.example.org", True, True),
    ("http://charge.example.org", False, False),
    ("http://192.168.1.5:8000", False, False),
    ("ftp://charge.example.org", False, False),
])
def test_production_needs_an_https_public_url(url: str, demo: bool, allowed: bool) -> None:
    settings = load_settings(None, environ={"STROM_HTTP_PUBLIC_URL": url})
    if allowed:
        require_https_public_url(settings, demo=demo)
        return
    with pytest.raises(ConfigError) as info:
        require_https_public_url(settings, demo=demo)
    assert "[http] public_url" in str(info.value) and "\n" not in str(info.value)


def test_tls_sections_name_the_key() -> None:
    with pytest.raises(ConfigError, match="tls.*domains"):
        load_settings(None, environ={"STROM_TLS_ACME_DIRECTORY": "https://ca/dir"})
    settings = load_settings(None, environ={"STROM_TLS_ACME_DIRECTORY": "https://ca/dir",
                                            "STROM_TLS_DOMAINS": "a.example, b.example",
                                            "STROM_TLS_HTTPS_PORT": "443"})
    assert settings.public_url == "https://a.example"

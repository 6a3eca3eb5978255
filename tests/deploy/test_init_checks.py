"""`strom init`'s public URL check: LUD-01 lets wallets use plain http only on loopback and
.onion hosts; anything else must be https. Whatever the text, an answer or a Problem."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strom.onboarding.checks import Problem, check_lnd, check_nwc, check_public_url
from tests.doubles.fake_lnd import FakeLnd

ONION = "http://" + "a" * 56 + ".onion"


@pytest.mark.parametrize(("given_url", "kept"), [
    ("https://charge.example.com/", "https://charge.example.com"),
    ("https://charge.example.com/strom", "https://charge.example.com/strom"),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("http://127.5.5.5", "http://127.5.5.5"),
    ("http://localhost:8000/", "http://localhost:8000"),
    ("http://[::1]:8000", "http://[::1]:8000"),
    (ONION, ONION),
    ("  https://x.example  ", "https://x.example"),
])
def test_accepted(given_url: str, kept: str) -> None:
    assert check_public_url(given_url) == kept


@pytest.mark.parametrize("refused", [
    "http://charge.example.com", "http://192.168.1.10:8000", "http://localhost.example.com",
    "http://x.onion.example.com", "http://0.0.0.0:8000", "ftp://charge.example.com",
    "charge.example.com", "https://", "https://x.example/?a=1", "https://x.example/#.onion",
    "https://user:pw@x.example", "", "http://[::1", "https://[zz]/", "http://a b.onion",
    "https://x.example:99999", "https://x.example:port", "https://exa_mple.com",
])
def test_refused_in_one_line(refused: str) -> None:
    with pytest.raises(Problem) as caught:
        check_public_url(refused)
    assert str(caught.value).startswith("--public-url") and "\n" not in str(caught.value)


@given(st.text(max_size=80) | st.builds(lambda scheme, host: f"{scheme}://{host}",
                                         st.sampled_from(["http", "https", "HTTP", "wss"]),
                                         st.text(max_size=40)))
def test_any_text_is_an_answer_or_a_problem(text: str) -> None:
    try:
        url = check_public_url(text)
    except Problem as exc:
        assert "\n" not in str(exc).replace(repr(text), "")
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    assert parts.scheme == "https" or host in ("localhost", "::1") or \
        host.startswith("127.") or host.endswith(".onion")


def test_a_bad_nwc_uri_is_not_echoed() -> None:
    secret = "f" * 64
    with pytest.raises(Problem) as caught:
        check_nwc(f"nostr+walletconnect://nope?relay=wss://r.example&secret={secret}")
    assert secret not in str(caught.value) and str(caught.value).startswith("--nwc-uri")


@pytest.mark.parametrize("url", ["https://[::1", "nope", "https://127.0.0.1:99999", "",
                                 "https://127.0.0.1:port", "lnd:8080"])
async def test_a_malformed_lnd_url_is_a_problem(url: str) -> None:
    with pytest.raises(Problem, match="^--lnd-rest-url .*give a full URL"):
        await check_lnd(url, FakeLnd().macaroon, None)


async def test_a_cert_that_is_not_one(tmp_path) -> None:
    bogus = tmp_path / "tls.cert"
    bogus.write_text("not a certificate")
    with pytest.raises(Problem, match="^--lnd-cert: cannot load"):
        await check_lnd("https://127.0.0.1:1", FakeLnd().macaroon, str(bogus))
    with pytest.raises(Problem, match="^--lnd-cert .*no such file"):
        await check_lnd("https://127.0.0.1:1", FakeLnd().macaroon, str(tmp_path / "none"))

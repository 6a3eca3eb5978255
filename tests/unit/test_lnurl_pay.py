from __future__ import annotations

import hashlib
import json

import pytest

from strom.lnurl import pay
from strom.lnurl.codec import lnurl_decode, lnurl_encode, lud17
from strom.lnurl.errors import LnurlError


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "amount is missing"),
        ("", "amount is missing"),
        ("12.5", "whole number"),
        ("abc", "whole number"),
        ("999", "below minimum of 1 sat"),
        ("100000001", "above maximum of 100000 sat"),
    ],
)
def test_bad_amounts_have_human_reasons(raw: str | None, reason: str) -> None:
    with pytest.raises(LnurlError) as info:
        pay.parse_amount(raw, 1000, 100_000_000)
    assert reason in info.value.reason
    assert info.value.to_json() == {"status": "ERROR", "reason": info.value.reason}


def test_good_amount() -> None:
    assert pay.parse_amount("21000", 1000, 100_000) == 21000


def test_metadata_and_hash() -> None:
    meta = pay.metadata("Charge at X", identifier="x@host")
    assert json.loads(meta) == [["text/plain", "Charge at X"], ["text/identifier", "x@host"]]
    assert pay.description_hash(meta) == hashlib.sha256(meta.encode()).digest()


def test_comment_length() -> None:
    assert pay.parse_comment("hi", 10) == "hi"
    assert pay.parse_comment(None, 10) is None
    with pytest.raises(LnurlError, match="at most 3"):
        pay.parse_comment("toolong", 3)


def test_codec_roundtrip_and_lud17() -> None:
    url = "http://127.0.0.1:8000/lnurlp/demo-1"
    encoded = lnurl_encode(url)
    assert encoded.startswith("LNURL1")
    assert lnurl_decode(encoded) == url
    assert lud17(url, "lnurlp") == "lnurlp://127.0.0.1:8000/lnurlp/demo-1"


def test_load_image_refuses_what_wallets_cannot_show(tmp_path) -> None:  # noqa: ANN001
    import pytest

    from strom.errors import UserError
    from strom.lnurl.pay import MAX_IMAGE_BYTES, load_image

    gif = tmp_path / "a.gif"
    gif.write_bytes(b"GIF89a")
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (MAX_IMAGE_BYTES + 1))
    for path, reason in [(gif, "must be a .png or .jpg"), (big, "larger than"),
                         (tmp_path / "missing.png", "cannot read")]:
        with pytest.raises(UserError, match=reason):
            load_image(str(path))

"""strom's BOLT11 encoder (strom/lightning/invoice_encoding.py) against the bolt11 library.

The fast encoder must make, byte for byte, the invoice `bolt11.encode` makes of the same fields
(RFC 6979 signatures are deterministic; the library checksums with bech32's reference code),
for any amount, time, description and expiry; `bolt11.decode` reads it back, payee and all.
"""

from __future__ import annotations

import bolt11
from bolt11 import Bolt11, MilliSatoshi, Tag, TagChar, Tags
from bolt11.models.features import Feature, Features, FeatureState
from coincurve import PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from strom.lightning.invoice_encoding import (
    DESCRIPTION,
    DESCRIPTION_HASH,
    EXPIRY,
    FEATURES,
    MIN_FINAL_CLTV,
    PAYMENT_HASH,
    PAYMENT_SECRET,
    Field,
    encode_invoice,
    payment_hash_of,
)

KEY = PrivateKey(b"\x07" * 32)
LIBRARY_FEATURES = Features.from_feature_list({Feature.var_onion_optin: FeatureState.required,
                                               Feature.payment_secret: FeatureState.required})


def _library(currency: str, amount: int, created: int, payment_hash: bytes, secret: bytes,
             expiry: int, description: str | None, description_hash: bytes | None) -> str:
    tags = [Tag(TagChar.payment_hash, payment_hash.hex()),
            Tag(TagChar.payment_secret, secret.hex()),
            Tag(TagChar.expire_time, expiry), Tag(TagChar.min_final_cltv_expiry, 80),
            Tag(TagChar.features, LIBRARY_FEATURES)]
    if description_hash is not None:
        tags.append(Tag(TagChar.description_hash, description_hash.hex()))
    else:
        tags.append(Tag(TagChar.description, description or ""))
    return bolt11.encode(Bolt11(currency=currency, date=created,
                                amount_msat=MilliSatoshi(amount), tags=Tags(tags)),
                         KEY.secret.hex())


@settings(max_examples=25, deadline=None)
@given(currency=st.sampled_from(["bc", "tb", "bcrt"]),
       amount=st.integers(1, 21_000_000 * 10**11), created=st.integers(0, 2**35 - 1),
       payment_hash=st.binary(min_size=32, max_size=32),
       secret=st.binary(min_size=32, max_size=32), expiry=st.integers(1, 2**32),
       description=st.one_of(st.none(), st.text(max_size=80)),
       hashed=st.booleans())
def test_byte_for_byte_what_the_bolt11_library_encodes(
        currency: str, amount: int, created: int, payment_hash: bytes, secret: bytes,
        expiry: int, description: str | None, hashed: bool) -> None:
    description_hash = payment_hash[::-1] if hashed else None
    fields: list[Field] = [(PAYMENT_HASH, payment_hash), (PAYMENT_SECRET, secret),
                           (EXPIRY, expiry), (MIN_FINAL_CLTV, 80),
                           (FEATURES, 1 << 8 | 1 << 14)]
    fields.append((DESCRIPTION_HASH, description_hash) if description_hash is not None
                  else (DESCRIPTION, (description or "").encode()))
    ours = encode_invoice(KEY, currency, amount, created, fields)
    assert ours == _library(currency, amount, created, payment_hash, secret, expiry,
                            description, description_hash)
    decoded = bolt11.decode(ours)
    assert decoded.payment_hash == payment_hash.hex() and decoded.amount_msat == amount
    assert decoded.payee == KEY.public_key.format().hex()


def test_a_field_too_long_for_its_length_is_refused() -> None:
    try:
        encode_invoice(KEY, "bcrt", 1000, 0, [(DESCRIPTION, b"x" * 640)])
    except ValueError as error:
        assert "too long" in str(error)
    else:
        raise AssertionError("a 1,024-word field was encoded")


@settings(max_examples=15, deadline=None)
@given(payment_hash=st.binary(min_size=32, max_size=32),
       description=st.text(max_size=120), amount=st.integers(1, 10**12))
def test_the_payment_hash_is_found_where_bolt11_decode_finds_it(
        payment_hash: bytes, description: str, amount: int) -> None:
    invoice = encode_invoice(KEY, "bcrt", amount, 1_700_000_000,
                             [(PAYMENT_SECRET, b"\x01" * 32), (DESCRIPTION, description.encode()),
                              (PAYMENT_HASH, payment_hash), (EXPIRY, 600)])
    assert payment_hash_of(invoice) == bolt11.decode(invoice).payment_hash == payment_hash.hex()


def test_no_payment_hash_in_what_is_not_an_invoice() -> None:
    no_hash = encode_invoice(KEY, "bcrt", 1000, 0, [(DESCRIPTION, b"no hash here")])
    for text in ("", "lnbcrt1garbage", "lnbcrt1" + "q" * 200, no_hash, "lnbc1b" * 40):
        assert payment_hash_of(text) is None

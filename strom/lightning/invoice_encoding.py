"""BOLT11 invoices encoded and signed in 5-bit words, without bit-by-bit packing.

`bolt11.encode` packs the data part with bitstring one 5-bit word at a time and checksums it
with the bech32 reference code, one bit per step: ~1.4 ms of pure Python per invoice, nearly all
of what the dev wallet spends on an LNURL callback's invoice (docs/performance.md). Here bytes
become 5-bit words through one big integer, and the bech32 checksum takes one table lookup per
word instead of five conditional XORs. The signature is coincurve's recoverable ECDSA over
sha256(hrp + data part), as BOLT11 and the bolt11 library do; the invoice is byte for byte
what `bolt11.encode` makes of the same fields, and the checksum bech32's own
(tests/unit/test_invoice_encoding.py). `bolt11.decode` stays the one decoder.
"""

from __future__ import annotations

from collections.abc import Sequence

from bolt11.utils import msat_to_amount
from coincurve import PrivateKey

# Tagged-field types (BOLT11: the bech32 character's 5-bit value).
PAYMENT_HASH = 1  # p
FEATURES = 5  # 9
EXPIRY = 6  # x
DESCRIPTION = 13  # d
PAYMENT_SECRET = 16  # s
DESCRIPTION_HASH = 23  # h
MIN_FINAL_CLTV = 24  # c

Field = tuple[int, bytes | int]
CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_WORD = {c: i for i, c in enumerate(CHARSET)}
_TIMESTAMP_WORDS, _SIGNATURE_WORDS, _CHECKSUM_CHARS = 7, 104, 6


def _bytes_words(data: bytes) -> list[int]:
    """Bytes as 5-bit words, zero bits appended to fill the last word (BOLT11's padding)."""
    pad = -len(data) * 8 % 5
    value = int.from_bytes(data, "big") << pad
    count = (len(data) * 8 + pad) // 5
    return [(value >> shift) & 31 for shift in range(5 * (count - 1), -1, -5)]


def _words_bytes(words: Sequence[int]) -> bytes:
    """5-bit words as bytes, zero bits appended to fill the last byte."""
    value = 0
    for word in words:
        value = value << 5 | word
    pad = -len(words) * 5 % 8
    return (value << pad).to_bytes((len(words) * 5 + pad) // 8, "big")


def _step_table() -> tuple[int, ...]:
    """For each top 5 bits of the checksum state, the XOR of the generator terms they select."""
    table = []
    for top in range(32):
        term = 0
        for i, generator in enumerate(_GENERATOR):
            if top >> i & 1:
                term ^= generator
        table.append(term)
    return tuple(table)


_STEP = _step_table()


def _bech32(hrp: str, data: list[int]) -> str:
    """hrp + "1" + data + checksum (BIP-173), with a table-driven polymod."""
    state = 1
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    for word in (*expanded, *data, 0, 0, 0, 0, 0, 0):
        state = ((state & 0x1FFFFFF) << 5) ^ word ^ _STEP[state >> 25]
    state ^= 1
    checksum = [(state >> shift) & 31 for shift in range(25, -1, -5)]
    return hrp + "1" + "".join(CHARSET[w] for w in (*data, *checksum))


def _int_words(value: int) -> list[int]:
    """The shortest big-endian 5-bit words of a non-negative integer (none for 0)."""
    words: list[int] = []
    while value:
        words.append(value & 31)
        value >>= 5
    return words[::-1]


def _tagged(kind: int, value: bytes | int) -> list[int]:
    words = _int_words(value) if isinstance(value, int) else _bytes_words(value)
    if len(words) >= 1024:
        raise ValueError(f"tagged field {kind} is too long ({len(words)} words)")
    return [kind, len(words) >> 5, len(words) & 31, *words]


def encode_invoice(key: PrivateKey, currency: str, amount_msat: int, timestamp: int,
                   fields: Sequence[Field]) -> str:
    """A signed BOLT11 invoice: `currency` is the hrp's (bc, tb, bcrt, …), `fields` the
    tagged fields in order, each (type, bytes) or (type, integer)."""
    hrp = "ln" + currency + (msat_to_amount(amount_msat) if amount_msat else "")
    data = [(timestamp >> shift) & 31 for shift in range(30, -1, -5)]
    for kind, value in fields:
        data += _tagged(kind, value)
    signature = key.sign_recoverable(hrp.encode() + _words_bytes(data))
    return _bech32(hrp, data + _bytes_words(signature))


def payment_hash_of(invoice: str) -> str | None:
    """The payment hash (hex) in a lower-case BOLT11 string, or None if there is none.

    Checksum and signature are NOT checked: this only finds which stored invoice to compare
    the string with, whole, as the dev wallet does before it settles one (bolt11.decode takes
    ~10 ms of bit packing per invoice, more than the rest of a payment).
    """
    data = invoice[invoice.rfind("1") + 1:len(invoice) - _CHECKSUM_CHARS]
    try:
        words = [_WORD[c] for c in data]
    except KeyError:
        return None
    at, end = _TIMESTAMP_WORDS, len(words) - _SIGNATURE_WORDS
    while at + 3 <= end:
        kind, length = words[at], words[at + 1] << 5 | words[at + 2]
        if kind == PAYMENT_HASH and length == 52 and at + 3 + length <= end:
            return _words_bytes(words[at + 3:at + 3 + length])[:32].hex()
        at += 3 + length
    return None

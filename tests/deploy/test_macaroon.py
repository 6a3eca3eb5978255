"""The macaroon check of `strom init`: LND's V2 binary macaroons parse, nothing else does."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strom.lightning.macaroon import (
    STROM_NEEDS,
    MacaroonError,
    lnd_permissions,
    parse_macaroon,
    read_macaroon,
)
from tests.doubles.fake_lnd import FakeLnd, lnd_identifier, macaroon_v2

# Real LND macaroons from public code: a Polar regtest node's admin.macaroon and
# invoice.macaroon (address, invoices and onchain permissions), published in an ln-service hold-invoice
# example ("Settings from Polar Lightning Network 1"), and an info:read macaroon with an
# `ipaddr` first-party caveat from a Go test of macaroon constraints.
POLAR_INVOICE = (
    "0201036c6e640258030a10233d7f7c2d1d8d0d79749376a266e7241201301a160a0761646472657373120472"
    "656164120577726974651a170a08696e766f69636573120472656164120577726974651a0f0a076f6e636861"
    "696e12047265616400000620f0d91772d00773e1ebae59311804d53dd5abe3808fcb6a04b07dacb6c36c9608")
POLAR_ADMIN = (
    "0201036c6e6402f801030a10253d7f7c2d1d8d0d79749376a266e7241201301a160a0761646472657373120472"
    "656164120577726974651a130a04696e666f120472656164120577726974651a170a08696e766f6963657312"
    "0472656164120577726974651a210a086d616361726f6f6e120867656e657261746512047265616412057772"
    "6974651a160a076d657373616765120472656164120577726974651a170a086f6666636861696e1204726561"
    "64120577726974651a160a076f6e636861696e120472656164120577726974651a140a0570656572731204"
    "72656164120577726974651a180a067369676e6572120867656e657261746512047265616400000620ffa5ce"
    "4d61d5439bed13aaef324b21fb85acfaa2a75b1e38db7e9b4ed85e7c48")
INFO_WITH_IPADDR = (
    "0201036c6e640224030a10b493608461fb6e64810053fa31ef27991201301a0c0a04696e666f12047265616400"
    "0216697061646472203139322e3136382e3139322e3136380000062072ea006233da839ce6e9f4721331a12041"
    "b228d36c0fdad552680f615766d2f4")


def test_real_lnd_macaroons() -> None:
    data, invoice = read_macaroon(POLAR_INVOICE)
    assert data.hex() == POLAR_INVOICE
    assert invoice.location == "lnd" and b"invoices" in invoice.identifier
    assert invoice.caveats == () and len(invoice.signature) == 32
    _, info = read_macaroon(INFO_WITH_IPADDR.upper())  # xxd -u prints upper case
    assert info.caveats == (b"ipaddr 192.168.192.168",)


def test_permissions_from_lnds_identifier() -> None:
    assert lnd_permissions(read_macaroon(POLAR_INVOICE)[1]) == {
        "address:read", "address:write", "invoices:read", "invoices:write", "onchain:read"}
    assert lnd_permissions(read_macaroon(INFO_WITH_IPADDR)[1]) == {"info:read"}
    assert STROM_NEEDS <= lnd_permissions(read_macaroon(POLAR_ADMIN)[1])
    assert STROM_NEEDS <= lnd_permissions(parse_macaroon(bytes.fromhex(FakeLnd().macaroon)))
    # Not LND's identifier, or URI permissions: the node alone decides.
    assert lnd_permissions(parse_macaroon(macaroon_v2(b"\x02opaque"))) is None
    uri = lnd_identifier({"uri": ("/lnrpc.Lightning/GetInfo",)})
    assert lnd_permissions(parse_macaroon(macaroon_v2(uri))) is None


def test_a_file_holds_the_bytes(tmp_path) -> None:
    path = tmp_path / "admin.macaroon"
    path.write_bytes(bytes.fromhex(POLAR_INVOICE))
    assert read_macaroon(f"  {path}\n")[1].location == "lnd"


@pytest.mark.parametrize(("data", "says"), [
    (b"", "empty"),
    (bytes.fromhex(POLAR_INVOICE)[:-1], "runs past the end"),
    (bytes.fromhex(POLAR_INVOICE) + b"\x00", "after the signature"),
    (base64.b64encode(bytes.fromhex(POLAR_INVOICE)), "first byte is not 2"),  # base64, not raw
    (b"\x02\x01\x03lnd\x00\x00\x06\x20" + bytes(32), "no identifier"),
    (b"\x02\x02\x01a\x01\x01b\x00\x00\x06\x20" + bytes(32), "unexpected field type 1"),
    (b"\x02\x02\xff\xff\xff\xff\xff\x01", "too large"),
    (b"\x02\x02\x01a\x00\x00\x06\x01x", "32-byte signature"),
    (b"\x02" + bytes(70_000), "too large"),
])
def test_what_is_refused(data: bytes, says: str) -> None:
    with pytest.raises(MacaroonError, match=says):
        parse_macaroon(data)


@given(st.binary(max_size=300))
def test_any_bytes_are_a_macaroon_or_refused_in_words(data: bytes) -> None:
    try:
        parse_macaroon(data)
    except MacaroonError as exc:
        assert str(exc)


@given(st.binary(min_size=1, max_size=100), st.lists(st.binary(min_size=1, max_size=100),
                                                      max_size=4))
def test_what_lnd_writes_parses(identifier: bytes, caveats: list[bytes]) -> None:
    parsed = parse_macaroon(macaroon_v2(identifier, tuple(caveats)))
    assert (parsed.identifier, parsed.caveats) == (identifier, tuple(caveats))

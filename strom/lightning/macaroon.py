"""Reading an LND macaroon: the V2 binary format, enough to tell a macaroon from anything else.

LND writes its macaroons (`admin.macaroon`, `invoice.macaroon`, …) in the libmacaroons V2 binary
format: a version byte 2, then packets `type, varint length, bytes` — the optional location (1)
and the identifier (2) closed by an end-of-section (0), each caveat (location 1, identifier 2,
verification id 4) closed by 0, a final 0, and the 32-byte signature (6). strom only checks the
structure; the node itself verifies the signature and the permissions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

EOS, LOCATION, IDENTIFIER, VID, SIGNATURE = 0, 1, 2, 4, 6
MAX_BYTES = 64 * 1024  # LND's largest macaroons (admin, many caveats) are well under 1 KiB
_HEX = re.compile(r"^[0-9a-fA-F]+$")


# What LndWallet calls: GetInfo, AddInvoice, SubscribeInvoices, LookupInvoice, SendPaymentV2,
# TrackPaymentV2, ChannelBalance (lnd rpcserver.go / routerrpc permission maps).
STROM_NEEDS = frozenset({"info:read", "invoices:read", "invoices:write", "offchain:read",
                         "offchain:write"})


class MacaroonError(ValueError):
    """Not a macaroon; the message says why in a few words."""


@dataclass(frozen=True)
class Macaroon:
    location: str
    identifier: bytes
    caveats: tuple[bytes, ...]
    signature: bytes


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise MacaroonError("it ends early")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise MacaroonError("a field length is too large")

    def packet(self) -> tuple[int, bytes]:
        kind = self.byte()
        if kind == EOS:
            return EOS, b""
        size = self.varint()
        if self.pos + size > len(self.data):
            raise MacaroonError("a field runs past the end")
        value = self.data[self.pos:self.pos + size]
        self.pos += size
        return kind, value


def _section(reader: _Reader) -> dict[int, bytes]:
    """Packets up to the next end-of-section, in increasing type order as the format requires."""
    fields: dict[int, bytes] = {}
    last = 0
    while True:
        kind, value = reader.packet()
        if kind == EOS:
            return fields
        if kind <= last or kind not in (LOCATION, IDENTIFIER, VID):
            raise MacaroonError(f"unexpected field type {kind}")
        fields[kind] = value
        last = kind


def parse_macaroon(data: bytes) -> Macaroon:
    """The macaroon in `data` (V2 binary), or MacaroonError."""
    if not data:
        raise MacaroonError("it is empty")
    if len(data) > MAX_BYTES:
        raise MacaroonError("it is too large")
    if data[0] != 2:
        raise MacaroonError("it is not in the binary V2 format LND writes (first byte is not 2)")
    reader = _Reader(data)
    reader.pos = 1
    head = _section(reader)
    if IDENTIFIER not in head or VID in head:
        raise MacaroonError("it has no identifier")
    caveats: list[bytes] = []
    while reader.pos < len(reader.data) and reader.data[reader.pos] != EOS:
        caveat = _section(reader)
        if IDENTIFIER not in caveat:
            raise MacaroonError("a caveat has no identifier")
        caveats.append(caveat[IDENTIFIER])
    reader.byte()  # the end of the caveats
    kind, signature = reader.packet()
    if kind != SIGNATURE or len(signature) != 32:
        raise MacaroonError("it has no 32-byte signature")
    if reader.pos != len(reader.data):
        raise MacaroonError("there are bytes after the signature")
    location = head.get(LOCATION, b"").decode("utf-8", "replace")
    return Macaroon(location, head[IDENTIFIER], tuple(caveats), signature)


def _fields(data: bytes) -> list[tuple[int, bytes]]:
    """The length-delimited fields of a protobuf message (varints skipped)."""
    reader, found = _Reader(data), []
    while reader.pos < len(data):
        key = reader.varint()
        if key & 7 == 0:
            reader.varint()
        elif key & 7 == 2:
            size = reader.varint()
            if reader.pos + size > len(data):
                raise MacaroonError("a field runs past the end")
            found.append((key >> 3, data[reader.pos:reader.pos + size]))
            reader.pos += size
        else:
            raise MacaroonError("not an LND identifier")
    return found


def lnd_permissions(macaroon: Macaroon) -> set[str] | None:
    """The `entity:action` pairs LND's identifier grants (version 3: a MacaroonId protobuf
    with repeated `ops {entity, actions}`), or None when strom cannot tell (another identifier
    version, or URI permissions): then the node decides alone."""
    ident = macaroon.identifier
    if not ident or ident[0] != 3:
        return None
    try:
        granted = set()
        for number, op in _fields(ident[1:]):
            if number != 3:
                continue
            parts = _fields(op)
            entity = next((v.decode() for n, v in parts if n == 1), "")
            if entity == "uri":
                return None
            granted |= {f"{entity}:{v.decode()}" for n, v in parts if n == 2}
    except (MacaroonError, UnicodeDecodeError):
        return None
    return granted


def macaroon_file(given: str) -> Path | None:
    """The file a macaroon answer names, or None when the answer is the macaroon in hex."""
    text = given.strip()
    if _HEX.match(text) and len(text) % 2 == 0:  # no file name is all hex digits
        return None
    return Path(text).expanduser()


def read_macaroon(given: str) -> tuple[bytes, Macaroon]:
    """A macaroon given as hex or as a file path: its bytes and what they hold."""
    path = macaroon_file(given)
    if path is None:
        data = bytes.fromhex(given.strip())
    else:
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise MacaroonError(f"cannot read {path}: {exc.strerror}") from None
    return data, parse_macaroon(data)

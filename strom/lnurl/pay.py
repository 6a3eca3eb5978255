"""LUD-06/LUD-16 payRequest: metadata, sendable range, amount validation."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from strom.errors import UserError
from strom.lnurl.errors import LnurlError


def metadata(text: str, identifier: str | None = None,
             image: tuple[str, str] | None = None) -> str:
    """The metadata string; its SHA-256 is the invoice's description hash (LUD-06).

    `image` is (mime type, base64 data), e.g. from `load_image`.
    """
    entries: list[list[str]] = [["text/plain", text]]
    if identifier:
        entries.append(["text/identifier", identifier])
    if image:
        entries.append([f"{image[0]};base64", image[1]])
    return json.dumps(entries)


MAX_IMAGE_BYTES = 128 * 1024
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@functools.cache
def load_image(path: str) -> tuple[str, str]:
    """The configured payRequest image (read once: wallets get the same metadata every time)."""
    mime = _IMAGE_TYPES.get(Path(path).suffix.lower())
    if mime is None:
        raise UserError(f"[lnurl] image_path: {path} must be a .png or .jpg file")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"[lnurl] image_path: cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise UserError(f"[lnurl] image_path: {path} is larger than {MAX_IMAGE_BYTES // 1024} KiB")
    return mime, base64.b64encode(data).decode()


def description_hash(metadata_json: str) -> bytes:
    return hashlib.sha256(metadata_json.encode("utf-8")).digest()


def pay_request(*, callback: str, min_sendable: int, max_sendable: int, metadata_json: str,
                comment_allowed: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "tag": "payRequest", "callback": callback, "minSendable": min_sendable,
        "maxSendable": max_sendable, "metadata": metadata_json,
    }
    if comment_allowed:
        response["commentAllowed"] = comment_allowed
    response.update(extra or {})
    return response


def parse_amount(raw: str | None, min_sendable: int, max_sendable: int) -> int:
    """The callback's `amount` in msat, or an error that tells the payer what is allowed."""
    amount = parse_msat(raw)
    if why := amount_refusal(amount, min_sendable, max_sendable):
        raise LnurlError(why)
    return amount


def parse_msat(raw: str | None) -> int:
    """The callback's `amount` as a whole number of msat (its range is the use case's)."""
    if raw is None or raw == "":
        raise LnurlError("amount is missing: give the amount in millisatoshis")
    try:
        return int(raw)
    except ValueError:
        raise LnurlError(f"amount must be a whole number of millisatoshis, not {raw[:32]!r}") from None


def amount_refusal(amount: int, min_sendable: int, max_sendable: int) -> str | None:
    """Why `amount` msat is outside the payRequest's range, for the payer; None if inside."""
    if amount < min_sendable:
        return f"amount below minimum of {_sat(min_sendable)} sat"
    if amount > max_sendable:
        return f"amount above maximum of {_sat(max_sendable)} sat"
    return None


def parse_comment(raw: str | None, allowed: int) -> str | None:
    if not raw:
        return None
    if len(raw) > allowed:
        raise LnurlError(f"comment too long: at most {allowed} characters")
    return raw


def _sat(msat: int) -> str:
    return f"{msat / 1000:g}"

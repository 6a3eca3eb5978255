"""QR codes (segno) as SVG for pages, PNG for print and text for terminals."""

from __future__ import annotations

import io

import segno


def _code(data: str) -> segno.QRCode:
    # Medium error correction survives a scuffed sticker; upper-case LNURLs stay compact.
    return segno.make_qr(data, error="m")


def svg(data: str, *, scale: int = 6, title: str | None = None) -> str:
    buffer = io.BytesIO()
    _code(data).save(buffer, kind="svg", scale=scale, border=2, xmldecl=False,
                     svgns=True, title=title, svgclass="qr", lineclass=None)
    return buffer.getvalue().decode()


def png(data: str, *, scale: int = 10) -> bytes:
    buffer = io.BytesIO()
    _code(data).save(buffer, kind="png", scale=scale, border=2)
    return buffer.getvalue()


def terminal(data: str) -> str:
    """The QR drawn with block characters (two modules per line), for `strom cp qr` and the TUI."""
    matrix = [[bool(m) for m in row] for row in _code(data).matrix_iter(border=2)]
    if len(matrix) % 2:
        matrix.append([False] * len(matrix[0]))
    chars = {(False, False): "█", (True, False): "▄", (False, True): "▀", (True, True): " "}
    return "\n".join("".join(chars[(top, bottom)] for top, bottom in zip(upper, lower, strict=True))
                     for upper, lower in zip(matrix[::2], matrix[1::2], strict=True))

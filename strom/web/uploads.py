"""A file in an HTTP request body: raw (PUT or POST) or the file part of a multipart form.

Chargers upload diagnostics both ways (a PUT of the file, or a browser-like
`multipart/form-data` POST), and operators upload firmware with curl either way. The body is
read as a stream: the file's bytes are handed on as they arrive (the core bounds them), the
form's other parts are dropped, and the whole body may exceed the file's limit only by
`FORM_SLACK` (headers and small fields).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import Request

FORM_SLACK = 64 * 1024


class RequestFile:
    """The file of one request: `chunks()` streams it; `name` is the name the sender gave
    (the form's `filename`, or `fallback_name`), known once the file has begun."""

    def __init__(self, request: Request, limit: int, fallback_name: str | None = None) -> None:
        self._request = request
        self._limit = limit + FORM_SLACK
        self.name = fallback_name
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._limit:
            raise HTTPException(413, f"the file is larger than {limit} bytes")
        kind, options = parse_options_header(request.headers.get("content-type", ""))
        self._boundary = options.get(b"boundary") if kind == b"multipart/form-data" else None

    async def _body(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._request.stream():
            size += len(chunk)
            if size > self._limit:
                raise HTTPException(413, f"the body is larger than {self._limit} bytes")
            if chunk:
                yield chunk

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._boundary is None:
            async for chunk in self._body():
                yield chunk
            return
        form = _Form(self._boundary)
        async for chunk in self._body():
            for piece in form.feed(chunk):
                yield piece
            if form.filename is not None:
                self.name = form.filename
        if not form.found:
            raise HTTPException(400, "the form has no file part")


class _Form:
    """A streaming multipart/form-data parser keeping the first part with a file name (or
    named `file`)."""

    def __init__(self, boundary: bytes) -> None:
        self.found = False
        self.filename: str | None = None
        self._field, self._value = b"", b""
        self._disposition: dict[bytes, bytes] = {}
        self._taking = False
        self._out: list[bytes] = []
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done, "on_part_data": self._data,
            "on_part_end": self._end})

    def feed(self, chunk: bytes) -> list[bytes]:
        try:
            self._parser.write(chunk)
        except Exception as exc:  # python-multipart raises its own errors for bad forms
            raise HTTPException(400, f"malformed multipart form: {type(exc).__name__}") from None
        out, self._out = self._out, []
        return out

    def _begin(self) -> None:
        self._disposition = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._field.lower() == b"content-disposition":
            self._disposition = parse_options_header(self._value)[1]
        self._field, self._value = b"", b""

    def _headers_done(self) -> None:
        named = self._disposition.get(b"filename")
        wanted = named is not None or self._disposition.get(b"name") == b"file"
        self._taking = wanted and not self.found
        if self._taking:
            self.found = True
            self.filename = named.decode("utf-8", "replace") if named else None

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._taking:
            self._out.append(bytes(data[start:end]))

    def _end(self) -> None:
        self._taking = False

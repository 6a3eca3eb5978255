"""The edges of firmware and diagnostics files: names from outside, multipart bodies, bounds in
size and time, and the links' lifetimes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strom.chargers.control import (
    ControlResult,
    FirmwareRequest,
    Outcome,
    UploadRequest,
    UploadResult,
)
from strom.chargers.files import (
    FileFolder,
    TooLarge,
    TooSlow,
    display_name,
    new_link_token,
    token_fits,
)
from strom.chargers.firmware import FirmwareService, LinkRefused
from strom.config import FilesSettings
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.store.event_log import EventLogRepository
from strom.store.firmware import FirmwareRepository
from strom.timeutil import iso, utcnow
from strom.web.uploads import _Form


@given(st.text(max_size=300))
def test_a_shown_name_is_never_a_path(given_name: str) -> None:
    shown = display_name(given_name, "fallback.bin")
    assert shown and len(shown) <= 100
    assert "/" not in shown and "\\" not in shown and not shown.startswith(".")
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in shown)


def test_names_keep_what_is_safe() -> None:
    assert display_name("../../etc/passwd", "x") == "passwd"
    assert display_name("C:\\fw\\image v2.bin", "x") == "image_v2.bin"
    assert display_name("..", "x") == "x" and display_name(None, "x") == "x"


def test_link_tokens_are_random_and_checked_by_digest() -> None:
    token, digest = new_link_token()
    other, _ = new_link_token()
    assert token != other and len(token) >= 22 and token not in digest
    assert token_fits(token, digest) and not token_fits(other, digest)
    assert not token_fits("", digest)


def _form(content: bytes, filename: str) -> tuple[bytes, bytes]:
    request = httpx.Request("POST", "http://x/", data={"note": "before"},
                            files={"file": (filename, content)})
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    return request.read(), boundary


@settings(max_examples=60, deadline=None)
@given(content=st.binary(max_size=5000), cut=st.integers(1, 700),
       filename=st.text(st.characters(min_codepoint=32, max_codepoint=126,
                                      blacklist_characters='"\\'), min_size=1, max_size=40))
def test_the_form_parser_keeps_exactly_the_file(content: bytes, cut: int, filename: str) -> None:
    body, boundary = _form(content, filename)
    form = _Form(boundary)
    got = b"".join(piece for start in range(0, len(body), cut)
                   for piece in form.feed(body[start:start + cut]))
    assert got == content and form.found and form.filename == filename


async def test_writes_are_bounded_in_size_and_time(tmp_path: Path) -> None:
    folder = FileFolder(tmp_path / "up")

    async def many() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    async def stalls() -> AsyncIterator[bytes]:
        yield b"x"
        await asyncio.sleep(10)
        yield b"y"

    with pytest.raises(TooLarge):
        await folder.receive(many(), limit=5000, seconds=5)
    with pytest.raises(TooSlow):
        await folder.receive(stalls(), limit=5000, seconds=0.05)
    assert list(folder.path.iterdir()) == []  # nothing half-written is kept
    kept = await folder.receive(many(), limit=10_000, seconds=5)
    assert kept.size == 10_000 and folder.file(kept.stored_as).stat().st_mode & 0o777 == 0o600


class Accepting:
    """A charger that takes every update and upload request."""

    def is_connected(self, cp_id: str) -> bool:
        return True

    async def update_firmware(self, cp_id: str, request: FirmwareRequest) -> ControlResult:
        self.location = request.location
        return ControlResult(Outcome.ACCEPTED)

    async def request_upload(self, cp_id: str, request: UploadRequest) -> UploadResult:
        self.location = request.location
        return UploadResult(ControlResult(Outcome.ACCEPTED), "diag.log")


class Chunks:
    name = "fw.bin"

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._data


async def test_links_end_when_they_expire(db: Database, tmp_path: Path) -> None:
    await ChargePointRepository(db).add("cp-1", name="cp", lat=0, lon=0)
    repo, charger = FirmwareRepository(db), Accepting()
    service = FirmwareService(repo, ChargePointRepository(db), charger,  # type: ignore[arg-type]
                              EventLogRepository(db), tmp_path, FilesSettings(),
                              "http://strom.test")
    firmware = await service.add_file(Chunks(b"image"))
    update, result = await service.start_update("cp-1", firmware.id, retrieve_at=None,
                                                retries=None, retry_interval=None, by="test")
    assert result.ok
    token = charger.location.split("/")[-2]
    with pytest.raises(LinkRefused) as wrong:
        await service.claim_download(update.id, token + "x")
    assert wrong.value.why == "unknown"
    # Two at once: the second waits its turn (busy), the first completes and spends the link.
    first = await service.claim_download(update.id, token)
    with pytest.raises(LinkRefused) as busy:
        await service.claim_download(update.id, token)
    assert busy.value.why == "busy" and first.path.read_bytes() == b"image"
    await service.finish_download(update.id, complete=False)  # cut off: may be fetched again
    await service.claim_download(update.id, token)
    await service.finish_download(update.id, complete=True)
    with pytest.raises(LinkRefused) as used:
        await service.claim_download(update.id, token)
    assert used.value.why == "used"

    diagnostics, _ = await service.request_diagnostics("cp-1", by="test")
    upload_token = charger.location.split("/")[-1]
    past = iso(utcnow() - timedelta(seconds=1))
    await repo.settle_diagnostics(diagnostics.id, outcome="accepted", reason=None,
                                  expires_at=past)
    with pytest.raises(LinkRefused) as expired:
        await service.receive_upload(diagnostics.id, upload_token, Chunks(b"late"))
    assert expired.value.why == "expired"
    assert not service.uploads.path.exists() or not any(service.uploads.path.iterdir())

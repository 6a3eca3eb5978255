"""Firmware updates, diagnostics uploads and the 1.6 security extensions, end to end: a running
strom, the admin API over HTTP, and the ocpp library's ChargePoint as the charger, which
downloads and uploads with httpx."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from strom.app import StromApp
from strom.cli import cli
from tests.api.charger import running_charger
from tests.api.conftest import add, ocpp_url
from tests.api.firmware_charger import DIAGNOSTICS, SECURITY_LOG, BasicCharger, FirmwareCharger
from tests.api.flows import newest_item
from tests.conftest import free_settings

IMAGE = bytes(range(256)) * 64  # 16 KiB of "firmware"


async def upload(admin: httpx.AsyncClient, name: str = "fw-2.1.bin",
                 content: bytes = IMAGE) -> dict[str, Any]:
    answer = await admin.post("/api/v1/firmware", params={"name": name}, content=content)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _files(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.exists() else []


async def test_a_firmware_update_runs_through_every_status(
        app: StromApp, admin: httpx.AsyncClient, data_dir: Path) -> None:
    await add(admin)
    # A name with a path in it is shown without it; on disk the file has strom's own name.
    stored = await upload(admin, name="../../etc/fw 2.1.bin")
    assert stored["name"] == "fw_2.1.bin"
    assert stored["size"] == len(IMAGE)
    assert stored["sha256"] == hashlib.sha256(IMAGE).hexdigest()
    [on_disk] = _files(data_dir / "firmware")
    assert on_disk.read_bytes() == IMAGE and "fw" not in on_disk.name
    assert stat.S_IMODE(on_disk.stat().st_mode) == 0o600
    listed = (await admin.get("/api/v1/firmware")).json()["items"]
    assert [f["id"] for f in listed] == [stored["id"]]

    async with running_charger(ocpp_url(app), "cp-1", charger_class=FirmwareCharger) as charger:
        answer = await admin.post("/api/v1/firmware/updates", json={
            "cp_id": "cp-1", "file_id": stored["id"], "retries": 2, "retry_interval": 30})
        assert answer.status_code == 201, answer.text
        assert answer.json()["outcome"] == "accepted"
        update = await newest_item(admin, "/api/v1/firmware/updates?cp_id=cp-1",
                             lambda u: u["status"] == "Installed")
        assert [h["status"] for h in update["history"]] == [
            "Requested", "Downloading", "Downloaded", "Installing", "Installed"]
        # The charger really fetched the image from the one-time link, and only once.
        assert charger.firmware == IMAGE
        assert charger.second_download == 410
        assert update["downloaded_at"] is not None and update["downloads_refused"] == 1
        sent = next(args for action, args in charger.asked if action == "UpdateFirmware")
        assert (sent["retries"], sent["retry_interval"]) == (2, 30)
        location = sent["location"]
        assert location.startswith(f"{app.http_url}/firmware/{update['id']}/")
        assert location.endswith("/fw_2.1.bin")
        # The profile was checked before sending.
        assert ("GetConfiguration", {"key": ["SupportedFeatureProfiles"]}) in charger.asked

        # Asked for its firmware status, the charger (idle now) says Idle: tracked too.
        trigger = await admin.post("/api/v1/commands/cp-1/trigger",
                                   json={"message": "FirmwareStatusNotification"})
        assert trigger.status_code == 200
        update = await newest_item(admin, "/api/v1/firmware/updates?cp_id=cp-1",
                             lambda u: u["status"] == "Idle")

        # The security event it sent after installing is stored and shown.
        event = await newest_item(admin, "/api/v1/charge-points/cp-1/security-events",
                            lambda e: e["type"] == "FirmwareUpdated")
        assert event["tech_info"] == "image installed"

    # The link is a capability: its token is nowhere in the audit or the event log.
    token = location.split("/")[-2]
    assert app.services is not None
    log = await app.services.event_log.recent("cp-1", 200)
    assert token not in json.dumps(log)
    audit = [e["payload"] for e in log if e["kind"] == "operator_command"
             and e["payload"]["command"] == "firmware"]
    assert audit and audit[0]["args"]["update_id"] == update["id"]
    async with httpx.AsyncClient() as anyone:
        assert (await anyone.get(location)).status_code == 410  # spent
        wrong = location.replace(token, token[:-2] + "xx")
        assert (await anyone.get(wrong)).status_code == 404
        # The admin API needs the admin token; the link grants nothing there.
        assert (await anyone.get(f"{app.http_url}/api/v1/firmware")).status_code == 401


async def test_a_failed_download_is_tracked(app: StromApp, admin: httpx.AsyncClient) -> None:
    await add(admin)
    stored = await upload(admin)
    async with running_charger(ocpp_url(app), "cp-1", charger_class=FirmwareCharger) as charger:
        charger.mangle_link = True
        answer = await admin.post("/api/v1/firmware/updates",
                                  json={"cp_id": "cp-1", "file_id": stored["id"]})
        assert answer.status_code == 201
        failed = await newest_item(admin, "/api/v1/firmware/updates",
                                   lambda u: u["status"] == "DownloadFailed")
        assert [h["status"] for h in failed["history"]] == [
            "Requested", "Downloading", "DownloadFailed"]
        assert failed["downloaded_at"] is None and charger.firmware is None


async def test_without_firmware_management_nothing_is_sent(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    await add(admin)
    stored = await upload(admin)
    async with running_charger(ocpp_url(app), "cp-1", charger_class=BasicCharger) as charger:
        answer = await admin.post("/api/v1/firmware/updates",
                                  json={"cp_id": "cp-1", "file_id": stored["id"]})
        assert answer.status_code == 409
        body = answer.json()
        assert body["outcome"] == "not_supported"
        assert "FirmwareManagement" in body["error"] and "nothing was sent" in body["error"]
        assert body["update"]["status"] == "Failed"
        diagnostics = await admin.post("/api/v1/diagnostics", json={"cp_id": "cp-1"})
        assert diagnostics.status_code == 409
        assert "FirmwareManagement" in diagnostics.json()["error"]
        # Only the profiles were read (besides the metering setup at boot): nothing was sent.
        assert {action for action, _ in charger.asked} == {"GetConfiguration"}
        assert charger.asked.count(("GetConfiguration", {"key": ["SupportedFeatureProfiles"]})) == 2
    gone = await admin.post("/api/v1/firmware/updates",
                            json={"cp_id": "cp-1", "file_id": stored["id"]})
    assert gone.status_code == 409 and gone.json()["outcome"] == "not_connected"
    assert "not connected" in gone.json()["error"]
    # A refused update's link is dead at once.
    location_id = body["update"]["id"]
    async with httpx.AsyncClient(base_url=app.http_url) as anyone:
        assert (await anyone.get(f"/firmware/{location_id}/x")).status_code == 404

    bad = [await admin.post("/api/v1/firmware/updates", json=body) for body in (
        {"cp_id": "cp-1", "file_id": 999}, {"cp_id": "nope", "file_id": stored["id"]},
        {"cp_id": "cp-1", "file_id": stored["id"], "retries": -1},
        {"cp_id": "cp-1", "file_id": stored["id"], "signature": "c2ln"})]
    assert [a.status_code for a in bad] == [422, 404, 422, 422]


# The file name EVerest answered in the field (https://github.com/EVerest/libocpp/issues/459):
# colons and all; shown with them replaced, never used as a path.
EVEREST_NAME = "diagnostics-2024-02-07T16:51:50.808ZblrG7o"


@pytest.mark.parametrize(("style", "name", "shown"), [
    ("form", "diag-2026.zip", "diag-2026.zip"),
    ("put", EVEREST_NAME, "diagnostics-2024-02-07T16_51_50.808ZblrG7o")])
async def test_diagnostics_arrive_and_are_listed_and_downloadable(
        app: StromApp, admin: httpx.AsyncClient, data_dir: Path, style: str, name: str,
        shown: str) -> None:
    await add(admin)
    async with running_charger(ocpp_url(app), "cp-1", charger_class=FirmwareCharger) as charger:
        charger.upload_style, charger.diagnostics_name = style, name
        answer = await admin.post("/api/v1/diagnostics", json={
            "cp_id": "cp-1", "since": "2026-11-26T00:00:00Z"})
        assert answer.status_code == 201, answer.text
        assert answer.json()["diagnostics"]["file"] is None
        done = await newest_item(admin, "/api/v1/diagnostics?cp_id=cp-1",
                           lambda d: d["status"] == "Uploaded")
        assert [h["status"] for h in done["history"]] == ["Requested", "Uploading", "Uploaded"]
        assert charger.upload_answers == [201]
        sent = next(args for action, args in charger.asked if action == "GetDiagnostics")
        assert sent["start_time"].startswith("2026-11-26T00:00:00")
        location = sent["location"]
        # A second upload on the same link is refused: it granted one file.
        async with httpx.AsyncClient() as anyone:
            again = await anyone.put(location, content=b"overwrite?")
            assert again.status_code == 410
    assert done["file"]["name"] == shown
    assert done["file"]["size"] == len(DIAGNOSTICS)
    assert done["file"]["sha256"] == hashlib.sha256(DIAGNOSTICS).hexdigest()
    got = await admin.get(f"/api/v1/diagnostics/{done['id']}/file")
    assert got.status_code == 200 and got.content == DIAGNOSTICS
    assert f'filename="{shown}"' in got.headers["content-disposition"]
    [on_disk] = _files(data_dir / "diagnostics")
    assert stat.S_IMODE(on_disk.stat().st_mode) == 0o600 and "diag" not in on_disk.name
    one = await admin.get(f"/api/v1/diagnostics/{done['id']}")
    assert one.json()["id"] == done["id"]
    assert (await admin.get("/api/v1/diagnostics/12345/file")).status_code == 404


async def test_a_charger_with_nothing_to_upload_says_so(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    await add(admin)
    async with running_charger(ocpp_url(app), "cp-1", charger_class=FirmwareCharger) as charger:
        charger.diagnostics = b""
        answer = await admin.post("/api/v1/diagnostics", json={"cp_id": "cp-1"})
        assert answer.status_code == 409
        assert answer.json()["error"] == "charge point cp-1 has no diagnostics to upload"
        assert answer.json()["diagnostics"]["status"] == "Failed"


async def test_security_logs_signed_firmware_and_extended_trigger(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    await add(admin)
    stored = await upload(admin)
    async with running_charger(ocpp_url(app), "cp-1", charger_class=FirmwareCharger) as charger:
        log = await admin.post("/api/v1/diagnostics", json={"cp_id": "cp-1",
                                                            "log": "SecurityLog"})
        assert log.status_code == 201, log.text
        request_id = log.json()["diagnostics"]["id"]
        done = await newest_item(admin, "/api/v1/diagnostics?cp_id=cp-1",
                           lambda d: d["status"] == "Uploaded")
        assert done["kind"] == "SecurityLog" and done["file"]["name"] == "security.log"
        got = await admin.get(f"/api/v1/diagnostics/{request_id}/file")
        assert got.content == SECURITY_LOG
        sent = next(args for action, args in charger.asked if action == "GetLog")
        assert (sent["log_type"], sent["request_id"]) == ("SecurityLog", request_id)

        trigger = await admin.post("/api/v1/commands/cp-1/trigger",
                                   json={"message": "LogStatusNotification"})
        assert trigger.json()["outcome"] == "accepted"
        assert ("ExtendedTriggerMessage", {"requested_message": "LogStatusNotification"}) \
            in charger.asked
        await newest_item(admin, "/api/v1/diagnostics?cp_id=cp-1", lambda d: d["status"] == "Idle")

        signed = await admin.post("/api/v1/firmware/updates", json={
            "cp_id": "cp-1", "file_id": stored["id"],
            "signing_certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "signature": "c2lnbmF0dXJl"})
        assert signed.status_code == 201, signed.text
        update_id = signed.json()["update"]["id"]
        update = await newest_item(admin, "/api/v1/firmware/updates?cp_id=cp-1",
                             lambda u: u["status"] == "Installed")
        assert update["id"] == update_id and update["signed"] is True
        assert [h["status"] for h in update["history"]] == [
            "Requested", "Downloading", "Downloaded", "SignatureVerified", "Installing",
            "Installed"]
        sent = next(args for action, args in charger.asked if action == "SignedUpdateFirmware")
        assert sent["request_id"] == update_id and charger.firmware == IMAGE


@pytest.fixture
async def small_app(data_dir: Path) -> AsyncIterator[StromApp]:
    """strom taking uploads of at most 4 KiB."""
    settings = free_settings(ocpp={"call_timeout": 2.0},
                             files={"upload_max_bytes": 4096, "firmware_max_bytes": 4096,
                                    "transfer_timeout_seconds": 1.0})
    async with StromApp(settings, data_dir) as running:
        yield running


async def test_oversize_uploads_are_refused_and_nothing_is_kept(
        small_app: StromApp, data_dir: Path) -> None:
    assert small_app.services is not None
    headers = {"Authorization": f"Bearer {small_app.services.admin_token}"}
    async with httpx.AsyncClient(base_url=small_app.http_url, headers=headers,
                                 timeout=20) as admin:
        too_big = await admin.post("/api/v1/firmware", content=IMAGE)
        assert too_big.status_code == 413
        assert too_big.json()["error"] == "the file is larger than 4096 bytes"
        # The same through a multipart form, and with no length announced (chunked).
        form = await admin.post("/api/v1/firmware", files={"file": ("fw.bin", IMAGE)})
        assert form.status_code == 413

        async def chunked() -> AsyncIterator[bytes]:
            for start in range(0, len(IMAGE), 1024):
                yield IMAGE[start:start + 1024]

        streamed = await admin.post("/api/v1/firmware", content=chunked())
        assert streamed.status_code == 413, streamed.text
        assert _files(data_dir / "firmware") == []
        small = await admin.post("/api/v1/firmware", files={"file": ("fw.bin", IMAGE[:2000])})
        assert small.status_code == 201 and small.json()["name"] == "fw.bin"

        await add(admin)
        async with running_charger(ocpp_url(small_app), "cp-1",
                                   charger_class=FirmwareCharger) as charger:
            charger.diagnostics = b"x" * 10_000
            assert (await admin.post("/api/v1/diagnostics",
                                     json={"cp_id": "cp-1"})).status_code == 201
            failed = await newest_item(admin, "/api/v1/diagnostics?cp_id=cp-1",
                                 lambda d: d["status"] == "UploadFailed")
            assert charger.upload_answers == [413]
            assert failed["file"] is None
            assert _files(data_dir / "diagnostics") == []
            # The link is not spent by a refused upload: a file within bounds still arrives.
            location = next(a for action, a in charger.asked
                            if action == "GetDiagnostics")["location"]
            async with httpx.AsyncClient() as http:

                async def stalls() -> AsyncIterator[bytes]:
                    yield b"begun"
                    await asyncio.sleep(3)
                    yield b"never"

                slow = await http.put(location, content=stalls())
                assert slow.status_code == 408
                assert slow.json()["error"] == "the upload did not finish within 1 s"
                assert _files(data_dir / "diagnostics") == []
                answer = await http.put(location + "/diag.txt", content=b"short")
                assert answer.status_code == 201, answer.text
                assert answer.json() == {"received": 5,
                                         "sha256": hashlib.sha256(b"short").hexdigest()}
                bad = await http.post(location, content=b"--x\r\n",
                                      headers={"content-type": "multipart/form-data; boundary=x"})
                assert bad.status_code == 410  # spent now, before any parsing


async def test_the_cli_uploads_updates_and_fetches_diagnostics(
        app: StromApp, admin: httpx.AsyncClient, tmp_path: Path, data_dir: Path) -> None:
    await add(admin)
    image = tmp_path / "wallbox-3.0.bin"
    image.write_bytes(IMAGE)
    runner = CliRunner()

    async def strom(*args: str) -> str:
        # The CLI is synchronous: in a thread, so this loop keeps serving it.
        result = await asyncio.to_thread(runner.invoke, cli, [*args, "--data-dir", str(data_dir)])
        assert result.exit_code == 0, result.output
        return result.output

    assert "firmware 1: wallbox-3.0.bin, 16384 bytes" in await strom("firmware", "upload",
                                                                     str(image))
    assert "wallbox-3.0.bin" in await strom("firmware", "list")
    async with running_charger(ocpp_url(app), "cp-1", charger_class=FirmwareCharger):
        assert "update 1 sent to cp-1" in await strom("firmware", "update", "cp-1", "1",
                                                      "--retries", "3")
        await newest_item(admin, "/api/v1/firmware/updates", lambda u: u["status"] == "Installed")
        assert ("Requested → Downloading → Downloaded → Installing → Installed"
                in await strom("firmware", "status", "cp-1"))
        assert "request 1 sent to cp-1" in await strom("diagnostics", "request", "cp-1")
        await newest_item(admin, "/api/v1/diagnostics", lambda d: d["status"] == "Uploaded")
    assert "diag-2026.zip" in await strom("diagnostics", "list")
    shown = json.loads(await strom("cp", "show", "cp-1"))
    assert shown["firmware_update"]["status"] == "Installed"
    assert shown["security_events"][0]["type"] == "FirmwareUpdated"
    target = tmp_path / "got.zip"
    assert "wrote" in await strom("diagnostics", "get", "1", "-o", str(target))
    assert target.read_bytes() == DIAGNOSTICS
    refused = await asyncio.to_thread(runner.invoke, cli, [
        "firmware", "update", "nope", "1", "--data-dir", str(data_dir)])
    assert refused.exit_code == 1


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _csr(key: ec.EllipticCurvePrivateKey, cp_id: str) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cp_id)])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(
        key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()


def _signed(csr_pem: str, ca_key: ec.EllipticCurvePrivateKey) -> str:
    """What the operator's CA makes of a CSR: a certificate, then the CA's own."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Operator CA")])
    now = datetime.now(UTC)

    def cert(subject: x509.Name, key: Any) -> x509.Certificate:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
                .public_key(key).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + timedelta(days=365))
                .sign(ca_key, hashes.SHA256()))

    chain = [cert(csr.subject, csr.public_key()), cert(ca_name, ca_key.public_key())]
    return "".join(c.public_bytes(Encoding.PEM).decode() for c in chain)


async def test_a_charger_certificate_signed_by_the_operators_ca(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    await add(admin)
    async with running_charger(ocpp_url(app), "cp-1", charger_class=FirmwareCharger) as charger:
        charger.csr = _csr(_key(), "cp-1")
        asked = await admin.post("/api/v1/commands/cp-1/trigger",
                                 json={"message": "SignChargePointCertificate"})
        assert asked.json()["outcome"] == "accepted"
        pending = await newest_item(admin, "/api/v1/certificates?cp_id=cp-1",
                                    lambda r: r["status"] == "Pending")
        assert pending["csr"] == charger.csr
        signed = f"/api/v1/certificates/{pending['id']}/signed"
        ca = _key()
        # A chain for another key, or no certificates at all, never reaches the charger.
        wrong = await admin.post(signed, json={"certificate_chain": _signed(
            _csr(_key(), "cp-1"), ca)})
        assert wrong.status_code == 422 and "not for the key" in wrong.json()["error"]
        junk = await admin.post(signed, json={"certificate_chain": "hello"})
        assert junk.status_code == 422
        chain = _signed(charger.csr, ca)
        sent = await admin.post(signed, json={"certificate_chain": chain})
        assert sent.status_code == 201, sent.text
        assert sent.json()["request"]["status"] == "Accepted"
        assert charger.certificate == chain
        assert [a for a, _ in charger.asked].count("CertificateSigned") == 1
        again = await admin.post(signed, json={"certificate_chain": chain})
        assert again.status_code == 409 and "not pending" in again.json()["error"]
        assert (await admin.post("/api/v1/certificates/999/signed",
                                 json={"certificate_chain": chain})).status_code == 404

"""Keeps strom's certificate: an operator's own files, or ACME issuance and renewal.

ACME (`[tls] acme_directory`): at start the stored certificate is served if it covers
`domains` and is not expired, else a self-signed placeholder, so the listeners can start. Once
the HTTP server answers (HTTP-01 needs it), an APScheduler job orders a certificate when the
stored one is a placeholder, does not cover the domains or is past `renew_fraction` of its
lifetime, and then again at that point of the new one. A failed order (ACME server down,
garbage, refused validation) keeps the certificate being served, logs why and tries again
after `acme_retry_seconds` (sooner if the certificate would expire before).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from strom.config import TlsSettings
from strom.errors import UserError
from strom.tls.acme_client import AcmeError, issue
from strom.tls.certs import (
    CertInfo,
    CertPaths,
    ServerTLS,
    read_or_create_key,
    save_combined,
    tls_dir,
)
from strom.tls.selfsigned import placeholder_chain

log = logging.getLogger(__name__)
JOB_ID = "acme-renewal"


class CertManager:
    """The certificate strom serves on HTTPS and OCPP `wss`, and its renewal."""

    def __init__(self, settings: TlsSettings, data_dir: Path) -> None:
        self._settings = settings
        self._data_dir = data_dir
        self.acme = bool(settings.acme_directory)
        self.paths = (CertPaths.acme(data_dir) if self.acme else
                      CertPaths(Path(settings.cert_file), Path(settings.key_file)
                                if settings.key_file else None))
        # token → key authorization while an order is validated (read by the HTTP route)
        self.answers: dict[str, str] = {}
        self.info: CertInfo | None = None
        self._placeholder = False
        self._listeners: list[ServerTLS] = []
        self._scheduler: AsyncIOScheduler | None = None
        self._task: asyncio.Future[bool] | None = None
        self._closing = False

    def prepare(self) -> None:
        """Make sure a certificate file is there to start the listeners with."""
        if self.acme:
            private = tls_dir(self._data_dir)
            private.mkdir(mode=0o700, exist_ok=True)
            private.chmod(0o700)  # whatever the umask made of it
            stored = self._stored()
            if stored is None or stored.expired() or not stored.covers(self._settings.domains):
                self._write_placeholder()
        self.info = self._stored()
        # A placeholder left by an earlier run is served again, but ordered for at once.
        self._placeholder = bool(self.acme and self.info and self.info.self_signed)

    def listener(self) -> ServerTLS:
        """A context for one more listener; renewals reach it too."""
        try:
            tls = ServerTLS(self.paths)
        except (ssl.SSLError, OSError) as exc:
            key = "[tls] cert_file / key_file" if not self.acme else str(self.paths.cert)
            raise UserError(f"{key}: cannot load the certificate {self.paths.cert} "
                            f"({getattr(exc, 'strerror', None) or exc}); give a PEM chain and "
                            "its private key") from None
        self._listeners.append(tls)
        return tls

    def status(self) -> dict[str, object]:
        """For /healthz: what is served and until when (no secrets)."""
        info = self.info
        return {"acme": self.acme, "placeholder": self._placeholder,
                "names": list(info.names) if info else [],
                "not_after": info.not_after.isoformat(timespec="seconds") if info else None}

    async def start(self) -> None:
        """Begin the ACME schedule (call once strom's HTTP server answers on its port)."""
        if not self.acme:
            return
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.start()
        self._schedule(self._due())

    async def close(self) -> None:
        self._closing = True
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _stored(self) -> CertInfo | None:
        try:
            return CertInfo.of_pem(self.paths.cert.read_bytes())
        except (OSError, ValueError):
            return None

    def _write_placeholder(self) -> None:
        key = read_or_create_key(tls_dir(self._data_dir) / "placeholder.key")
        save_combined(self.paths.cert, placeholder_chain(key, self._settings.domains), key)
        log.warning("TLS: serving a self-signed placeholder for %s until ACME delivers",
                    ", ".join(self._settings.domains))

    def _due(self) -> datetime:
        now = datetime.now(UTC)
        if self._placeholder or self.info is None:
            return now
        return max(now, self.info.renew_at(self._settings.renew_fraction))

    def _schedule(self, when: datetime) -> None:
        assert self._scheduler is not None
        self._scheduler.add_job(self._run, "date", run_date=when, id=JOB_ID,
                                replace_existing=True, misfire_grace_time=None)
        log.info("TLS: next ACME order at %s", when.isoformat(timespec="seconds"))

    async def _run(self) -> None:
        # As its own task, so close() can cancel it without APScheduler logging the
        # cancellation as a failed job (the order's thread finishes on its own, bounded by
        # the ACME client's deadlines).
        self._task = asyncio.ensure_future(self.renew())
        try:
            await self._task
        except asyncio.CancelledError:
            if not self._closing:
                raise
        finally:
            self._task = None

    async def renew(self) -> bool:
        """Order a certificate now; True when it is being served. A failure keeps the old."""
        settings = self._settings
        key = read_or_create_key(tls_dir(self._data_dir) / "cert.key")
        try:
            chain = await asyncio.to_thread(
                issue, directory_url=settings.acme_directory, email=settings.acme_email,
                domains=list(settings.domains),
                account_key_pem=read_or_create_key(tls_dir(self._data_dir) / "account.key"),
                cert_key_pem=key, answers=self.answers, ca_bundle=settings.acme_ca_bundle)
            new = CertInfo.of_pem(chain.encode())
        except Exception as exc:  # noqa: BLE001  (whatever the CA sends, renewals go on)
            retry = self._retry_time()
            log.warning("TLS: ACME order for %s failed, keeping the current certificate "
                        "(valid until %s); next try at %s: %s", ", ".join(settings.domains),
                        self.info.not_after.isoformat() if self.info else "?",
                        retry.isoformat(timespec="seconds"),
                        exc if isinstance(exc, AcmeError) else f"{type(exc).__name__}: {exc}")
            self._reschedule(retry)
            return False
        save_combined(self.paths.cert, chain, key)
        for listener in self._listeners:
            listener.reload()
        self.info, self._placeholder = new, False
        log.info("TLS: certificate for %s valid until %s is served",
                 ", ".join(new.names), new.not_after.isoformat(timespec="seconds"))
        self._reschedule(max(datetime.now(UTC), new.renew_at(settings.renew_fraction)))
        return True

    def _retry_time(self) -> datetime:
        now = datetime.now(UTC)
        retry = now + timedelta(seconds=self._settings.acme_retry_seconds)
        if self.info is not None and not self._placeholder:
            # Several tries before the old one runs out.
            retry = min(retry, now + (self.info.not_after - now) / 4)
        return max(retry, now + timedelta(seconds=1))

    def _reschedule(self, when: datetime) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._schedule(when)

"""Debian's Pebble, a real ACME server (Let's Encrypt's test CA), on loopback ports.

Its HTTP-01 validations go to `http_port` (strom's HTTP server); its own HTTPS certificate
comes from a trustme CA the ACME client is told to trust (`ca_bundle`). Certificates it
issues live `validity_seconds`, so a renewal test does not wait for days.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import httpx
import trustme
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from strom.http_server import HttpServer
from strom.tls.acme_client import issue
from strom.tls.certs import new_private_key_pem, save_combined

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Pebble:
    def __init__(self, workdir: Path, *, http_port: int, validity_seconds: int = 3600) -> None:
        self.workdir = workdir
        self.http_port = http_port
        self.validity_seconds = validity_seconds
        self.port = free_port()
        self.management_port = free_port()
        self.ca = trustme.CA()
        self.ca_bundle = workdir / "pebble-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_bundle))
        self._proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "pebble.log"

    def trust(self) -> ssl.SSLContext:
        """A client context that trusts this Pebble's own HTTPS."""
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    async def root(self) -> str:
        """The root of the chains this Pebble issues (a new one each time it starts)."""
        async with httpx.AsyncClient(verify=self.trust()) as client:
            answer = await client.get(f"https://127.0.0.1:{self.management_port}/roots/0")
            return answer.raise_for_status().text

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    async def start(self) -> None:
        leaf = self.ca.issue_cert("127.0.0.1", "localhost")
        leaf.cert_chain_pems[0].write_to_path(str(self.workdir / "pebble-cert.pem"))
        leaf.private_key_pem.write_to_path(str(self.workdir / "pebble-key.pem"))
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(self.workdir / "pebble-cert.pem"),
            "privateKey": str(self.workdir / "pebble-key.pem"),
            "httpPort": self.http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False,
            "certificateValidityPeriod": self.validity_seconds}}
        path = self.workdir / "pebble.json"
        path.write_text(json.dumps(config))
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
               "PEBBLE_AUTHZREUSE": "0"}
        self._spawn(path, env)
        async with httpx.AsyncClient(verify=self.trust()) as client:
            for _ in range(100):
                try:
                    if (await client.get(self.directory)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"pebble did not start: {self.log.read_text()[-2000:]}")

    def _spawn(self, config: Path, env: dict[str, str]) -> None:
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen([PEBBLE, "-config", str(config)], env=env,
                                          stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(5)
            self._proc = None


async def issue_certificate(pebble: Pebble, domain: str) -> tuple[Path, str]:
    """A certificate for `domain` from this Pebble, through strom's ACME client with a bare
    HTTP-01 responder on Pebble's validation port (for a proxy in front of strom): the PEM
    file (chain, then key) and the root that chain leads to."""
    answers: dict[str, str] = {}

    async def answer(request: Request) -> PlainTextResponse:
        text = answers.get(request.path_params["token"])
        return PlainTextResponse(text or "", status_code=200 if text else 404)

    responder = HttpServer(Starlette(routes=[
        Route("/.well-known/acme-challenge/{token}", answer)]), "127.0.0.1", pebble.http_port)
    await responder.start()
    key = new_private_key_pem()
    try:
        chain = await asyncio.to_thread(
            issue, directory_url=pebble.directory, email="", domains=[domain],
            account_key_pem=new_private_key_pem(), cert_key_pem=key, answers=answers,
            ca_bundle=str(pebble.ca_bundle))
    finally:
        await responder.close()
    path = pebble.workdir / f"{domain}.pem"
    save_combined(path, chain, key)
    return path, await pebble.root()

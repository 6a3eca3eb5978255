"""Debian's nginx as the operator's TLS-terminating reverse proxy in front of strom.

The server block is the README's recipe: pages, LNURL, SSE and the relay's websocket to strom's
HTTP port (or the relay's), `/ocpp/` websockets to the OCPP port.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

LOCATION = """
    location {path} {{
        proxy_pass http://127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_buffering off;
        proxy_read_timeout 1h;
    }}
"""

CONFIG = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        {locations}
    }}
}}
"""


class Nginx:
    def __init__(self, workdir: Path, port: int, cert: Path, key: Path) -> None:
        self.dir = workdir / "nginx"
        self.dir.mkdir(exist_ok=True)
        self.port, self.cert, self.key = port, cert, key
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self, routes: dict[str, int]) -> None:
        """`routes`: location path → strom's loopback port."""
        locations = "".join(LOCATION.format(path=p, port=port) for p, port in routes.items())
        # As root, workers would run as nobody and could not use the test's private dirs.
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = self.dir / "nginx.conf"
        conf.write_text(CONFIG.format(dir=self.dir, user=user, port=self.port, cert=self.cert,
                                      key=self.key, locations=locations))
        self._spawn(conf)
        for _ in range(100):
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"nginx did not start: {(self.dir / 'error.log').read_text()}")

    def _spawn(self, conf: Path) -> None:
        self._proc = subprocess.Popen([NGINX, "-p", str(self.dir), "-c", str(conf),
                                       "-e", str(self.dir / "error.log")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(5)
            self._proc = None

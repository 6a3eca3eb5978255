# strom container image: `docker build -t strom .` (see README.md, "Container").
# Stage 1 builds strom's wheel and installs it with the locked dependencies into /opt/strom;
# stage 2 is a slim runtime with that venv only: no compiler, no uv, no source tree.

FROM python:3.11-slim-bookworm AS builder
WORKDIR /src
RUN pip install --no-cache-dir "uv>=0.5,<1"
# The image's own Python, never a downloaded one: the runtime stage has the same interpreter.
ENV UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy
COPY pyproject.toml uv.lock README.md LICENSE ./
COPY strom strom
COPY bots bots
COPY relay relay
COPY tui tui
# The same versions as uv.lock (the wheel itself only states ranges).
RUN uv build --wheel --out-dir /dist \
 && uv export --frozen --no-dev --no-emit-project --no-hashes --output-file /dist/requirements.txt \
 && uv venv --python /usr/local/bin/python3 /opt/strom \
 && uv pip install --no-cache --python /opt/strom/bin/python -r /dist/requirements.txt /dist/*.whl

FROM python:3.11-slim-bookworm
# A system user without a shell; /data is the only place strom writes (the volume).
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin strom \
 && mkdir -p /data /etc/strom \
 && chown strom:strom /data && chmod 0700 /data
COPY --from=builder /opt/strom /opt/strom
# Every setting can come from STROM_<SECTION>_<KEY> (strom.example.toml); the ones here make
# strom serve the container's network and keep its state in the volume. Secrets (macaroon,
# NWC URI) are never baked in: mount them, or pass them at run time.
ENV PATH=/opt/strom/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/data \
    STROM_DATA_DIR=/data \
    STROM_CONFIG=/etc/strom/strom.toml \
    STROM_HTTP_HOST=0.0.0.0 \
    STROM_OCPP_HOST=0.0.0.0
# A config file means production mode (no demo charger); its values are init's defaults and the
# environment overrides them (set STROM_HTTP_PUBLIC_URL and the lightning backend at run time).
RUN strom init --non-interactive --public-url http://127.0.0.1:8000 --backend dev --config /etc/strom/strom.toml --data-dir /tmp/strom-init \
 && rm -rf /tmp/strom-init && chmod 0644 /etc/strom/strom.toml
USER strom
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000 9000
STOPSIGNAL SIGTERM
# No curl in slim images: the venv's Python asks /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('STROM_HTTP_PORT', '8000'), timeout=4)"]
CMD ["strom", "run"]

"""Typed settings: `strom.toml` read with tomllib, overridden by `STROM_*` environment variables.

Every key has a default, so strom runs with no file at all (demo mode). A bad file or value
raises `ConfigError` whose message is one line naming the key and what is expected.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from strom.errors import UserError


class ConfigError(UserError):
    """The configuration file or an environment override is invalid."""


class _Section(BaseModel):
    # Unknown keys are errors: a typo in strom.toml must not be silently ignored.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # What goes into LNURLs, lightning addresses and success actions; empty = http://host:port.
    public_url: str = ""
    # Tiles for the index map, e.g. "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
    # empty = no map, and the browser fetches nothing from anyone but strom.
    map_tiles_url: str = ""
    map_attribution: str = ""  # shown under the map, e.g. "© OpenStreetMap contributors"
    # Reverse proxies whose forwarded headers (X-Forwarded-For/-Proto, Forwarded) are
    # believed: addresses or networks; empty = nobody's.
    trusted_proxies: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _proxies_are_addresses(self) -> HttpSettings:
        for entry in self.trusted_proxies:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {entry!r} is not an address or network "
                                 "(e.g. \"127.0.0.1\" or \"10.0.0.0/8\")") from None
        return self


class TlsSettings(_Section):
    """`[tls]`: HTTPS for the public pages and `wss` for OCPP (strom/tls/)."""

    cert_file: str = ""  # an operator's own PEM chain (key inside, or key_file)
    key_file: str = ""
    acme_directory: str = ""  # ACME directory URL: strom obtains and renews the certificate
    acme_email: str = ""
    domains: list[str] = Field(default_factory=list)
    acme_ca_bundle: str = ""  # trust this CA for the ACME server (a test CA); empty = system
    https_port: int = Field(8443, ge=0, le=65535)
    renew_fraction: float = Field(0.6667, gt=0, lt=1)  # of the lifetime: 2/3, as ACME CAs advise
    acme_retry_seconds: float = Field(3600.0, gt=0)

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file or self.acme_directory)

    @model_validator(mode="after")
    def _complete(self) -> TlsSettings:
        if self.cert_file and self.acme_directory:
            raise ValueError("set either cert_file or acme_directory, not both")
        if self.acme_directory and not self.domains:
            raise ValueError("acme_directory needs domains (the names to certify)")
        return self


class OcppSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(9000, ge=0, le=65535)
    tls_cert: str = ""
    tls_key: str = ""
    # Security profile 3 (strom/ocpp/client_certs.py): the CA of chargers' client certificates
    # (needs tls_cert and tls_key); required: refuse chargers without one at the handshake.
    tls_client_ca: str = ""
    tls_client_required: bool = False
    # strom's CA signing chargers' CSRs (SignCertificate, strom/ocpp/cert_signing.py), PEM
    # paths; empty: the data dir's from `strom ocpp ca init`, if any. Trusted like tls_client_ca.
    ca_cert: str = ""
    ca_key: str = ""
    heartbeat_interval: int = Field(300, ge=1)
    call_timeout: float = Field(30.0, gt=0)
    ping_interval: float = Field(20.0, gt=0)
    ping_timeout: float = Field(20.0, gt=0)
    max_message_bytes: int = Field(65536, ge=1024)
    # Token bucket per connection: sustained messages per second and burst size.
    rate_limit_per_second: float = Field(20.0, gt=0)
    rate_limit_burst: int = Field(100, ge=1)
    # Longest MeterValueSampleInterval strom asks chargers for at boot (seconds); 0: leave it.
    meter_sample_interval: int = Field(30, ge=0, le=3600)
    # Wrong passwords per charger id and per address before backoff (strom/ocpp/auth_throttle.py);
    # the backoff doubles up to auth_backoff_max_seconds, and one failure leaks away per that.
    auth_failure_budget: int = Field(5, ge=1)
    auth_backoff_max_seconds: float = Field(60.0, gt=0)


class RelaySettings(_Section):
    embedded: bool = True
    host: str = "127.0.0.1"
    port: int = Field(7777, ge=0, le=65535)
    write_policy: Literal["open", "strom"] = "open"
    public_url: str = ""  # the wss:// URL clients know the relay by, if proxied


class NostrSettings(_Section):
    relays: list[str] = Field(default_factory=list)
    keys_file: str = "nostr-keys.toml"
    notify_every_kwh: float = Field(5.0, gt=0)


class LndSettings(_Section):
    url: str = "https://127.0.0.1:8080"
    macaroon_hex: str = ""
    macaroon_path: str = ""
    tls_cert: str = ""


class NwcSettings(_Section):
    uri: str = ""


class LightningSettings(_Section):
    backend: Literal["dev", "lnd", "nwc"] = "dev"
    network: Literal["regtest", "testnet", "signet", "mainnet"] = "regtest"
    invoice_expiry: int = Field(600, ge=60)
    max_fee_msat: int = Field(10_000, ge=0)
    # The dev wallet's invoice-signing processes (strom/lightning/signing.py); -1: one per core
    # (at most 4; none on a single core), 0: sign on the loop.
    signing_workers: int = Field(-1, ge=-1, le=16)
    lnd: LndSettings = Field(default_factory=LndSettings)
    nwc: NwcSettings = Field(default_factory=NwcSettings)


class LnurlSettings(_Section):
    success_action: Literal["url", "aes"] = "url"
    comment_allowed: int = Field(140, ge=0, le=2000)
    image_path: str = ""
    # Invoice-making callbacks per client address (strom/web/rate_limits.py).
    callbacks_per_minute: float = Field(30.0, gt=0)
    callback_burst: int = Field(10, ge=1)


class SlowRateSettings(_Section):
    """`[tariff.slow_rate]`: a cheaper rate a driver may pick when paying, for slower charging.

    `max_power_w` 0: no slow rate. Its energy price is `price_msat_per_kwh` when set, else the
    normal price less `discount_percent` (which also follows a dynamic price); never above the
    normal price.
    """

    max_power_w: int = Field(0, ge=0, le=10_000_000)
    price_msat_per_kwh: int | None = Field(None, ge=0)
    discount_percent: int = Field(0, ge=0, le=100)


class DynamicTariffSettings(_Section):
    """`[tariff.dynamic]`: EUR/kWh = (spot EUR/MWh / 1000 x markup + fixed) x (1 + tax/100)."""

    markup: float = Field(1.0, ge=0, allow_inf_nan=False)
    fixed_eur_per_kwh: float = Field(0.15, allow_inf_nan=False)
    tax_percent: float = Field(19.0, ge=0, le=100, allow_inf_nan=False)
    # Bounds in msat/kWh guard drivers and operator against a feed gone mad.
    floor_msat_per_kwh: int = Field(0, ge=0)
    ceiling_msat_per_kwh: int = Field(5_000_000, ge=1)
    # Expensive hours: while a charger's price is above this (0: never), its sessions in a site
    # (`strom site`) charge at most `expensive_max_power_w`.
    expensive_above_msat_per_kwh: int = Field(0, ge=0)
    expensive_max_power_w: int = Field(3680, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _floor_below_ceiling(self) -> DynamicTariffSettings:
        if self.floor_msat_per_kwh > self.ceiling_msat_per_kwh:
            raise ValueError("floor_msat_per_kwh must not exceed ceiling_msat_per_kwh")
        return self


class TariffFeedSettings(_Section):
    """`[tariff.feeds]`: where the spot price and the BTC/EUR rate come from."""

    spot_provider: Literal["awattar", "json", "csv"] = "awattar"
    # http(s) URL or file path.
    spot_url: str = "https://api.awattar.de/v1/marketdata"
    btc_url: str = "https://api.coingecko.com/api/v3/simple/price?ids=bitcoin&vs_currencies=eur"
    btc_json_path: str = "bitcoin.eur"
    interval_seconds: int = Field(900, ge=1)
    max_age_seconds: int = Field(7200, ge=1)
    timeout_seconds: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _age_above_interval(self) -> TariffFeedSettings:
        # Otherwise every feed goes stale between two fetches.
        if self.max_age_seconds <= self.interval_seconds:
            raise ValueError("max_age_seconds must be larger than interval_seconds")
        return self


class ReservationSettings(_Section):
    """`[tariff.reservation]`: pay to hold a connector (chargers with OCPP's Reservation
    profile only). The fee becomes the session's budget when the reserver pays to charge
    within the time; otherwise it is kept or refunded."""

    fee_msat: int = Field(0, ge=0)  # 0: reservations are not offered
    minutes: float = Field(15.0, gt=0, le=24 * 60)
    # A reservation that expires (or the payer cancels) unused: "kept" (the operator's) or
    # "refunded" (the payer withdraws it). The operator's cancel always refunds.
    unused_fee: Literal["kept", "refunded"] = "kept"
    # How often reservations are sent to chargers and looked at for expiry.
    check_interval_seconds: float = Field(2.0, gt=0)


class TariffSettings(_Section):
    """The default tariff; a charge point may override any price of it.

    In `dynamic` mode the energy price follows the feeds, and `price_msat_per_kwh` is the
    fallback while they are stale or broken.
    """

    mode: Literal["static", "dynamic"] = "static"
    price_msat_per_kwh: int = Field(300_000, ge=0)
    session_fee_msat: int = Field(0, ge=0)
    price_msat_per_minute: int = Field(0, ge=0)
    grace_minutes: int = Field(30, ge=0)
    min_prepay_msat: int = Field(1_000_000, ge=1000)
    max_prepay_msat: int = Field(100_000_000, ge=1000)
    # How a dynamic price holds once paid: "session" (the paid slot's price to the end) or
    # "slot" (each later slot at its own price, never above the paid one).
    price_lock: Literal["session", "slot"] = "session"
    dynamic: DynamicTariffSettings = Field(default_factory=DynamicTariffSettings)
    slow_rate: SlowRateSettings = Field(default_factory=SlowRateSettings)
    feeds: TariffFeedSettings = Field(default_factory=TariffFeedSettings)
    reservation: ReservationSettings = Field(default_factory=ReservationSettings)


class SessionSettings(_Section):
    start_timeout: float = Field(120.0, gt=0)
    stop_timeout: float = Field(30.0, gt=0)
    refund_expiry_days: int = Field(30, ge=1)
    # Stop when consumed + margin reaches the budget, so the last metering interval cannot overrun.
    safety_margin_msat: int = Field(20_000, ge=0)
    # Refunds to a zap payer's lightning address: tries, and the wait before the first retry
    # (doubling after each); after the last failure the withdraw link is the payer's way.
    address_refund_attempts: int = Field(3, ge=1, le=10)
    address_refund_backoff_seconds: float = Field(60.0, gt=0)
    # Unpaid invoices (and sessions that never got money) are purged this long after the
    # invoice expired, once the wallet confirms it can no longer be paid.
    unpaid_grace_seconds: float = Field(600.0, ge=0)
    purge_interval_seconds: float = Field(60.0, gt=0)
    # How often paid invoices and paid sessions the store shows are checked for one nobody
    # acted on (an `InvoicePaid` lost or its handler failed): it is applied or started then.
    reconcile_interval_seconds: float = Field(3.0, gt=0)
    # The most a connector can deliver, in W: while a stop is unconfirmed this much power since
    # the last reading is held back from the refund (the session's observed maximum if larger).
    max_power_w: float = Field(22_000.0, gt=0)
    # No usable reading for this many meter intervals (`[ocpp] meter_sample_interval`) while
    # charging: TriggerMessage(MeterValues), then, still none one interval later, stop.
    watchdog_intervals: int = Field(3, ge=1)


class OutboundSettings(_Section):
    """Fetches strom makes for outsiders and its config (lightning addresses, LNURL callbacks,
    tariff feeds, relays named in zap requests): see strom/outbound.py."""

    # Loopback, private, link-local… targets are refused unless this is true (a payer's
    # lightning address must not reach strom's admin port or the LAN).
    allow_private: bool = False
    timeout_seconds: float = Field(10.0, gt=0)  # total per fetch, not per read
    max_bytes: int = Field(1_048_576, ge=1024)  # a larger answer is cut and refused
    concurrency: int = Field(4, ge=1)  # fetches at once; more wait (inside their deadline)


class FilesSettings(_Section):
    """`[files]`: firmware strom serves to chargers and diagnostics they upload to it."""

    # The base URL chargers reach strom's HTTP at (empty: [http] public_url). Chargers on a
    # LAN may need the LAN address; the links carry their own tokens.
    base_url: str = ""
    firmware_max_bytes: int = Field(256 * 1024 * 1024, ge=1024)  # an operator's upload
    upload_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)  # a charger's diagnostics or log
    # How long a link stays valid: a firmware link from its retrieve date (plus the retries'
    # time), an upload link from the request.
    link_seconds: int = Field(3600, ge=60)
    transfer_timeout_seconds: float = Field(600.0, gt=0)  # one upload or download, start to end


class PassthroughSettings(_Section):
    """Chargers that keep their own backend (a charge point's `upstream`): see
    strom/passthrough/ and docs/architecture.md "Passthrough"."""

    # How long a charger's call waits for the backend's answer before strom answers it itself.
    answer_timeout: float = Field(10.0, gt=0)
    # Charger -> backend calls kept while the backend is away, replayed in order when it is back.
    queue_max_messages: int = Field(1000, ge=1)
    queue_max_bytes: int = Field(1_048_576, ge=1024)
    # Reconnecting to the backend: doubling from min to max seconds, each wait with jitter.
    reconnect_min_seconds: float = Field(1.0, gt=0)
    reconnect_max_seconds: float = Field(60.0, gt=0)
    # The backend's calls to the charger: token bucket, and at most this many unanswered.
    backend_rate_per_second: float = Field(20.0, gt=0)
    backend_rate_burst: int = Field(100, ge=1)
    backend_calls_in_flight: int = Field(32, ge=1)


class OcpiSettings(_Section):
    """strom as an OCPI 2.2.1 CPO (issue 24): who it is to eMSPs and where its sites are."""

    country_code: str = Field("DE", pattern=r"^[A-Z]{2}$")  # ISO 3166-1 alpha-2
    party_id: str = Field("STR", pattern=r"^[A-Z0-9]{3}$")  # ISO 15118 operator id
    business_name: str = "strom"
    country: str = Field("DEU", pattern=r"^[A-Z]{3}$")  # Locations' ISO 3166-1 alpha-3
    city: str = ""  # Locations' city (strom keeps coordinates, not addresses)
    time_zone: str = "UTC"  # Locations' IANA time zone
    push_queue: int = Field(1000, ge=1)  # pending pushes per eMSP; more: the oldest are dropped
    push_attempts: int = Field(5, ge=1)  # tries of one push, waiting 1 s, 2 s, 4 s … between
    push_backoff_seconds: float = Field(1.0, gt=0)  # the first wait; it doubles each try
    # Tariffs, Sessions and CDRs in BTC (exact) or in EUR at the [tariff.feeds] BTC/EUR rate.
    currency: Literal["BTC", "EUR"] = "BTC"


class ChargePointOverrides(_Section):
    """`[charge_points.ID]`: per-charger settings that are not kept in the store."""

    external_lnurl: str = ""


class Settings(_Section):
    http: HttpSettings = Field(default_factory=HttpSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    ocpp: OcppSettings = Field(default_factory=OcppSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    nostr: NostrSettings = Field(default_factory=NostrSettings)
    lightning: LightningSettings = Field(default_factory=LightningSettings)
    lnurl: LnurlSettings = Field(default_factory=LnurlSettings)
    tariff: TariffSettings = Field(default_factory=TariffSettings)
    sessions: SessionSettings = Field(default_factory=SessionSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    files: FilesSettings = Field(default_factory=FilesSettings)
    passthrough: PassthroughSettings = Field(default_factory=PassthroughSettings)
    ocpi: OcpiSettings = Field(default_factory=OcpiSettings)
    charge_points: dict[str, ChargePointOverrides] = Field(default_factory=dict)

    @property
    def public_url(self) -> str:
        """Base URL for links handed to wallets and users, without a trailing slash."""
        if self.http.public_url:
            return self.http.public_url.rstrip("/")
        if self.tls.domains and self.tls.enabled:
            port = "" if self.tls.https_port == 443 else f":{self.tls.https_port}"
            return f"https://{self.tls.domains[0]}{port}"
        host = self.http.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.http.port}"


def plain_http_allowed(host: str) -> bool:
    """LUD-01: wallets take an http:// LNURL only on loopback and .onion hosts."""
    if host == "localhost" or host.endswith(".onion"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_https_public_url(settings: Settings, *, demo: bool) -> None:
    """Outside demo mode, wallets must get an https URL (LUD-01): plain http only for loopback
    (a wallet on the same machine) and `.onion` (Tor encrypts end to end)."""
    url = settings.public_url
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"[http] public_url: expected an https:// URL, got {url!r}")
    if demo or plain_http_allowed(parts.hostname):
        return
    raise ConfigError(f"[http] public_url: wallets refuse http:// LNURLs (LUD-01), got {url!r}; "
                      "use https:// (a certificate from [tls] or a reverse proxy), a .onion "
                      "address or loopback")


def _leaf_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Map every `STROM_SECTION_KEY` name to its path in the settings tree."""
    paths: dict[str, tuple[str, ...]] = {}
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.update(_leaf_paths(annotation, path))
        elif name != "charge_points":
            paths["STROM_" + "_".join(path).upper()] = path
    return paths


_ENV_PATHS = _leaf_paths(Settings)


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for var, path in _ENV_PATHS.items():
        if var not in environ:
            continue
        raw = environ[var]
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        # Lists come as comma-separated values; pydantic coerces the rest from strings.
        field = _field_for(path)
        node[path[-1]] = [s.strip() for s in raw.split(",") if s.strip()] if field is list else raw
    return overrides


def _field_for(path: tuple[str, ...]) -> Any:
    model: Any = Settings
    for part in path[:-1]:
        model = model.model_fields[part].annotation
    annotation = model.model_fields[path[-1]].annotation
    return getattr(annotation, "__origin__", annotation)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ErrorDetails, source: str) -> str:
    loc = [str(p) for p in error["loc"]]
    key = f"[{'.'.join(loc[:-1])}] {loc[-1]}" if len(loc) > 1 else loc[0] if loc else "(root)"
    env = "STROM_" + "_".join(loc).upper()
    if source == "environment":
        where = env
    else:
        where = f"{source} or {env}" if env in _ENV_PATHS else source
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key {key}"
    given = error.get("input")
    shown = "" if isinstance(given, dict) else f", got {given!r}"
    msg = str(error["msg"])  # its first letter only: the allowed values keep their case
    return f"{where}: {key}: {msg[:1].lower()}{msg[1:]}{shown}"


def load_settings(path: Path | None, environ: dict[str, str] | None = None) -> Settings:
    """Read `path` (None: defaults only) and apply `STROM_*` overrides from `environ`."""
    environ = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    source = "environment"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        return Settings.model_validate(_merge(data, _env_overrides(environ)))
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors()[0], source)) from None

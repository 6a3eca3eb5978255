"""Shapes of the JSON answers, for the OpenAPI document (contract §6 and the admin API).

These models only describe; the route modules build their answers from the domain objects.
Every object may grow new keys (contract: extend, don't rename), so none forbids extras.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str


class Error(BaseModel):
    """Every error: a reason a person understands; 422 adds the fields at fault."""

    error: str
    fields: list[FieldError] | None = None
    code: str | None = None


class LnurlAnswer(BaseModel):
    """LUD-06/03 answer, or `{"status": "ERROR", "reason": "…"}`."""

    status: str | None = None
    reason: str | None = None
    tag: str | None = None


class Location(BaseModel):
    lat: float
    lon: float
    geohash: str


class Connector(BaseModel):
    id: int
    status: str
    lnurl: str | None = None


class Tariff(BaseModel):
    price_msat_per_kwh: int
    session_fee_msat: int
    price_msat_per_minute: int
    currency: str
    source: str
    valid_until: str | None
    lock: str = Field("session", description="How a paid price holds for later energy: "
                      "`session` (to the end) or `slot` (each later slot at its own price, "
                      "this one as a cap).")
    later_prices: list[list[Any]] | None = Field(
        None, description="With `lock` = `slot`: [start, end, msat per kWh] of later slots.")


class ChargePoint(BaseModel):
    id: str
    name: str
    pubkey: str | None
    npub: str | None
    lud16: str
    lnurl: str
    url: str
    status: str
    location: Location
    connectors: list[Connector]
    tariff: Tariff


class SessionBrief(BaseModel):
    id: str
    state: str
    connector_id: int | None
    energy_wh: float
    power_w: float | None
    paid_msat: int
    consumed_msat: int


class MeteringSetup(BaseModel):
    """Per configuration key: the value strom set, the value already fine, or why not."""

    changed: dict[str, str]
    kept: dict[str, str]
    failed: dict[str, str]


class AdminChargePoint(ChargePoint):
    connected: bool
    num_connectors: int
    vendor: str | None
    model: str | None
    firmware: str | None
    last_seen: str | None
    ocpp_protocol: str | None = Field(
        None, description="The OCPP subprotocol it last connected with, e.g. ocpp2.0.1.")
    ocpp_protocols: list[str] = Field(
        default_factory=list, description="The OCPP subprotocols it may use.")
    security_profile: int = Field(1, description="OCPP security profile: 1, 2 or 3.")
    client_cert_sha256: str | None = Field(
        None, description="Profile 3: the SHA-256 of the one client certificate let in.")
    boot: str = Field("Accepted", description="Its BootNotification's answer: Accepted or "
                                              "Rejected (then all it sends is refused).")
    has_password: bool
    tariff_override: dict[str, int]
    power_w: float
    sessions: list[SessionBrief]
    earned_today_msat: int
    metering: MeteringSetup | None = Field(
        None, description="How strom configured the charger's metering at its last boot.")


class Session(BaseModel):
    id: str
    cp_id: str
    connector_id: int | None
    state: str
    paid_msat: int
    consumed_msat: int
    refunded_msat: int
    refundable_msat: int
    held_msat: int = Field(0, description="Kept back while a stop is unconfirmed "
                           "(state stopping_unconfirmed): the worst case the charger may "
                           "still deliver; refundable after its final reading.")
    unbilled_msat: int = Field(0, description="What energy and time the charger delivered "
                               "beyond the payment would have cost (not collected).")
    unbilled_wh: float = Field(0.0, description="unbilled_msat in Wh at the session's price.")
    energy_wh: float
    started_at: str | None
    stopped_at: str | None
    stop_reason: str | None
    stop_requested: bool = Field(False, description="A stop was asked while starting (the "
                                 "charger had not started yet): the payment is held, no "
                                 "refund offered, until the charger's answer (it starts: "
                                 "stopped and billed; it does not in time: all refundable).")
    lnurlw: str | None = Field(description="Stop & refund (LUD-03): only in the payer's view")
    view_url: str | None = Field(None, description="Read-only page of this session (shareable)")
    topup_lnurl: str | None = Field(None, description="Top-up payRequest: it can only pay")
    reservation_fee_msat: int = Field(0, description="The reservation fee this session began "
                                      "with (0: not a reservation)")
    reserved_until: str | None = Field(None, description="Until when the reserved connector "
                                       "is held (state reserved)")


class PageBase(BaseModel):
    total: int
    limit: int
    offset: int


class ChargePointPage(PageBase):
    items: list[AdminChargePoint]


class SessionPage(PageBase):
    items: list[Session]


class TariffOfChargePoint(BaseModel):
    cp_id: str
    override: dict[str, int]
    current: Tariff


class FeedStatus(BaseModel):
    mode: str
    fallback: bool
    reason: str | None
    spot_age_seconds: int | None
    btc_age_seconds: int | None
    spot_error: str | None
    btc_error: str | None
    btc_eur: float | None


class TariffPage(PageBase):
    default: dict[str, int]
    mode: str
    feeds: FeedStatus
    items: list[TariffOfChargePoint]


class QuotesCancelled(BaseModel):
    cancelled: int = Field(description="How many open quotes ended; their wallets must load "
                                       "the price again.")


class Key(BaseModel):
    cp_id: str
    npub: str | None
    pubkey: str | None
    encrypted: bool
    charge_point_exists: bool


class KeyPage(PageBase):
    items: list[Key]


class KeyChange(Key):
    previous_npub: str | None = None
    warning: str | None = None
    rotate_warning: str | None = None


class CommandResult(BaseModel):
    cp_id: str
    command: str
    status: str | None = Field(description="The charger's own answer (Accepted, Unlocked, …).")
    outcome: str = Field(description="accepted, scheduled, rejected or not_supported: the"
                         " answer in words every protocol shares.")


class LedgerSummary(BaseModel):
    sessions: int
    received_msat: int
    consumed_msat: int
    refunded_msat: int
    forfeited_msat: int
    held_msat: int = 0
    refundable_msat: int
    unbilled_msat: int = 0
    today_since: str
    earned_today_msat: int
    earned_today_by_cp: dict[str, int]
    wallet_balance_msat: int | None


class LedgerReport(BaseModel):
    ok: bool
    sessions: int
    received_msat: int
    consumed_msat: int
    refunded_msat: int
    forfeited_msat: int
    held_msat: int = 0
    refundable_msat: int
    unbilled_msat: int = 0
    extra_transactions: list[dict[str, Any]] = Field(
        default_factory=list, description="Extra transactions: ones a charger started with a "
        "session's idTag while the session had its own (not the payer's, never billed): "
        "`transaction_id`, `cp_id`, `connector_id`, `session_id`, `open`, `energy_wh` "
        "(null while open).")
    extra_unbilled_wh: float = Field(0.0, description="What the stopped extra transactions "
                                     "delivered: energy nobody was billed for.")
    problems: list[str]
    findings: list[str] = Field(default_factory=list, description="Unbilled energy (money "
                                "strom could not collect) and refunds paid while a stop was "
                                "unconfirmed: worth knowing, not ledger errors (ok stays true).")
    problem_kinds: list[dict[str, str | None]] = Field(
        default_factory=list, description="Each problem with its `kind` (e.g. "
        "`refund_not_to_payer`, `refund_before_final_reading`) and `session_id`.")
    card_sessions: int = Field(0, description="Sessions started by owner cards (no payment).")
    card_consumed_msat: int = Field(0, description="What card sessions drew from accounts.")
    card_accounts_msat: int = Field(0, description="What the prepaid card accounts hold.")
    roaming_sessions: int = Field(0, description="Sessions started by eMSPs over OCPI.")
    roaming_owed_msat: int = Field(0, description="What eMSPs owe for roaming sessions.")


class Health(BaseModel):
    status: str
    demo: bool
    checks: dict[str, Any]


class DevPayment(BaseModel):
    payment_hash: str
    status: str
    amount_msat: int
    settled: bool


class Nip05(BaseModel):
    names: dict[str, str]
    relays: dict[str, list[str]] | None = None


class SiteCharger(BaseModel):
    cp_id: str
    max_w: int | None = Field(description="The whole charger's cap in W; null: the site's.")
    refuses_limits: str | None = Field(description="Why the charger takes no power limits"
                                       " (its sessions charge unlimited); null: it takes them.")


class SiteAllocation(BaseModel):
    cp_id: str
    connector_id: int
    transaction_id: int
    watts: int = Field(description="The session's share of the site's limit in W.")
    waiting: bool = Field(description="Its minimum did not fit: it waits at 0 W.")
    outcome: str | None = Field(description="The charger's answer to the limit (accepted,"
                                " rejected, not_supported, not_connected, timeout, error).")
    reason: str | None
    read_back_w: float | None = Field(description="The limit the charger says it applies"
                                      " (GetCompositeSchedule); null where it cannot tell.")


class Site(BaseModel):
    id: str
    name: str
    limit_w: int
    min_w: int
    created_at: str
    chargers: list[SiteCharger]
    allocated_w: int
    allocations: list[SiteAllocation]


class SiteList(BaseModel):
    items: list[Site]

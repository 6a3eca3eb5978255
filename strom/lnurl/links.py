"""The links a charger's QR and page offer, in every form wallets understand."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from strom.lnurl.codec import lnurl_encode, lud17


@dataclass(frozen=True, slots=True)
class PayLinks:
    """How to pay one target (`cp_id` or `cp_id-connector`)."""

    url: str           # the LNURL-pay endpoint in clear
    lnurl: str         # LUD-01 bech32, upper-case
    lud17: str         # lnurlp://host/lnurlp/target
    lightning: str     # lightning:LNURL1… (the "open in wallet" link)
    web: str           # {public_url}/cp/{id}?lightning=LNURL1…: what the sticker's QR encodes
    address: str       # LUD-16 lightning address target@host


def pay_links(public_url: str, cp_id: str, connector_id: int | None = None,
              rate: str | None = None) -> PayLinks:
    """The links to pay `cp_id` (any free connector, or `connector_id`), at `rate` if given
    (`slow`: the slow rate, `?rate=slow`)."""
    target = cp_id if connector_id is None else f"{cp_id}-{connector_id}"
    url = f"{public_url}/lnurlp/{quote(target)}" + (f"?rate={quote(rate)}" if rate else "")
    encoded = lnurl_encode(url)
    return PayLinks(
        url=url, lnurl=encoded, lud17=lud17(url, "lnurlp"), lightning=f"lightning:{encoded}",
        web=f"{public_url}/cp/{quote(cp_id)}?lightning={encoded}",
        address=f"{target}@{urlsplit(public_url).netloc}")

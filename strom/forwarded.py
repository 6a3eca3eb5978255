"""Who is really asking, behind reverse proxies the operator trusts (`[http] trusted_proxies`).

uvicorn does this for strom's HTTP; the OCPP and relay websockets have their own servers, so
they ask here. Only a peer in the trusted set may say who its client is, and of the
X-Forwarded-For list only the entries that trusted proxies appended count: the rightmost
address that is not a trusted proxy is the client (anything left of it may be made up).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(proxies: Iterable[str]) -> tuple[Network, ...]:
    """`["127.0.0.1", "10.0.0.0/8"]` → networks; raises ValueError on a bad entry."""
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(peer: str, forwarded_for: str | None,
                   networks: tuple[Network, ...]) -> str:
    """The client's address: `peer`, or what trusted proxies say in X-Forwarded-For."""
    if not networks or not forwarded_for or not _trusted(peer, networks):
        return peer
    for entry in reversed([e.strip() for e in forwarded_for.split(",") if e.strip()]):
        if not _trusted(entry, networks):
            return entry
    return peer

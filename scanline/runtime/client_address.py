"""Which network address a call came from, as far as it can be trusted.

Throttles are kept per client address, so the address must be one the client cannot
choose. A function is reached through proxies (the watchdog on loopback, the gateway, an
ingress); each may append its peer to ``X-Forwarded-For``, and a client may put anything
before that. So the chain is read from the right — the function's own peer first — and
every hop that is a configured proxy (``TRUSTED_PROXIES``, CIDRs) is skipped; the first
one that is not is the client. What the client wrote further left is never reached.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(setting: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in setting.split(",") if part.strip())


def trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # not an address: certainly not one of our proxies
    return any(ip in network for network in proxies)


def client_address(peer: str, forwarded_for: str, proxies: Sequence[Network]) -> str:
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()] if forwarded_for else []
    chain = [*hops, peer] if peer else hops
    for hop in reversed(chain):
        if not trusted(hop, proxies):
            return hop[:64]
    # Every hop is one of ours: the leftmost is the closest we know to the client.
    return (chain[0] if chain else "")[:64]

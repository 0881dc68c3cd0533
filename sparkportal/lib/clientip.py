"""The client's address: the peer, or what trusted proxies say in X-Forwarded-For.

Anyone can send X-Forwarded-For, so it is read only when the peer is one of PORTAL_TRUSTED_PROXIES,
and then from the right: each trusted proxy appends the address it saw, so the rightmost entry that
is not itself a trusted proxy is the client. Entries to its left were written by the client and may
be forged. Audit rows, the login lock-out (django-axes) and the gateway's ledger all use this one rule.
"""
import ipaddress
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(name: str, values: Iterable[str]) -> list[Network]:
    """Addresses or CIDR blocks from a setting; a bad one stops start-up with a message."""
    try:
        return [ipaddress.ip_network(value, strict=False) for value in values]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}; give addresses or CIDR blocks, e.g. 10.0.0.5,10.1.0.0/16.") \
            from None


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str | None:
    if not peer or not forwarded_for or not _trusted(peer, trusted):
        return peer or None
    client = peer
    for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage from the client side: keep the last address a trusted proxy vouched for
        client = hop
        if not _trusted(hop, trusted):
            break
    return client


def trusted_proxies() -> list[Network]:
    from django.conf import settings

    return settings.PORTAL_TRUSTED_PROXIES


def request_client_ip(request: "HttpRequest") -> str | None:
    """For Django requests; also django-axes' AXES_CLIENT_IP_CALLABLE."""
    return client_address(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"),
                          trusted_proxies())


def scope_client_ip(scope: dict) -> str | None:
    """For raw ASGI scopes (the /v1 gateway); repeated headers are joined as Django joins them."""
    client = scope.get("client")
    forwarded = [value.decode("latin-1") for name, value in scope.get("headers", ())
                 if name == b"x-forwarded-for"]
    return client_address(client[0] if client else None, ",".join(forwarded) or None, trusted_proxies())

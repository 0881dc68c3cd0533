"""This host's network, as a multi-node server needs it: its interfaces, and whether an address answers.

Run by the node's own worker (a host can only look at its own interfaces and routes).
"""
from __future__ import annotations

import errno
import ipaddress
import socket
import time
from dataclasses import dataclass, field

import psutil


def interfaces() -> dict[str, list[str]]:
    """{interface: [its IPv4/IPv6 networks as "address/prefix"]}."""
    out: dict[str, list[str]] = {}
    for name, addrs in psutil.net_if_addrs().items():
        nets = []
        for addr in addrs:
            if addr.family not in (socket.AF_INET, socket.AF_INET6) or not addr.netmask:
                continue
            try:
                nets.append(str(ipaddress.ip_interface(f"{addr.address.split('%')[0]}/{addr.netmask}")))
            except ValueError:
                continue
        out[name] = nets
    return out


def interface_holds(networks: list[str], address: str) -> bool:
    """Does an interface with these networks carry `address` (loopback: the whole 127.0.0.0/8)?"""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_interface(n).network for n in networks)


@dataclass
class Reach:
    ok: bool
    tries: int = 0
    last_error: str = ""
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def reach(address: str, port: int, *, source: str = "", timeout_s: float = 30.0, should_stop=None) -> Reach:
    """Connect to address:port (from `source` when given) until it accepts or `timeout_s` passes.

    A refused connection means the host answered but nothing listens yet (the leader is still starting), so it
    is tried again, like an unreachable one; the last error says which it was.
    """
    began = time.monotonic()
    result = Reach(ok=False)
    while True:
        result.tries += 1
        try:
            with socket.create_connection((address, port), timeout=min(3.0, timeout_s),
                                          source_address=(source, 0) if source else None):
                result.ok = True
                break
        except OSError as exc:
            result.last_error = _describe(exc)
        if time.monotonic() - began >= timeout_s or (should_stop is not None and should_stop()):
            break
        time.sleep(0.5)
    result.seconds = round(time.monotonic() - began, 1)
    return result


def _describe(exc: OSError) -> str:
    if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
        return "timed out"
    if exc.errno == errno.ECONNREFUSED:
        return "connection refused (the host answers, nothing listens on the port yet)"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "no route to the host"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "this node's address is not on this host"
    return exc.strerror or str(exc)


def listen(address: str, port: int, *, seconds: float) -> dict:
    """Accept connections on address:port for `seconds` (the leader's side of a preflight check); what happened."""
    try:
        server = socket.create_server((address, port), reuse_port=False)
    except OSError as exc:
        return {"listening": False, "error": f"cannot listen on {address}:{port}: {_describe(exc)}", "accepted": 0}
    accepted = 0
    deadline = time.monotonic() + seconds
    with server:
        server.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                conn, _peer = server.accept()
            except TimeoutError:
                continue
            conn.close()
            accepted += 1
    return {"listening": True, "error": "", "accepted": accepted}

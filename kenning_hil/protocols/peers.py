"""Who may connect to a TCP target server: an allow list of networks, checked when a
connection is accepted (the wire protocol has no authentication, so the peer's address is
all there is), and whether a listening address is loopback-only."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from kenning_hil.core.errors import ConfigurationError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AllowList:
    """Networks whose clients a server accepts (`--allow 10.0.0.0/8,192.168.1.7`)."""

    def __init__(self, networks: Iterable[Network]):
        self.networks = tuple(networks)
        if not self.networks:
            raise ConfigurationError("allow list: no network given")

    @classmethod
    def parse(cls, entries: str | Iterable[str]) -> AllowList:
        """From CIDR strings (a bare address is a /32 or /128), comma-separated or a list;
        ConfigurationError naming the first entry that is not one."""
        if isinstance(entries, str):
            entries = [entries]
        networks = []
        for text in (part.strip() for entry in entries for part in entry.split(",")):
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError as exc:
                raise ConfigurationError(
                    f"allow list: {text!r} is not an address or network (CIDR, e.g. "
                    f"10.0.0.0/8): {exc}"
                ) from None
        return cls(networks)

    def allows(self, address: str) -> bool:
        """Whether a peer's IP address (as `accept` returns it) is in one of the networks."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # an IPv4 client of a dual-stack (::) listener
        return any(ip.version == net.version and ip in net for net in self.networks)

    def __str__(self) -> str:
        return ",".join(str(net) for net in self.networks)


def is_loopback_host(host: str) -> bool:
    """True when every address `host` resolves to is a loopback one (so only this machine
    can connect); False for wildcard (0.0.0.0, ::, '') and for names that do not resolve
    (binding them fails later with its own error)."""
    if not host:
        return False
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0] for info in infos}
    try:
        return bool(addresses) and all(
            ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses
        )
    except ValueError:
        return False

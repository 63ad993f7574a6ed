"""The address plan: one private /16 split into a /24 per cluster, never overlapping the machine's routes."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from hpcplane.domain.errors import AddressRangeUnavailable

DEFAULT_NETWORK = "10.247.0.0/16"
SUBNET_PREFIX = 24
FIRST_HOST = 1  # .1 is the manager; the bridge itself has no address, so the host's routes never change


def parse_network(text: str) -> IPv4Network:
    """HPCPLANE_LOCAL_NETWORK as a private IPv4 network of at least one /24."""
    try:
        network = IPv4Network(text.strip(), strict=True)
    except ValueError as error:
        raise AddressRangeUnavailable(network=text, reason=str(error)) from None
    if not network.is_private:
        raise AddressRangeUnavailable(network=text, reason="not a private address range")
    if network.prefixlen > SUBNET_PREFIX:
        raise AddressRangeUnavailable(network=text, reason=f"smaller than one /{SUBNET_PREFIX}")
    return network


def routes_from_ip_json(text: str) -> list[IPv4Network]:
    """The IPv4 destinations of `ip -j route show table all`; the default route overlaps nothing."""
    routes: list[IPv4Network] = []
    for entry in json.loads(text or "[]"):
        dst = str(entry.get("dst", ""))
        if dst in ("", "default") or ":" in dst:
            continue
        try:
            routes.append(IPv4Network(dst, strict=False))
        except ValueError:
            continue
    return routes


def routes_from_proc(text: str) -> list[IPv4Network]:
    """The destinations of /proc/net/route (little-endian hex), for machines without `ip -j`."""
    routes: list[IPv4Network] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest = IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
        mask = IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
        if int(mask) == 0:
            continue
        routes.append(IPv4Network(f"{dest}/{mask}", strict=False))
    return routes


def check_free(network: IPv4Network, routes: Iterable[IPv4Network]) -> None:
    """Refuse a range that overlaps any route of the machine."""
    for route in routes:
        if network.overlaps(route):
            raise AddressRangeUnavailable(network=str(network), reason=f"it overlaps the route {route}")


def free_suggestion(routes: Sequence[IPv4Network]) -> IPv4Network | None:
    """A /16 of 10.0.0.0/8 that overlaps no route, for doctor's fix line."""
    for candidate in IPv4Network("10.0.0.0/8").subnets(new_prefix=16):
        if candidate.network_address.packed[1] < 200:
            continue  # the low 10.x ranges are the ones sites and VPNs tend to use
        if not any(candidate.overlaps(route) for route in routes):
            return candidate
    return None


@dataclass(frozen=True, slots=True)
class AddressPlan:
    """The network and the routes it was checked against; hands out one /24 per cluster."""

    network: IPv4Network

    @classmethod
    def checked(cls, text: str, routes: Iterable[IPv4Network]) -> AddressPlan:
        network = parse_network(text)
        check_free(network, routes)
        return cls(network)

    def subnet_for(self, used: Iterable[str]) -> IPv4Network:
        """The lowest /24 that no recorded cluster holds."""
        taken = {IPv4Network(text) for text in used}
        for subnet in self.network.subnets(new_prefix=SUBNET_PREFIX):
            if subnet not in taken:
                return subnet
        raise AddressRangeUnavailable(network=str(self.network), reason="every /24 is in use")


def next_address(subnet: IPv4Network, used: Iterable[str]) -> IPv4Address:
    """The lowest host address of the subnet not held by a node (from .1 up)."""
    taken = {ipaddress.IPv4Address(text) for text in used}
    for host in subnet.hosts():
        if int(host) - int(subnet.network_address) >= FIRST_HOST and host not in taken:
            return host
    raise AddressRangeUnavailable(network=str(subnet), reason="no free address for another node")

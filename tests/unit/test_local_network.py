"""The local provider's address plan: private ranges, route overlaps, one /24 per cluster."""

from __future__ import annotations

import json
from ipaddress import IPv4Network

import pytest

from hpcplane.domain.errors import AddressRangeUnavailable
from hpcplane.providers.local import network

IP_JSON = json.dumps(
    [
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
        {"dst": "192.0.2.0/24", "dev": "eth0"},
        {"dst": "10.247.3.7", "dev": "tun0"},
        {"dst": "fe80::/64", "dev": "eth0"},
    ]
)
PROC_ROUTE = (
    "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
    "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n"
    "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
)


def test_routes_from_ip_json_skip_default_and_ipv6() -> None:
    """The default route and IPv6 routes are not ranges a cluster could collide with."""
    assert network.routes_from_ip_json(IP_JSON) == [IPv4Network("192.0.2.0/24"), IPv4Network("10.247.3.7/32")]


def test_routes_from_proc_decode_little_endian() -> None:
    """/proc/net/route's hex is little-endian; the default route is skipped."""
    assert network.routes_from_proc(PROC_ROUTE) == [IPv4Network("192.0.2.0/24")]


def test_a_range_overlapping_a_route_is_refused() -> None:
    """A host route inside the range is an overlap, named in the error."""
    routes = network.routes_from_ip_json(IP_JSON)
    with pytest.raises(AddressRangeUnavailable, match=r"10\.247\.3\.7/32"):
        network.AddressPlan.checked("10.247.0.0/16", routes)
    assert network.AddressPlan.checked("10.248.0.0/16", routes).network == IPv4Network("10.248.0.0/16")


@pytest.mark.parametrize("text", ["8.8.0.0/16", "10.0.0.1/16", "10.1.2.0/25", "nonsense"])
def test_public_malformed_or_small_ranges_are_refused(text: str) -> None:
    """Only a private network of at least one /24, written with its network address, is accepted."""
    with pytest.raises(AddressRangeUnavailable):
        network.parse_network(text)


def test_each_cluster_gets_the_lowest_free_slash24() -> None:
    """Subnets already recorded are skipped; an exhausted range is an error, not a reuse."""
    plan = network.AddressPlan(IPv4Network("10.9.0.0/23"))
    assert plan.subnet_for([]) == IPv4Network("10.9.0.0/24")
    assert plan.subnet_for(["10.9.0.0/24"]) == IPv4Network("10.9.1.0/24")
    with pytest.raises(AddressRangeUnavailable, match="every /24"):
        plan.subnet_for(["10.9.0.0/24", "10.9.1.0/24"])


def test_node_addresses_start_at_one_and_fill_gaps() -> None:
    """A deleted node's address is the next one handed out."""
    subnet = IPv4Network("10.9.0.0/24")
    assert str(network.next_address(subnet, [])) == "10.9.0.1"
    assert str(network.next_address(subnet, ["10.9.0.1", "10.9.0.3"])) == "10.9.0.2"


def test_the_suggestion_avoids_every_route() -> None:
    """doctor's suggested range overlaps none of the routes it was given."""
    routes = [IPv4Network("10.200.0.0/15")]
    suggestion = network.free_suggestion(routes)
    assert suggestion is not None
    assert not suggestion.overlaps(routes[0])

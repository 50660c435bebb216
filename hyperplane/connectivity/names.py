"""What a user may call a source or a destination, and the address each stands for.

A **source** is a function (``orders``, ``orders:1``), an ENI id, an instance id, or
``internet``. A **destination** is an IPv4 address, an ENI or instance id, the short name of an
ENI (``db`` for ``eni-db``) or its description when that is one word (the logical id a
CloudFormation or Terraform reader keeps there: ``OrdersDb``), a function (its Hyperplane ENI: nothing may open a connection to
it, which is worth asking), a VPC endpoint id or an interface endpoint's DNS name, ``dns`` (the
VPC resolver), or ``internet`` (a public address that belongs to nothing in the topology:
:data:`INTERNET_ADDRESS`). Unknown names are an error with the closest known ones.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from hyperplane.model import Topology

__all__ = ["Destination", "INTERNET_ADDRESS", "INTERNET_SOURCE_ADDRESS", "PROTOCOLS", "resolve_destination",
           "check_source", "parse_destination", "parse_port", "parse_protocol"]

#: The address ``internet`` stands for as a destination (example.com's) and, by default, as a
#: source (a documentation address, RFC 5737: no rule of a real network names it).
INTERNET_ADDRESS = "93.184.216.34"
INTERNET_SOURCE_ADDRESS = "192.0.2.1"
PROTOCOLS = ("tcp", "udp", "icmp")


@dataclass(frozen=True)
class Destination:
    """A resolved destination: what the user called it, the id it names (or None for a bare
    address or the internet) and the address the packets go to."""

    name: str
    resource: str | None
    address: str


def _unknown(kind: str, name: str, known: list[str]) -> ValueError:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}{hint}")


def check_source(topology: Topology, source: str) -> str:
    """``source`` if it names a function, an ENI, an instance or the internet, else a ValueError."""
    base = source.split(":")[0]
    if source == "internet" or base in topology.functions or source in topology.network_interfaces:
        return source
    if source.startswith("i-") and topology.eni_of_instance(source) is not None:
        return source
    known = ["internet", *topology.functions, *topology.network_interfaces,
             *(e.instance_id for e in topology.network_interfaces.values() if e.instance_id)]
    raise _unknown("source", source, known)


def resolve_destination(network: Any, name: str, vpc_id: str | None = None, *,
                        from_internet: bool = False) -> Destination:
    """The address of a destination name (see the module docstring); ``vpc_id``: the source's
    VPC, for ``dns`` and for names that only make sense inside one VPC. From the internet, an
    ENI is reached at its public address (its private one when it has none)."""
    topology: Topology = network.topology
    try:
        return Destination(name, None, str(IPv4Address(name)))
    except ValueError:
        if name.replace(".", "").isdigit():  # 10.0.20.300: a bad address, not a DNS name
            raise ValueError(f"{name!r} is not an IPv4 address") from None
    if name == "internet":
        return Destination(name, None, INTERNET_ADDRESS)
    if name == "dns":
        vpc = topology.vpcs[vpc_id] if vpc_id else next(iter(topology.vpcs.values()))
        return Destination(name, vpc.id, str(vpc.dns_resolver_ip))
    enis = topology.network_interfaces
    eni_id = name if name in enis else f"eni-{name}" if f"eni-{name}" in enis else None
    if eni_id is None:  # a template's logical id (OrdersDb): the readers keep it as the description
        described = [e.id for e in enis.values() if e.description == name]
        eni_id = described[0] if len(described) == 1 else None
    if eni_id is None and name.startswith("i-") and topology.eni_of_instance(name) is not None:
        eni_id = topology.eni_of_instance(name).id  # type: ignore[union-attr]
    if eni_id is not None:
        eni = enis[eni_id]
        public = eni.public_ip if from_internet and eni.public_ip is not None else None
        return Destination(name, eni_id, str(public or eni.private_ip))
    if name.split(":")[0] in topology.functions:
        fn = network.function(name.split(":")[0])
        if not fn.hyperplane_enis:
            raise ValueError(f"{name!r} has no Hyperplane ENI (no VpcConfig, or not created yet)")
        eni = fn.hyperplane_enis[0]
        return Destination(name, eni.id, str(eni.private_ip))
    for endpoint in topology.vpc_endpoints.values():
        if name == endpoint.id or name in endpoint.dns_names:
            if endpoint.endpoint_type == "gateway":
                cidrs = topology.prefix_list_cidrs(endpoint.prefix_list_id) if endpoint.prefix_list_id else ()
                if not cidrs:
                    raise ValueError(f"{endpoint.id}: its prefix list has no address to send to")
                return Destination(name, endpoint.id, str(IPv4Network(cidrs[0])[1]))
            own = [e for e in enis.values() if e.managed_by == endpoint.id]
            if not own:
                raise ValueError(f"{endpoint.id} has no network interface")
            return Destination(name, endpoint.id, str(own[0].private_ip))
    known = ["internet", "dns", *enis, *(k[4:] for k in enis if k.startswith("eni-")), *topology.functions,
             *(e.description for e in enis.values() if e.description and " " not in e.description),
             *topology.vpc_endpoints, *(d for e in topology.vpc_endpoints.values() for d in e.dns_names)]
    raise _unknown("destination", name, known)


def parse_port(text: str | int, what: str = "port") -> int:
    """A TCP/UDP port 0-65535 (ASCII digits only), or a ValueError naming it."""
    if isinstance(text, int) and not isinstance(text, bool):
        port = text
    elif isinstance(text, str) and text.isascii() and text.isdigit():
        port = int(text)
    else:
        raise ValueError(f"{what} {text!r} is not a number 0-65535")
    if not 0 <= port <= 65535:
        raise ValueError(f"{what} {port} is not in 0-65535")
    return port


def parse_protocol(text: str) -> str:
    proto = text.lower()
    if proto not in PROTOCOLS:
        close = difflib.get_close_matches(proto, PROTOCOLS, n=1, cutoff=0.3)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"protocol {text!r} is not tcp, udp or icmp{hint}")
    return proto


def parse_destination(text: str) -> tuple[str, int | None, str | None]:
    """``NAME[:PORT][/PROTOCOL]`` as (name, port or None, protocol or None)."""
    rest, _, proto = text.partition("/")
    name, sep, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not name:
        raise ValueError(f"{text!r} names no destination (NAME[:PORT][/PROTOCOL])")
    return name, parse_port(port) if sep else None, parse_protocol(proto) if proto else None

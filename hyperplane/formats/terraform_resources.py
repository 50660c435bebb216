"""Each Terraform resource type as resources of our topology format (see ``terraform_reader``).

The document built here goes through ``parse_topology``: AWS's defaults (main route table,
default NACL and group, local routes, addresses) and every check are the topology reader's.
What is Terraform's own is said where it is applied:

- ``aws_security_group`` and ``aws_default_security_group`` hold exactly the rules written:
  Terraform deletes the egress allow-all rule AWS gives a new group, and every rule of an
  adopted default group (``egress: []`` when none is written);
- ``aws_default_network_acl`` / ``aws_default_route_table`` replace the VPC's default NACL /
  main route table with what is written;
- a subnet whose zone a plan leaves unknown is put in the region's first zone (``<region>a``);
- an Elastic IP whose public address a plan leaves unknown gets one from 203.0.113.0/24
  (TEST-NET-3, documentation addresses), in document order.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Callable, Iterable

from hyperplane.errors import TopologyError
from hyperplane.formats._iac import synthesized_id
from hyperplane.formats.terraform_document import Instance, Ref, TerraformDocument, instance_id
from hyperplane.formats.topology_reader import parse_topology
from hyperplane.model import Topology

__all__ = ["NOT_EMULATED", "PREFIXES", "UNMODELLED", "Translator"]

#: The id prefix of each resource type that has an id in the topology.
PREFIXES = {
    "aws_vpc": "vpc", "aws_subnet": "subnet", "aws_route_table": "rtb", "aws_internet_gateway": "igw",
    "aws_nat_gateway": "nat", "aws_eip": "eipalloc", "aws_security_group": "sg", "aws_network_acl": "acl",
    "aws_vpc_endpoint": "vpce", "aws_vpc_peering_connection": "pcx", "aws_network_interface": "eni",
    "aws_instance": "i", "aws_ec2_managed_prefix_list": "pl", "aws_vpn_gateway": "vgw",
    "aws_ec2_transit_gateway": "tgw", "aws_egress_only_internet_gateway": "eigw", "aws_ec2_carrier_gateway": "cagw",
}
#: Data-plane resource types the emulator does not model: counted in the load's report.
NOT_EMULATED = {
    "aws_ec2_transit_gateway": "transit gateways", "aws_ec2_transit_gateway_vpc_attachment": "transit gateway attachments",
    "aws_ec2_transit_gateway_route_table": "transit gateway route tables", "aws_ec2_transit_gateway_route": "transit gateway routes",
    "aws_vpn_gateway": "VPN gateways", "aws_vpn_connection": "VPN connections", "aws_customer_gateway": "customer gateways",
    "aws_vpn_gateway_route_propagation": "VPN route propagation", "aws_egress_only_internet_gateway": "egress-only internet gateways",
    "aws_lb": "load balancers", "aws_alb": "load balancers", "aws_elb": "classic load balancers",
    "aws_networkfirewall_firewall": "Network Firewall firewalls", "aws_ec2_carrier_gateway": "carrier gateways",
    "aws_dx_gateway": "Direct Connect gateways", "aws_rds_cluster": "RDS clusters (instances are read)",
    "aws_efs_mount_target": "EFS mount targets", "aws_globalaccelerator_accelerator": "Global Accelerator",
    "aws_vpc_endpoint_service": "endpoint services (PrivateLink providers)", "aws_flow_log": "flow logs",
}
_COLLECTIONS = ("vpcs", "subnets", "route_tables", "security_groups", "network_acls", "internet_gateways",
                "nat_gateways", "prefix_lists", "vpc_endpoints", "network_interfaces", "vpc_peering_connections",
                "functions")
#: Kinds whose ids the topology loads without the resource (route targets outside the emulation).
UNMODELLED = ("tgw", "vgw", "eigw", "cagw", "lgw")
_WHERE = re.compile(r"^([a-z_]+)\[([^\]]+)\](.*)$")


class Translator:
    """The topology document being built from a TerraformDocument, and the means to build it:
    the ids of instances, the ids an attribute names, where each item came from."""

    def __init__(self, tf: TerraformDocument) -> None:
        self.tf = tf
        self.doc: dict[str, list[dict]] = {kind: [] for kind in _COLLECTIONS}
        self.by_id: dict[str, dict] = {}
        self.origin: dict[str, str] = {}        # topology id or path -> Terraform address
        self.ids: set[str] = set()
        self.public_ips: set[str] = set()
        self.alias: dict[str, str] = {}         # an id the document uses -> the id in the topology
        self.instance_eni: dict[str, str] = {}  # instance id -> its primary ENI (route targets)
        self.assign_ids()
        self.region = self.find_region()
        self.zone = f"{self.region}a"
        self.reserved_public = {v for inst in tf.instances for v in (tf.known(inst, "public_ip"),)
                                if isinstance(v, str) and v}
        for inst in tf.instances:
            if inst.type in NOT_EMULATED and inst.mode == "managed":
                tf.report.add(f"{inst.type} ({NOT_EMULATED[inst.type]})")

    # -- errors ------------------------------------------------------------------------------

    def fail(self, inst: Instance, path: Iterable[Any], problem: str) -> Any:
        where = inst.address + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
        raise TopologyError(self.tf.file, where, problem)

    def cidr(self, inst: Instance, path: tuple, value: Any) -> IPv4Network:
        try:
            return IPv4Network(str(value))
        except ValueError as exc:
            return self.fail(inst, path, f"{value!r} is not a valid IPv4 CIDR ({exc})")

    def string(self, inst: Instance, *path: Any) -> str | None:
        value = self.tf.known(inst, *path)
        if value is not None and not isinstance(value, str):
            self.fail(inst, path, f"expected a string, not {value!r}")
        return value

    # -- references --------------------------------------------------------------------------

    def ref_ids(self, ref: Ref) -> list[str]:
        target, attribute = ref.target, ref.attribute
        special = target.extra.get(attribute)
        if isinstance(special, str):
            return [special]
        if attribute in ("id", "allocation_id", "arn", "name", "primary_network_interface_id") and target.id:
            return [target.extra.get("eni", target.id) if attribute == "primary_network_interface_id" else target.id]
        return []

    def id_of(self, inst: Instance, path: tuple, prefixes: tuple[str, ...], *,
              fallback: Callable[[], str | None] | None = None) -> str:
        """The one id an attribute names (the first, for a list), or an error naming the attribute."""
        found = self.ids_of(inst, path, prefixes, fallback=fallback)
        if not found:
            _, others = self.tf.references(inst, *path)
            why = f" (it depends on {', '.join(others)}, which this reader cannot follow)" if others else ""
            self.fail(inst, path, f"no {'/'.join(prefixes)} resource of this document is named here{why}")
        return found[0]

    def find_id(self, inst: Instance, path: tuple, prefixes: tuple[str, ...]) -> str | None:
        """The id an attribute names, or ``None`` when it names none of ``prefixes``."""
        found = self.ids_of(inst, path, prefixes)
        return found[0] if found else None

    def ids_of(self, inst: Instance, path: tuple, prefixes: tuple[str, ...], *,
               fallback: Callable[[], str | None] | None = None) -> list[str]:
        value = self.tf.known(inst, *path)
        items = value if isinstance(value, list) else [value] if value not in (None, "") else []
        literal = [self.tf.known(inst, *path, i) if isinstance(value, list) else value for i in range(len(items))]
        if items and all(isinstance(v, str) and v for v in literal):
            out = []
            for i, v in enumerate(literal):
                v = self.alias.get(v, v)
                if v.split("-")[0] not in prefixes and not (prefixes == ("eni",) and v.startswith("i-")):
                    self.fail(inst, (*path, i) if isinstance(value, list) else path,
                              f"{v!r} is not a {'/'.join(p + '-…' for p in prefixes)} id")
                if v.split("-")[0] not in UNMODELLED and v not in self.ids:
                    self.fail(inst, (*path, i) if isinstance(value, list) else path,
                              f"{v!r} names no resource of this document")
                out.append(self.instance_eni.get(v, v) if "eni" in prefixes else v)
            return out
        found: list[str] = []
        refs, _ = self.tf.references(inst, *path)
        for ref in refs:
            for rid in self.ref_ids(ref):
                rid = self.instance_eni.get(rid, rid) if "eni" in prefixes else rid
                if rid.split("-")[0] in prefixes and rid not in found:
                    found.append(rid)
        if not found and fallback is not None:
            chosen = fallback()
            return [chosen] if chosen else []
        return found

    def vpc_of(self, inst: Instance, path: tuple = ("vpc_id",)) -> str:
        def only_vpc() -> str | None:
            vpcs = [v for v in self.tf.of_type("aws_vpc") if v.module == inst.module] or list(self.tf.of_type("aws_vpc"))
            return vpcs[0].id if len(vpcs) == 1 else None
        return self.id_of(inst, path, ("vpc",), fallback=only_vpc)

    # -- the whole document ------------------------------------------------------------------

    def topology(self) -> Topology:
        """The validated Topology of the document built (once every reader has added its part)."""
        tf = self.tf
        document: dict[str, Any] = {"region": self.region}
        account = self.account()
        if account:
            document["account_id"] = account
        for kind in _COLLECTIONS:
            if self.doc[kind]:
                document[kind] = self.doc[kind]
        try:
            topology = parse_topology(document, file=tf.file)
        except TopologyError as exc:
            raise self.rewrite(exc) from None
        tf.report.report()
        return topology

    def assign_ids(self) -> None:
        tf = self.tf
        for inst in tf.instances:
            prefix = PREFIXES.get(inst.type)
            if inst.mode == "data" and inst.type in ("aws_prefix_list", "aws_ec2_managed_prefix_list"):
                prefix = "pl"
            if prefix is None:
                continue
            inst.id = instance_id(inst, prefix)
            if inst.type == "aws_eip":
                known = tf.known(inst, "allocation_id")
                inst.id = known if isinstance(known, str) and known.startswith("eipalloc-") else inst.id
            self.ids.add(inst.id)
            if inst.type == "aws_instance":
                eni = tf.known(inst, "primary_network_interface_id")
                inst.extra["eni"] = eni if isinstance(eni, str) and eni.startswith("eni-") else synthesized_id("eni", inst.address)
                self.instance_eni[inst.id] = inst.extra["eni"]
                self.ids.add(inst.extra["eni"])
        for vpc in tf.of_type("aws_vpc"):
            suffix = vpc.id[len("vpc-"):]
            for attribute, prefix, convention in (("main_route_table_id", "rtb", f"rtb-{suffix}-main"),
                                                  ("default_route_table_id", "rtb", f"rtb-{suffix}-main"),
                                                  ("default_network_acl_id", "acl", f"acl-{suffix}-default"),
                                                  ("default_security_group_id", "sg", f"sg-{suffix}-default")):
                known = tf.known(vpc, attribute)
                vpc.extra[attribute] = known if isinstance(known, str) and known.startswith(prefix + "-") else convention
                self.ids.add(vpc.extra[attribute])
        for inst in tf.of_type("aws_vpc_endpoint"):
            known = tf.known(inst, "prefix_list_id")
            inst.extra["prefix_list_id"] = known if isinstance(known, str) and known.startswith("pl-") else None

    def find_region(self) -> str:
        tf = self.tf
        if tf.region_hint:
            return tf.region_hint
        if tf.provider_region:
            return tf.provider_region
        for inst in tf.instances:
            zone = tf.known(inst, "availability_zone")
            if isinstance(zone, str) and re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d[a-z]", zone):
                return zone[:-1]
            arn = tf.known(inst, "arn")
            if isinstance(arn, str) and arn.count(":") >= 5 and arn.split(":")[3]:
                return arn.split(":")[3]
        return "us-east-1"

    def account(self) -> str | None:
        for inst in self.tf.instances:
            owner = self.tf.known(inst, "owner_id")
            if isinstance(owner, str) and owner.isascii() and owner.isdigit() and len(owner) == 12:
                return owner
        return None

    # -- emitting ----------------------------------------------------------------------------

    def add(self, kind: str, inst: Instance, item: dict) -> dict:
        """Append one resource of ``kind`` made from ``inst``; its name is the Terraform address."""
        if kind not in ("functions", "network_interfaces"):  # these two keep it in their description
            item.setdefault("name", inst.address)
        self.origin[f"{kind}[{len(self.doc[kind])}]"] = inst.address
        if "id" in item:
            self.origin[item["id"]] = inst.address
            self.by_id[item["id"]] = item
        self.doc[kind].append(item)
        return item

    def sub_item(self, kind_path: str, inst: Instance) -> None:
        """Record that the sub-item about to be appended at ``kind_path`` comes from ``inst``."""
        self.origin[kind_path] = inst.address

    def rewrite(self, exc: TopologyError) -> TopologyError:
        """The topology reader's error, with the Terraform address of the resource it is about."""
        match = _WHERE.match(exc.where)
        if match is None:
            return exc
        kind, key, rest = match.groups()
        address = None
        sub = re.match(r"^(\.[a-z_]+\[\d+\])", rest)
        if sub is not None:
            address = self.origin.get(f"{kind}[{key}]{sub.group(1)}")
            if address is None and not key.isdigit():
                index = next((i for i, item in enumerate(self.doc.get(kind, [])) if item.get("id") == key), None)
                address = self.origin.get(f"{kind}[{index}]{sub.group(1)}")
        address = address or self.origin.get(f"{kind}[{key}]") or self.origin.get(key)
        if address is None:
            return exc
        return TopologyError(exc.file, f"{address} ({exc.where})", exc.problem)

    def public_ip(self, known: Any) -> str:
        """An Elastic / public IP: the document's when known, else the next documentation address."""
        if isinstance(known, str) and known:
            self.public_ips.add(known)
            return known
        for n in range(1, 255):
            candidate = str(IPv4Address("203.0.113.0") + n)
            if candidate not in self.public_ips and candidate not in self.reserved_public:
                self.public_ips.add(candidate)
                return candidate
        raise TopologyError(self.tf.file, "", "more than 254 public addresses unknown until apply")

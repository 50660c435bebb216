"""CloudFormation resources that change another resource, and the addresses of a load.

:func:`attach` applies, once every stack of a load is translated, the resources whose effect is
on another one (which may be in another stack of a CDK assembly): ``Route``,
``SubnetRouteTableAssociation``, ``SubnetNetworkAclAssociation``, ``NetworkAclEntry``,
``VPCGatewayAttachment``, ``VPCCidrBlock``, ``SecurityGroupIngress``/``Egress``,
``Lambda::Version``, an instance's ``NetworkInterfaces`` and the CDK's
``Custom::VpcRestrictDefaultSG`` (the VPC's default group without rules).

:func:`allocate_addresses` gives every ENI-holding resource its private addresses: those the
template fixes are kept; then, in template order, NAT gateways, then instances and ENIs, then
databases, caches and mount targets get the first free address of their subnet
(:func:`~hyperplane.formats._iac.first_free_address`). Interface endpoint ENIs are left to the
topology loader, which gives them the lowest addresses still free.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from hyperplane.errors import SubnetOutOfAddresses, TopologyError
from hyperplane.formats._iac import first_free_address, synthesized_id
from hyperplane.formats.cloudformation_resources import HOLDERS, RULE_FIELDS, eip_address, holder_nodes, sg_rule
from hyperplane.formats.cloudformation_stack import Document, Stack

__all__ = ["attach", "allocate_addresses", "primary_eni"]

_ROUTE_TARGETS = ("GatewayId", "NatGatewayId", "NetworkInterfaceId", "InstanceId", "VpcPeeringConnectionId",
                  "TransitGatewayId", "VpcEndpointId", "EgressOnlyInternetGatewayId", "CarrierGatewayId",
                  "LocalGatewayId")
_NACL_PROTOCOLS = {"-1": "all", "6": "tcp", "17": "udp", "1": "icmp"}


def _owner(s: Stack, logical: str, prop: str, kind: str, what: str) -> dict[str, Any]:
    value = s.text(logical, prop, required=True)
    entry = s.doc.by_id.get(value or "")
    if entry is None or entry.get("_at", ("",))[0] != kind:
        s.fail(s.at(logical, prop), f"{value!r} is not {what} of the template")
    return entry


def attach(document: Document) -> None:
    """Apply every pending resource to what it changes (see the module docstring)."""
    for item in document.lists.pop("_pending", []):
        s, logical, kind = item["stack"], item["logical"], item["kind"]
        _ATTACH[kind](s, logical)
    for group in document.lists.get("security_groups", []):
        for direction in ("ingress", "egress"):
            if direction in group:
                unique: list[Any] = []
                for rule in group[direction]:  # AWS refuses a rule twice; a repeat adds nothing
                    if rule not in unique:
                        unique.append(rule)
                group[direction] = unique


def _route(s: Stack, logical: str) -> None:
    table = _owner(s, logical, "RouteTableId", "route_tables", "a route table")
    fields = {"destination": "DestinationCidrBlock"}
    destination = s.cidr(logical, "DestinationCidrBlock", required=False)
    if destination is None:
        destination = s.ident(logical, "DestinationPrefixListId", "pl", required=False)
        fields["destination"] = "DestinationPrefixListId"
    if destination is None:
        if s.value(logical, "DestinationIpv6CidrBlock") is not None:
            s.report.note(f"{logical}: an IPv6 route is not emulated")
            return
        s.fail(s.at(logical), "AWS::EC2::Route needs DestinationCidrBlock or DestinationPrefixListId")
    given = [p for p in _ROUTE_TARGETS if s.value(logical, p) is not None]
    if len(given) != 1:
        s.fail(s.at(logical), f"AWS::EC2::Route needs exactly one target ({', '.join(_ROUTE_TARGETS[:6])}, ...), "
                              f"not {len(given)}")
    prop = given[0]
    target = s.text(logical, prop) or ""
    if prop == "InstanceId":
        target = synthesized_id("eni", logical_of(s, target, "AWS::EC2::Instance") or target, s.scope)
    route: dict[str, Any] = {"destination": destination, "target": target}
    if target.startswith("pcx-") and target not in s.doc.by_id:
        route["state"] = "blackhole"
        s.report.note(f"{logical}: {target} is not a peering of the template: the route is a blackhole")
    fields["target"] = prop
    s.doc.add_rule(table, "routes", route, s.file, s.at(logical), fields)


def logical_of(s: Stack, physical: str, kind: str) -> str | None:
    return next((l for l in s.resources if s.type_of(l) == kind and s.physical_id(l) == physical), None)


def _subnet_table(s: Stack, logical: str) -> None:
    subnet = _owner(s, logical, "SubnetId", "subnets", "a subnet")
    subnet["route_table_id"] = s.text(logical, "RouteTableId", required=True)
    s.doc.origins[f"subnets[{subnet['_at'][1]}].route_table_id"] = (s.file, s.at(logical, "RouteTableId"), {})


def _subnet_acl(s: Stack, logical: str) -> None:
    subnet = _owner(s, logical, "SubnetId", "subnets", "a subnet")
    subnet["network_acl_id"] = s.text(logical, "NetworkAclId", required=True)
    s.doc.origins[f"subnets[{subnet['_at'][1]}].network_acl_id"] = (s.file, s.at(logical, "NetworkAclId"), {})


def _acl_entry(s: Stack, logical: str) -> None:
    acl = _owner(s, logical, "NetworkAclId", "network_acls", "a network ACL")
    cidr = s.cidr(logical, "CidrBlock", required=False)
    if cidr is None:
        s.report.note(f"{logical}: an IPv6 network ACL entry is not emulated")
        return
    protocol = str(s.value(logical, "Protocol", required=True))
    entry: dict[str, Any] = {"rule_number": s.value(logical, "RuleNumber", required=True),
                             "protocol": _NACL_PROTOCOLS.get(protocol, protocol),
                             "rule_action": s.text(logical, "RuleAction", required=True), "cidr": cidr}
    ports, icmp = s.value(logical, "PortRange"), s.value(logical, "Icmp")
    if entry["protocol"] in ("tcp", "udp") and isinstance(ports, dict):
        entry["from_port"], entry["to_port"] = ports.get("From"), ports.get("To")
    if entry["protocol"] == "icmp" and isinstance(icmp, dict):
        for key, name in (("Type", "icmp_type"), ("Code", "icmp_code")):
            if icmp.get(key) is not None and str(icmp[key]) != "-1":
                entry[name] = icmp[key]
    direction = "egress" if s.flag(logical, "Egress", False) else "ingress"
    s.doc.add_rule(acl, direction, entry, s.file, s.at(logical),
                   {"rule_number": "RuleNumber", "protocol": "Protocol", "rule_action": "RuleAction",
                    "cidr": "CidrBlock", "from_port": "PortRange", "to_port": "PortRange"})


def _gateway_attachment(s: Stack, logical: str) -> None:
    if s.value(logical, "InternetGatewayId") is None:
        return  # a VPN gateway: counted as not emulated
    gateway = _owner(s, logical, "InternetGatewayId", "internet_gateways", "an internet gateway")
    gateway["vpc_id"] = s.ident(logical, "VpcId", "vpc")
    s.doc.origins[f"internet_gateways[{gateway['_at'][1]}].vpc_id"] = (s.file, s.at(logical, "VpcId"), {})


def _vpc_cidr(s: Stack, logical: str) -> None:
    vpc = _owner(s, logical, "VpcId", "vpcs", "a VPC")
    vpc["cidrs"].append(s.cidr(logical, "CidrBlock"))


def _sg_rule(s: Stack, logical: str) -> None:
    group = _owner(s, logical, "GroupId", "security_groups", "a security group")
    egress = s.type_of(logical) == "AWS::EC2::SecurityGroupEgress"
    rule = sg_rule(s, s.r.resolve(dict(s.properties(logical)), s.at(logical)), egress, s.at(logical))
    if rule is None:
        return
    direction = "egress" if egress else "ingress"
    if egress and "egress" not in group:  # a rule added to a group keeps AWS's allow-all rule
        group["egress"] = [{"protocol": "all", "cidr": "0.0.0.0/0"}]
    fields = dict(RULE_FIELDS, security_group_id="DestinationSecurityGroupId" if egress else "SourceSecurityGroupId")
    s.doc.add_rule(group, direction, rule, s.file, s.at(logical), fields)


def _version(s: Stack, logical: str) -> None:
    name = s.text(logical, "FunctionName", required=True) or ""
    name = name.rsplit(":function:", 1)[-1].split(":")[0]
    function = next((f for f in s.doc.lists.get("functions", []) if f["name"] == name), None)
    if function is None:
        s.fail(s.at(logical, "FunctionName"), f"{name!r} is not a Lambda function of the template")
    versions = function.setdefault("versions", [])
    versions.append({"version": len(versions) + 1})


def _instance_eni(s: Stack, logical: str) -> None:
    for nic in s.value(logical, "NetworkInterfaces") or []:
        eni = s.doc.by_id.get(str(nic.get("NetworkInterfaceId"))) if isinstance(nic, dict) else None
        if eni is not None:
            eni["instance_id"] = s.physical_id(logical)


def _restrict_default_group(s: Stack, logical: str) -> None:
    """The CDK's custom resource that removes every rule of the VPC's default group."""
    group_id = s.text(logical, "DefaultSecurityGroupId") or ""
    vpc = next((v for v in s.doc.lists.get("vpcs", []) if group_id == f"sg-{v['id'][4:]}-default"), None)
    if vpc is not None:
        vpc["default_security_group_id"] = group_id
        s.doc.add("security_groups", {"id": group_id, "vpc_id": vpc["id"], "name": "default",
                                      "description": "default VPC security group", "ingress": [], "egress": []},
                  s.file, s.at(logical), {})


def _elastic_ip(s: Stack, logical: str) -> None:
    """An Elastic IP given to an instance (``InstanceId``), or by an ``EIPAssociation`` to an
    instance or ENI: the public IP of that ENI."""
    public: str | None
    eni_id: str | None = None
    if s.type_of(logical) == "AWS::EC2::EIP":
        instance, public = s.text(logical, "InstanceId"), s.public_ip(logical)
    else:
        instance, eni_id = s.text(logical, "InstanceId"), s.text(logical, "NetworkInterfaceId")
        allocation, address = s.text(logical, "AllocationId"), s.text(logical, "EIP")
        public = address or (eip_address(s, allocation) if allocation else None)
    if public is None or not (instance or eni_id):
        return
    for eni in s.doc.lists.get("network_interfaces", []):
        if eni["id"] == eni_id or (instance and eni.get("instance_id") == instance and eni_id is None):
            if eni.get("public_ip"):  # the address the subnet gave goes back to AWS's pool
                s.doc.public_ips.discard(eni["public_ip"])
            eni["public_ip"] = public
            return


_ATTACH = {
    "AWS::EC2::EIP": _elastic_ip, "AWS::EC2::EIPAssociation": _elastic_ip,
    "AWS::EC2::Route": _route, "AWS::EC2::SubnetRouteTableAssociation": _subnet_table,
    "AWS::EC2::SubnetNetworkAclAssociation": _subnet_acl, "AWS::EC2::NetworkAclEntry": _acl_entry,
    "AWS::EC2::VPCGatewayAttachment": _gateway_attachment, "vpc_cidr": _vpc_cidr, "sg_rule": _sg_rule,
    "version": _version, "instance_eni": _instance_eni, "Custom::VpcRestrictDefaultSG": _restrict_default_group,
}


# --- addresses -----------------------------------------------------------------------------

def primary_eni(s: Stack, logical: str) -> str:
    """The id of the ENI whose address ``!GetAtt`` of ``logical`` names."""
    kind = s.type_of(logical)
    if kind in ("AWS::EC2::NatGateway", "AWS::EC2::NetworkInterface"):
        return s.physical_id(logical)
    if kind == "AWS::EC2::Instance":
        return synthesized_id("eni", logical, s.scope) if not s.value(logical, "NetworkInterfaces") \
            else synthesized_id("eni", f"{logical}#0", s.scope)
    return synthesized_id("eni", f"{logical}#0", s.scope)


def allocate_addresses(stacks: Iterable[Stack]) -> dict[str, str]:
    """ENI id (or NAT gateway id) -> private address, for every resource of the stacks."""
    stacks = list(stacks)
    cidrs: dict[str, str] = {}
    for s in stacks:
        for logical in s.resources:
            if s.type_of(logical) == "AWS::EC2::Subnet" and s.exists(logical):
                cidrs[s.physical_id(logical)] = s.cidr(logical, "CidrBlock") or ""
    taken: dict[str, set[str]] = {}
    wanted: list[tuple[int, Stack, str, str, str]] = []  # (order, stack, where, eni id, subnet id)
    fixed: dict[str, str] = {}
    for s in stacks:
        for logical in s.resources:
            if not s.exists(logical):
                continue
            for eni_id, subnet_id, prop, address, order in _needs(s, logical):
                if subnet_id not in cidrs:
                    s.fail(s.at(logical, prop), f"{subnet_id!r} is not a subnet of the template")
                if address is not None:
                    fixed[eni_id] = address
                    taken.setdefault(subnet_id, set()).add(address)
                else:
                    wanted.append((order, s, s.at(logical, prop), eni_id, subnet_id))
    for _, s, where, eni_id, subnet_id in sorted(wanted, key=lambda w: w[0]):
        try:
            fixed[eni_id] = first_free_address(cidrs[subnet_id], taken.setdefault(subnet_id, set()))
        except (SubnetOutOfAddresses, ValueError) as exc:
            raise TopologyError(s.file, where, f"no address left to give: {exc}") from None
        taken[subnet_id].add(fixed[eni_id])
    return fixed


def _needs(s: Stack, logical: str) -> list[tuple[str, str, str, str | None, int]]:
    kind = s.type_of(logical)
    sequence = list(s.resources).index(logical)
    if kind == "AWS::EC2::NatGateway":
        return [(s.physical_id(logical), s.text(logical, "SubnetId", required=True) or "", "SubnetId",
                 s.text(logical, "PrivateIpAddress"), sequence)]
    if kind == "AWS::EC2::NetworkInterface":
        return [(s.physical_id(logical), s.text(logical, "SubnetId", required=True) or "", "SubnetId",
                 s.text(logical, "PrivateIpAddress"), 10**6 + sequence)]
    if kind == "AWS::EC2::Instance":
        nics = s.value(logical, "NetworkInterfaces") or []
        if not nics:
            return [(primary_eni(s, logical), s.text(logical, "SubnetId", required=True) or "", "SubnetId",
                     s.text(logical, "PrivateIpAddress"), 10**6 + sequence)]
        return [(synthesized_id("eni", f"{logical}#{i}", s.scope), str(nic.get("SubnetId")),
                 f"NetworkInterfaces[{i}].SubnetId", nic.get("PrivateIpAddress"), 10**6 + sequence)
                for i, nic in enumerate(nics) if isinstance(nic, dict) and not nic.get("NetworkInterfaceId")]
    if kind in HOLDERS:
        fixed = s.text(logical, "IpAddress") if kind == "AWS::EFS::MountTarget" else None
        return [(eni, subnet, HOLDERS[kind][1], fixed, 2 * 10**6 + sequence) for eni, subnet in holder_nodes(s, logical)]
    return []


def set_addresses(document: Document, addresses: Mapping[str, str]) -> None:
    """Write the allocated addresses into the document's NAT gateways and ENIs."""
    for kind in ("nat_gateways", "network_interfaces"):
        for entry in document.lists.get(kind, []):
            if entry["id"] in addresses:
                entry["private_ip"] = addresses[entry["id"]]

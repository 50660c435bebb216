"""Each CloudFormation resource type, translated into the resources of a topology document.

:func:`translate` walks one :class:`~hyperplane.formats.cloudformation_stack.Stack` in template
order: VPCs (and ``VPCCidrBlock``), subnets, route tables and ``Route``s, associations, internet
gateways and their attachments, NAT gateways and Elastic IPs, security groups (inline rules and
``SecurityGroupIngress``/``Egress``), network ACLs and their entries, prefix lists, VPC
endpoints, peerings, ENIs and instances, the ENIs of databases, caches and file systems, and
Lambda functions with their roles. Rules, routes, associations and versions are attached to
their owner once every stack is read (``cloudformation_links.attach``), since in a CDK assembly
they may live in another stack than what they change; so are the addresses. A database, cache or MemoryDB cluster has one ENI per node, spread over its subnet group's subnets
in order; its endpoint address (``!GetAtt DB.Endpoint.Address``) is the first node's.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from hyperplane.errors import TopologyError
from hyperplane.formats._iac import synthesized_id
from hyperplane.formats.cloudformation_stack import NOT_EMULATED, Stack
from hyperplane.model.values import MANAGED_POLICIES

__all__ = ["translate", "holder_nodes", "sg_rule", "eip_address", "HOLDERS", "RULE_FIELDS"]

_PROTOCOLS = {"-1": "all", "all": "all", "tcp": "tcp", "udp": "udp", "icmp": "icmp", "6": "tcp", "17": "udp", "1": "icmp"}
#: Resources that hold ENIs in subnets of a group: type -> (ENI kind, subnet group property or
#: subnet list property, security group property, node count).
HOLDERS: Mapping[str, tuple[str, str, str, Callable[[Stack, str], int]]] = {
    "AWS::RDS::DBInstance": ("rds", "DBSubnetGroupName", "VPCSecurityGroups", lambda s, l: 1),
    "AWS::RDS::DBCluster": ("rds", "DBSubnetGroupName", "VpcSecurityGroupIds", lambda s, l: 1),
    "AWS::RDS::DBProxy": ("rds-proxy", "VpcSubnetIds", "VpcSecurityGroupIds", lambda s, l: 1),
    "AWS::ElastiCache::CacheCluster": ("elasticache", "CacheSubnetGroupName", "VpcSecurityGroupIds",
                                       lambda s, l: s.number(l, "NumCacheNodes", 1)),
    "AWS::ElastiCache::ReplicationGroup": (
        "elasticache", "CacheSubnetGroupName", "SecurityGroupIds",
        lambda s, l: (s.number(l, "NumNodeGroups", 1) * (s.number(l, "ReplicasPerNodeGroup", 0) + 1)
                      if s.value(l, "NumNodeGroups") is not None else s.number(l, "NumCacheClusters", 1))),
    "AWS::ElastiCache::ServerlessCache": ("elasticache", "SubnetIds", "SecurityGroupIds",
                                          lambda s, l: max(1, len(s.id_list(l, "SubnetIds", "subnet")))),
    "AWS::MemoryDB::Cluster": ("memorydb", "SubnetGroupName", "SecurityGroupIds",
                               lambda s, l: s.number(l, "NumShards", 1) * (s.number(l, "NumReplicasPerShard", 1) + 1)),
    "AWS::EFS::MountTarget": ("efs", "SubnetId", "SecurityGroups", lambda s, l: 1),
}
_GROUP_TYPES = ("AWS::RDS::DBSubnetGroup", "AWS::ElastiCache::SubnetGroup", "AWS::MemoryDB::SubnetGroup")


def translate(stack: Stack) -> None:
    """Add every resource of ``stack`` to its document (rules and routes are kept for attach)."""
    for logical, resource in stack.resources.items():
        kind = stack.type_of(logical)
        if not isinstance(resource, dict) or not stack.exists(logical):
            continue
        if kind in NOT_EMULATED:
            stack.report.add(f"{kind} ({NOT_EMULATED[kind]})")
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(stack, logical)


def _add(stack: Stack, kind: str, logical: str, entry: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    entry["_at"] = (kind, len(stack.doc.lists.get(kind, [])))
    entry["_stack"], entry["_logical"] = stack, logical
    return stack.doc.add(kind, entry, stack.file, stack.at(logical), fields)


def _pending(stack: Stack, logical: str, kind: str) -> None:
    stack.doc.lists.setdefault("_pending", []).append({"stack": stack, "logical": logical, "kind": kind})


# --- networks ------------------------------------------------------------------------------

def _vpc(s: Stack, logical: str) -> None:
    cidr = s.cidr(logical, "CidrBlock", required=False)
    if cidr is None:
        s.fail(s.at(logical), "AWS::EC2::VPC needs CidrBlock (addresses from an IPAM pool are not known before deployment)")
    _add(s, "vpcs", logical, {"id": s.physical_id(logical), "cidrs": [cidr], "name": logical},
         {"cidrs": "CidrBlock"})


def _vpc_cidr(s: Stack, logical: str) -> None:
    if s.value(logical, "CidrBlock") is not None:  # IPv6 blocks are not emulated
        _pending(s, logical, "vpc_cidr")


def _subnet(s: Stack, logical: str) -> None:
    if s.value(logical, "CidrBlock") is None:
        s.fail(s.at(logical), "AWS::EC2::Subnet needs CidrBlock (IPv6-only subnets are not emulated)")
    _add(s, "subnets", logical, {
        "id": s.physical_id(logical), "vpc_id": s.ident(logical, "VpcId", "vpc"),
        "cidr": s.cidr(logical, "CidrBlock"), "availability_zone": s.zone(logical), "name": logical,
    } | ({"availability_zone_id": zone_id} if (zone_id := s.text(logical, "AvailabilityZoneId")) else {}),
        {"vpc_id": "VpcId", "cidr": "CidrBlock", "availability_zone": "AvailabilityZone",
         "availability_zone_id": "AvailabilityZoneId", "route_table_id": "RouteTableId",
         "network_acl_id": "NetworkAclId"})


def _route_table(s: Stack, logical: str) -> None:
    _add(s, "route_tables", logical, {"id": s.physical_id(logical), "vpc_id": s.ident(logical, "VpcId", "vpc"),
                                      "routes": [], "name": logical}, {"vpc_id": "VpcId"})


def _internet_gateway(s: Stack, logical: str) -> None:
    _add(s, "internet_gateways", logical, {"id": s.physical_id(logical), "vpc_id": None, "name": logical},
         {"vpc_id": "VpcId"})


def _nat_gateway(s: Stack, logical: str) -> None:
    private = (s.text(logical, "ConnectivityType") or "public").lower() == "private"
    entry: dict[str, Any] = {"id": s.physical_id(logical), "subnet_id": s.ident(logical, "SubnetId", "subnet"),
                             "connectivity_type": "private" if private else "public", "name": logical}
    if not private:
        allocations = [s.text(logical, "AllocationId", required=True)] + [
            str(a) for a in (s.value(logical, "SecondaryAllocationIds") or [])]
        entry["elastic_ips"] = [{"allocation_id": a, "public_ip": eip_address(s, str(a))} for a in allocations]
    secondary = s.value(logical, "SecondaryPrivateIpAddresses")
    if secondary:
        entry["secondary_private_ips"] = [str(a) for a in secondary]
    _add(s, "nat_gateways", logical, entry, {"subnet_id": "SubnetId", "elastic_ips": "AllocationId",
                                             "private_ip": "PrivateIpAddress",
                                             "secondary_private_ips": "SecondaryPrivateIpAddresses"})


def eip_address(s: Stack, allocation_id: str) -> str:
    for logical in s.resources:
        if s.type_of(logical) == "AWS::EC2::EIP" and synthesized_id("eipalloc", logical, s.scope) == allocation_id:
            return s.public_ip(logical)
    return s.public_ip(f"external:{allocation_id}")  # an Elastic IP allocated outside the template


def _prefix_list(s: Stack, logical: str) -> None:
    entries = s.value(logical, "Entries") or []
    cidrs = [str(e.get("Cidr")) for e in entries if isinstance(e, dict)]
    _add(s, "prefix_lists", logical, {"id": s.physical_id(logical),
                                      "name": s.text(logical, "PrefixListName") or logical, "cidrs": cidrs},
         {"cidrs": "Entries"})


def _endpoint(s: Stack, logical: str) -> None:
    kind = (s.text(logical, "VpcEndpointType") or "Gateway").lower()
    service = s.text(logical, "ServiceName", required=True)
    assert service is not None
    entry: dict[str, Any] = {"id": s.physical_id(logical), "vpc_id": s.ident(logical, "VpcId", "vpc"),
                             "service_name": service, "name": logical}
    if kind == "gateway":
        # its prefix list is AWS's, named after the service: the topology loader adds it with the
        # ranges AWS publishes (aws_prefix_lists.py)
        entry.update(type="gateway", route_table_ids=s.id_list(logical, "RouteTableIds", "rtb"))
    elif kind == "interface":
        entry.update(type="interface", subnet_ids=s.id_list(logical, "SubnetIds", "subnet"),
                     private_dns_enabled=s.flag(logical, "PrivateDnsEnabled", False))  # CloudFormation's default
        groups = s.id_list(logical, "SecurityGroupIds", "sg")
        if groups:
            entry["security_group_ids"] = groups
    elif kind == "gatewayloadbalancer":
        entry["type"] = "gateway_load_balancer"
        s.report.add("AWS::EC2::VPCEndpoint of type GatewayLoadBalancer (Gateway Load Balancer endpoints)")
    else:
        s.report.add(f"AWS::EC2::VPCEndpoint of type {s.text(logical, 'VpcEndpointType')} (VPC endpoints)")
        return
    _add(s, "vpc_endpoints", logical, entry, {"vpc_id": "VpcId", "route_table_ids": "RouteTableIds",
                                              "subnet_ids": "SubnetIds", "security_group_ids": "SecurityGroupIds",
                                              "service_name": "ServiceName"})


def _peering(s: Stack, logical: str) -> None:
    peer = s.ident(logical, "PeerVpcId", "vpc")
    if not any(s.type_of(v) == "AWS::EC2::VPC" and s.physical_id(v) == peer for v in s.resources):
        # a VPC of another account or template: its CIDRs are not known; routes to it are blackholes
        s.report.note(f"{logical}: the peer VPC {peer} is not in the template, so the peering is not emulated")
        return
    _add(s, "vpc_peering_connections", logical, {
        "id": s.physical_id(logical), "vpc_id": s.ident(logical, "VpcId", "vpc"),
        "peer_vpc_id": s.ident(logical, "PeerVpcId", "vpc"), "name": logical,
    }, {"vpc_id": "VpcId", "peer_vpc_id": "PeerVpcId"})


# --- groups and ACLs -----------------------------------------------------------------------

def _security_group(s: Stack, logical: str) -> None:
    entry = _add(s, "security_groups", logical, {
        "id": s.physical_id(logical), "vpc_id": s.ident(logical, "VpcId", "vpc"), "name": logical,
        "description": s.text(logical, "GroupDescription") or "", "ingress": [],
    }, {"vpc_id": "VpcId", "ingress": "SecurityGroupIngress", "egress": "SecurityGroupEgress"})
    for direction, prop in (("ingress", "SecurityGroupIngress"), ("egress", "SecurityGroupEgress")):
        rules = s.value(logical, prop)
        if rules is None:
            continue  # no SecurityGroupEgress: AWS's allow-all rule stays
        if not isinstance(rules, list):
            s.fail(s.at(logical, prop), f"{prop} must be a list of rules, not a {type(rules).__name__}")
        entry.setdefault(direction, [])
        for i, rule in enumerate(rules):
            if not isinstance(rule, dict):
                s.fail(s.at(logical, f"{prop}[{i}]"), "a rule must be a mapping")
            converted = sg_rule(s, rule, direction == "egress", s.at(logical, f"{prop}[{i}]"))
            if converted is not None:
                s.doc.add_rule(entry, direction, converted, s.file, s.at(logical, f"{prop}[{i}]"), RULE_FIELDS)


RULE_FIELDS = {"protocol": "IpProtocol", "from_port": "FromPort", "to_port": "ToPort", "cidr": "CidrIp",
                "security_group_id": "SourceSecurityGroupId", "prefix_list_id": "SourcePrefixListId"}


def sg_rule(s: Stack, rule: Mapping[str, Any], egress: bool, where: str) -> dict[str, Any] | None:
    """A rule of our format, or None for an IPv6 rule (not emulated; noted) and for the CDK's
    "disallow all" placeholder (255.255.255.255/32, ICMP 252/86: a group without egress)."""
    if rule.get("CidrIp") == "255.255.255.255/32" and str(rule.get("IpProtocol")) == "icmp" \
            and str(rule.get("FromPort")) == "252" and str(rule.get("ToPort")) == "86":
        return None
    protocol = _PROTOCOLS.get(str(rule.get("IpProtocol", "")).lower(), str(rule.get("IpProtocol", "")))
    out: dict[str, Any] = {"protocol": protocol}
    low, high = rule.get("FromPort"), rule.get("ToPort")
    if protocol in ("tcp", "udp") and low is not None and str(low) != "-1":
        out["from_port"], out["to_port"] = low, high if high is not None else low
    elif protocol == "icmp":
        if low is not None and str(low) != "-1":
            out["icmp_type"] = low
        if high is not None and str(high) != "-1":
            out["icmp_code"] = high
    side = "Destination" if egress else "Source"
    peers = {"cidr": rule.get("CidrIp"), "security_group_id": rule.get(f"{side}SecurityGroupId"),
             "prefix_list_id": rule.get(f"{side}PrefixListId")}
    peers = {k: v for k, v in peers.items() if v is not None}
    if not peers:
        if rule.get("CidrIpv6") is not None:
            s.report.note(f"{where}: an IPv6 rule (CidrIpv6) is not emulated")
            return None
        if rule.get("SourceSecurityGroupName") is not None:
            s.fail(where, "SourceSecurityGroupName names a group of a default VPC or EC2-Classic: give SourceSecurityGroupId")
    out.update(peers)
    if rule.get("Description"):
        out["description"] = str(rule["Description"])
    return out


def _standalone_rule(s: Stack, logical: str) -> None:
    s.ident(logical, "GroupId", "sg")
    _pending(s, logical, "sg_rule")


def _network_acl(s: Stack, logical: str) -> None:
    _add(s, "network_acls", logical, {"id": s.physical_id(logical), "vpc_id": s.ident(logical, "VpcId", "vpc"),
                                      "ingress": [], "egress": [], "name": logical}, {"vpc_id": "VpcId"})


# --- ENIs ----------------------------------------------------------------------------------

def _network_interface(s: Stack, logical: str) -> None:
    entry: dict[str, Any] = {"id": s.physical_id(logical), "subnet_id": s.ident(logical, "SubnetId", "subnet"),
                             "description": s.text(logical, "Description") or logical,
                             "source_dest_check": s.flag(logical, "SourceDestCheck", True)}
    groups = s.id_list(logical, "GroupSet", "sg")
    if groups:
        entry["security_group_ids"] = groups
    _add(s, "network_interfaces", logical, entry, {"subnet_id": "SubnetId", "private_ip": "PrivateIpAddress",
                                                   "security_group_ids": "GroupSet"})


def _instance(s: Stack, logical: str) -> None:
    """An instance as the holder of its ENIs; a public IPv4 address when its interface asks for
    one (``AssociatePublicIpAddress``) or its subnet gives one (``MapPublicIpOnLaunch``)."""
    instance_id = s.physical_id(logical)
    interfaces = s.value(logical, "NetworkInterfaces") or []
    if any(isinstance(nic, dict) and nic.get("NetworkInterfaceId") for nic in interfaces):
        _pending(s, logical, "instance_eni")  # ENIs of the template, attached to the instance
    for i, nic in enumerate(interfaces if isinstance(interfaces, list) else []):
        if isinstance(nic, dict) and not nic.get("NetworkInterfaceId"):
            entry = {"id": synthesized_id("eni", f"{logical}#{i}", s.scope), "subnet_id": nic.get("SubnetId"),
                     "kind": "instance", "instance_id": instance_id, "description": logical}
            if nic.get("GroupSet"):
                entry["security_group_ids"] = nic["GroupSet"]
            public = nic.get("AssociatePublicIpAddress")
            if public is True or str(public).lower() == "true" or (public is None and _maps_public(s, nic.get("SubnetId"))):
                entry["public_ip"] = s.public_ip(f"{logical}#{i}")
            _add(s, "network_interfaces", logical, entry, {"subnet_id": f"NetworkInterfaces[{i}].SubnetId"})
    if not interfaces:
        subnet = s.ident(logical, "SubnetId", "subnet")
        entry = {"id": synthesized_id("eni", logical, s.scope), "subnet_id": subnet,
                 "kind": "instance", "instance_id": instance_id, "description": logical,
                 "source_dest_check": s.flag(logical, "SourceDestCheck", True)}
        groups = s.id_list(logical, "SecurityGroupIds", "sg")
        if groups:
            entry["security_group_ids"] = groups
        if _maps_public(s, subnet):
            entry["public_ip"] = s.public_ip(f"{logical}#0")
        _add(s, "network_interfaces", logical, entry, {"subnet_id": "SubnetId", "private_ip": "PrivateIpAddress",
                                                       "security_group_ids": "SecurityGroupIds"})


def _maps_public(s: Stack, subnet_id: Any) -> bool:
    subnet = next((l for l in s.resources if s.type_of(l) == "AWS::EC2::Subnet" and s.physical_id(l) == subnet_id), None)
    return subnet is not None and s.flag(subnet, "MapPublicIpOnLaunch", False)


def holder_nodes(s: Stack, logical: str) -> list[tuple[str, str]]:
    """The (ENI id, subnet id) of each node of a database, cache or mount target."""
    kind, subnets_prop, groups_prop, count = HOLDERS[s.type_of(logical)]
    subnets = _holder_subnets(s, logical, subnets_prop)
    if not subnets:
        return []
    zone = s.text(logical, "AvailabilityZone")
    if zone:  # a single-AZ instance goes to its zone's subnet
        zones = {sid: z for sid, z in _subnet_zones(s).items()}
        subnets = [n for n in subnets if zones.get(n) == zone] or subnets
    return [(synthesized_id("eni", f"{logical}#{node}", s.scope), subnets[node % len(subnets)])
            for node in range(max(1, count(s, logical)))]


def _subnet_zones(s: Stack) -> dict[str, str]:
    return {s.physical_id(l): s.zone(l) for l in s.resources if s.type_of(l) == "AWS::EC2::Subnet"}


def _holder(s: Stack, logical: str) -> None:
    kind, subnets_prop, groups_prop, _ = HOLDERS[s.type_of(logical)]
    nodes = holder_nodes(s, logical)
    if not nodes:
        s.report.note(f"{logical} ({s.type_of(logical)}) names no subnet of the template: it is not placed")
        return
    groups = s.id_list(logical, groups_prop, "sg")
    for node, (eni_id, subnet_id) in enumerate(nodes):
        entry: dict[str, Any] = {"id": eni_id, "subnet_id": subnet_id, "kind": kind,
                                 "description": f"{logical} node {node + 1}" if node else logical}
        if groups:
            entry["security_group_ids"] = groups
        _add(s, "network_interfaces", logical, entry, {"subnet_id": subnets_prop, "security_group_ids": groups_prop})


def _holder_subnets(s: Stack, logical: str, prop: str) -> list[str]:
    if prop.endswith("SubnetIds"):
        return s.id_list(logical, prop, "subnet")
    if prop == "SubnetId":
        return [s.ident(logical, prop, "subnet") or ""]
    group = s.text(logical, prop)
    if group is None and s.type_of(logical) == "AWS::RDS::DBInstance" and s.value(logical, "DBClusterIdentifier"):
        return []  # an Aurora instance: the cluster's ENI stands for it
    for other in s.resources:
        if s.type_of(other) in _GROUP_TYPES and s.physical_id(other) == (group or "").lower():
            return s.id_list(other, "SubnetIds", "subnet")
    return []


# --- functions -----------------------------------------------------------------------------

def _function(s: Stack, logical: str) -> None:
    entry: dict[str, Any] = {"name": s.function_name(logical), "description": s.text(logical, "Description") or logical}
    config = s.value(logical, "VpcConfig")
    if isinstance(config, dict) and (config.get("SubnetIds") or config.get("SecurityGroupIds")):
        entry["vpc_config"] = {"subnet_ids": _ids(s, logical, config, "SubnetIds", "subnet"),
                               "security_group_ids": _ids(s, logical, config, "SecurityGroupIds", "sg")}
    entry["role"] = _role(s, logical)
    _add(s, "functions", logical, entry, {"vpc_config": "VpcConfig", "role": "Role",
                                          "name": "FunctionName"})


def _ids(s: Stack, logical: str, config: Mapping[str, Any], key: str, prefix: str) -> list[str]:
    values = config.get(key) or []
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",") if v.strip()]
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value.startswith(prefix + "-"):
            s.fail(s.at(logical, f"VpcConfig.{key}[{i}]"), f"{value!r} is not a {prefix}-… id")
    return list(values)


def _role(s: Stack, logical: str) -> dict[str, Any]:
    """The execution role: a role of the template is read (managed policies, inline policies and
    the ``AWS::IAM::Policy``/``ManagedPolicy`` attached to it); a role from elsewhere is assumed
    to have ``AWSLambdaVPCAccessExecutionRole``, as for a snapshot."""
    arn = str(_lenient(s, logical, "Role") or "")  # e.g. an !ImportValue of a role made elsewhere
    role = next((r for r in s.resources if s.type_of(r) == "AWS::IAM::Role" and s.arn(r) == arn), None)
    if role is None:
        if arn.startswith("arn:aws:iam::") and ":role/" in arn:
            return {"arn": arn, "managed_policies": ["AWSLambdaVPCAccessExecutionRole"]}
        return {"name": f"{s.function_name(logical)}-role", "managed_policies": ["AWSLambdaVPCAccessExecutionRole"]}
    policies: list[str] = []
    actions: list[str] = []
    for name in _lenient(s, role, "ManagedPolicyArns") or []:
        short = str(name).rsplit("/", 1)[-1]
        if short in MANAGED_POLICIES:
            policies.append(short)
    for policy in _lenient(s, role, "Policies") or []:
        actions += _actions(policy.get("PolicyDocument") if isinstance(policy, dict) else None)
    role_name = s.physical_id(role)
    for other in s.resources:
        if s.type_of(other) in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and s.exists(other):
            if role_name in [str(r) for r in (_lenient(s, other, "Roles") or [])]:
                actions += _actions(_lenient(s, other, "PolicyDocument"))
    return {"name": role_name, "managed_policies": sorted(set(policies)), "permissions": sorted(set(actions))}


def _lenient(s: Stack, logical: str, prop: str) -> Any:
    """A property outside the data plane: what does not resolve is not read."""
    try:
        return s.value(logical, prop)
    except TopologyError:
        return None


def _actions(document: Any) -> list[str]:
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    found: list[str] = []
    for statement in statements or []:
        if isinstance(statement, dict) and statement.get("Effect") == "Allow":
            action = statement.get("Action")
            found += [a for a in ([action] if isinstance(action, str) else action or [])
                      if isinstance(a, str) and (a == "*" or ":" in a)]
    return found


def _version(s: Stack, logical: str) -> None:
    _pending(s, logical, "version")


def _later(s: Stack, logical: str) -> None:
    """A resource that changes another: applied once every stack is read."""
    _pending(s, logical, s.type_of(logical))


_HANDLERS: Mapping[str, Callable[[Stack, str], None]] = {
    "AWS::EC2::VPC": _vpc, "AWS::EC2::VPCCidrBlock": _vpc_cidr, "AWS::EC2::Subnet": _subnet,
    "AWS::EC2::RouteTable": _route_table, "AWS::EC2::InternetGateway": _internet_gateway,
    "AWS::EC2::NatGateway": _nat_gateway, "AWS::EC2::PrefixList": _prefix_list,
    "AWS::EC2::VPCEndpoint": _endpoint, "AWS::EC2::VPCPeeringConnection": _peering,
    "AWS::EC2::SecurityGroup": _security_group, "AWS::EC2::SecurityGroupIngress": _standalone_rule,
    "AWS::EC2::SecurityGroupEgress": _standalone_rule, "AWS::EC2::NetworkAcl": _network_acl,
    "AWS::EC2::NetworkInterface": _network_interface, "AWS::EC2::Instance": _instance,
    "AWS::Lambda::Function": _function, "AWS::Lambda::Version": _version,
    **{kind: _holder for kind in HOLDERS},
    **{kind: _later for kind in (
        "AWS::EC2::Route", "AWS::EC2::SubnetRouteTableAssociation", "AWS::EC2::SubnetNetworkAclAssociation",
        "AWS::EC2::NetworkAclEntry", "AWS::EC2::VPCGatewayAttachment", "Custom::VpcRestrictDefaultSG",
        "AWS::EC2::EIP", "AWS::EC2::EIPAssociation")},
}

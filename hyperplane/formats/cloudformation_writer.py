"""Writing a Topology as a CloudFormation template (JSON), which
:func:`~hyperplane.formats.cloudformation_reader.load_cloudformation` reads back with the same
verdicts.

Each resource becomes its CloudFormation type, named by a logical id made of its name (or id);
references are ``Ref``/``Fn::GetAtt``. What a template cannot say is written as AWS would create
it: the VPC's default security group, network ACL and main route table are AWS's (a main table
with routes, or a default NACL with other rules, is written as a table or ACL of its own,
associated with the subnets that used it); addresses CloudFormation cannot fix (interface
endpoint ENIs, the addresses of Elastic IPs) are left to allocation; a group without egress rules gets the
CDK's "disallow all" rule (``255.255.255.255/32``, ICMP 252/86), which the reader reads back
as no rule; AWS-managed prefix lists are not written (their ranges are AWS's).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from hyperplane.model import ICMP, PROTOCOL_ALL, NetworkAclEntry, SecurityGroupRule, Topology, has_ports

__all__ = ["template_document", "write_cloudformation"]

#: The CDK's rule standing for "no egress at all" (a group cannot be created without a rule).
DISALLOW_ALL = {"CidrIp": "255.255.255.255/32", "Description": "Disallow all traffic", "FromPort": 252,
                "IpProtocol": "icmp", "ToPort": 86}
_MANAGED = re.compile(r"^com\.amazonaws\.")
_TARGET_KEY = {"igw": "GatewayId", "nat": "NatGatewayId", "eni": "NetworkInterfaceId", "pcx": "VpcPeeringConnectionId",
               "vpce": "VpcEndpointId"}
_UNMODELLED_KEY = {"tgw-": "TransitGatewayId", "eigw-": "EgressOnlyInternetGatewayId", "cagw-": "CarrierGatewayId",
                   "lgw-": "LocalGatewayId", "vgw-": "GatewayId"}


def write_cloudformation(topology: Topology, path: str | os.PathLike[str]) -> Path:
    """Write ``topology`` as a CloudFormation template (JSON) at ``path``; returns the path."""
    path = Path(path)
    path.write_text(json.dumps(template_document(topology), indent=2) + "\n")
    return path


def template_document(topology: Topology) -> dict[str, Any]:
    """The topology as a CloudFormation template (plain data)."""
    t = topology
    taken: set[str] = set()
    logical: dict[str, str] = {}

    def name_of(resource_id: str, name: str = "") -> str:
        base = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name or resource_id) if part)
        base = base or "Resource"
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}{n}", n + 1
        taken.add(candidate)
        logical[resource_id] = candidate
        return candidate

    def ref(resource_id: str) -> Any:
        return {"Ref": logical[resource_id]} if resource_id in logical else resource_id

    resources: dict[str, Any] = {}
    for v in t.vpcs.values():
        resources[name_of(v.id, v.name)] = {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": str(v.cidrs[0])}}
    for v in t.vpcs.values():
        for k, cidr in enumerate(v.cidrs[1:]):
            resources[name_of(f"{v.id}-cidr-{k}")] = {"Type": "AWS::EC2::VPCCidrBlock", "Properties": {
                "VpcId": ref(v.id), "CidrBlock": str(cidr)}}
        default_group = t.security_groups.get(v.default_security_group_id)
        if default_group is not None:
            logical[default_group.id] = f"{logical[v.id]}.DefaultSecurityGroup"
    for pl in t.prefix_lists.values():
        if not _MANAGED.match(pl.name):
            resources[name_of(pl.id, pl.name)] = {"Type": "AWS::EC2::PrefixList", "Properties": {
                "PrefixListName": pl.name, "AddressFamily": "IPv4", "MaxEntries": max(1, len(pl.cidrs)),
                "Entries": [{"Cidr": str(c)} for c in pl.cidrs]}}
    for s in t.subnets.values():
        resources[name_of(s.id, s.name)] = {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": ref(s.vpc_id), "CidrBlock": str(s.cidr), "AvailabilityZone": s.availability_zone}}
    for g in t.internet_gateways.values():
        gw = name_of(g.id, g.name)
        resources[gw] = {"Type": "AWS::EC2::InternetGateway"}
        if g.vpc_id:
            resources[f"{gw}Attachment"] = {"Type": "AWS::EC2::VPCGatewayAttachment", "Properties": {
                "VpcId": ref(g.vpc_id), "InternetGatewayId": ref(g.id)}}
    for group in t.security_groups.values():
        if group.id in logical:
            continue
        resources[name_of(group.id, group.name)] = {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": group.description or group.name, "VpcId": ref(group.vpc_id)}}
    for group in t.security_groups.values():  # rules once every group has its logical id
        if "." in logical[group.id]:
            continue
        group_props = resources[logical[group.id]]["Properties"]
        group_props["SecurityGroupIngress"] = [_rule(r, False, ref) for r in group.ingress]
        if not _allows_all(group.egress):
            group_props["SecurityGroupEgress"] = [_rule(r, True, ref) for r in group.egress] or [DISALLOW_ALL]
    for n in t.nat_gateways.values():
        nat = name_of(n.id, n.name)
        props: dict[str, Any] = {"SubnetId": ref(n.subnet_id), "ConnectivityType": n.connectivity_type,
                                 "PrivateIpAddress": str(n.private_ip)}
        for k, _ in enumerate(n.elastic_ips):
            resources[f"{nat}Eip{k or ''}"] = {"Type": "AWS::EC2::EIP", "Properties": {"Domain": "vpc"}}
        if n.elastic_ips:
            props["AllocationId"] = {"Fn::GetAtt": [f"{nat}Eip", "AllocationId"]}
            if len(n.elastic_ips) > 1:
                props["SecondaryAllocationIds"] = [{"Fn::GetAtt": [f"{nat}Eip{k}", "AllocationId"]}
                                                   for k in range(1, len(n.elastic_ips))]
        if len(n.private_ips) > 1:
            props["SecondaryPrivateIpAddresses"] = [str(a) for a in n.private_ips[1:]]
        resources[nat] = {"Type": "AWS::EC2::NatGateway", "Properties": props}
    for p in t.vpc_peering_connections.values():
        resources[name_of(p.id, p.name)] = {"Type": "AWS::EC2::VPCPeeringConnection", "Properties": {
            "VpcId": ref(p.vpc_id), "PeerVpcId": ref(p.peer_vpc_id)}}
    for e in t.network_interfaces.values():
        if e.managed_by or e.kind in ("nat_gateway", "vpc_endpoint", "lambda"):
            continue
        props = {"SubnetId": ref(e.subnet_id), "PrivateIpAddress": str(e.private_ip),
                 "GroupSet": [ref(g) if "." not in logical.get(g, "") else _getatt(logical[g]) for g in e.security_group_ids],
                 "SourceDestCheck": e.source_dest_check, "Description": e.description}
        if e.secondary_private_ips:
            props["PrivateIpAddresses"] = [{"PrivateIpAddress": str(a), "Primary": False} for a in e.secondary_private_ips]
        eni = name_of(e.id, e.description if e.kind != "instance" else "")
        resources[eni] = {"Type": "AWS::EC2::NetworkInterface", "Properties": props}
        if e.public_ip is not None:  # an Elastic IP of its own (its address is AWS's to choose)
            resources[f"{eni}Eip"] = {"Type": "AWS::EC2::EIP", "Properties": {"Domain": "vpc"}}
            resources[f"{eni}EipAssociation"] = {"Type": "AWS::EC2::EIPAssociation", "Properties": {
                "AllocationId": {"Fn::GetAtt": [f"{eni}Eip", "AllocationId"]}, "NetworkInterfaceId": {"Ref": eni}}}
    _tables_and_acls(t, resources, name_of, ref, logical)
    for ep in t.vpc_endpoints.values():
        props = {"VpcId": ref(ep.vpc_id), "ServiceName": ep.service_name,
                 "VpcEndpointType": {"gateway": "Gateway", "interface": "Interface"}.get(ep.endpoint_type, "GatewayLoadBalancer")}
        if ep.endpoint_type == "gateway":
            props["RouteTableIds"] = [ref(r) for r in ep.route_table_ids]
        elif ep.endpoint_type == "interface":
            props.update(SubnetIds=[ref(s) for s in ep.subnet_ids], PrivateDnsEnabled=ep.private_dns_enabled,
                         SecurityGroupIds=[ref(g) if "." not in logical.get(g, "") else _getatt(logical[g])
                                           for g in ep.security_group_ids])
        resources[name_of(ep.id, ep.name)] = {"Type": "AWS::EC2::VPCEndpoint", "Properties": props}
    for fn in t.functions.values():
        role, function = name_of(f"{fn.name}-role"), name_of(f"function-{fn.name}", fn.name)
        statements = [{"Effect": "Allow", "Action": list(fn.role.permissions), "Resource": "*"}] if fn.role.permissions else []
        resources[role] = {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": fn.role.arn.rsplit("/", 1)[-1],
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "ManagedPolicyArns": [f"arn:aws:iam::aws:policy/service-role/{p}" for p in fn.role.managed_policies],
            "Policies": [{"PolicyName": "permissions", "PolicyDocument": {"Version": "2012-10-17",
                                                                          "Statement": statements}}] if statements else []}}
        props = {"FunctionName": fn.name, "Description": fn.description, "Role": {"Fn::GetAtt": [role, "Arn"]},
                 "Runtime": "python3.12", "Handler": "index.handler", "Code": {"ZipFile": "def handler(e, c): pass"}}
        if fn.vpc_config is not None:
            props["VpcConfig"] = {"SubnetIds": [ref(s) for s in fn.vpc_config.subnet_ids],
                                  "SecurityGroupIds": [ref(g) if "." not in logical.get(g, "") else _getatt(logical[g])
                                                       for g in fn.vpc_config.security_group_ids]}
        resources[function] = {"Type": "AWS::Lambda::Function", "Properties": props}
        for published in fn.versions:
            resources[f"{function}Version{published.version}"] = {"Type": "AWS::Lambda::Version",
                                                          "Properties": {"FunctionName": {"Ref": function}}}
    return {"AWSTemplateFormatVersion": "2010-09-09",
            "Description": f"hyperplane topology of account {t.account_id} in {t.region}", "Resources": resources}


def _getatt(dotted: str) -> dict[str, Any]:
    return {"Fn::GetAtt": dotted.split(".", 1)}


def _allows_all(rules: tuple[SecurityGroupRule, ...]) -> bool:
    return len(rules) == 1 and rules[0].protocol == PROTOCOL_ALL and str(rules[0].cidr) == "0.0.0.0/0"


def _protocol(protocol: int) -> str:
    return {PROTOCOL_ALL: "-1", 6: "tcp", 17: "udp", ICMP: "icmp"}.get(protocol, str(protocol))


def _rule(rule: SecurityGroupRule, egress: bool, ref: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"IpProtocol": _protocol(rule.protocol)}
    if has_ports(rule.protocol):
        out["FromPort"], out["ToPort"] = rule.port_range
    elif rule.protocol == ICMP:
        out["FromPort"], out["ToPort"] = rule.icmp_type, rule.icmp_code
    side = "Destination" if egress else "Source"
    if rule.cidr is not None:
        out["CidrIp"] = str(rule.cidr)
    elif rule.security_group_id:
        out[f"{side}SecurityGroupId"] = ref(rule.security_group_id)
    elif rule.prefix_list_id:
        out[f"{side}PrefixListId"] = ref(rule.prefix_list_id)
    if rule.description:
        out["Description"] = rule.description
    return out


def _entry(e: NetworkAclEntry, acl: str) -> dict[str, Any]:
    props: dict[str, Any] = {"NetworkAclId": {"Ref": acl}, "RuleNumber": e.rule_number, "Protocol": e.protocol,
                             "RuleAction": e.rule_action, "Egress": e.egress, "CidrBlock": str(e.cidr)}
    if has_ports(e.protocol):
        props["PortRange"] = {"From": e.port_range[0], "To": e.port_range[1]}
    elif e.protocol == ICMP:
        props["Icmp"] = {"Type": e.icmp_type, "Code": e.icmp_code}
    return {"Type": "AWS::EC2::NetworkAclEntry", "Properties": props}


def _tables_and_acls(t: Topology, resources: dict[str, Any], name_of: Any, ref: Any, logical: dict[str, str]) -> None:
    """Route tables, network ACLs and their subnets; the VPC's own ones only when they differ
    from what AWS creates."""
    for rt in t.route_tables.values():
        if rt.is_main and all(r.target == "local" for r in rt.routes):
            continue
        table = name_of(rt.id, rt.name)
        resources[table] = {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": ref(rt.vpc_id)}}
        for k, r in enumerate(rt.routes):
            if r.target == "local" or r.target in t.vpc_endpoints and t.vpc_endpoints[r.target].endpoint_type == "gateway":
                continue  # the VPC's own route; a gateway endpoint adds its routes itself
            props: dict[str, Any] = {"RouteTableId": {"Ref": table}}
            if r.is_prefix_list_route:
                props["DestinationPrefixListId"] = ref(str(r.destination))
            else:
                props["DestinationCidrBlock"] = str(r.destination)
            prefix = r.target.split("-", 1)[0]
            key = _TARGET_KEY.get(prefix) or next((v for p, v in _UNMODELLED_KEY.items() if r.target.startswith(p)), "GatewayId")
            props[key] = ref(r.target)
            resources[f"{table}Route{k}"] = {"Type": "AWS::EC2::Route", "Properties": props}
        for s in t.subnets_using_route_table(rt.id):
            resources[f"{logical[s.id]}RouteTableAssociation"] = {
                "Type": "AWS::EC2::SubnetRouteTableAssociation",
                "Properties": {"SubnetId": ref(s.id), "RouteTableId": {"Ref": table}}}
    for acl in t.network_acls.values():
        entries = [e for e in acl.entries if not e.is_implicit_deny]
        if acl.is_default and len(entries) == 2 and all(
                e.rule_number == 100 and e.rule_action == "allow" and e.protocol == PROTOCOL_ALL
                and str(e.cidr) == "0.0.0.0/0" for e in entries):
            continue
        name = name_of(acl.id, acl.name)
        resources[name] = {"Type": "AWS::EC2::NetworkAcl", "Properties": {"VpcId": ref(acl.vpc_id)}}
        for e in entries:
            resources[f"{name}{'Egress' if e.egress else 'Ingress'}{e.rule_number}"] = _entry(e, name)
        for s in t.subnets_using_network_acl(acl.id):
            resources[f"{logical[s.id]}NetworkAclAssociation"] = {
                "Type": "AWS::EC2::SubnetNetworkAclAssociation",
                "Properties": {"SubnetId": ref(s.id), "NetworkAclId": {"Ref": name}}}

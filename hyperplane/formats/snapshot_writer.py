"""Writing a Topology as a describe-* snapshot folder (the JSON AWS's describe calls return),
which :func:`~hyperplane.formats.snapshot_reader.load_aws_snapshot` reads back with the same verdicts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from hyperplane.formats._snapshot_fields import _suffix
from hyperplane.model import (
    ICMP, PROTOCOL_ALL, NetworkAclEntry, Route, SecurityGroupRule, Topology, VpcConfig, has_ports,
)

__all__ = ["describe_documents", "write_describe_folder"]


# --------------------------------------------------------------------------------------------
# topology -> describe-* documents


_TARGET_KEY = {"nat": "NatGatewayId", "eni": "NetworkInterfaceId", "pcx": "VpcPeeringConnectionId"}
_ENDPOINT_TYPE = {"gateway": "Gateway", "interface": "Interface", "gateway_load_balancer": "GatewayLoadBalancer"}
_UNMODELLED_KEY = {"tgw-": "TransitGatewayId", "eigw-": "EgressOnlyInternetGatewayId", "cagw-": "CarrierGatewayId",
                   "lgw-": "LocalGatewayId", "arn:": "CoreNetworkArn", "vgw-": "GatewayId"}


def _tags(name: str) -> list[dict]:
    return [{"Key": "Name", "Value": name}] if name else []


def _aws_protocol(protocol: int) -> str:
    return {PROTOCOL_ALL: "-1", 6: "tcp", 17: "udp", ICMP: "icmp"}.get(protocol, str(protocol))


def _permission(rule: SecurityGroupRule, account: str) -> dict:
    out: dict[str, Any] = {"IpProtocol": _aws_protocol(rule.protocol)}
    if has_ports(rule.protocol):
        out["FromPort"], out["ToPort"] = rule.port_range
    elif rule.protocol == ICMP:
        out["FromPort"], out["ToPort"] = rule.icmp_type, rule.icmp_code
    desc = {"Description": rule.description} if rule.description else {}
    out["IpRanges"] = [{"CidrIp": str(rule.cidr)} | desc] if rule.cidr is not None else []
    out["Ipv6Ranges"] = []
    out["PrefixListIds"] = [{"PrefixListId": rule.prefix_list_id} | desc] if rule.prefix_list_id else []
    out["UserIdGroupPairs"] = ([{"GroupId": rule.security_group_id, "UserId": account} | desc]
                               if rule.security_group_id else [])
    return out


def _eni_document(t: Topology, eni_id: str, subnet_id: str, ips: Sequence[Any], groups: Sequence[str],
                  public_ip: Any, interface_type: str, description: str, instance_id: str | None = None,
                  source_dest_check: bool = True) -> dict:
    subnet = t.subnets[subnet_id]
    association = {"Association": {"PublicIp": str(public_ip), "IpOwnerId": "amazon"}} if public_ip else {}
    out: dict[str, Any] = association | {
        "AvailabilityZone": subnet.availability_zone, "Description": description,
        "Groups": [{"GroupId": g, "GroupName": t.security_groups[g].name} for g in groups],
        "InterfaceType": interface_type, "NetworkInterfaceId": eni_id, "OwnerId": t.account_id,
        "PrivateIpAddress": str(ips[0]),
        "PrivateIpAddresses": [({"Primary": k == 0, "PrivateIpAddress": str(ip)} | (association if k == 0 else {}))
                               for k, ip in enumerate(ips)],
        "RequesterManaged": interface_type != "interface", "SourceDestCheck": source_dest_check,
        "Status": "in-use", "SubnetId": subnet_id, "TagSet": [], "VpcId": subnet.vpc_id,
    }
    if instance_id:
        out["Attachment"] = {"DeviceIndex": 0, "InstanceId": instance_id, "InstanceOwnerId": t.account_id,
                             "Status": "attached"}
    return out


def describe_documents(topology: Topology, *, hyperplane_enis: Iterable[Any] = ()) -> dict[str, dict]:
    """The topology as describe-* documents, ``{"Vpcs.json": {"Vpcs": [...]}, ...}``.

    ``hyperplane_enis`` (e.g. ``network.hyperplane_enis``) are written as ENIs of
    ``InterfaceType`` ``lambda``, so that loading the folder takes them over again.
    """
    t = topology
    account = t.account_id
    docs: dict[str, dict] = {}
    docs["Vpcs.json"] = {"Vpcs": [{
        "CidrBlock": str(v.cidrs[0]),
        "CidrBlockAssociationSet": [{"AssociationId": f"vpc-cidr-assoc-{_suffix(v.id)}-{k}", "CidrBlock": str(c),
                                     "CidrBlockState": {"State": "associated"}} for k, c in enumerate(v.cidrs)],
        "IsDefault": False, "OwnerId": account, "State": "available", "Tags": _tags(v.name), "VpcId": v.id,
    } for v in t.vpcs.values()]}
    docs["Subnets.json"] = {"Subnets": [{
        "AvailabilityZone": s.availability_zone, "CidrBlock": str(s.cidr), "OwnerId": account,
        "State": "available", "SubnetId": s.id, "Tags": _tags(s.name), "VpcId": s.vpc_id,
    } | ({"AvailabilityZoneId": s.availability_zone_id} if s.availability_zone_id else {})
        for s in t.subnets.values()]}

    def route(r: Route) -> dict:
        out: dict[str, Any] = ({"DestinationPrefixListId": r.destination} if r.is_prefix_list_route
                               else {"DestinationCidrBlock": str(r.destination)})
        kind = r.target_kind
        if kind in _TARGET_KEY:
            out[_TARGET_KEY[kind]] = r.target
        elif kind == "unmodelled":
            out[next(v for p, v in _UNMODELLED_KEY.items() if r.target.startswith(p))] = r.target
        else:
            out["GatewayId"] = r.target
        out["Origin"] = "CreateRouteTable" if r.target == "local" else "CreateRoute"
        out["State"] = r.state
        return out

    tables = []
    for rt in t.route_tables.values():
        associations = [{"Main": True, "RouteTableAssociationId": f"rtbassoc-{_suffix(rt.id)}-main",
                         "RouteTableId": rt.id, "AssociationState": {"State": "associated"}}] if rt.is_main else []
        associations += [{"Main": False, "RouteTableAssociationId": f"rtbassoc-{_suffix(s.id)}", "RouteTableId": rt.id,
                          "SubnetId": s.id, "AssociationState": {"State": "associated"}}
                         for s in t.subnets_using_route_table(rt.id) if not rt.is_main]
        tables.append({"Associations": associations, "OwnerId": account, "PropagatingVgws": [], "RouteTableId": rt.id,
                       "Routes": [route(r) for r in rt.routes], "Tags": _tags(rt.name), "VpcId": rt.vpc_id})
    docs["RouteTables.json"] = {"RouteTables": tables}
    docs["SecurityGroups.json"] = {"SecurityGroups": [{
        "Description": g.description or g.name, "GroupId": g.id, "GroupName": g.name,
        "IpPermissions": [_permission(r, account) for r in g.ingress],
        "IpPermissionsEgress": [_permission(r, account) for r in g.egress],
        "OwnerId": account, "VpcId": g.vpc_id,
    } for g in t.security_groups.values()]}

    def entry(e: NetworkAclEntry) -> dict:
        out: dict[str, Any] = {"CidrBlock": str(e.cidr), "Egress": e.egress, "Protocol": str(e.protocol),
                               "RuleAction": e.rule_action, "RuleNumber": e.rule_number}
        if has_ports(e.protocol):
            out["PortRange"] = {"From": e.port_range[0], "To": e.port_range[1]}
        elif e.protocol == ICMP:
            out["IcmpTypeCode"] = {"Code": e.icmp_code, "Type": e.icmp_type}
        return out

    docs["NetworkAcls.json"] = {"NetworkAcls": [{
        "Associations": [{"NetworkAclAssociationId": f"aclassoc-{_suffix(s.id)}", "NetworkAclId": a.id, "SubnetId": s.id}
                         for s in t.subnets_using_network_acl(a.id)],
        "Entries": [entry(e) for e in (*a.entries, *(r for r in (*a.ingress, *a.egress) if r.is_implicit_deny))], "IsDefault": a.is_default, "NetworkAclId": a.id,
        "OwnerId": account, "Tags": _tags(a.name), "VpcId": a.vpc_id,
    } for a in t.network_acls.values()]}
    docs["InternetGateways.json"] = {"InternetGateways": [{
        "Attachments": [{"State": "available", "VpcId": g.vpc_id}] if g.vpc_id else [],
        "InternetGatewayId": g.id, "OwnerId": account, "Tags": _tags(g.name),
    } for g in t.internet_gateways.values()]}
    docs["NatGateways.json"] = {"NatGateways": [{
        "ConnectivityType": n.connectivity_type,
        "NatGatewayAddresses": [
            {"NetworkInterfaceId": n.network_interface_id, "PrivateIp": str(private), "IsPrimary": k == 0,
             "Status": "succeeded"} | ({"AllocationId": n.elastic_ips[k].allocation_id, "PublicIp": str(public)} if public else {})
            for k, (private, public) in enumerate(n.address_pairs)],
        "NatGatewayId": n.id, "State": "available", "SubnetId": n.subnet_id, "Tags": _tags(n.name),
        "VpcId": t.subnets[n.subnet_id].vpc_id,
    } for n in t.nat_gateways.values()]}
    docs["PrefixLists.json"] = {"PrefixLists": [
        {"Cidrs": [str(c) for c in p.cidrs], "PrefixListId": p.id, "PrefixListName": p.name}
        for p in t.prefix_lists.values()]}
    endpoints = []
    for ep in t.vpc_endpoints.values():
        out: dict[str, Any] = {"VpcEndpointId": ep.id, "VpcEndpointType": _ENDPOINT_TYPE[ep.endpoint_type],
                               "VpcId": ep.vpc_id, "ServiceName": ep.service_name, "State": "available",
                               "RouteTableIds": list(ep.route_table_ids), "SubnetIds": list(ep.subnet_ids),
                               "Groups": [{"GroupId": g, "GroupName": t.security_groups[g].name} for g in ep.security_group_ids],
                               "NetworkInterfaceIds": list(ep.network_interface_ids),
                               "PrivateDnsEnabled": ep.private_dns_enabled,
                               "DnsEntries": [{"DnsName": n} for n in ep.dns_names], "Tags": _tags(ep.name)}
        endpoints.append(out)
    docs["VpcEndpoints.json"] = {"VpcEndpoints": endpoints}
    enis = []
    reservations: dict[str, list[dict]] = {}
    for e in t.network_interfaces.values():
        interface_type = e.kind if e.kind in ("nat_gateway", "vpc_endpoint", "lambda") else "interface"
        description = e.description
        if e.kind == "rds" and not description:
            description = "RDSNetworkInterface"
        doc = _eni_document(t, e.id, e.subnet_id, e.private_ips, e.security_group_ids, e.public_ip,
                            interface_type, description, e.instance_id, e.source_dest_check)
        enis.append(doc)
        if e.instance_id:
            reservations.setdefault(e.instance_id, []).append(doc)
    for hp in hyperplane_enis:
        if hp.id in t.network_interfaces:
            continue
        enis.append(_eni_document(t, hp.id, hp.subnet_id, [hp.private_ip], hp.security_group_ids, None, "lambda",
                                  f"AWS Lambda VPC ENI-{(hp.functions or ['unused'])[0].split(':')[0]}"))
    docs["NetworkInterfaces.json"] = {"NetworkInterfaces": enis}
    docs["Reservations.json"] = {"Reservations": [{
        "Groups": [], "OwnerId": account, "ReservationId": f"r-{_suffix(instance_id)}",
        "Instances": [{"InstanceId": instance_id, "PrivateIpAddress": nics[0]["PrivateIpAddress"],
                       "SubnetId": nics[0]["SubnetId"], "VpcId": nics[0]["VpcId"], "State": {"Code": 16, "Name": "running"},
                       "NetworkInterfaces": [{k: v for k, v in nic.items() if k != "Attachment"}
                                             | {"Attachment": {"DeviceIndex": i, "Status": "attached"}}
                                             for i, nic in enumerate(nics)]}],
    } for instance_id, nics in reservations.items()]}
    peerings = []
    for p in t.vpc_peering_connections.values():
        own = t.vpcs[p.vpc_id].cidrs
        peer = t.vpcs[p.peer_vpc_id].cidrs if p.peer_vpc_id in t.vpcs else p.peer_cidrs
        info = lambda vpc_id, cidrs: {"CidrBlock": str(cidrs[0]) if cidrs else None,  # noqa: E731
                                      "CidrBlockSet": [{"CidrBlock": str(c)} for c in cidrs], "OwnerId": account,
                                      "Region": t.region, "VpcId": vpc_id}
        peerings.append({"AccepterVpcInfo": info(p.peer_vpc_id, peer), "RequesterVpcInfo": info(p.vpc_id, own),
                         "Status": {"Code": p.status, "Message": p.status.capitalize()}, "Tags": _tags(p.name),
                         "VpcPeeringConnectionId": p.id})
    docs["VpcPeeringConnections.json"] = {"VpcPeeringConnections": peerings}
    functions = []
    for fn in t.functions.values():
        def config(c: VpcConfig | None) -> dict:
            if c is None:
                return {"SubnetIds": [], "SecurityGroupIds": [], "VpcId": ""}
            return {"SubnetIds": list(c.subnet_ids), "SecurityGroupIds": list(c.security_group_ids),
                    "VpcId": t.subnets[c.subnet_ids[0]].vpc_id}
        arn = f"arn:aws:lambda:{t.region}:{account}:function:{fn.name}"
        base = {"FunctionName": fn.name, "Role": fn.role.arn, "Description": fn.description, "State": "Active"}
        functions.append(base | {"FunctionArn": arn, "Version": "$LATEST", "VpcConfig": config(fn.vpc_config)})
        for v in fn.versions:
            functions.append(base | {"FunctionArn": f"{arn}:{v.version}", "Version": v.version, "VpcConfig": config(v.vpc_config)})
    docs["Functions.json"] = {"Functions": functions}
    docs.update(_transit_gateway_documents(t))
    return docs


def _transit_gateway_documents(t: Topology) -> dict[str, dict]:
    """The describe-transit-gateway* outputs the snapshot reader takes (only when there are any)."""
    if not t.transit_gateways:
        return {}
    account = t.account_id
    atts = t.transit_gateway_attachments.values()
    return {
        "TransitGateways.json": {"TransitGateways": [
            {"TransitGatewayId": g.id, "State": "available", "OwnerId": account, "Tags": _tags(g.name)}
            for g in t.transit_gateways.values()]},
        "TransitGatewayAttachments.json": {"TransitGatewayAttachments": [
            {"TransitGatewayAttachmentId": a.id, "TransitGatewayId": a.transit_gateway_id, "ResourceType": a.resource_type,
             "ResourceId": a.resource_id, "State": "available", "Tags": _tags(a.name)}
            | ({"Association": {"TransitGatewayRouteTableId": a.route_table_id, "State": "associated"}}
               if a.route_table_id is not None else {})
            for a in atts]},
        "TransitGatewayVpcAttachments.json": {"TransitGatewayVpcAttachments": [
            {"TransitGatewayAttachmentId": a.id, "TransitGatewayId": a.transit_gateway_id, "VpcId": a.resource_id,
             "SubnetIds": list(a.subnet_ids), "State": "available", "Tags": _tags(a.name)}
            for a in atts if a.resource_type == "vpc"]},
        "TransitGatewayRouteTables.json": {"TransitGatewayRouteTables": [
            {"TransitGatewayRouteTableId": r.id, "TransitGatewayId": r.transit_gateway_id, "State": "available",
             "Tags": _tags(r.name)} for r in t.transit_gateway_route_tables.values()]},
        "TransitGatewayStaticRoutes.json": {"TransitGatewayStaticRoutes": [
            {"TransitGatewayRouteTableId": r.id, "Routes": [
                {"DestinationCidrBlock": str(x.destination), "Type": "static",
                 "State": "blackhole" if x.is_blackhole else "active",
                 "TransitGatewayAttachments": [] if x.attachment_id is None else [
                     {"TransitGatewayAttachmentId": x.attachment_id,
                      "ResourceType": t.transit_gateway_attachments[x.attachment_id].resource_type}]}
                for x in r.routes]} for r in t.transit_gateway_route_tables.values()]},
        "TransitGatewayPropagations.json": {"TransitGatewayPropagations": [
            {"TransitGatewayRouteTableId": r.id, "TransitGatewayRouteTablePropagations": [
                {"TransitGatewayAttachmentId": a, "State": "enabled",
                 "ResourceType": t.transit_gateway_attachments[a].resource_type} for a in r.propagations]}
            for r in t.transit_gateway_route_tables.values()]},
    }


def write_describe_folder(topology: Topology, folder: str | os.PathLike[str], *,
                          hyperplane_enis: Iterable[Any] = ()) -> list[Path]:
    """Write ``topology`` as a describe-* snapshot: ``folder/<region>/Vpcs.json`` and so on.

    Loading the folder back (:func:`load_aws_snapshot`, ``Network.load``) gives a topology with
    the same verdicts. Not carried: ENI kinds other than instance / rds / managed ones (written as
    ``interface``), execution role permissions (assumed, see :data:`~hyperplane.formats.snapshot_report.SNAPSHOT_ROLE_POLICIES`).
    Returns the files written.
    """
    region_dir = Path(folder) / topology.region
    region_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in describe_documents(topology, hyperplane_enis=hyperplane_enis).items():
        path = region_dir / name
        path.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
        written.append(path)
    return written

"""One CloudFormation stack being read, and the topology document its resources become.

:class:`Stack` holds one template (its resolved parameters, its ``Resolver``), reads its
resources' properties (resolved, typed, errors at their template path) and answers
``Ref``/``Fn::GetAtt`` for them; :mod:`hyperplane.formats.cloudformation_resources` translates
each resource into a :class:`Document` shared by every stack of a load (a CDK assembly has
several). The document is our topology format (docs/topology-format.md): ``parse_topology`` then applies
AWS's defaults and validates it, and :meth:`Document.origin_of` turns a path of the document
back into the template's (``subnets[2].cidr`` -> ``Resources.PrivateSubnetA.Properties.CidrBlock``).

Physical ids are :func:`~hyperplane.formats._iac.synthesized_id` of the logical id (scope: the
stack name); every resource's ``name`` is its logical id, so a trace can name it. Addresses the
template does not fix are allocated by ``cloudformation_resources`` (``allocate_addresses``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any, Callable, Mapping, NoReturn

from hyperplane.errors import TopologyError
from hyperplane.formats._iac import NotEmulated, synthesized_id
from hyperplane.formats.cloudformation_intrinsics import NO_VALUE, Resolver

__all__ = ["Document", "Stack", "ID_PREFIXES", "NOT_EMULATED"]

#: The id prefix of each resource type whose ``Ref`` is an AWS id.
ID_PREFIXES: Mapping[str, str] = {
    "AWS::EC2::VPC": "vpc", "AWS::EC2::Subnet": "subnet", "AWS::EC2::RouteTable": "rtb",
    "AWS::EC2::SecurityGroup": "sg", "AWS::EC2::NetworkAcl": "acl", "AWS::EC2::InternetGateway": "igw",
    "AWS::EC2::NatGateway": "nat", "AWS::EC2::VPCEndpoint": "vpce", "AWS::EC2::VPCPeeringConnection": "pcx",
    "AWS::EC2::NetworkInterface": "eni", "AWS::EC2::Instance": "i", "AWS::EC2::PrefixList": "pl",
    "AWS::EC2::TransitGateway": "tgw", "AWS::EC2::VPNGateway": "vgw", "AWS::EC2::CarrierGateway": "cagw",
    "AWS::EC2::EgressOnlyInternetGateway": "eigw", "AWS::EC2::SubnetRouteTableAssociation": "rtbassoc",
    "AWS::EC2::SubnetNetworkAclAssociation": "aclassoc", "AWS::EC2::VPCCidrBlock": "vpc-cidr-assoc",
    "AWS::EC2::SecurityGroupIngress": "sgr", "AWS::EC2::SecurityGroupEgress": "sgr",
    "AWS::EC2::NetworkAclEntry": "aclentry", "AWS::EC2::Route": "r", "AWS::EC2::VPCGatewayAttachment": "igwattach",
    "AWS::EC2::TransitGatewayAttachment": "tgw-attach", "AWS::EC2::TransitGatewayVpcAttachment": "tgw-attach",
}

#: Types inside the data plane that are not emulated: reported once, by kind and count.
NOT_EMULATED: Mapping[str, str] = {
    "AWS::EC2::TransitGateway": "transit gateways",
    "AWS::EC2::TransitGatewayAttachment": "transit gateway attachments",
    "AWS::EC2::TransitGatewayVpcAttachment": "transit gateway VPC attachments",
    "AWS::EC2::TransitGatewayRouteTable": "transit gateway route tables",
    "AWS::EC2::TransitGatewayRoute": "transit gateway routes",
    "AWS::EC2::VPNGateway": "VPN gateways", "AWS::EC2::VPNConnection": "VPN connections",
    "AWS::EC2::CustomerGateway": "customer gateways", "AWS::EC2::ClientVpnEndpoint": "Client VPN endpoints",
    "AWS::EC2::EgressOnlyInternetGateway": "egress-only internet gateways",
    "AWS::EC2::CarrierGateway": "carrier gateways",
    "AWS::ElasticLoadBalancing::LoadBalancer": "classic load balancers",
    "AWS::ElasticLoadBalancingV2::LoadBalancer": "load balancers",
    "AWS::ElasticLoadBalancingV2::TargetGroup": "target groups",
    "AWS::NetworkFirewall::Firewall": "Network Firewall firewalls",
    "AWS::Route53Resolver::ResolverEndpoint": "Route 53 Resolver endpoints",
    "AWS::EC2::VPCEndpointService": "endpoint services (PrivateLink)",
    "AWS::AutoScaling::AutoScalingGroup": "Auto Scaling groups",
    "AWS::ECS::Service": "ECS services", "AWS::EKS::Cluster": "EKS clusters",
    "AWS::OpenSearchService::Domain": "OpenSearch domains", "AWS::Elasticsearch::Domain": "Elasticsearch domains",
    "AWS::DocDB::DBCluster": "DocumentDB clusters", "AWS::Neptune::DBCluster": "Neptune clusters",
    "AWS::Redshift::Cluster": "Redshift clusters", "AWS::MSK::Cluster": "MSK clusters",
    "AWS::CloudFormation::Stack": "nested stacks (their templates are not read)",
}

_NAMES = {"vpc": "a VPC", "subnet": "a subnet", "sg": "a security group", "rtb": "a route table",
          "acl": "a network ACL", "igw": "an internet gateway", "nat": "a NAT gateway", "eni": "a network interface",
          "pl": "a prefix list", "vpce": "a VPC endpoint", "pcx": "a VPC peering connection", "i": "an instance"}


def _article(prefix: str) -> str:
    return f"{_NAMES.get(prefix, 'an')} ({prefix}-…)"


def _kind(value: Any) -> str:
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else type(value).__name__


@dataclass
class Document:
    """The topology document every stack of one load adds to, and where each part came from."""

    file: str
    region: str
    account: str
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: a document path (``subnets[2]``, ``subnets[subnet-…]``, ``route_tables[1].routes[0]``)
    #: -> (file, template path of the properties, {document key: property name})
    origins: dict[str, tuple[str, str, dict[str, str]]] = field(default_factory=dict)
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    public_ips: set[str] = field(default_factory=set)

    def add(self, kind: str, entry: dict[str, Any], file: str, where: str, fields: dict[str, str]) -> dict[str, Any]:
        items = self.lists.setdefault(kind, [])
        origin = (file, where, fields)
        self.origins[f"{kind}[{len(items)}]"] = origin
        key = entry.get("id") or entry.get("name")
        if key:
            self.origins[f"{kind}[{key}]"] = origin
            self.by_id[key] = entry
        items.append(entry)
        return entry

    def add_rule(self, owner: dict[str, Any], key: str, rule: dict[str, Any], file: str, where: str,
                 fields: dict[str, str]) -> None:
        """A rule or route of ``owner`` (a group, NACL or table) from another resource."""
        rules = owner.setdefault(key, [])
        kind, index = owner["_at"]
        for label in (f"{kind}[{index}]", f"{kind}[{owner['id']}]"):
            self.origins[f"{label}.{key}[{len(rules)}]"] = (file, where, fields)
        rules.append(rule)

    def topology(self) -> dict[str, Any]:
        out: dict[str, Any] = {"account_id": self.account, "region": self.region}
        for kind, items in self.lists.items():
            out[kind] = [{k: v for k, v in item.items() if not k.startswith("_")} for item in items]
        return out

    def origin_of(self, error: TopologyError) -> TopologyError:
        """The error of ``parse_topology`` named at its place in the template."""
        where = error.where
        best = max((k for k in self.origins if where == k or where.startswith(k + ".")), key=len, default=None)
        if best is None:
            return TopologyError(self.file, where, error.problem)
        file, base, fields = self.origins[best]
        rest = where[len(best) + 1:]
        head, _, tail = rest.partition(".")
        name = re.sub(r"\[.*", "", head)
        if name in ("id", "name") and not tail:
            rest = ""
        elif name in fields:
            rest = fields[name] + head[len(name):] + ("." + tail if tail else "")
        return TopologyError(file, f"{base}.{rest}" if rest else base.rsplit(".Properties", 1)[0], error.problem)


class Stack:
    """One template: its resources' ids and attributes, and their translation."""

    def __init__(self, file: str, template: Mapping[str, Any], *, name: str, scope: str, document: Document,
                 parameters: Mapping[str, Any], imports: Callable[[str, str], Any], report: NotEmulated,
                 addresses: Callable[["Stack", str, str], str]) -> None:
        self.file, self.doc, self.report = file, document, report
        self.scope = scope  # what keeps ids of different stacks apart (synthesized_id's scope)
        self.template = template
        self.resources: Mapping[str, Any] = template.get("Resources") or {}
        self.addresses = addresses
        pseudo = {
            "AWS::Region": document.region, "AWS::AccountId": document.account, "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": name, "AWS::NotificationARNs": [],
            "AWS::StackId": f"arn:aws:cloudformation:{document.region}:{document.account}:stack/{name}/"
                            + synthesized_id("stack", name)[6:],
        }
        self.r = Resolver(file, template, pseudo=pseudo, parameters=parameters, ref=self.ref,
                          getatt=self.getatt, imports=imports)
        self.busy: list[str] = []
        self.cache: dict[tuple[str, str], Any] = {}
        self.subnet_groups: dict[str, str] = {}  # Ref value of a subnet group -> its logical id

    def fail(self, where: str, problem: str) -> NoReturn:
        raise TopologyError(self.file, where, problem)

    def type_of(self, logical: str) -> str:
        return str(self.resources[logical].get("Type", ""))

    def at(self, logical: str, prop: str = "") -> str:
        return f"Resources.{logical}.Properties" + (f".{prop}" if prop else "")

    # --- what a resource's Ref and attributes are ------------------------------------------

    def exists(self, logical: str) -> bool:
        condition = self.resources[logical].get("Condition")
        return condition is None or self.r.condition(condition, f"Resources.{logical}.Condition")

    def physical_id(self, logical: str) -> str:
        kind = self.type_of(logical)
        if kind == "AWS::Lambda::Function":
            return self.function_name(logical)
        if kind == "AWS::EC2::EIP":
            return self.public_ip(logical)
        if kind in ("AWS::RDS::DBSubnetGroup", "AWS::ElastiCache::SubnetGroup", "AWS::MemoryDB::SubnetGroup"):
            name = self.text(logical, {"AWS::RDS::DBSubnetGroup": "DBSubnetGroupName",
                                       "AWS::ElastiCache::SubnetGroup": "CacheSubnetGroupName"}.get(kind, "SubnetGroupName"))
            value = (name or logical).lower()
            self.subnet_groups[value] = logical
            return value
        if kind == "AWS::IAM::Role":
            return self.text(logical, "RoleName") or logical
        prefix = ID_PREFIXES.get(kind)
        return synthesized_id(prefix, logical, self.scope) if prefix else logical

    def ref(self, logical: str, where: str) -> Any:
        if not self.exists(logical):
            self.fail(where, f"!Ref {logical}: {logical} is not created (its condition is false)")
        return self.physical_id(logical)

    def getatt(self, logical: str, attribute: str, where: str) -> Any:
        kind = self.type_of(logical)
        known: dict[str, Callable[[], Any]] = {
            "GroupId": lambda: self.physical_id(logical), "SubnetId": lambda: self.physical_id(logical),
            "VpcId": lambda: (self.physical_id(logical) if kind == "AWS::EC2::VPC" else self.value(logical, "VpcId")),
            "AllocationId": lambda: synthesized_id("eipalloc", logical, self.scope),
            "PublicIp": lambda: self.public_ip(logical),
            "Id": lambda: self.physical_id(logical), "PrefixListId": lambda: self.physical_id(logical),
            "NatGatewayId": lambda: self.physical_id(logical), "InternetGatewayId": lambda: self.physical_id(logical),
            "RouteTableId": lambda: self.physical_id(logical), "NetworkAclId": lambda: self.physical_id(logical),
            "Arn": lambda: self.arn(logical),
        }
        if kind == "AWS::EC2::VPC":
            suffix = self.physical_id(logical)[len("vpc-"):]
            known.update({
                "CidrBlock": lambda: self.text(logical, "CidrBlock", required=True),
                "DefaultSecurityGroup": lambda: f"sg-{suffix}-default",
                "DefaultNetworkAcl": lambda: f"acl-{suffix}-default",
                "MainRouteTableId": lambda: f"rtb-{suffix}-main",
                "CidrBlockAssociations": lambda: [synthesized_id("vpc-cidr-assoc", logical, self.scope)],
            })
        elif kind == "AWS::EC2::Subnet":
            known.update({"CidrBlock": lambda: self.text(logical, "CidrBlock", required=True),
                          "AvailabilityZone": lambda: self.zone(logical)})
        if attribute in known:
            return self.guarded(logical, attribute, where, known[attribute])
        if attribute in ("PrimaryPrivateIpAddress", "PrivateIp", "IpAddress") or attribute.endswith(".Address"):
            return self.guarded(logical, attribute, where, lambda: self.address_of(logical, where))
        if kind in ID_PREFIXES or kind == "AWS::Lambda::Function":
            self.fail(where, f"!GetAtt {logical}.{attribute}: {kind} has no attribute {attribute} that hyperplane reads")
        return f"{logical}.{attribute}"  # outside the data plane: nothing here reads it

    def guarded(self, logical: str, attribute: str, where: str, compute: Callable[[], Any]) -> Any:
        key = f"{logical}.{attribute}"
        if key in self.busy:
            cycle = " -> ".join(self.busy[self.busy.index(key):] + [key])
            self.fail(where, f"circular reference: {cycle}")
        self.busy.append(key)
        try:
            return compute()
        finally:
            self.busy.pop()

    def arn(self, logical: str) -> str:
        region, account = self.doc.region, self.doc.account
        kind = self.type_of(logical)
        if kind == "AWS::IAM::Role":
            return f"arn:aws:iam::{account}:role/{self.physical_id(logical)}"
        if kind == "AWS::Lambda::Function":
            return f"arn:aws:lambda:{region}:{account}:function:{self.physical_id(logical)}"
        return f"arn:aws:{kind.split('::')[1].lower()}:{region}:{account}:{logical}"

    def address_of(self, logical: str, where: str) -> str:
        return self.addresses(self, logical, where)

    def public_ip(self, logical: str) -> str:
        """An Elastic IP's address: from 198.18.0.0/15 (reserved for benchmarks, never a real
        destination), derived from the logical id, unique in the load."""
        key = (self.scope, logical)
        if key not in self.cache:
            number = int(synthesized_id("eip", logical, self.scope)[4:], 16)
            base = IPv4Network("198.18.0.0/15")
            while True:
                address = str(base[1 + number % (base.num_addresses - 2)])
                if address not in self.doc.public_ips:
                    break
                number += 1
            self.doc.public_ips.add(address)
            self.cache[key] = address
        return str(self.cache[key])

    def function_name(self, logical: str) -> str:
        return self.guarded(logical, "FunctionName", self.at(logical, "FunctionName"),
                            lambda: self.text(logical, "FunctionName") or logical[:64])

    def zone(self, logical: str) -> str:
        zone = self.text(logical, "AvailabilityZone")
        if zone:
            return zone
        zone_id = self.text(logical, "AvailabilityZoneId")  # use1-az1: AWS maps ids to names per account
        letter = "abcdef"[(int(zone_id[-1]) - 1) % 6] if zone_id and zone_id[-1].isdigit() else "a"
        return self.doc.region + letter

    # --- reading properties ---------------------------------------------------------------

    def properties(self, logical: str) -> Mapping[str, Any]:
        props = self.resources[logical].get("Properties") or {}
        if not isinstance(props, dict):
            self.fail(self.at(logical), f"Properties must be a mapping, not {type(props).__name__}")
        return props

    def value(self, logical: str, prop: str, *, required: bool = False) -> Any:
        key = (logical, prop)
        if key not in self.cache:
            raw = self.properties(logical).get(prop)
            if raw is None:
                if required:
                    self.fail(self.at(logical), f"{self.type_of(logical)} needs {prop}")
                return None
            value = self.r.resolve(raw, self.at(logical, prop))
            self.cache[key] = None if value is NO_VALUE else value
            if required and self.cache[key] is None:
                self.fail(self.at(logical, prop), f"{self.type_of(logical)} needs {prop}")
        return self.cache[key]

    def text(self, logical: str, prop: str, *, required: bool = False) -> str | None:
        value = self.value(logical, prop, required=required)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        if not isinstance(value, str):
            self.fail(self.at(logical, prop), f"{prop} must be a string, not {_kind(value)}")
        return value

    def ident(self, logical: str, prop: str, prefix: str, *, required: bool = True) -> str | None:
        value = self.text(logical, prop, required=required)
        if value is not None and not value.startswith(prefix + "-"):
            self.fail(self.at(logical, prop), f"{value!r} is not {_article(prefix)} id")
        return value

    def id_list(self, logical: str, prop: str, prefix: str) -> list[str]:
        value = self.value(logical, prop)
        if value is None:
            return []
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]  # a CommaDelimitedList
        if not isinstance(value, list):
            self.fail(self.at(logical, prop), f"{prop} must be a list of ids, not {_kind(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.startswith(prefix + "-"):
                self.fail(self.at(logical, f"{prop}[{i}]"), f"{item!r} is not {_article(prefix)} id")
        return list(value)

    def flag(self, logical: str, prop: str, default: bool) -> bool:
        value = self.value(logical, prop)
        if value is None:
            return default
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.fail(self.at(logical, prop), f"{prop} must be true or false, not {value!r}")
        return value

    def number(self, logical: str, prop: str, default: int) -> int:
        value = self.value(logical, prop)
        if value is None:
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            self.fail(self.at(logical, prop), f"{prop} must be a number, not {value!r}")

    def cidr(self, logical: str, prop: str, *, required: bool = True) -> str | None:
        """A CIDR as AWS stores it: host bits written in the template are cleared (noted)."""
        text = self.text(logical, prop, required=required)
        if text is None:
            return None
        try:
            network = IPv4Network(text, strict=False)
        except ValueError:
            return text  # parse_topology names the problem, at this property
        if "/" in text and str(network) != text:
            self.report.note(f"{logical}.{prop} {text} has host bits set: AWS creates {network}")
        return str(network)

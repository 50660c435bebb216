"""The topology file's ``transit_gateways`` (issue 16): each transit gateway with its route
tables and attachments, read into model resources with every error naming its place."""

from __future__ import annotations

from typing import Any

from hyperplane.formats._topology_fields import _join
from hyperplane.model import TransitGateway, TransitGatewayAttachment, TransitGatewayRoute, TransitGatewayRouteTable

#: The attachment types a topology file may declare.
ATTACHMENT_TYPES = ("vpc", "vpn", "direct-connect-gateway", "peering", "connect")


def read_transit_gateways(self: Any) -> tuple[dict[str, TransitGateway], dict[str, TransitGatewayAttachment],
                                             dict[str, TransitGatewayRouteTable]]:
    """``transit_gateways``: each with its ``route_tables`` (static ``routes``, ``blackhole``
    ones included, and ``propagations``) and ``attachments`` (a ``vpc`` one with its
    ``subnet_ids``; ``vpn``, ``direct-connect-gateway``, ``peering`` and ``connect`` ones
    with their ``resource_id``)."""
    r = self.r
    tgws: dict[str, TransitGateway] = {}
    attachments: dict[str, TransitGatewayAttachment] = {}
    tables: dict[str, TransitGatewayRouteTable] = {}
    for where, item in self.items("transit_gateways"):
        item = r.mapping(item, where, ("id", "name", "route_tables", "attachments"), ("id",))
        tgw_id = r.identifier(item["id"], _join(where, "id"), "tgw-")
        self.claim(tgw_id, where)
        tgws[tgw_id] = TransitGateway(tgw_id, r.text(item.get("name"), _join(where, "name")))
        at = _join(where, "route_tables")
        for i, node in enumerate(r.sequence(item.get("route_tables"), at)):
            here = f"{at}[{i}]"
            node = r.mapping(node, here, ("id", "name", "routes", "propagations"), ("id",))
            rtb_id = r.identifier(node["id"], _join(here, "id"), "tgw-rtb-")
            self.claim(rtb_id, here)
            routes = []
            rat = _join(here, "routes")
            for j, route in enumerate(r.sequence(node.get("routes"), rat)):
                there = f"{rat}[{j}]"
                route = r.mapping(route, there, ("destination", "attachment_id", "blackhole"), ("destination",))
                blackhole = r.boolean(route["blackhole"], _join(there, "blackhole")) if "blackhole" in route else False
                if blackhole == ("attachment_id" in route):
                    self.fail(there, "a transit gateway route has either an attachment_id or blackhole: true")
                att = None if blackhole else r.identifier(route["attachment_id"], _join(there, "attachment_id"), "tgw-attach-")
                routes.append(TransitGatewayRoute(r.cidr(route["destination"], _join(there, "destination")), att))
            pat = _join(here, "propagations")
            propagations = tuple(r.identifier(a, f"{pat}[{j}]", "tgw-attach-")
                                 for j, a in enumerate(r.sequence(node.get("propagations"), pat)))
            tables[rtb_id] = TransitGatewayRouteTable(rtb_id, tgw_id, tuple(routes), propagations,
                                                      r.text(node.get("name"), _join(here, "name")))
        at = _join(where, "attachments")
        for i, node in enumerate(r.sequence(item.get("attachments"), at)):
            here = f"{at}[{i}]"
            node = r.mapping(node, here, ("id", "name", "type", "vpc_id", "resource_id", "subnet_ids",
                                          "route_table_id"), ("id",))
            att_id = r.identifier(node["id"], _join(here, "id"), "tgw-attach-")
            self.claim(att_id, here)
            kind = r.string(node.get("type", "vpc"), _join(here, "type"))
            if kind not in ("vpc", "vpn", "direct-connect-gateway", "peering", "connect"):
                self.fail(_join(here, "type"), f"{kind!r} is not vpc, vpn, direct-connect-gateway, peering or connect")
            if kind == "vpc":
                if "vpc_id" not in node:
                    self.fail(here, "missing required key 'vpc_id' (a vpc attachment)")
                resource = r.identifier(node["vpc_id"], _join(here, "vpc_id"), "vpc-")
            else:
                if "vpc_id" in node or "subnet_ids" in node:
                    self.fail(here, f"a {kind} attachment has no vpc_id or subnet_ids (give its resource_id)")
                resource = r.string(node.get("resource_id", att_id), _join(here, "resource_id"))
            sat = _join(here, "subnet_ids")
            subnet_ids = tuple(r.identifier(x, f"{sat}[{j}]", "subnet-")
                               for j, x in enumerate(r.sequence(node.get("subnet_ids"), sat)))
            rtb = node.get("route_table_id")
            attachments[att_id] = TransitGatewayAttachment(
                att_id, tgw_id, kind, resource, subnet_ids,
                r.identifier(rtb, _join(here, "route_table_id"), "tgw-rtb-") if rtb is not None else None,
                r.text(node.get("name"), _join(here, "name")))
    return tgws, attachments, tables

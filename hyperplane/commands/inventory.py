"""``hyperplane list``: the names a user can ask about — functions, ENIs, subnets, NAT gateways,
endpoints — with what each is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from hyperplane.commands.common import load_network, topology_options

__all__ = ["inventory", "list_command"]


def inventory(net: Any) -> dict[str, list[dict[str, Any]]]:
    """What ``hyperplane list`` shows, as plain data."""
    t = net.topology
    functions = []
    for name in t.functions:
        fn = net.function(name)
        config = fn.vpc_config
        functions.append({"name": name, "state": fn.state,
                          "subnets": list(config.subnet_ids) if config else [],
                          "security_groups": list(config.security_group_ids) if config else [],
                          "hyperplane_enis": [f"{e.id} {e.private_ip} ({e.subnet_id})" for e in fn.hyperplane_enis]})
    enis = [{"id": e.id, "kind": e.kind, "address": str(e.private_ip), "public": str(e.public_ip or ""),
             "subnet": e.subnet_id, "security_groups": list(e.security_group_ids), "description": e.description}
            for e in t.network_interfaces.values()]
    subnets = [{"id": s.id, "name": s.name or "", "vpc": s.vpc_id, "cidr": str(s.cidr), "zone": s.availability_zone,
                "route_table": s.route_table_id, "network_acl": s.network_acl_id} for s in t.subnets.values()]
    nats = [{"id": n.id, "subnet": n.subnet_id, "type": n.connectivity_type, "address": str(n.private_ip)}
            for n in t.nat_gateways.values()]
    endpoints = [{"id": e.id, "type": e.endpoint_type, "service": e.service_name,
                  "dns": None if e.endpoint_type != "interface" else
                  "private DNS" if e.private_dns_enabled else "no private DNS"}
                 for e in t.vpc_endpoints.values()]
    return {"functions": functions, "network_interfaces": enis, "subnets": subnets, "nat_gateways": nats,
            "vpc_endpoints": endpoints}


@click.command("list")
@topology_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_command(topology: Path | None, repair: bool, fmt: str) -> None:
    """List the functions (state, subnets, Hyperplane ENIs), ENIs, subnets, NAT gateways and
    endpoints: the names to give trace, reach and check."""
    data = inventory(load_network(topology, repair))
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    for section, rows in data.items():
        click.echo(f"{section.replace('_', ' ')} ({len(rows)})")
        for row in rows:
            first, *rest = row.values()
            shown = [", ".join(v) if isinstance(v, list) else str(v) for v in rest if v not in (None, "", [])]
            click.echo(f"  {first:<24} " + "  ".join(shown))

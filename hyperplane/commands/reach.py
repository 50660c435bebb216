"""``hyperplane reach``: what a source can reach — every destination, protocol and port range,
with its verdict and what decided it — or, with ``--reverse``, who can connect to a destination."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hyperplane.commands.common import UserError, load_network, topology_options
from hyperplane.errors import HyperplaneError

__all__ = ["reach"]


@click.command()
@topology_options
@click.argument("source")
@click.option("--to", "destinations", multiple=True, metavar="DEST",
              help="Only this destination (repeatable): an address, an ENI id or short name (db), an endpoint, "
                   "'dns' or 'internet'. Default: every destination of the network.")
@click.option("--reverse", is_flag=True,
              help="SOURCE is a destination: list who can connect to it (every function from each subnet, "
                   "every ENI, the internet), on which ports.")
@click.option("--connected", "only_connected", is_flag=True, help="Only the rows that connect.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
def reach(topology: Path | None, repair: bool, source: str, destinations: tuple[str, ...], reverse: bool,
          only_connected: bool, fmt: str) -> None:
    """Every destination, protocol (tcp, udp, icmp echo) and port range SOURCE (a function, from
    each of its subnets; an ENI or instance id; 'internet') can or cannot connect to, both ways,
    with the deciding resource and rule. Exact: one walk per class of ports that no rule tells
    apart. The network is not changed (a scratch copy answers)."""
    try:
        net = load_network(topology, repair)
        if reverse:
            if destinations:
                raise UserError("--reverse takes the destination as SOURCE, not --to")
            answer = net.reachability(to=source)
        else:
            answer = net.reachability(source, list(destinations) or None)
    except (HyperplaneError, ValueError, OSError) as exc:
        raise UserError(str(exc)) from exc
    if only_connected:
        answer.rows = [r for r in answer.rows if r.connected]
    if fmt == "json":
        click.echo(json.dumps(answer.to_dict(), indent=2))
    elif fmt == "csv":
        click.echo(answer.to_csv(), nl=False)
    else:
        click.echo(str(answer))

"""``hyperplane lint``: the mistakes that can be found without a question, each shown by a walk
(hyperplane.connectivity.lint). Exit 0 without findings, 1 with any, 2 on a bad topology."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hyperplane.commands.common import UserError, load_network, topology_options
from hyperplane.connectivity.lint import KINDS
from hyperplane.errors import HyperplaneError

__all__ = ["lint"]


@click.command()
@topology_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table: one finding per entry; json: every finding with its trace and evidence.")
@click.option("--trace", "show_trace", is_flag=True, help="Print, under each finding, the walk that shows it.")
@click.option("--ignore", "ignored", multiple=True, type=click.Choice(sorted(KINDS)),
              help="Leave out findings of this kind (repeatable).")
def lint(topology: Path | None, repair: bool, fmt: str, show_trace: bool, ignored: tuple[str, ...]) -> None:
    """Find, without a question, functions in public subnets, NAT gateways without a way to
    the internet, NACLs that deny the replies of connections security groups allow, blackhole
    routes and interface endpoints without private DNS."""
    from hyperplane.connectivity.lint import lint as run_lint

    try:
        net = load_network(topology, repair)
        findings = [f for f in run_lint(net) if f.kind not in ignored]
    except (HyperplaneError, ValueError, OSError) as exc:
        raise UserError(str(exc)) from exc
    if fmt == "json":
        click.echo(json.dumps([f.to_dict() for f in findings], indent=2))
    else:
        kind_width = max((len(f.kind) for f in findings), default=0)
        resource_width = max((len(f.resource) for f in findings), default=0)
        for f in findings:
            click.echo(f"{f.kind:<{kind_width}}  {f.resource:<{resource_width}}  {f.subject}")
            click.echo(f"  {f.message}")
            if show_trace:
                click.echo("  " + str(f.evidence).replace("\n", "\n  "))
        count = f"{len(findings)} finding{'s' if len(findings) != 1 else ''}" if findings else "no findings"
        click.echo(count + (" (--trace shows the walk of each)" if findings and not show_trace else ""))
    sys.exit(1 if findings else 0)

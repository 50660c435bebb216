"""``hyperplane diff BEFORE AFTER``: the connections whose verdict changes between two
configurations — a gate for a pull request (exit 1 when anything changed, 0 when nothing did)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hyperplane.commands.common import REPAIR_HELP, UserError, repair_warnings
from hyperplane.errors import HyperplaneError

__all__ = ["diff_command"]


@click.command("diff")
@click.argument("before", type=click.Path(exists=True, path_type=Path))
@click.argument("after", type=click.Path(exists=True, path_type=Path))
@click.option("--from", "sources", multiple=True, metavar="SOURCE",
              help="Only this source (repeatable): a function, an ENI or instance id, 'internet'. "
                   "Default: every source of either network.")
@click.option("--repair", is_flag=True, help=REPAIR_HELP)
@click.option("--region", default=None, help="The region of a template or plan (AWS::Region, Fn::GetAZs).")
@click.option("--parameter", "parameters", multiple=True, metavar="KEY=VALUE",
              help="A CloudFormation template parameter (repeatable), for both inputs.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def diff_command(before: Path, after: Path, sources: tuple[str, ...], repair: bool, region: str | None,
                 parameters: tuple[str, ...], fmt: str) -> None:
    """Compare the reachability of BEFORE and AFTER (any two inputs --topology reads: topology
    files, describe-* folders, ...), both ways, every port: print each connection whose verdict
    changed with the deciding hop before and after. Exit 1 if any changed, 0 if none."""
    from hyperplane.connectivity.diff import diff
    from hyperplane.network import Network

    options: dict[str, object] = {"region": region} if region is not None else {}
    for item in parameters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--parameter {item!r} is not KEY=VALUE")
        options.setdefault("parameters", {})[key] = value  # type: ignore[index]
    try:
        with repair_warnings():
            net_a = Network.load(before, repair=repair, **options)
            net_b = Network.load(after, repair=repair, **options)
        changes = diff(net_a, net_b, list(sources) or None)
    except (HyperplaneError, ValueError, OSError) as exc:
        raise UserError(str(exc)) from exc
    click.echo(json.dumps(changes.to_dict(), indent=2) if fmt == "json" else str(changes))
    sys.exit(1 if changes else 0)

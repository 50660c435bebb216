"""``hyperplane check EXPECTATIONS.yaml``: a file of expected connectivity, checked in one run
(hyperplane.connectivity.expectations). Exit 0 when every expectation is met, 1 on any
mismatch, 2 on a bad file or topology."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hyperplane.commands.common import UserError, load_network, topology_options
from hyperplane.errors import HyperplaneError

__all__ = ["check"]


@click.command()
@click.argument("expectations", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@topology_options
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a JUnit XML report (one test case per expectation) for CI systems.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one line per expectation, then the trace of each mismatch; json: every answer.")
def check(expectations: Path, topology: Path | None, repair: bool, junit: Path | None, fmt: str) -> None:
    """Check a file of expected connectivity (lines like 'orders -> db:5432/tcp: connected',
    'thumbnail -> db:5432: blocked'): each is a connection judged both ways, a function's from
    every one of its subnets unless the line says 'from: SUBNET'."""
    from hyperplane.connectivity.expectations import check_expectations

    try:
        net = load_network(topology, repair)
        report = check_expectations(net, expectations)
        if junit is not None:
            report.write_junit(junit)
    except (HyperplaneError, ValueError, OSError) as exc:
        raise UserError(str(exc)) from exc
    click.echo(json.dumps(report.to_dict(), indent=2) if fmt == "json" else str(report))
    sys.exit(0 if report else 1)

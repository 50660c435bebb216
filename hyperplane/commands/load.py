"""``hyperplane load WORKLOAD.yaml``: a workload walked through the network at virtual time,
its summary printed; ``--report DIR`` writes plots and an HTML page; ``--sweep`` finds the
largest load within every limit (docs/load.md)."""

from __future__ import annotations

from pathlib import Path

import click

from hyperplane.commands.common import UserError, load_network, topology_options
from hyperplane.errors import HyperplaneError

__all__ = ["load"]


@click.command("load")
@click.argument("workload", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--example", is_flag=True, help="The sample workload (hyperplane/examples/workload.yaml), on the "
                                              "built-in example network unless --topology says otherwise.")
@topology_options
@click.option("--duration", help="Virtual time to run (350, 10m, 1h); default: the workload's own.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write summary.txt, series.json and, with matplotlib (hyperplane[report]), PNG plots and "
                   "report.html there.")
@click.option("--sweep", metavar="VARIABLE=LOW..HIGH",
              help="Bisect for the largest concurrency (or rate) within every limit, e.g. concurrency=100..5000.")
@click.option("--cold", is_flag=True, help="Functions start Pending, as just created (also: cold: true in the "
                                           "workload).")
def load(workload: Path | None, example: bool, topology: Path | None, repair: bool, duration: str | None,
         report_dir: Path | None, sweep: str | None, cold: bool) -> None:
    """Walk WORKLOAD (a YAML workload, docs/load.md) through the network: Hyperplane ENIs and
    overflow ENIs, subnet addresses, NAT gateway ports per destination, idle timeouts.

    Exit 0 when the load stays within every limit, 1 when something was refused or cut."""
    from hyperplane.workload import Workload, load_test
    from hyperplane.workload.model import parse_seconds
    from hyperplane.workload.sweep import parse_sweep, sweep as run_sweep

    if (workload is None) == (not example):
        raise UserError("give a WORKLOAD file or --example (not both)")
    try:
        w = Workload.example() if example else Workload.load(workload)  # type: ignore[arg-type]
        if duration is not None:
            w = w.with_duration(parse_seconds(duration, "--duration", w.file))
        start_cold = cold or w.cold

        def network():
            return load_network(topology, repair, cold=start_cold)

        if sweep is not None:
            variable, low, high = parse_sweep(sweep, w.file)
            result = run_sweep(network, w, variable, low, high,
                               progress=lambda v, r: click.echo(f"  {variable}={v:g}: "
                                                                f"{'ok' if r.within_limits else 'breaks'}", err=True))
            click.echo(result.summary())
            failure = result.first_failure
            if failure is not None:
                click.echo("\nat the smallest load that breaks a limit:")
                click.echo(failure.summary())
            if report_dir is not None and failure is not None:
                _write(failure, report_dir)
            raise SystemExit(0)
        report = load_test(network(), w)
    except (HyperplaneError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    click.echo(report.summary())
    click.echo(report.timing(), err=True)
    if report_dir is not None:
        _write(report, report_dir)
    raise SystemExit(0 if report.within_limits else 1)


def _write(report, folder: Path) -> None:
    try:
        written = report.write(folder)
    except ImportError as exc:  # no matplotlib: the text and the series still
        written = report.write(folder, plots=False)
        click.echo(f"hyperplane: warning: {exc}", err=True)
    click.echo(f"report: {', '.join(str(p) for p in written)}")

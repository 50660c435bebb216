"""The ``hyperplane`` command: demo, trace, replay, snapshot, bench.

User mistakes (a bad topology file, an unknown source) are one line on stderr and exit code 2;
``trace`` exits 0 when the connection is established (``--packet``: the packet delivered) and 1
when it is not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hyperplane.commands.check import check
from hyperplane.commands.diff import diff_command
from hyperplane.commands.lint import lint
from hyperplane.commands.load import load
from hyperplane.commands.reach import reach
from hyperplane.commands.inventory import list_command
from hyperplane.commands.common import REPAIR_HELP, Group, UserError, load_network, repair_warnings, topology_options


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hyperplane")
def main() -> None:
    """Emulate, packet by packet, the VPC networking of AWS Lambda functions."""


@main.command()
def demo() -> None:
    """Run the built-in example end to end (no files needed)."""
    from hyperplane.demo import run_demo

    run_demo(click.echo)


@main.command()
@topology_options
@click.option("--from", "source", required=True,
              help="A function name, an ENI id, an instance id, or 'internet'.")
@click.option("--to", "destination", required=True, metavar="DEST[:PORT][/PROTO]",
              help="An address, an ENI id or short name (db for eni-db), a function, an endpoint, 'dns' or "
                   "'internet'; PORT defaults to 443, PROTO to tcp (tcp, udp, icmp).")
@click.option("--packet", "one_packet", is_flag=True,
              help="Send one packet (a TCP SYN, a UDP datagram or an ICMP echo) instead of judging the connection.")
@click.option("--subnet", default=None, help="The function subnet the execution environment is bound to.")
@click.option("--all-subnets", is_flag=True, help="Judge the connection from each of the function's subnets.")
@click.option("--sport", default=None, help="Source port of --packet (default: an ephemeral port).")
@click.option("--src", "src_ip", default=None, help="Source address of an internet source (default 192.0.2.1).")
@click.option("--cold", is_flag=True, help="Functions start Pending, as just created (default: Active).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def trace(topology: Path | None, repair: bool, source: str, destination: str, one_packet: bool, subnet: str | None,
          all_subnets: bool, sport: str | None, src_ip: str | None, cold: bool, fmt: str) -> None:
    """Judge a connection both ways (SYN, SYN-ACK, ACK and data; UDP request and response; ICMP
    echo and reply) and print every leg's trace: exit 0 if it is established, 1 if not."""
    from hyperplane.connectivity.names import check_source, parse_destination, parse_port

    net = load_network(topology, repair, cold=cold)
    check_source(net.topology, source)
    if src_ip is not None and source != "internet":
        raise UserError(f"--src is for --from internet; {source} sends from its own address")
    name, port, proto = parse_destination(destination)
    proto = proto or "tcp"
    if port is None and proto != "icmp":
        port = 443
    if one_packet:
        if subnet or all_subnets:
            raise UserError("--subnet and --all-subnets judge a connection, not --packet")
        result: Any = _one_packet(net, source, name, port, proto, None if sport is None else parse_port(sport, "--sport"),
                                  src_ip)
        ok = result.delivered
    else:
        if sport is not None:
            raise UserError("--sport is for --packet (a connection uses an ephemeral port)")
        result = net.connect(source, name, port, proto, subnet=subnet, subnets="all" if all_subnets else None,
                             source_ip=src_ip)
        ok = result.connected
    click.echo(json.dumps(result.to_dict(), indent=2) if fmt == "json" else str(result))
    sys.exit(0 if ok else 1)


def _one_packet(net: Any, source: str, name: str, port: int | None, proto: str, sport: int | None,
                src_ip: str | None) -> Any:
    from scapy.layers.inet import ICMP, IP, TCP, UDP

    from hyperplane.connectivity.names import INTERNET_SOURCE_ADDRESS, resolve_destination

    address = resolve_destination(net, name, from_internet=source == "internet").address
    ip = IP(dst=address) if source != "internet" else IP(src=src_ip or INTERNET_SOURCE_ADDRESS, dst=address)
    l4 = {"tcp": TCP(dport=port, flags="S"), "udp": UDP(dport=port), "icmp": ICMP()}[proto]
    if sport is not None and proto != "icmp":
        l4.sport = sport
    return net.send(ip / l4, source=source)


@main.command()
@click.argument("capture", type=click.Path(dir_okay=False, path_type=Path))
@topology_options
@click.option("--function", "functions", multiple=True, metavar="NAME=CIDR",
              help="Capture addresses of a function's execution environments (repeatable).")
@click.option("--inject", type=click.Choice(["function", "eni"]), default="function", show_default=True,
              help="function: a capture taken inside functions (pre-NAT); eni: taken inside the VPC.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the delivered packets, translated, to this pcap.")
@click.option("--verdicts", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one verdict per packet (.jsonl or .csv).")
@click.option("--flow-logs", type=click.Path(file_okay=False, path_type=Path),
              help="Write VPC flow logs here (CloudWatch-like streams and S3-like gzip files).")
@click.option("--flow-log-interval", type=click.Choice(["60", "600"]), default="600", show_default=True,
              help="Aggregation interval of the flow logs, seconds.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes: the capture's independent parts replayed side by side, with exactly the outputs "
                   "of one process (docs/parallel-replay.md); with --engine dask and no --scheduler, the local "
                   "cluster's workers.")
@click.option("--engine", type=click.Choice(["processes", "dask"]), default="processes", show_default=True,
              help="dask: CAPTURE is a glob of capture files (quote it) on storage every worker reads, replayed "
                   "on a Dask cluster (pip install 'hyperplane[distributed]').")
@click.option("--scheduler", metavar="ADDRESS", help="With --engine dask: the Dask scheduler (tcp://host:8786); "
                                                      "default: a local cluster.")
@click.option("--shards", type=click.Path(file_okay=False, path_type=Path),
              help="With --engine dask: a folder every worker reads and writes, for the replay's shards "
                   "(default: the first capture's).")
@click.option("--pickup/--no-pickup", default=True, show_default=True,
              help="Mid-stream pickup: an outbound TCP ACK of a connection whose opening the capture does not "
                   "hold opens it, established (Linux conntrack's loose mode); --no-pickup: only a SYN opens one.")
def replay(capture: Path, topology: Path | None, repair: bool, functions: tuple[str, ...], inject: str,
           output: Path | None, verdicts: Path | None, flow_logs: Path | None, flow_log_interval: str,
           workers: int, engine: str, scheduler: str | None, shards: Path | None, pickup: bool) -> None:
    """Replay a pcap/pcapng capture through the emulated VPC and print a summary."""
    from hyperplane.replay import replay as run_replay

    if engine == "dask":
        _replay_on_dask(str(capture), topology, repair, functions, inject, output, verdicts, flow_logs,
                        int(flow_log_interval), workers, scheduler, shards, pickup)
        return
    if scheduler is not None or shards is not None:
        raise click.UsageError("--scheduler and --shards go with --engine dask")
    if not capture.is_file():  # click's own words, as when it checked the path
        problem = "is a directory" if capture.is_dir() else "does not exist"
        raise click.BadParameter(f"File '{capture}' {problem}.", param_hint="'CAPTURE'")

    mapping = _function_options(functions)
    net = load_network(topology, repair)
    size = max(capture.stat().st_size, 1)
    progress = Progress(TextColumn("replaying {task.fields[packets]:,} packets"), BarColumn(),
                        DownloadColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    with progress:
        task = progress.add_task("replay", total=size, packets=0)
        done = 0

        def step(chunk) -> None:  # progress by bytes of the file read so far
            nonlocal done
            done += len(chunk)
            progress.update(task, completed=min(size, int(chunk.file_offset[-1])), packets=done)

        report = run_replay(net, capture, functions=mapping, inject=inject, output=output,
                            verdicts=verdicts, flow_logs=flow_logs, flow_log_interval=int(flow_log_interval),
                            progress=step, workers=workers, pickup=pickup)
    _print_summary(report)


def _replay_on_dask(captures: str, topology: Path | None, repair: bool, functions: tuple[str, ...], inject: str,
                    output: Path | None, verdicts: Path | None, flow_logs: Path | None, interval: int,
                    workers: int, scheduler: str | None, shards: Path | None, pickup: bool) -> None:
    """``hyperplane replay --engine dask``: the workers build the network from the same file."""
    from functools import partial

    from hyperplane.replay_parallel.on_dask import replay_on_dask

    ctx = click.get_current_context(silent=True)
    options = dict(ctx.meta.get("hyperplane.iac_options", {})) if ctx is not None else {}
    report = replay_on_dask(partial(_dask_network, str(topology) if topology else None, repair, options), captures,
                            scheduler=scheduler, functions=_function_options(functions), inject=inject,
                            output=output, verdicts=verdicts, flow_logs=flow_logs, flow_log_interval=interval,
                            shards=shards, local_workers=workers if workers > 1 else 2, pickup=pickup)
    _print_summary(report)


def _dask_network(path: str | None, repair: bool, options: dict) -> Any:
    """The network each task of ``replay --engine dask`` builds: ``--topology``'s (with its
    ``--repair``, ``--region``, ``--parameter``), else the example; functions Active."""
    from hyperplane.network import Network

    if path is None:
        return Network.example(ready=True)
    with repair_warnings():
        return Network.load(path, repair=repair, **options)


def _function_options(functions: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for item in functions:
        name, sep, cidr = item.partition("=")
        if not sep or not name or not cidr:
            raise click.BadParameter(f"{item!r} is not NAME=CIDR", param_hint="--function")
        mapping[name] = cidr
    return mapping


def _print_summary(report) -> None:
    """The replay summary as tables (rich; plain text when the output is not a terminal)."""
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)  # ids whole in files
    for note in report.notes:
        console.print(note)
    console.print(f"{report.packets} packets, {report.delivered} delivered, {report.written} written, "
                  f"{report.flow_log_records} flow log records")
    skipped = {k: n for k, n in report.kinds.items() if k != "EMULATED"}
    if skipped:
        console.print("not emulated: " + ", ".join(f"{k} {n}" for k, n in sorted(skipped.items())))
    if report.parallel is not None:
        console.print(report.parallel.summary())

    def table(title: str, headers: list[str], rows: list[list]) -> None:
        if rows:
            t = Table(title=title, title_justify="left", box=box.SIMPLE)
            for k, h in enumerate(headers):
                t.add_column(h, justify="right" if k else "left")
            for row in rows:
                t.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row))
            console.print(t)

    table("by disposition", ["disposition", "packets"], [list(kv) for kv in report.dispositions.most_common()])
    table("by reason", ["reason", "packets"], [list(kv) for kv in report.reasons.most_common()])
    table("drops by rule", ["rule", "packets"], [list(kv) for kv in report.drops_by_rule.most_common()])
    if report.conversations:
        console.print(report.conversation_line())
    table("conversations failed at", ["reason and resource", "conversations"],
          [list(kv) for kv in report.failed_at.most_common()])
    table("Hyperplane ENIs", ["ENI", "address", "subnet", "live", "peak", "created", "overflow"],
          [[e["id"], e["private_ip"], e["subnet_id"], e["connections"], e["peak"], e["created"],
            "yes" if e["overflow"] else ""] for e in report.hyperplane_enis])


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--profile", default=None, help="AWS profile (default credentials otherwise).")
@click.option("--region", default=None, help="AWS region (the profile's otherwise).")
@click.option("--repair", is_flag=True,
              help="Write what the lenient load makes of the account: a NAT gateway address outside its "
                   "subnet (moto's) re-allocated from the subnet, one warning line per gateway on stderr.")
def snapshot(folder: Path, profile: str | None, region: str | None, repair: bool) -> None:
    """Collect the account's network (EC2 describe-* calls, Lambda list-functions) into FOLDER/<region>/.

    The folder is loaded once after writing: if it does not load, the error is printed (exit 2;
    the files stay, as collected)."""
    import boto3
    import botocore.exceptions

    from hyperplane.formats.snapshot_reader import read_aws_snapshot
    from hyperplane.formats.boto3_collect import write_snapshot

    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.ProfileNotFound as exc:
        raise UserError(str(exc)) from None
    if session.region_name is None:
        raise UserError("no AWS region: give --region, or set one in the profile or AWS_DEFAULT_REGION")
    with repair_warnings():
        files = write_snapshot(session, folder, repair=repair)
    click.echo(f"wrote {len(files)} files to {files[0].parent}")
    read_aws_snapshot(files[0].parent)  # a TopologyError here is the _Group's one line, exit 2


@main.command()
@click.option("--quick", is_flag=True, help="Smaller sizes (a few seconds).")
def bench(quick: bool) -> None:
    """Run the throughput benchmarks (benchmarks/*.py) and print their figures."""
    root = Path(__file__).resolve().parent.parent / "benchmarks"
    # the emulator's own throughput; benchmarks/reachability.py, load_model.py, replay_parallel.py and
    # pytest_fixture.py measure the questions, the modelled system and the fixture (run them directly)
    runs = [(script, ["--quick"] if quick else []) for script in (
        "nat_throughput.py", "policy_throughput.py", "conntrack_throughput.py", "pcap_read.py",
        "pipeline_throughput.py", "replay_throughput.py")]
    if not root.is_dir():
        raise click.ClickException(f"{root} not found: `hyperplane bench` runs from a source checkout")
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 250)  # a row per line in files
    table = Table(title="hyperplane bench: each figure against its baseline, measured in the same run",
                  title_justify="left", box=box.SIMPLE)
    for header in ("benchmark", "figure", "value", "baseline", "baseline value", "ratio"):
        table.add_column(header, justify="right" if header in ("value", "baseline value", "ratio") else "left")
    for script, extra in runs:
        done = subprocess.run([sys.executable, str(root / script), *extra], capture_output=True, text=True)
        if done.returncode != 0:
            raise click.ClickException(f"{script} failed:\n{done.stderr.strip()}")
        for f in json.loads(done.stdout.strip().splitlines()[-1])["figures"]:
            table.add_row(script.removesuffix(".py"), f["figure"], f"{f['value']:,} {f['unit']}", f["baseline"] or "",
                          "" if f["baseline_value"] is None else f"{f['baseline_value']:,} {f['unit']}",
                          "" if f["ratio"] is None else f"{f['ratio']:g}x")
    console.print(table)


for _command in (list_command, reach, diff_command, check, lint, load):
    main.add_command(_command)

"""What every ``hyperplane`` command shares: user errors as one line, the ``--topology`` input
and its options, repair warnings as one line each."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from hyperplane.errors import HyperplaneError, RepairWarning

__all__ = ["UserError", "Group", "topology_options", "load_network", "REPAIR_HELP", "repair_warnings"]


class UserError(click.ClickException):
    """A mistake in the user's input: one line on stderr, exit code 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"hyperplane: {self.message}", err=True)


class Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (HyperplaneError, ValueError, OSError) as exc:
            raise UserError(str(exc)) from exc


REPAIR_HELP = ("Lenient load: re-allocate, from its subnet, a NAT gateway address outside the subnet "
                "(moto writes them), with one warning line per gateway on stderr.")


@contextmanager
def repair_warnings() -> Iterator[None]:
    """Each warning hyperplane gives about the input (a :class:`RepairWarning`, a
    ``SnapshotWarning`` of what was not emulated) as one line on stderr; other warnings go on as
    usual."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:  # after the block: inside it, showwarning would record again
        for w in caught:
            if issubclass(w.category, RepairWarning):
                click.echo(f"hyperplane: warning: repaired: {w.message}", err=True)
            elif w.category.__module__.startswith("hyperplane"):
                click.echo("hyperplane: warning: " + " ".join(str(w.message).split()), err=True)
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def load_network(path: Path | None, repair: bool = False, *, cold: bool = False) -> Any:
    """The network of a ``--topology`` option (any input :meth:`Network.load` reads, with the
    command's ``--region`` and ``--parameter`` options), else the example; ``cold``: functions
    start Pending, as just created (``ready=False``)."""
    from hyperplane.network import Network

    if path is None:
        return Network.example(ready=not cold)
    ctx = click.get_current_context(silent=True)
    options = dict(ctx.meta.get(_IAC_OPTIONS, {})) if ctx is not None else {}
    with repair_warnings():
        return Network.load(path, repair=repair, ready=not cold, **options)


_IAC_OPTIONS = "hyperplane.iac_options"  # --region / --parameter, kept on the click context


def _keep(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def keep(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if name == "parameters":
            pairs = {}
            for item in value:
                key, sep, text = item.partition("=")
                if not sep or not key:
                    raise UserError(f"--parameter {item!r} is not KEY=VALUE")
                pairs[key] = text
            value = pairs or None
        if value is not None:
            ctx.meta.setdefault(_IAC_OPTIONS, {})[name] = value
    return keep


def topology_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--topology`` and ``--repair``, as every command that reads a network takes them, and
    ``--region``/``--parameter`` for CloudFormation and Terraform inputs (docs/inputs.md)."""
    command = click.option("--parameter", "parameters", multiple=True, metavar="KEY=VALUE", expose_value=False,
                           callback=_keep("parameters"),
                           help="A CloudFormation template parameter (repeatable); also the values of "
                                "Fn::ImportValue and SSM parameters.")(command)
    command = click.option("--region", expose_value=False, callback=_keep("region"),
                           help="The region of a template or plan (AWS::Region, Fn::GetAZs).")(command)
    command = click.option("--repair", is_flag=True, help=REPAIR_HELP)(command)
    return click.option("--topology", "topology", type=click.Path(exists=True, path_type=Path),
                        help="A topology file, an AWS describe-* folder, a CloudFormation/SAM template, a CDK "
                             "cdk.out folder or a terraform show -json document (default: the built-in "
                             "example).")(command)

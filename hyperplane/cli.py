"""The ``hyperplane`` command."""

from __future__ import annotations

import click



@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hyperplane")
def main() -> None:
    """Emulate, packet by packet, the VPC networking of AWS Lambda functions."""


@main.command()
def demo() -> None:
    """Run the built-in example end to end (no files needed)."""
    from hyperplane.demo import run_demo

    run_demo(click.echo)


def run() -> None:
    main()

"""Which reader an input needs, told by its content, not its name (``Network.load``, ``--topology``).

- a folder: a CDK cloud assembly (``cdk.out``: a ``manifest.json`` naming the stacks' templates)
  or a folder of AWS describe-* JSON (a snapshot);
- a file: a CloudFormation template (SAM and CDK output included: ``AWSTemplateFormatVersion``,
  or ``Resources`` of ``AWS::`` types), a ``terraform show -json`` document (plan or state:
  ``format_version`` with ``planned_values`` or ``values``), or our own topology file.

A file is sniffed on its text first (a YAML template's ``!Ref`` tags do not parse with a plain
YAML loader), then the reader decides on the parsed document.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Mapping

from hyperplane.model import Topology

__all__ = ["read_input", "input_kind"]

_TERRAFORM = re.compile(r'"format_version"\s*:')
_TERRAFORM_VALUES = re.compile(r'"(planned_values|values)"\s*:')


def input_kind(path: str | os.PathLike[str]) -> str:
    """``cdk``, ``snapshot``, ``cloudformation``, ``terraform`` or ``topology``."""
    path = Path(path)
    if path.is_dir():
        return "cdk" if (path / "manifest.json").is_file() else "snapshot"
    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 20).decode("utf-8", errors="replace")
    except OSError:
        return "topology"  # its reader names the problem
    if head.lstrip("\ufeff \t\r\n").startswith("{") and _TERRAFORM.search(head) and _TERRAFORM_VALUES.search(head):
        try:
            document = json.loads(path.read_bytes().decode("utf-8-sig"))
        except (ValueError, OSError):
            document = None
        if isinstance(document, dict) and "format_version" in document and (
                "planned_values" in document or "values" in document):
            return "terraform"
    from hyperplane.formats.cloudformation_reader import sniff_template
    return "cloudformation" if sniff_template(head) else "topology"


def read_input(path: str | os.PathLike[str], *, repair: bool = False, region: str | None = None,
               parameters: Mapping[str, str] | None = None) -> Topology:
    """The validated Topology of any input ``Network.load`` accepts (see the module docstring).

    ``region`` and ``parameters`` are for the infrastructure-as-code inputs (pseudo parameter
    ``AWS::Region``, ``Fn::GetAZs``, template parameters, ``Fn::ImportValue``); ``repair`` is the
    lenient load of the topology and snapshot readers.
    """
    kind = input_kind(path)
    if kind in ("cdk", "cloudformation"):
        from hyperplane.formats.cloudformation_reader import load_cloudformation
        return load_cloudformation(path, region=region, parameters=parameters)
    if kind == "terraform":
        from hyperplane.formats.terraform_reader import read_terraform
        return read_terraform(path, region=region)
    if kind == "snapshot":
        from hyperplane.formats.snapshot_reader import load_aws_snapshot
        return load_aws_snapshot(path, repair=repair)
    from hyperplane.formats.topology_reader import load_topology
    return load_topology(path, repair=repair)

"""Which reader an input needs, told by its content, not its name (``Network.load``, ``--topology``).

- a folder: a CDK cloud assembly (``cdk.out``: a ``manifest.json`` naming the stacks' templates)
  or a folder of AWS describe-* JSON (a snapshot);
- a file: a CloudFormation template (SAM and CDK output included), a ``terraform show -json``
  document (plan or state), or our own topology file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from hyperplane.model import Topology

__all__ = ["read_input"]


def read_input(path: str | os.PathLike[str], *, repair: bool = False, region: str | None = None,
               parameters: Mapping[str, str] | None = None) -> Topology:
    """The validated Topology of any input ``Network.load`` accepts (see the module docstring).

    ``region`` and ``parameters`` are for the infrastructure-as-code inputs (pseudo parameter
    ``AWS::Region``, ``Fn::GetAZs``, template parameters); ``repair`` is the lenient load of the
    topology and snapshot readers.
    """
    path = Path(path)
    if path.is_dir():
        from hyperplane.formats.snapshot_reader import load_aws_snapshot
        return load_aws_snapshot(path, repair=repair)
    from hyperplane.formats.topology_reader import load_topology
    return load_topology(path, repair=repair)

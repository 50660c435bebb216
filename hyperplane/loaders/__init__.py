"""Loaders: turn files into a :class:`~hyperplane.model.Topology`.

* :func:`load_topology` / :func:`dump_topology`: our own YAML/JSON format
  (``docs/topology-format.md``); :func:`load_example_topology` for the built-in example.
* :func:`load_aws_snapshot`: a folder of AWS describe-* JSON; :func:`write_describe_folder`.
"""

from hyperplane.loaders.aws_snapshot import (
    SnapshotReport,
    SnapshotWarning,
    load_aws_snapshot,
    read_aws_snapshot,
    write_describe_folder,
)
from hyperplane.loaders.topology_file import (
    EXAMPLE_TOPOLOGY,
    dump_topology,
    load_example_topology,
    load_topology,
    parse_topology,
    topology_document,
)

__all__ = [
    "load_topology", "dump_topology", "parse_topology", "topology_document",
    "EXAMPLE_TOPOLOGY", "load_example_topology",
    "load_aws_snapshot", "read_aws_snapshot", "write_describe_folder", "SnapshotReport", "SnapshotWarning",
]

"""Loaders: turn files into a :class:`~hyperplane.model.Topology`.

* :func:`load_topology` / :func:`dump_topology`: our own YAML/JSON format
  (``docs/topology-format.md``); :func:`load_example_topology` for the built-in example.
* :func:`load_aws_snapshot`: a folder of AWS describe-* JSON; :func:`write_describe_folder`.

The readers and writers live in :mod:`hyperplane.formats` (issue 10); this is their documented
public face. The old submodules ``hyperplane.loaders.topology_file`` and
``hyperplane.loaders.aws_snapshot`` import as this module, with a ``DeprecationWarning``: every
public name they had is here.
"""

from hyperplane.formats.snapshot_reader import load_aws_snapshot, parse_aws_documents, read_aws_snapshot
from hyperplane.formats.snapshot_report import (
    IGNORED_KINDS,
    READ_KINDS,
    SKIPPED_KINDS,
    SNAPSHOT_ROLE_POLICIES,
    SnapshotReport,
    SnapshotWarning,
    warn_skipped,
)
from hyperplane.formats.snapshot_writer import describe_documents, write_describe_folder
from hyperplane.formats.topology_reader import (
    DEFAULT_ROLE_POLICIES,
    EXAMPLE_TOPOLOGY,
    load_example_topology,
    load_topology,
    parse_topology,
)
from hyperplane.formats.topology_writer import dump_topology, topology_document

__all__ = [
    "load_topology", "dump_topology", "parse_topology", "topology_document",
    "EXAMPLE_TOPOLOGY", "load_example_topology",
    "load_aws_snapshot", "read_aws_snapshot", "write_describe_folder", "SnapshotReport", "SnapshotWarning",
]

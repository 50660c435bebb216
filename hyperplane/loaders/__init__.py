"""Loaders: turn files into a :class:`~hyperplane.model.Topology`.

* :func:`load_topology` / :func:`dump_topology`: our own YAML/JSON format
  (``docs/topology-format.md``).
"""

from hyperplane.loaders.topology_file import dump_topology, load_topology, parse_topology, topology_document

__all__ = ["load_topology", "dump_topology", "parse_topology", "topology_document"]

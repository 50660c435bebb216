"""Our own topology file format: YAML or JSON, same schema, AWS nouns and ids.

``load_topology(path)`` reads a file, applies the defaults AWS applies when a resource says
nothing (main route table, default NACL and security group, local routes, associations,
egress allow-all, endpoint ENIs, addresses), validates everything and returns a
:class:`~hyperplane.model.Topology`, or raises one :class:`~hyperplane.errors.TopologyError`
naming the file, the path in the document and the problem. Nothing is half-loaded.
``dump_topology(topology, path)`` writes the same format back, with every default spelled
out, so that loading the result gives an equal topology. The format is documented in
``docs/topology-format.md``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from hyperplane.errors import TopologyError
from hyperplane.formats._source import decode, load_json, load_yaml, read_text
from hyperplane.formats.topology_resources import DEFAULT_ROLE_POLICIES, _Builder
from hyperplane.model import Topology

__all__ = [
    "load_topology", "parse_topology", "EXAMPLE_TOPOLOGY", "load_example_topology", "DEFAULT_ROLE_POLICIES",
]

#: The built-in example (the demo's and ``Network.example()``'s topology).
EXAMPLE_TOPOLOGY = Path(__file__).resolve().parent.parent / "examples" / "example.yaml"


# --------------------------------------------------------------------------------------------
# reading files


def _read_document(path: Path, name: str) -> Any:
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise TopologyError(name, "", "a topology file must end in .yaml, .yml or .json")
    text = read_text(path, name)
    return load_json(text, name) if suffix == ".json" else load_yaml(text, name)


def load_topology(path: str | os.PathLike[str], *, repair: bool = False) -> Topology:
    """Load a topology file (``.yaml``/``.yml`` or ``.json``), apply AWS defaults, validate.

    Raises :class:`~hyperplane.errors.TopologyError` (``file``, ``where``, ``problem``) on the
    first problem found. ``repair=True`` re-allocates, from its subnet, a NAT gateway address
    that lies outside the subnet, with one :class:`~hyperplane.errors.RepairWarning` per
    gateway (see docs/topology-format.md, "Lenient loading").
    """
    path = Path(path)
    name = path.name
    document = _read_document(path, name)
    try:
        return parse_topology(document, file=name, repair=repair)
    except TopologyError as exc:
        if exc.line is None:
            exc.line = _line_of(path, exc.where)
        raise


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _line_of(path: Path, where: str) -> int | None:
    """The 1-based line where a document path (``subnets[2].cidr``) starts in the file."""
    try:
        node = yaml.compose(decode(path.read_bytes(), path.name), Loader=yaml.SafeLoader)
    except (OSError, TopologyError, yaml.YAMLError, RecursionError):
        return None
    line = None
    for key, index in _PATH_PART.findall(where):
        if node is None:
            break
        line = node.start_mark.line + 1
        if index:
            node = node.value[int(index)] if isinstance(node, yaml.SequenceNode) and int(index) < len(node.value) else None
        elif isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == key]
            node = match[0][1] if match else None
            if match:
                line = match[0][0].start_mark.line + 1
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def load_example_topology() -> Topology:
    """The built-in example topology (``hyperplane/examples/example.yaml``)."""
    return load_topology(EXAMPLE_TOPOLOGY)


def parse_topology(document: Any, file: str | None = None, *, repair: bool = False) -> Topology:
    """Build a validated Topology from an already parsed document (a dict as in the file).

    ``file`` names the source in error messages; ``repair`` as in :func:`load_topology`.
    """
    return _Builder(document, file, repair).build()

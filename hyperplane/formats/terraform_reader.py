"""Terraform: the JSON of ``terraform show -json`` (a plan or a state) read into a Topology.

A plan (``planned_values``, ``resource_changes``, ``configuration``) or a state (``values``), of
every ``format_version`` Terraform writes (0.1, 0.2, 1.x), with child modules at any depth. Each
resource instance (``module.vpc.aws_subnet.private[0]``) becomes a resource of our topology
format (docs/topology-format.md), which ``parse_topology`` then fills with AWS's defaults and
validates, so a Terraform document gets exactly the defaults and checks a topology file gets.

What a plan does not know until apply (``after_unknown``: ids, addresses, most wiring) is
followed through ``configuration``'s expression references to the resource they point at
(``aws_subnet.private[0].id``; ``aws_subnet.private`` + ``count.index``: the instance of the same
index), whose id is synthesized from its address (``hyperplane.formats._iac.synthesized_id``). A
reference through a ``local`` or a variable cannot be followed (the JSON does not hold locals):
a VPC id then falls back to the only VPC of the module or document, a NAT gateway's Elastic IP
to the ``aws_eip`` of the same index; anything else is an error naming the resource address and
the attribute. The per-type translation is in ``terraform_resources``.

No maintained library reads this format (it is JSON: ``json`` and a walker are enough).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hyperplane.errors import TopologyError
from hyperplane.formats._source import load_json, read_text
from hyperplane.formats.terraform_document import SUPPORTED_FORMAT_VERSIONS, TerraformDocument, is_terraform_document
from hyperplane.formats.terraform_interfaces import read_interfaces
from hyperplane.formats.terraform_network import read_network
from hyperplane.formats.terraform_resources import Translator
from hyperplane.model import Topology

__all__ = ["SUPPORTED_FORMAT_VERSIONS", "is_terraform_document", "read_terraform", "terraform_topology"]


def read_terraform(path: str | os.PathLike[str], *, region: str | None = None) -> Topology:
    """The validated Topology of a ``terraform show -json`` file (plan or state).

    ``region`` overrides the AWS provider's region (used for availability zones a plan leaves
    unknown and for AWS-managed prefix lists). Raises :class:`~hyperplane.errors.TopologyError`
    naming the file, the resource address and attribute (``module.vpc.aws_route.private[1].
    route_table_id``) and the problem.
    """
    path = Path(path)
    name = path.name
    return terraform_topology(load_json(read_text(path, name), name), file=name, region=region)


def terraform_topology(document: Any, file: str | None = None, *, region: str | None = None) -> Topology:
    """The validated Topology of an already parsed ``terraform show -json`` document."""
    translator = Translator(TerraformDocument(document, file, region))
    read_network(translator)
    read_interfaces(translator)
    return translator.topology()

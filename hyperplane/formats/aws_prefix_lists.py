"""The address ranges of the AWS-managed prefix lists of S3 and DynamoDB, per region.

A gateway endpoint's route names a prefix list (``pl-…``, ``com.amazonaws.<region>.s3``), not
CIDRs; an emulator that does not know the service's ranges would send S3 traffic through the
NAT gateway. AWS publishes the ranges of its services in ``ip-ranges.json``
(https://ip-ranges.amazonaws.com/ip-ranges.json, documented at
https://docs.aws.amazon.com/vpc/latest/userguide/aws-ip-ranges.html); the ``S3`` and
``DYNAMODB`` entries of each region are kept in ``data/aws-ip-ranges-s3-dynamodb.json`` with
the ``createDate`` and ``syncToken`` of the file they came from.

The topology reader fills, from here, a prefix list it is given without ``cidrs`` and named as
an AWS-managed list (``com.amazonaws.eu-west-1.dynamodb``), and creates the list of a gateway
endpoint to S3 or DynamoDB when the input declares none, so topology files, CloudFormation
templates and Terraform documents all get it. A list written with its ``cidrs`` is used as
written (that is how to override these ranges).

Refresh the data from a newer ``ip-ranges.json``::

    python -m hyperplane.formats.aws_prefix_lists --refresh ip-ranges.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from functools import lru_cache
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, Sequence

__all__ = ["DATA_FILE", "SERVICES", "data_date", "managed_prefix_list_cidrs", "refresh"]

#: The data file shipped with the package.
DATA_FILE = Path(__file__).resolve().parent / "data" / "aws-ip-ranges-s3-dynamodb.json"
#: Service of an endpoint / prefix list name -> its ``service`` in ip-ranges.json.
SERVICES = {"s3": "S3", "dynamodb": "DYNAMODB"}
_NAME = re.compile(r"^com\.amazonaws\.([a-z0-9-]+)\.([a-z0-9]+)$")


@lru_cache(maxsize=None)
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def data_date(path: str | os.PathLike[str] = DATA_FILE) -> str:
    """The ``createDate`` of the ip-ranges.json the data was taken from (``2026-08-22-15-17-05``)."""
    return str(_load(str(path))["createDate"])


def managed_prefix_list_cidrs(name: str, path: str | os.PathLike[str] = DATA_FILE) -> tuple[IPv4Network, ...] | None:
    """The CIDRs of the AWS-managed prefix list ``name`` (``com.amazonaws.<region>.s3`` or
    ``.dynamodb``), or ``None`` when ``name`` is not one of them or its region is not in the data."""
    match = _NAME.match(name)
    if match is None or match.group(2) not in SERVICES:
        return None
    region, service = match.groups()
    cidrs = _load(str(path))["services"][service].get(region)
    return None if cidrs is None else tuple(IPv4Network(c) for c in cidrs)


def refresh(ip_ranges: str | os.PathLike[str], output: str | os.PathLike[str] = DATA_FILE, *,
            obtained_from: str = "") -> dict[str, Any]:
    """Write ``output`` from an ``ip-ranges.json``: the IPv4 ranges of S3 and DynamoDB per region
    (``obtained_from``: where that copy of the file came from, kept in the data)."""
    with open(ip_ranges, encoding="utf-8") as f:
        source = json.load(f)
    services: dict[str, dict[str, list[str]]] = {key: {} for key in SERVICES}
    wanted = {aws: key for key, aws in SERVICES.items()}
    for entry in source["prefixes"]:
        key = wanted.get(entry.get("service"))
        if key is not None and entry.get("region") != "GLOBAL":
            services[key].setdefault(entry["region"], []).append(entry["ip_prefix"])
    for by_region in services.values():
        for region, cidrs in by_region.items():
            by_region[region] = sorted(set(cidrs), key=lambda c: IPv4Network(c))
    document = {
        "source": "https://ip-ranges.amazonaws.com/ip-ranges.json",
        "createDate": source["createDate"],
        "syncToken": source["syncToken"],
        "obtained_from": obtained_from or "https://ip-ranges.amazonaws.com/ip-ranges.json",
        "services": {key: dict(sorted(by_region.items())) for key, by_region in services.items()},
    }
    Path(output).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    _load.cache_clear()
    return document


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hyperplane.formats.aws_prefix_lists",
                                     description="Refresh the S3 and DynamoDB ranges from AWS's ip-ranges.json.")
    parser.add_argument("--refresh", metavar="IP_RANGES_JSON", required=True,
                        help="an ip-ranges.json (https://ip-ranges.amazonaws.com/ip-ranges.json)")
    parser.add_argument("--output", default=str(DATA_FILE), help="the data file to write (default: the package's)")
    parser.add_argument("--obtained-from", default="", help="where this copy of ip-ranges.json came from")
    args = parser.parse_args(argv)
    document = refresh(args.refresh, args.output, obtained_from=args.obtained_from)
    counts = {key: sum(len(c) for c in by_region.values()) for key, by_region in document["services"].items()}
    print(f"{args.output}: createDate {document['createDate']}, syncToken {document['syncToken']}, "
          + ", ".join(f"{key} {n} ranges" for key, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

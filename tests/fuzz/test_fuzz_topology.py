"""Fuzzing the topology file loader: the built-in example and small hand-made topologies,
mutated in their structure (keys dropped, duplicated, renamed; values of the wrong type; wrong
references; huge, negative and non-ASCII numbers; invalid and overlapping CIDRs; empty lists) and
in their text (YAML/JSON bytes flipped, truncated, control characters).

Each case must load (then ``Network(topology)`` and one ``send`` work) or be refused with a
:class:`~hyperplane.errors.TopologyError` naming the file and a place, on one line; anything
else is ``unclear``. Inputs found by a campaign are kept in ``corpus/topology/`` and replayed.
"""

from __future__ import annotations

import copy
import json
import random
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Unclear, corpus, run_cases
from scapy.layers.inet import IP, TCP, UDP

import hyperplane as hp
from hyperplane.errors import TopologyError
from hyperplane.loaders import EXAMPLE_TOPOLOGY, load_topology, topology_document

# -- seeds ------------------------------------------------------------------------------------

SMALL: dict[str, Any] = {
    "vpcs": [{"id": "vpc-1", "cidr": "10.0.0.0/16"}],
    "subnets": [{"id": "subnet-a", "vpc_id": "vpc-1", "cidr": "10.0.0.0/24", "availability_zone": "us-east-1a"},
                {"id": "subnet-b", "vpc_id": "vpc-1", "cidr": "10.0.1.0/24", "availability_zone": "us-east-1b",
                 "route_table_id": "rtb-1", "network_acl_id": "acl-1"}],
    "route_tables": [{"id": "rtb-1", "vpc_id": "vpc-1", "routes": [{"destination": "0.0.0.0/0", "target": "nat-1"}]}],
    "internet_gateways": [{"id": "igw-1", "vpc_id": "vpc-1"}],
    "nat_gateways": [{"id": "nat-1", "subnet_id": "subnet-a", "elastic_ips": ["198.51.100.7"]}],
    "security_groups": [{"id": "sg-1", "vpc_id": "vpc-1",
                         "ingress": [{"protocol": "tcp", "ports": "1024-65535", "cidr": "10.0.0.0/16"}]}],
    "network_acls": [{"id": "acl-1", "vpc_id": "vpc-1",
                      "ingress": [{"rule_number": 100, "protocol": "tcp", "from_port": 1024, "to_port": 65535,
                                   "cidr": "0.0.0.0/0", "rule_action": "allow"}],
                      "egress": [{"rule_number": 100, "protocol": "all", "cidr": "0.0.0.0/0", "rule_action": "allow"}]}],
    "functions": [{"name": "f", "vpc_config": {"subnet_ids": ["subnet-b"], "security_group_ids": ["sg-1"]}}],
}
TINY: dict[str, Any] = {"vpcs": [{"id": "vpc-1", "cidr": "10.1.0.0/28"}],
                        "subnets": [{"id": "subnet-x", "vpc_id": "vpc-1", "cidr": "10.1.0.0/28", "availability_zone": "a"}],
                        "functions": [{"name": "g"}]}


def _seeds() -> list[tuple[str, Any]]:
    example = yaml.safe_load(EXAMPLE_TOPOLOGY.read_text(encoding="utf-8"))
    full = topology_document(load_topology(EXAMPLE_TOPOLOGY))  # every default spelled out
    return [("example", example), ("example-full", full), ("small", SMALL), ("tiny", TINY)]


SEEDS = _seeds()
EXAMPLE_TEXT = EXAMPLE_TOPOLOGY.read_bytes()

# -- structural mutations ----------------------------------------------------------------------

ODD_VALUES: list[Any] = [
    None, 0, -1, 1, 65536, 2**31, 2**64, -(2**63), 10**30, 1.5, float("nan"), True, "", " ", "x",
    "²", "١٠٠", "٦", "６５５３５", "0x10", "1_000", [], {}, [[]], {"id": None}, "10.0.0.0/33", "10.0.300.0/24",
    "10.0.0.1/24", "0.0.0.0/0", "10.0.0.0/8", "::1/128", "10.0.0.256", "1024-80", "-5", "80-", "all", "-1",
    "icmp", "999", "sg-nope", "subnet-nope", "vpc-nope", "nat-nope", "igw-nope", "pl-nope", "eni-nope",
    "rtb-nope", "tgw-1", "local", "blackhole", "x" * 300,
]


def _slots(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in the document."""
    if isinstance(node, dict):
        for key in list(node):
            out.append((node, key))
            _slots(node[key], out)
    elif isinstance(node, list):
        for i in range(len(node)):
            out.append((node, i))
            _slots(node[i], out)
    return out


def _strings(node: Any) -> list[str]:
    return [c[k] for c, k in _slots(node, []) if isinstance(c[k], str)]


def mutate_document(doc: Any, rng: random.Random, values: list[Any] = ODD_VALUES) -> Any:
    """1-3 structural mutations of a parsed document, in place (and returned)."""
    for _ in range(rng.randint(1, 3)):
        slots = _slots(doc, [])
        if not slots:
            return rng.choice(values)
        container, key = rng.choice(slots)
        value = container[key]
        op = rng.randrange(9)
        if op == 0:  # drop
            del container[key]
        elif op == 1 and isinstance(container, list):  # duplicate an element (same ids twice)
            container.insert(key, copy.deepcopy(value))
        elif op == 1 or op == 2:  # rename a key
            if isinstance(container, dict):
                other = rng.choice([*container, key + "s", key[:-1], key.upper(), "id", "cidr", "name"])
                container[other] = container.pop(key)
            else:
                container[key] = copy.deepcopy(rng.choice(container))
        elif op == 3:  # another string of the document: a wrong (or right) reference
            pool = _strings(doc)
            container[key] = rng.choice(pool) if pool else rng.choice(values)
        elif op == 4:  # an empty list or mapping
            container[key] = [] if isinstance(value, list) or rng.random() < 0.5 else {}
        elif op == 5 and isinstance(value, (dict, list)):  # a type swap of a whole block
            container[key] = [value] if isinstance(value, dict) else (value[0] if value else {})
        elif op == 6 and isinstance(value, str) and "/" in value:  # overlapping/odd CIDRs
            container[key] = rng.choice(["10.0.0.0/16", "10.0.0.0/24", "10.0.0.0/25", "10.0.0.128/25",
                                         value.replace("/", "/1"), value.split("/")[0] + "/0"])
        elif op == 7 and isinstance(value, int) and not isinstance(value, bool):
            container[key] = rng.choice([-value, value * 1000, value + 1, 2**63, str(value), f"{value}".translate(
                str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))])
        else:
            container[key] = copy.deepcopy(rng.choice(values))
    return doc


# -- text mutations ----------------------------------------------------------------------------

CONTROL = [b"\x00", b"\x01", b"\x07", b"\x08", b"\x0b", b"\x0c", b"\x1b", b"\x7f", b"\x85", b"\t", b"\r",
           "\u2028".encode(), "\ufeff".encode(), "²".encode(), "١".encode(), b"\xff", b"\xc3", b"'", b'"',
           b"[", b"{", b":", b"- ", b"&a", b"*a", b"!!python/object:os.system", b"\n  "]


def mutate_text(data: bytes, rng: random.Random) -> bytes:
    """Byte flips, truncation, inserted control characters, a dropped or repeated line."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not buf:
            buf.extend(rng.choice(CONTROL))
            continue
        op = rng.randrange(6)
        at = rng.randrange(len(buf))
        if op == 0:
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif op == 1:
            del buf[at:]
        elif op == 2:
            buf[at:at] = rng.choice(CONTROL)
        elif op == 3:
            buf[at:at + rng.randint(1, 8)] = b""
        else:
            lines = bytes(buf).split(b"\n")
            k = rng.randrange(len(lines))
            if op == 4:
                del lines[k]
            else:
                lines.insert(k, lines[k])
            buf = bytearray(b"\n".join(lines))
    return bytes(buf)


# -- cases -------------------------------------------------------------------------------------


def make(i: int) -> bytes:
    """Case ``i``: ``b"yaml\\n"`` or ``b"json\\n"``, then the file's bytes."""
    rng = random.Random(i)
    name, seed = SEEDS[i % len(SEEDS)]
    kind = "json" if rng.random() < 0.35 else "yaml"
    if rng.random() < 0.6:
        doc = mutate_document(copy.deepcopy(seed), rng)
        text = (json.dumps(doc, indent=1) if kind == "json"
                else yaml.safe_dump(doc, sort_keys=False, allow_unicode=rng.random() < 0.5)).encode()
    else:
        text = EXAMPLE_TEXT if name == "example" and kind == "yaml" else (
            json.dumps(seed, indent=1) if kind == "json" else yaml.safe_dump(seed, sort_keys=False)).encode()
        text = mutate_text(text, rng)
    return kind.encode() + b"\n" + text


_FOLDER = Path(tempfile.mkdtemp(prefix="hp-fuzz-topology-"))


def exercise(network: hp.Network) -> None:
    """One packet through a loaded topology: from a function if there is one, else from the internet."""
    functions = list(network.topology.functions)
    if functions:
        network.function(functions[0]).send(IP(dst="10.0.20.10") / TCP(dport=5432, flags="S"))
    else:
        network.send(IP(src="198.51.100.1", dst="203.0.113.10") / UDP(sport=5000, dport=53), source="internet")


def clear(error: TopologyError, files: set[str]) -> None:
    """A clear error names the file and a place, in one line; else :class:`Unclear`."""
    text = str(error)
    if error.file not in files or not text.startswith(f"{error.file}: "):
        raise Unclear(f"does not name the file: {text[:300]!r}")
    if not error.where:
        raise Unclear(f"names no place: {text[:300]!r}")
    if "\n" in text or len(text) > 600:
        raise Unclear(f"not one short line: {text[:300]!r}")


def check_file(path: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            topology = load_topology(path)
        except TopologyError as exc:
            clear(exc, {path.name})
            return "refused"
        exercise(hp.Network(topology, ready=True))
    return "accepted"


def check(data: bytes) -> str:
    kind, _, text = data.partition(b"\n")
    path = _FOLDER / f"case.{kind.decode()}"
    path.write_bytes(text)
    return check_file(path)


def test_fuzz_topology_files(fuzz_cases):
    campaign = run_cases("topology", make, check, fuzz_cases, timeout=20)
    print(campaign.line())
    campaign.assert_clean()
    assert campaign.outcomes["accepted"] and campaign.outcomes["refused"]  # the mutations reach both


@pytest.mark.parametrize("path", corpus("topology"), ids=lambda p: p.name)
def test_kept_topology_inputs_load_or_are_refused_clearly(path):
    assert check_file(path) in ("accepted", "refused")

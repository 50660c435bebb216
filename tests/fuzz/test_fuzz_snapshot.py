"""Fuzzing the AWS snapshot loader: describe-* folders — the one the loaders' own writer makes
of the built-in example, and the third-party fixture folders beside the project (read in place,
never copied; skipped with a reason when absent) — with one file mutated as a JSON document
(keys dropped, duplicated, renamed; wrong types; wrong references; huge, negative and non-ASCII
numbers; invalid and overlapping CIDRs; empty lists) or as text (bytes flipped, truncated,
control characters).

Each case must load (then ``Network(topology)`` and one ``send`` work) or be refused with a
:class:`~hyperplane.errors.TopologyError` naming the file (or the folder) and a place (line and
column, JSON path or resource id); anything else is ``unclear``. Kept inputs are in
``corpus/snapshot/`` (``<seed>\\n<file>\\n`` then the file's bytes) and replayed.
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
from harness import Unclear, corpus, run_cases
from test_fuzz_topology import ODD_VALUES, clear, exercise, mutate_document, mutate_text

import hyperplane as hp
from hyperplane.errors import TopologyError
from hyperplane.loaders import load_example_topology
from hyperplane.formats.snapshot_reader import _read_json, parse_aws_documents
from hyperplane.formats.snapshot_writer import describe_documents

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "aws-snapshots"

AWS_VALUES: list[Any] = [*ODD_VALUES, "tcp", "6", "17", "-1", "58", "icmpv6", 32767, 32768, 0, "allow", "deny",
                         "available", "deleted", "blackhole", "Gateway", "Interface", "GatewayLoadBalancer",
                         "public", "private", "$LATEST", "1", "²", "١", {"State": "deleted"}, {"Code": "rejected"},
                         [{"GroupId": "sg-nope"}], [{"CidrIp": "10.0.0.0/8"}], {"From": 70000, "To": -3}]


def _example() -> dict[str, Any]:
    return describe_documents(load_example_topology())


def _fixture(name: str) -> dict[str, Any]:
    folder = FIXTURES / name
    return {p.relative_to(folder).as_posix(): json.loads(p.read_text(encoding="utf-8-sig"))
            for p in sorted(folder.rglob("*.json"))}


FIXTURE_NAMES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) if FIXTURES.is_dir() else []
SEEDS: dict[str, dict[str, Any]] = {"example": _example(), **{n: _fixture(n) for n in FIXTURE_NAMES}}


def make_for(seeds: list[str]):
    def make(i: int) -> bytes:
        rng = random.Random(i)
        seed = seeds[i % len(seeds)]
        docs = SEEDS[seed]
        name = rng.choice(sorted(docs))
        if rng.random() < 0.65:
            text = json.dumps(mutate_document(copy.deepcopy(docs[name]), rng, AWS_VALUES), indent=1).encode()
        else:
            text = mutate_text(json.dumps(docs[name], indent=1).encode(), rng)
        return f"{seed}\n{name}\n".encode() + text
    return make


_FOLDER = Path(tempfile.mkdtemp(prefix="hp-fuzz-snapshot-"))


def check(data: bytes) -> str:
    seed, name, text = data.split(b"\n", 2)
    seed_name, file_name = seed.decode(), name.decode()
    if seed_name not in SEEDS:
        pytest.skip(f"the fixture snapshot {seed_name} is absent ({FIXTURES})")
    path = _FOLDER / Path(file_name).name
    path.write_bytes(text)
    documents = [(n, d) for n, d in SEEDS[seed_name].items() if n != file_name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # the mutated file goes through the file reader; the others are already parsed
            documents.append((file_name, _read_json(path, file_name)))
            topology, _report = parse_aws_documents(documents, source=seed_name)
        except TopologyError as exc:
            clear(exc, {file_name, seed_name, *SEEDS[seed_name]})
            return "refused"
        except RecursionError as exc:
            raise Unclear(f"RecursionError: {exc}") from None
        exercise(hp.Network(topology, ready=True))
    return "accepted"


def test_fuzz_snapshot_of_the_example(fuzz_cases):
    campaign = run_cases("snapshot-example", make_for(["example"]), check, fuzz_cases, timeout=20)
    print(campaign.line())
    campaign.assert_clean()
    assert campaign.outcomes["accepted"] and campaign.outcomes["refused"]


def test_fuzz_snapshot_fixtures(fuzz_cases):
    if not FIXTURE_NAMES:
        pytest.skip(f"third-party AWS snapshots absent ({FIXTURES}; a fresh clone does not have them)")
    campaign = run_cases("snapshot-fixtures", make_for(FIXTURE_NAMES), check, fuzz_cases, timeout=20)
    print(campaign.line())
    campaign.assert_clean()
    assert campaign.outcomes["accepted"] and campaign.outcomes["refused"]


@pytest.mark.parametrize("path", corpus("snapshot"), ids=lambda p: p.name)
def test_kept_snapshot_inputs_load_or_are_refused_clearly(path):
    assert check(path.read_bytes()) in ("accepted", "refused")

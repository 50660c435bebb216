"""Fuzzing options: ``--fuzz-cases N`` (per campaign; default a short CI run) and the
``fuzz`` marker (``pytest -m fuzz`` runs only these; ``-m "not fuzz"`` skips them)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def fuzz_cases(request) -> int:
    return request.config.getoption("--fuzz-cases")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.fuzz)

import sys
from pathlib import Path

# tests import their helper modules (the NAT reference model) by name
sys.path.insert(0, str(Path(__file__).parent))

# CI runs the same hypothesis examples every time (a red build is then reproducible, never a
# coin toss); locally every run explores new ones.
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_addoption(parser):
    # tests/fuzz: how many cases each fuzz campaign runs (CI's short run by default; a long run
    # is `pytest -m fuzz --fuzz-cases 100000`)
    parser.addoption("--fuzz-cases", type=int, default=int(os.environ.get("HYPERPLANE_FUZZ_CASES", "300")),
                     help="cases per fuzz campaign in tests/fuzz (default 300, or $HYPERPLANE_FUZZ_CASES)")

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

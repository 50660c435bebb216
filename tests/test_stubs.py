"""The hand-written stubs of the compiled modules (hyperplane/_core/_*.pyi) say what the modules
really export: mypy's stubtest compares them with the built extensions."""

import subprocess
import sys

import pytest

COMPILED = ["hyperplane._core._codes", "hyperplane._core._nat", "hyperplane._core._policy", "hyperplane._core._conntrack", "hyperplane._core._pcap",
            "hyperplane._core._walk", "hyperplane._core._records", "hyperplane._core._text",
            "hyperplane._core._splice"]
# only the compiled modules' stubs are judged here, not the Python modules they import
CONFIG = f"""
[mypy]
ignore_missing_imports = True
[mypy-hyperplane.*]
ignore_errors = True
[mypy-{",".join(COMPILED)}]
ignore_errors = False
"""


def test_compiled_modules_match_their_stubs(tmp_path):
    pytest.importorskip("mypy.stubtest", reason="mypy is part of the test extras: pip install -e '.[test]'")
    config = tmp_path / "stubtest.ini"
    config.write_text(CONFIG)
    done = subprocess.run([sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", str(config), *COMPILED],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]

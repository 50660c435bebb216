"""The README documents what users look up: every reason code, with its disposition."""

from pathlib import Path

import pytest

from hyperplane.reasons import Reason

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("reason", list(Reason), ids=lambda r: r.name)
def test_every_reason_code_is_in_the_readme_table_with_its_disposition(reason):
    rows = [line for line in README.read_text().splitlines() if line.startswith(f"| `{reason.name}` |")]
    assert rows, f"README has no row for {reason.name}"
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1] == reason.disposition.name
    assert cells[2] == (reason.explanation or "—")


def test_readme_gives_the_setup_demo_and_test_commands():
    text = README.read_text()
    for command in ("pip install -e '.[test]'", "hyperplane demo", "pytest"):
        assert command in text

"""The README is the front door: the setup commands CI runs, and a link to every docs page."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_readme_gives_the_setup_demo_and_test_commands_that_ci_runs():
    text = README.read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ("pip install -e '.[test]'", "hyperplane demo", "pytest -n auto"):
        assert f"```sh\n{command}\n```" in text
        assert command in ci


def test_readme_links_to_every_docs_page_and_to_the_architecture():
    text = README.read_text()
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} | {"docs/architecture.md"}
    missing = sorted(p for p in pages if f"]({p})" not in text)
    assert not missing, f"README.md does not link to {missing}"

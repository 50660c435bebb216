"""Every code example of README.md and docs/*.md runs, and prints what the page shows.

Rules (what a page writer needs to know):

- Each ```python block runs; the blocks of one page share one namespace, in page order, in a
  fresh temporary working directory (files a block writes are there for the next blocks).
- A block's output is checked when the next block is a bare ``` (or ```text) block that
  follows it directly or after one paragraph ending in "prints", "prints:" or "output:". The
  comparison is exact except for trailing spaces at line ends (rich pads table cells) and a
  trailing blank line. Nothing else is normalised: ephemeral and V2N ports are seeded, so the
  examples print the same ports on every run.
- Each line of a ```sh block runs through click's CliRunner when it is a `hyperplane ...`
  command (its exit code must be 0 or 1, the `trace` verdict; `# exit 2` at the end of the line
  expects a user error instead). Any other command fails the test: a block that must not run
  says so in a `<!-- not run: reason -->` comment on the line before it, and is counted.
- docs/reasons.md's table is generated from ``hyperplane.Reason``:
  ``python tests/test_docs.py --write-reasons`` rewrites it.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REASONS_PAGE = ROOT / "docs" / "reasons.md"

# blocks marked <!-- not run: ... --> across all pages; change it with the marks, on purpose
NOT_RUN_EXPECTED = 7

_NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<why>\S.*?)\s*-->$")
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
_INTRODUCES_OUTPUT = re.compile(r"(?:\bprints|\boutput):?$")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_run: str | None = None  # the reason, when marked
    output: str | None = None  # the output the page shows for it

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The fenced blocks of a page, with their not-run marks and shown outputs attached."""
    lines = page.read_text().splitlines()
    found: list[tuple[Block, int]] = []  # (block, index of the line after its closing fence)
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and lines[i].rstrip() != "```":
            i += 1
        if i >= len(lines):
            raise AssertionError(f"{page.relative_to(ROOT)}:{start + 1}: code block never closed")
        before = next((lines[k].strip() for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        mark = _NOT_RUN.match(before)
        found.append((Block(page, start + 1, m["lang"], "\n".join(lines[start + 1:i]) + "\n",
                            mark["why"] if mark else None), i + 1))
        i += 1
    blocks = [b for b, _ in found]
    for k, (block, after) in enumerate(found[:-1]):
        nxt, nxt_after = found[k + 1]
        if block.lang not in ("python", "sh") or nxt.lang not in ("", "text"):
            continue
        between = [ln.strip() for ln in lines[after:nxt.line - 1] if ln.strip()]
        if not between or (_INTRODUCES_OUTPUT.search(between[-1]) and len(between) <= 3):
            block.output = nxt.code
    # an output block is not itself code to run
    outputs = {id(found[k + 1][0]) for k, (b, _) in enumerate(found[:-1]) if b.output is not None}
    return [b for b in blocks if id(b) not in outputs]


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def _run_python(block: Block, namespace: dict) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            exec(compile(block.code, block.where(), "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{block.where()}: the example raised {type(exc).__name__}: {exc}") from exc
    return out.getvalue()


def _run_sh(block: Block) -> str:
    from click.testing import CliRunner

    from hyperplane.cli import main

    printed = []
    for n, line in enumerate(block.code.splitlines()):
        command, _, comment = line.partition(" #")
        command = command.strip()
        if not command or command.startswith("#"):
            continue
        words = shlex.split(command)
        if words[0] != "hyperplane":
            raise AssertionError(f"{block.where()}+{n + 1}: {words[0]!r} is not a hyperplane command: "
                                 "mark the block <!-- not run: reason --> if it must not run")
        result = CliRunner().invoke(main, words[1:], catch_exceptions=True)
        expected = (2,) if comment.strip() == "exit 2" else (0, 1)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{block.where()}+{n + 1}: {command!r} raised "
                                 f"{type(result.exception).__name__}: {result.exception}") from result.exception
        assert result.exit_code in expected, (
            f"{block.where()}+{n + 1}: {command!r} exited {result.exit_code}:\n{result.output}")
        printed.append(result.stdout if expected != (2,) else result.stderr)
    return "".join(printed)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_of_the_page_runs_and_prints_what_the_page_shows(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs:{page.name}"}
    for block in blocks_of(page):
        if block.not_run is not None or block.lang not in ("python", "sh"):
            continue
        printed = _run_python(block, namespace) if block.lang == "python" else _run_sh(block)
        if block.output is not None:
            assert _normalise(printed) == _normalise(block.output), (
                f"{block.where()}: the page shows\n{block.output}\nbut the example prints\n{printed}")


def test_blocks_that_do_not_run_say_why_and_are_counted():
    marked = [b for page in PAGES for b in blocks_of(page) if b.not_run is not None]
    ran = [b for page in PAGES for b in blocks_of(page) if b.not_run is None and b.lang in ("python", "sh")]
    checked = [b for b in ran if b.output is not None]
    print(f"\n{len(ran)} code blocks run ({len(checked)} with their output checked), "
          f"{len(marked)} marked not run:")
    for b in marked:
        print(f"  {b.where()}: {b.not_run}")
    assert len(marked) == NOT_RUN_EXPECTED, [b.where() for b in marked]


def test_code_blocks_name_their_language():
    """A fence without a language is only allowed as a shown output (or an error text)."""
    for page in PAGES:
        for b in blocks_of(page):
            if b.lang == "" and b.not_run is None:
                # a bare block that is not an output: plain text, never code that escapes the test
                assert not re.search(r"^(import |from |net\.|hp\.|hyperplane )", b.code, re.M), (
                    f"{b.where()}: code in a block without a language is never run: say ```python or ```sh")


# -- docs/reasons.md ----------------------------------------------------------------------------

def reason_table() -> str:
    import hyperplane as hp

    rows = ["| reason | disposition | Reachability Analyzer | meaning |", "|---|---|---|---|"]
    for r in hp.Reason:
        rows.append(f"| `{r.name}` | {r.disposition.name} | {r.explanation or '—'} | {r.text} |")
    return "\n".join(rows)


_TABLE = re.compile(r"(<!-- reasons:begin[^>]*-->\n)(.*?)(\n?<!-- reasons:end -->)", re.S)


def test_the_reasons_page_lists_exactly_the_codes_the_enum_has_with_their_texts():
    import hyperplane as hp

    m = _TABLE.search(REASONS_PAGE.read_text())
    assert m, "docs/reasons.md has no <!-- reasons:begin --> ... <!-- reasons:end --> table"
    listed = re.findall(r"^\| `(\w+)` \|", m[2], re.M)
    assert sorted(listed) == sorted(r.name for r in hp.Reason), "run: python tests/test_docs.py --write-reasons"
    assert m[2] == reason_table(), "the table is stale: run python tests/test_docs.py --write-reasons"


# -- links ----------------------------------------------------------------------------------------

_LINK = re.compile(r"\]\((?P<target>[^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files_of_the_checkout(page):
    for target in _LINK.findall(page.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        if target == "docs/architecture.md":
            continue  # the lead's page, written separately
        assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-reasons"]:
        sys.exit("usage: python tests/test_docs.py --write-reasons")
    text = REASONS_PAGE.read_text()
    m = _TABLE.search(text)
    if not m:
        sys.exit("docs/reasons.md has no <!-- reasons:begin --> ... <!-- reasons:end --> markers")
    REASONS_PAGE.write_text(text[:m.start(2)] + reason_table() + text[m.end(2):])
    print(f"wrote the table of {REASONS_PAGE.relative_to(ROOT)}")

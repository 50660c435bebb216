"""The package's architecture, kept so (docs/architecture.md): subsystems import downward only,
no import cycles, no module too long to read.

Layers, low to high: the base (errors, packet records, reason codes, the compiled core) <
tables, model < formats, lambda_service < dataplane < api (network, trace, replay, scapy) < cli.
A module may import from a lower layer or from its own subsystem, nothing else.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hyperplane"

# subsystem -> (layer, module prefixes); the longest matching prefix decides
SUBSYSTEMS = {
    "base": (0, ["hyperplane.errors", "hyperplane.records", "hyperplane.reasons", "hyperplane.codes"]),
    "tables": (1, ["hyperplane.tables"]),
    "model": (1, ["hyperplane.model"]),
    "formats": (2, ["hyperplane.formats"]),
    "lambda_service": (2, ["hyperplane.lambda_service"]),
    "dataplane": (3, ["hyperplane.dataplane"]),
    "api": (4, ["hyperplane.network", "hyperplane.trace", "hyperplane.replay", "hyperplane.scapy_adapter",
                "hyperplane.connectivity", "hyperplane.workload", "hyperplane.replay_parallel",
                "hyperplane.replay_verdicts"]),
    "cli": (5, ["hyperplane.cli", "hyperplane.demo", "hyperplane.testing", "hyperplane.pytest_plugin",
                "hyperplane"]),  # the package itself re-exports all
}
LONGEST = 700  # lines, for Python modules (the compiled hot loops are exempt)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def subsystem(module: str) -> str | None:
    if module.startswith("hyperplane._"):  # the compiled core and the import paths of before
        return "base"
    best = None
    for name, (_, prefixes) in SUBSYSTEMS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
                best = (name, prefix)
    return best[0] if best else None


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """hyperplane modules imported by a file (``from hyperplane import x`` names x's module)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hyperplane")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hyperplane") and not node.level:
            if node.module == "hyperplane":  # the package as a namespace: its submodules count
                found |= {f"hyperplane.{a.name}" for a in node.names}
            else:
                found.add(node.module)
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_import_only_from_lower_layers_or_their_own_subsystem(module):
    mine = subsystem(module)
    assert mine is not None, f"{module} belongs to no subsystem: add it to SUBSYSTEMS and docs/architecture.md"
    layer = SUBSYSTEMS[mine][0]
    for imported in sorted(imports(MODULES[module], top_level_only=False)):
        theirs = subsystem(imported)
        if theirs is None or theirs == mine:
            continue
        assert SUBSYSTEMS[theirs][0] < layer, (
            f"{module} ({mine}, layer {layer}) imports {imported} ({theirs}, layer {SUBSYSTEMS[theirs][0]})")


def test_no_import_cycles_between_modules():
    # every import counts: a lazy or type-only import couples the two modules all the same
    graph = {m: {i for i in imports(p, top_level_only=False) if i in MODULES and i != m} for m, p in MODULES.items()}
    # a package imports its submodules to re-export them: not a cycle of code
    graph = {m: {i for i in deps if not i.startswith(m + ".")} for m, deps in graph.items()}
    done: set[str] = set()

    def visit(m: str, stack: list[str]) -> None:
        if m in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
        if m in done:
            return
        for n in sorted(graph[m]):
            visit(n, stack + [m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_python_module_is_too_long_to_read(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= LONGEST, f"{module}: {lines} lines (split it by what it holds)"


@pytest.mark.parametrize("old, new, name", [
    ("hyperplane.nat", "hyperplane.tables.nat", "ConnectionTable"),
    ("hyperplane.pcap", "hyperplane.formats.pcap", "read_capture"),
    ("hyperplane.flowlogs", "hyperplane.formats.flow_log_files", "write_s3"),
    ("hyperplane.functions", "hyperplane.lambda_service", "LambdaService"),
    ("hyperplane.loaders", "hyperplane.formats.topology_reader", "load_topology"),
])
def test_documented_import_paths_of_before_the_folders_still_work_without_a_warning(old, new, name):
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name)


def test_internal_import_paths_of_before_the_folders_warn_and_name_the_new_one():
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('error'); import hyperplane\n"
            "try:\n    import hyperplane.pipeline\nexcept DeprecationWarning as w:\n    print(w)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "hyperplane.pipeline is now hyperplane.dataplane.walk; the old path will be removed"

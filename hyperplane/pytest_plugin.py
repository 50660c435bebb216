"""The pytest plugin (entry point ``pytest11``: installed with the package, nothing to enable).

The ``hyperplane_network`` fixture: a fresh :class:`hyperplane.Network` for each test, its
functions deployed (Active), loaded from the first of

- the test's marker ``@pytest.mark.hyperplane_topology("shop.yaml")`` (relative to the test file),
- the command line's ``--hyperplane-topology PATH`` (relative to the current directory),
- the ini option ``hyperplane_topology = PATH`` (relative to the ini file),
- the built-in example (``hyperplane.Network.example()``).

Any input ``Network.load`` reads will do (a topology file, a describe-* folder, a template, a
Terraform plan). A file is parsed once per session; each test gets its own network built from
that topology, so connections one test opens are not in the next one's tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

__all__ = ["hyperplane_network"]

MARKER = "hyperplane_topology"
OPTION = "--hyperplane-topology"
INI = "hyperplane_topology"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hyperplane", "hyperplane: emulated VPC networks for AWS Lambda")
    group.addoption(OPTION, dest="hyperplane_topology", metavar="PATH", default=None,
                    help="The topology the hyperplane_network fixture loads (default: the built-in example).")
    parser.addini(INI, "The topology the hyperplane_network fixture loads, relative to the ini file.",
                  default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(path): the topology hyperplane_network loads for "
                                       "this test, relative to the test file")


class _Topologies:
    """The parsed topologies of a session, by resolved path (None: the built-in example)."""

    def __init__(self) -> None:
        self._parsed: dict[Path | None, Any] = {}

    def get(self, path: Path | None) -> Any:
        if path not in self._parsed:
            from hyperplane.errors import HyperplaneError
            from hyperplane.formats.inputs import read_input
            from hyperplane.formats.topology_reader import load_example_topology

            try:
                self._parsed[path] = load_example_topology() if path is None else read_input(path)
            except (HyperplaneError, OSError) as exc:
                pytest.fail(f"hyperplane_network: {exc}", pytrace=False)
        return self._parsed[path]


@pytest.fixture(scope="session")
def _hyperplane_topologies() -> _Topologies:
    return _Topologies()


def _topology_path(request: pytest.FixtureRequest) -> Path | None:
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if len(marker.args) != 1 or marker.kwargs:
            pytest.fail(f"@pytest.mark.{MARKER} takes one path", pytrace=False)
        return (Path(request.node.path).parent / marker.args[0]).resolve()
    config = request.config
    given = config.getoption("hyperplane_topology")
    if given:
        return (config.invocation_params.dir / given).resolve()
    ini = config.getini(INI)
    if ini:
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        return (base / str(ini)).resolve()
    return None


@pytest.fixture
def hyperplane_network(request: pytest.FixtureRequest, _hyperplane_topologies: _Topologies) -> Any:
    """A fresh emulated network for this test (see the module docstring for where it comes from)."""
    from hyperplane.network import Network

    return Network(_hyperplane_topologies.get(_topology_path(request)), ready=True)

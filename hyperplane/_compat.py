"""Import paths of before the subsystems became folders (issue 10).

``hyperplane.nat``, ``hyperplane.pcap``, ``hyperplane.flowlogs`` and ``hyperplane.loaders`` are
documented in the README and stay public, without a warning: each name is its subsystem's public
module (``hyperplane.pcap`` is ``hyperplane.formats.pcap``, ``hyperplane.flowlogs`` is
``hyperplane.dataplane.flow_logs``). The other old paths (``hyperplane.vpc``,
``hyperplane.pipeline``, ...) were internal; they still import, with a ``DeprecationWarning``
naming the new path, and will go in a later release.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

#: old path -> (new path, deprecated?)
MOVED: dict[str, tuple[str, bool]] = {}


def moved(old: str, new: str, *, deprecated: bool = True) -> None:
    MOVED["hyperplane." + old] = ("hyperplane." + new, deprecated)


class _Loader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.new)  # the old name is the same module object

    def exec_module(self, module: ModuleType) -> None:
        pass


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name not in MOVED:
            return None
        new, deprecated = MOVED[name]
        if deprecated:
            warnings.warn(f"{name} is now {new}; the old path will be removed", DeprecationWarning, stacklevel=3)
        return importlib.util.spec_from_loader(name, _Loader(new))


moved("nat", "tables.nat", deprecated=False)
moved("conntrack", "tables.conntrack")
moved("policy", "tables.policy")
moved("vpc", "dataplane.compiled_vpc")
moved("pipeline", "dataplane.walk")
moved("inputs", "dataplane.inputs")
moved("loaders.topology_file", "loaders")  # split into formats.topology_{reader,writer}: the facade has both
moved("loaders.aws_snapshot", "loaders")  # split into formats.snapshot_{reader,writer}: the facade has both
moved("loaders.boto3_collect", "formats.boto3_collect")
moved("loaders._source", "formats._source")
moved("pcap", "formats.pcap", deprecated=False)
moved("flowlogs", "dataplane.flow_logs", deprecated=False)  # re-exports formats.flow_log_files

if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.insert(0, _Finder())

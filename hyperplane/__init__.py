"""hyperplane: a packet-level emulator of the VPC networking AWS Lambda functions use.

    import hyperplane as hp
    net = hp.Network.example()
    r = net.function("orders").send(IP(dst="10.0.20.10") / TCP(dport=5432, flags="S"))
    print(r)
"""

from typing import TYPE_CHECKING, Any

from hyperplane import _compat  # noqa: F401 - the import paths of before the folders
from hyperplane.errors import ExpectationsError, HyperplaneError, NoHopsError, TopologyError
from hyperplane.tables.conntrack import ConnectionTracker, ConnectionTrackingConfiguration
from hyperplane.lambda_service import HyperplaneEni, LambdaService, LambdaSettings
from hyperplane.tables.nat import ConnectionTable, Direction, NatStatus, Timeouts
from hyperplane.network import Function, Network
from hyperplane.dataplane.walk import BatchResult, Origin
from hyperplane.reasons import Disposition, Reason
from hyperplane.records import PACKET
from hyperplane.replay import ReplayReport, replay  # not lazy: importing hyperplane.replay would hide the function
from hyperplane.trace import Hop, Result

if TYPE_CHECKING:
    from hyperplane.connectivity.connection import ConnectionResult
    from hyperplane.connectivity.diff import diff
    from hyperplane.connectivity.reachability import Reachability
    from hyperplane.dataplane.flow_logs import FlowLogAggregator
    from hyperplane.formats.flow_log_files import FlowLogFormat, FlowLogRecord
    from hyperplane.workload import Workload, load_test

# imported when first used: what a script that sends packets never needs (a test suite pays
# ``import hyperplane`` in every process)
_LAZY = {"ConnectionResult": "hyperplane.connectivity.connection",
         "Reachability": "hyperplane.connectivity.reachability", "diff": "hyperplane.connectivity.diff",
         "FlowLogAggregator": "hyperplane.dataplane.flow_logs",
         "FlowLogFormat": "hyperplane.formats.flow_log_files", "FlowLogRecord": "hyperplane.formats.flow_log_files", "Workload": "hyperplane.workload",
         "load_test": "hyperplane.workload"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hyperplane' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BatchResult",
    "ConnectionResult",
    "ConnectionTable",
    "ConnectionTracker",
    "ConnectionTrackingConfiguration",
    "Direction",
    "Disposition",
    "ExpectationsError",
    "FlowLogAggregator",
    "FlowLogFormat",
    "FlowLogRecord",
    "Function",
    "Hop",
    "HyperplaneEni",
    "HyperplaneError",
    "LambdaService",
    "LambdaSettings",
    "NatStatus",
    "Network",
    "NoHopsError",
    "Origin",
    "PACKET",
    "Reachability",
    "Reason",
    "ReplayReport",
    "Result",
    "Timeouts",
    "TopologyError",
    "Workload",
    "diff",
    "load_test",
    "replay",
]
__version__ = "0.1.0"

"""hyperplane: a packet-level emulator of the VPC networking AWS Lambda functions use.

    import hyperplane as hp
    net = hp.Network.example()
    r = net.function("orders").send(IP(dst="10.0.20.10") / TCP(dport=5432, flags="S"))
    print(r)
"""

from hyperplane import _compat  # noqa: F401 - the import paths of before the folders
from hyperplane.connectivity import ConnectionResult, Reachability, diff
from hyperplane.errors import ExpectationsError, HyperplaneError, NoHopsError, TopologyError
from hyperplane.tables.conntrack import ConnectionTracker, ConnectionTrackingConfiguration
from hyperplane.dataplane.flow_logs import FlowLogAggregator
from hyperplane.formats.flow_log_files import FlowLogFormat, FlowLogRecord
from hyperplane.lambda_service import HyperplaneEni, LambdaService, LambdaSettings
from hyperplane.tables.nat import ConnectionTable, Direction, NatStatus, Timeouts
from hyperplane.network import Function, Network
from hyperplane.dataplane.walk import BatchResult, Origin
from hyperplane.reasons import Disposition, Reason
from hyperplane.records import PACKET
from hyperplane.replay import ReplayReport, replay
from hyperplane.trace import Hop, Result
from hyperplane.workload import Workload, load_test

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

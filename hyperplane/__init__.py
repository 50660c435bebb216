"""hyperplane: a packet-level emulator of the VPC networking AWS Lambda functions use.

    import hyperplane as hp
    net = hp.Network.example()
    r = net.function("orders").send(IP(dst="10.0.20.10") / TCP(dport=5432, flags="S"))
    print(r)
"""

from hyperplane.errors import HyperplaneError, TopologyError
from hyperplane.functions import LambdaSettings
from hyperplane.nat import ConnectionTable, Direction, NatStatus, Timeouts
from hyperplane.network import Function, Network
from hyperplane.pipeline import BatchResult, Origin
from hyperplane.reasons import Disposition, Reason
from hyperplane.records import PACKET
from hyperplane.trace import Hop, Result

__all__ = [
    "BatchResult",
    "ConnectionTable",
    "Direction",
    "Disposition",
    "Function",
    "Hop",
    "HyperplaneError",
    "LambdaSettings",
    "NatStatus",
    "Network",
    "Origin",
    "PACKET",
    "Reason",
    "Result",
    "Timeouts",
    "TopologyError",
]
__version__ = "0.1.0"

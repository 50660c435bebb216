"""Questions about connections, answered with walks of the compiled walker (the hops are the
evidence): can a source connect to a destination, both ways (``connection``), and what a
source reaches at all (``reachability``).

- ``names``: what a user may call a source or a destination (a function, an ENI or instance id,
  an address, ``internet``, an endpoint, ...) and the address it stands for;
- ``connection``: ``connect``: a whole exchange (TCP handshake and data, UDP request and
  response, ICMP echo and reply), leg by leg, with which leg failed, where, and what would fix it;
- ``reachability``: every destination, protocol and port range a source reaches or not, exact
  (one walk per class of ports no rule tells apart), and who reaches a destination;
- ``diff``: the connections whose verdict changes between two networks (differential
  reachability), with the deciding hop before and after.
"""

from hyperplane.connectivity.connection import ConnectionResult, Leg, connect
from hyperplane.connectivity.diff import Change, Diff, diff
from hyperplane.connectivity.reachability import Reachability, ReachabilityRow, reachability

__all__ = ["connect", "ConnectionResult", "Leg", "reachability", "Reachability", "ReachabilityRow",
           "diff", "Diff", "Change"]

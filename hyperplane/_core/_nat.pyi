"""Type stubs for the compiled connection table (``_nat.pyx``). Use ``hyperplane.nat``.

Comments give the C type each argument is converted to: a Python int outside it raises
``OverflowError``, an array of another dtype or layout raises ``ValueError``, ``None`` where
``not None`` is declared raises ``TypeError``.
"""

from collections.abc import Sequence
from typing import TypedDict, final

from typing_extensions import Self

import numpy as np
import numpy.typing as npt

__test__: dict[str, str]  # added by Cython
__pyx_capi__: dict[str, object]  # the cdef functions other compiled modules call

# Cython puts the pickling helpers of the final class at module level too.
def __reduce_cython__(self: NatCore) -> object: ...
def __setstate_cython__(self: NatCore, __pyx_state: object) -> None: ...

def first_bad_time(packets: npt.NDArray[np.void], limit: float) -> int: ...  # const packet_t[::1], double

class _AddressStats(TypedDict):  # addr_stats_t, every field uint64_t
    live: int
    peak: int
    created: int
    expired: int
    closed: int
    refused: int

@final
class NatCore:
    """The compiled table. Use ``hyperplane.nat.ConnectionTable``, which validates arguments."""

    # __cinit__ takes the arguments: at run time __init__ is object's, so the stub types __new__
    def __new__(
        cls,
        gateway_mode: bool,  # bint: NAT gateway (TCP/UDP/ICMP) rather than Hyperplane ENI (TCP/UDP)
        port_lo: int,  # uint16_t: first port handed out
        nports: int,  # uint32_t: ports port_lo .. port_lo + nports - 1
        max_per_address: int,  # uint64_t: live connections per address, 0 = unlimited
        per_dest_limit: int,  # uint64_t: live connections per (address, proto, remote ip, remote port)
        timeouts: Sequence[float],  # N_STATES doubles, indexed by ConnState (see Timeouts.by_state)
        seed: int = 0,  # uint64_t: port-draw generator state
        capacity: int = 1024,  # uint32_t: connections to make room for up front
    ) -> Self: ...
    def add_address(
        self,
        ip: int,  # uint32_t, host order
        active_from: float,  # double: new connections may use it from this time on
    ) -> int: ...  # its index
    def process(
        self,
        packets: npt.NDArray[np.void],  # const packet_t[::1] not None: hyperplane.records.PACKET rows
        direction: npt.NDArray[np.uint8],  # const uint8_t[::1] not None: one per row, or one for all
        out: npt.NDArray[np.void],  # packet_t[::1] not None, written: translated rows
        status: npt.NDArray[np.uint8],  # uint8_t[::1] not None, written: NatStatus codes
        start: int = 0,  # Py_ssize_t
        end: int = -1,  # Py_ssize_t: negative = every row
        stop_on_full: bool = False,  # bint
        pickup: bool = False,  # bint: an outbound TCP ACK of no connection opens it (mid-stream pickup)
    ) -> int: ...  # the row where it stopped (== end when every row was processed)
    def lookup(
        self,
        packets: npt.NDArray[np.void],  # const packet_t[::1] not None
        direction: int,  # uint8_t: 0 = from the inside, else toward a translating address
        out: npt.NDArray[np.void],  # packet_t[::1] not None, written: translated where found
        found: npt.NDArray[np.uint8],  # uint8_t[::1] not None, written: 1 where a live connection matched
    ) -> None: ...  # changes nothing in the table
    def expire(self, now: float) -> None: ...  # double
    @property
    def now(self) -> float: ...  # double
    @property
    def live(self) -> int: ...  # uint64_t
    @property
    def n_addresses(self) -> int: ...  # int
    def address(self, a: int) -> tuple[int, float]: ...  # (uint32_t ip, double active_from)
    def address_stats(self, a: int) -> _AddressStats: ...
    def status_counts(self) -> list[int]: ...  # uint64_t status_count[32], indexed by NatStatus
    def memory_bytes(self) -> int: ...
    # (forward, reverse) index: buckets, entries, probe_total, probe_max (_index.pxd index_stats_t)
    def index_stats(self) -> tuple[dict[str, int], dict[str, int]]: ...
    def connections(self) -> npt.NDArray[np.void]: ...  # structured: in_ip, in_port, rem_ip, ...

"""The flat packet record that every stage of the pipeline reads and writes.

Scapy packets, pcap frames and benchmark generators are all turned into arrays of this dtype at
the edges; the compiled core only ever sees these 24-byte rows. The layout is naturally aligned
(no padding) and must match ``packet_t`` in ``_types.pxd`` field for field.

Conventions:
- addresses are IPv4 as host-order ``uint32`` (``int(ipaddress.IPv4Address(s))``);
- ``time`` is seconds (float; pcap timestamps or the network's virtual clock);
- ``length`` is the IP total length in bytes;
- ``flags`` is the TCP flags byte (FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10) for TCP and
  the ICMP type for ICMP; 0 for UDP;
- for ICMP echo the identifier plays the port's role: an echo request carries it in
  ``src_port`` (``dst_port`` = 0), an echo reply in ``dst_port`` (``src_port`` = 0); other ICMP
  types carry their code in ``dst_port`` (security group and NACL rules match it).
"""

from __future__ import annotations

import ipaddress

import numpy as np

PACKET = np.dtype(
    [
        ("time", "<f8"),
        ("src_ip", "<u4"),
        ("dst_ip", "<u4"),
        ("src_port", "<u2"),
        ("dst_port", "<u2"),
        ("length", "<u2"),
        ("proto", "u1"),
        ("flags", "u1"),
    ]
)
assert PACKET.itemsize == 24

TCP, UDP, ICMP = 6, 17, 1
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8


def ip(text: str | int) -> int:
    """An IPv4 address as the uint32 the records hold."""
    return int(ipaddress.IPv4Address(text))


def ip_str(value: int) -> str:
    return str(ipaddress.IPv4Address(int(value)))


def packets(n: int) -> np.ndarray:
    """A zeroed batch of ``n`` records."""
    return np.zeros(n, dtype=PACKET)


def packet(
    src: str | int,
    dst: str | int,
    sport: int = 0,
    dport: int = 0,
    proto: int = TCP,
    flags: int = 0,
    time: float = 0.0,
    length: int = 40,
) -> np.ndarray:
    """A batch of one record, for tests and the scripting edge."""
    rec = packets(1)
    rec[0] = (time, ip(src), ip(dst), sport, dport, length, proto, flags)
    return rec

"""Scapy at the edge: packets in, PACKET records for the core, packets out again.

No scapy object ever crosses into the pipeline; the translated packet a user sees is the
original one with the record's addresses and ports written back and checksums recomputed.
"""

from __future__ import annotations

import numpy as np
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import NoPayload, Packet, Raw

from hyperplane.reasons import Reason
from hyperplane.records import PACKET


def ip_layer(pkt: Packet) -> IP | None:
    """The IPv4 layer of a packet (an Ethernet or cooked header in front is fine)."""
    layer = pkt.getlayer(IP)
    return layer if isinstance(layer, IP) else None


def to_record(pkt: Packet, time: float) -> tuple[np.ndarray, Reason | None]:
    """One PACKET row for a scapy packet, or the reason it cannot be emulated."""
    rec = np.zeros(1, dtype=PACKET)
    ip = ip_layer(pkt)
    if ip is None:
        return rec, Reason.NOT_IPV4
    if ip.frag > 0:
        return rec, Reason.IP_FRAGMENT
    r = rec[0]
    r["time"] = time
    r["src_ip"] = _u32(ip.src)
    r["dst_ip"] = _u32(ip.dst)
    r["proto"] = ip.proto
    r["length"] = ip.len if ip.len is not None else wire_length(ip)
    l4 = ip.payload
    if isinstance(l4, TCP):
        r["src_port"], r["dst_port"], r["flags"] = l4.sport, l4.dport, int(l4.flags)
    elif isinstance(l4, UDP):
        r["src_port"], r["dst_port"] = l4.sport, l4.dport
    elif isinstance(l4, ICMP):
        r["flags"] = l4.type
        if l4.type == 8:  # echo: the identifier plays the port's role
            r["src_port"] = l4.id
        elif l4.type == 0:
            r["dst_port"] = l4.id
        else:  # other types carry their code
            r["dst_port"] = l4.code
    return rec, None


# the header bytes scapy writes for these layers without options
_HEADER = {TCP: 20, UDP: 8}


def wire_length(ip: IP) -> int:
    """``len(ip)``, the bytes scapy serializes the layer to, without serializing it when that is
    plain to see: no IP or TCP options, a TCP or UDP header, then raw bytes or nothing (what a
    script builds). Serializing is most of what a ``send`` would cost otherwise."""
    l4 = ip.payload
    header = _HEADER.get(type(l4))
    if type(ip) is IP and header is not None and not ip.options and not (header == 20 and l4.options):
        data = l4.payload
        if type(data) is NoPayload:
            return 20 + header
        if type(data) is Raw and type(data.payload) is NoPayload and type(data.load) is bytes:
            return 20 + header + len(data.load)
    return len(ip)


def from_record(pkt: Packet, rec: np.void) -> IP:
    """The packet's IPv4 layer rewritten with the record's addresses and ports."""
    return IP(bytes(rewritten(pkt, rec)))


def rewritten(pkt: Packet, rec: np.void) -> IP:
    """A copy of the packet's IPv4 layer with the record's addresses and ports, its checksums
    and lengths left to compute (``from_record`` serializes and parses it)."""
    layer = ip_layer(pkt)
    if layer is None:
        raise ValueError("the packet has no IPv4 layer")
    ip: IP = layer.copy()
    ip.src = _dotted(int(rec["src_ip"]))
    ip.dst = _dotted(int(rec["dst_ip"]))
    del ip.chksum
    l4 = ip.payload
    if isinstance(l4, (TCP, UDP)):
        l4.sport, l4.dport = int(rec["src_port"]), int(rec["dst_port"])
        del l4.chksum
    elif isinstance(l4, ICMP) and l4.type in (0, 8):
        l4.id = int(rec["src_port"] if l4.type == 8 else rec["dst_port"])
        del l4.chksum
    return ip


def _u32(dotted: str) -> int:
    a, b, c, d = (int(x) for x in dotted.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def _dotted(value: int) -> str:
    return f"{value >> 24 & 255}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"

"""Throughput of the compiled connection table, against its ceiling (a bare compiled table) and a
plain-Python dict NAT, in the same run, on the same keys and packets.

    python benchmarks/nat_throughput.py [--connections 1000000] [--packets 2000000] [--repeat 3] [--quick]
                                        [--curve rates.csv]

Every connection is opened as in reality before it is timed: the SYN out (allocating a port),
the SYN-ACK back to the translated address and port (Direction.IN), the ACK out; the benchmark
stops unless every connection is then established. The last line printed is one JSON object:
  established_mpps   outbound packets of established connections (TCP ACKs, connections picked
                     uniformly at random among the live ones), through a Hyperplane ENI table
                     made for them (``capacity=``), in Mpps
  ceiling_mpps       the same packets looked up in a bare compiled table of the same keys
                     (hyperplane/_core/_bare_table.pyx: 16-byte slots, linear probing, prefetch,
                     no timeouts, no state), which must find every one with the same port
  ratio_vs_ceiling   established_mpps / ceiling_mpps
  established_into_buffer_mpps, ceiling_into_buffer_mpps, ratio_vs_ceiling_into_buffer
                     the same two, each writing into its previous result (``process(out=)``,
                     ``lookup(rows, out)``) instead of new arrays, whose fresh pages the kernel
                     zeroes (64 MB of translated rows for 2M packets): the table work alone
  setup_mpps         new connections (TCP SYNs, each allocating a port), pre-sized table
  setup_grown_mpps   the same into a table that grows to its size (no ``capacity=``)
  ceiling_setup_mpps the same keys inserted into a fresh bare table
  inbound_mpps       replies (to the translated address and port), mapped back
  bytes_per_connection, bytes_per_connection_grown   table memory / live connections, pre-sized
                     and grown; ceiling_bytes_per_connection the bare table's
  dict_nat_mpps      the same established packets, all of them, through a Python dict NAT, which
                     must translate every one as the table did (the baseline)
  ratio_vs_python    established_mpps / dict_nat_mpps
  figures            the headline figures, each with its baseline and ratio
Connections go to 1,000 destinations (100 addresses x 10 ports: databases and APIs), 65,000 per
ENI address, so 1,000,000 connections use 16 Hyperplane ENI addresses. ``--curve FILE`` also
writes established and ceiling rates for live tables of 4k to 16M connections to a CSV file.
"""

from __future__ import annotations

import argparse
import csv

import numpy as np

from _common import (best_of, best_of_each, best_of_fresh, emit, environment_syns, figure, mpps, options,
                     ratio, replies_to, same_verdicts)
from hyperplane._core._bare_table import BareTable
from hyperplane.records import ACK, SYN, ip
from hyperplane.tables.nat import STATE_NAMES, ConnectionTable, Direction, NatStatus

ESTABLISHED = STATE_NAMES.index("tcp-established")
MAX_CAPACITY_HINT = 2**23  # ConnectionTable(capacity=) makes room for at most this many up front
# the curve: live connections 4,096 .. 8,388,608 doubling, then 16,000,000 (slots are 24-bit)
CURVE = [4096 << k for k in range(12)] + [16_000_000]


def eni_table(n: int, presized: bool) -> ConnectionTable:
    enis = [ip("10.0.10.50") + k for k in range(n // 65_000 + 1)]
    if presized:
        return ConnectionTable.hyperplane_eni(enis, capacity=min(n, MAX_CAPACITY_HINT))
    return ConnectionTable.hyperplane_eni(enis)


def handshake(table: ConnectionTable, syn: np.ndarray, opened: np.ndarray) -> None:
    """Finish opening the connections ``syn`` opened (``opened``: the translated SYNs): the
    SYN-ACKs come back to the translated tuples, the environments ACK them. Stops unless every
    connection is then established."""
    n = len(syn)
    synack = replies_to(opened, SYN | ACK)
    synack["time"] = 0.001
    assert (table.process(synack, Direction.IN).status == NatStatus.TRANSLATED).all(), "a SYN-ACK was not mapped back"
    ack = syn.copy()
    ack["flags"], ack["time"] = ACK, 0.002
    assert (table.process(ack, Direction.OUT).status == NatStatus.TRANSLATED).all(), "a handshake ACK was refused"
    states = table.connections()["state"]
    assert table.live == n and (states == ESTABLISHED).all(), \
        f"{int((states != ESTABLISHED).sum())} of {n} connections not established after the handshake"


def established_rows(syn: np.ndarray, pick: np.ndarray) -> np.ndarray:
    """ACKs of the connections ``pick``, time moving on at 1 s per 1M packets."""
    est = syn[pick]
    est["flags"] = ACK
    est["time"] = 1.0 + np.arange(len(pick)) / 1e6
    return est


def ceiling_of(syn: np.ndarray, opened: np.ndarray) -> BareTable:
    """The bare table of the same keys, each mapped to its connection's translated port."""
    bare = BareTable(len(syn))
    bare.insert(syn, np.ascontiguousarray(opened["src_port"]))
    return bare


def versus_ceiling(table: ConnectionTable, bare: BareTable, est: np.ndarray, repeat: int) -> tuple[float, float]:
    """(table, bare) Mpps on the established rows, the two taking turns; both must find every row,
    the bare table with the port the connection table translated it to."""
    out = table.process(est, Direction.OUT)
    assert (out.status == NatStatus.TRANSLATED).all(), "an established packet was not translated"
    same_verdicts("bare table (ceiling)", out.packets["src_port"].tolist(), bare.lookup(est).tolist())
    t_nat, t_bare = best_of_each([lambda: table.process(est, Direction.OUT), lambda: bare.lookup(est)], repeat)
    return mpps(len(est), t_nat), mpps(len(est), t_bare)


def versus_ceiling_into_buffers(table: ConnectionTable, bare: BareTable, est: np.ndarray,
                                repeat: int) -> tuple[float, float]:
    """(table, bare) Mpps on the established rows, each writing into the result of its previous
    batch (``process(out=)``, ``lookup(rows, out)``): the table work alone, without the fresh
    pages of a new result (64 MB of translated rows a call for 2M packets, 8 MB for the bare
    table's values). Both must answer as with new arrays."""
    fresh = table.process(est, Direction.OUT)
    reused = table.process(est, Direction.OUT, out=table.process(est, Direction.OUT))
    assert (reused.packets == fresh.packets).all() and (reused.status == fresh.status).all(), \
        "translating into an earlier result answered differently"
    values = bare.lookup(est)
    same_verdicts("bare table into a buffer (ceiling)", values.tolist(), bare.lookup(est, values.copy()).tolist())
    t_nat, t_bare = best_of_each([lambda: table.process(est, Direction.OUT, out=reused),
                                  lambda: bare.lookup(est, values)], repeat)
    return mpps(len(est), t_nat), mpps(len(est), t_bare)


def dict_nat(table: dict, batch: np.ndarray, timeout: float) -> list:
    """The baseline: the same lookup, refresh and rewrite with a Python dict per packet."""
    out = []
    for t, src, dst, sport, dport, length, proto, flags in batch.tolist():
        conn = table.get((proto, src, sport, dst, dport))
        if conn is None:
            out.append(None)
            continue
        conn[2] = t + timeout
        out.append((t, conn[0], dst, conn[1], dport, length, proto, flags))
    return out


def curve(path: str, packets: int, repeat: int) -> None:
    """Established and ceiling Mpps for pre-sized live tables of every size of CURVE, as CSV."""
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["connections", "established_mpps", "ceiling_mpps", "ratio_vs_ceiling",
                      "bytes_per_connection", "ceiling_bytes_per_connection"])
        for n in CURVE:
            rng = np.random.default_rng(n)
            syn = environment_syns(n, rng, length=60)
            table = eni_table(n, presized=True)
            opened = table.process(syn, Direction.OUT).packets
            handshake(table, syn, opened)
            bare = ceiling_of(syn, opened)
            nat_mpps, bare_mpps = versus_ceiling(table, bare, established_rows(syn, rng.integers(0, n, packets)),
                                                 repeat)
            out.writerow([n, round(nat_mpps, 2), round(bare_mpps, 2), round(ratio(nat_mpps, bare_mpps), 3),
                          round(table.memory_bytes / n, 1), round(bare.memory_bytes / n, 1)])
            fh.flush()
            print(f"{n:>10} connections: {nat_mpps:6.2f} Mpps, ceiling {bare_mpps:6.2f}, "
                  f"ratio {ratio(nat_mpps, bare_mpps):.3f}", flush=True)
            del table, bare, syn, opened


def main() -> None:
    def curve_option(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--curve", metavar="CSV", help="also write rates for 4k..16M live connections to CSV")

    args = options(__doc__, {"connections": 1_000_000, "packets": 2_000_000}, repeat=3,
                   quick={"connections": 200_000, "packets": 400_000}, extra=curve_option)
    n = args.connections
    rng = np.random.default_rng(42)

    # one SYN per connection: 1,000 destinations, execution environments with 60,000 ports each;
    # a fresh table each time, pre-sized or growing; the best run counts
    syn = environment_syns(n, rng, length=60)
    grown_s, grown, grown_opened = best_of_fresh(lambda: eni_table(n, presized=False),
                                                 lambda t: t.process(syn, Direction.OUT), args.repeat)
    handshake(grown, syn, grown_opened.packets)
    grown_bytes = grown.memory_bytes / grown.live
    del grown, grown_opened
    setup_s, table, opened = best_of_fresh(lambda: eni_table(n, presized=True),
                                           lambda t: t.process(syn, Direction.OUT), args.repeat)
    assert (opened.status == NatStatus.CREATED).all(), "every SYN must open a connection"
    handshake(table, syn, opened.packets)
    ports = np.ascontiguousarray(opened.packets["src_port"])
    bare_setup_s, bare, _ = best_of_fresh(lambda: BareTable(n), lambda b: b.insert(syn, ports), args.repeat)
    setup_mpps, grown_mpps, bare_setup_mpps = mpps(n, setup_s), mpps(n, grown_s), mpps(n, bare_setup_s)

    # established: ACKs on connections picked uniformly at random, against the ceiling
    pick = rng.integers(0, n, args.packets)
    est = established_rows(syn, pick)
    est_mpps, ceiling_mpps = versus_ceiling(table, bare, est, args.repeat)
    buffered_mpps, ceiling_buffered_mpps = versus_ceiling_into_buffers(table, bare, est, args.repeat)

    # inbound: the replies, addressed to the translated tuples
    back = replies_to(opened.packets[pick], ACK)
    back["time"] = est["time"][-1] + np.arange(args.packets) / 1e6
    assert (table.process(back, Direction.IN).status == NatStatus.TRANSLATED).all(), "every reply must map back"
    in_mpps = mpps(args.packets, best_of(lambda: table.process(back, Direction.IN), args.repeat)[0])

    # baseline: a dict NAT holding the same connections, on the same packets, translating each as
    # the table did (the translated source address and port of every row)
    conns = {}
    for row, x in zip(syn.tolist(), opened.packets.tolist()):
        conns[(row[6], row[1], row[3], row[2], row[4])] = [x[1], x[3], 0.0]
    translated = table.process(est, Direction.OUT).packets
    same_verdicts("dict NAT", list(zip(translated["src_ip"].tolist(), translated["src_port"].tolist())),
                  [None if o is None else (o[1], o[3]) for o in dict_nat(conns, est, 350.0)])
    dict_mpps = mpps(len(est), best_of(lambda: dict_nat(conns, est, 350.0), args.repeat)[0])

    if args.curve:  # before the JSON line, which stays the last
        curve(args.curve, args.packets, args.repeat)
    live = table.live
    size = f"{live:,} live connections"
    bytes_per = table.memory_bytes / live
    bare_bytes = bare.memory_bytes / len(bare)
    emit({
        "connections": live,
        "established_mpps": round(est_mpps, 2),
        "ceiling_mpps": round(ceiling_mpps, 2),
        "ratio_vs_ceiling": round(ratio(est_mpps, ceiling_mpps), 3),
        "established_into_buffer_mpps": round(buffered_mpps, 2),
        "ceiling_into_buffer_mpps": round(ceiling_buffered_mpps, 2),
        "ratio_vs_ceiling_into_buffer": round(ratio(buffered_mpps, ceiling_buffered_mpps), 3),
        "setup_mpps": round(setup_mpps, 2),
        "setup_grown_mpps": round(grown_mpps, 2),
        "ceiling_setup_mpps": round(bare_setup_mpps, 2),
        "inbound_mpps": round(in_mpps, 2),
        "bytes_per_connection": round(bytes_per, 1),
        "bytes_per_connection_grown": round(grown_bytes, 1),
        "ceiling_bytes_per_connection": round(bare_bytes, 1),
        "dict_nat_mpps": round(dict_mpps, 3),
        "ratio_vs_python": round(ratio(est_mpps, dict_mpps), 1),
    }, [
        figure(f"NAT core, established packets, {size}", est_mpps, "Mpps",
               "bare compiled table, same keys (ceiling)", ceiling_mpps),
        figure(f"NAT core, established packets into the last result, {size}", buffered_mpps, "Mpps",
               "bare compiled table into its last result (ceiling)", ceiling_buffered_mpps),
        figure(f"NAT core, established packets, {size}", est_mpps, "Mpps",
               "Python dict NAT, same packets", dict_mpps),
        figure("NAT core, new connections, pre-sized table", setup_mpps, "Mpps",
               "bare table inserts, same keys", bare_setup_mpps),
        figure("NAT core, new connections, growing table", grown_mpps, "Mpps",
               "the same into a pre-sized table", setup_mpps),
        figure("NAT core, replies mapped back", in_mpps, "Mpps", "established packets out", est_mpps),
        figure("NAT core memory, pre-sized table", bytes_per, "bytes/connection",
               "bare table (16-byte slots, half full at most)", bare_bytes),
        figure("NAT core memory, grown table", grown_bytes, "bytes/connection",
               "pre-sized table", bytes_per),
    ])


if __name__ == "__main__":
    main()

"""A replay's memory is bounded by its chunk, not by its capture: a capture of the same traffic
repeated many times holds at its end what it held after a few repetitions
(``benchmarks/replay_memory.py`` measures the resident set of 20M-packet replays; this checks
the Python-side allocations, which tracemalloc sees: numpy arrays and objects)."""

from __future__ import annotations

import struct
import tracemalloc

from scapy.all import Ether
from scapy.layers.inet import IP, TCP

import hyperplane as hp

SERVER = "93.184.216.34"
GAP = 600  # seconds between repetitions: every connection, tracked flow and NAT mapping expired


def one_block() -> list[bytes]:
    """Connections of the example's ``orders`` function to an internet server: SYN out, SYN-ACK
    back, ACK out (as a capture taken inside the function shows them)."""
    frames = []
    for k in range(500):
        env, port = f"172.16.5.{10 + k % 20}", 20_000 + k
        out = Ether() / IP(src=env, dst=SERVER) / TCP(sport=port, dport=443, flags="S")
        back = Ether() / IP(src=SERVER, dst=env) / TCP(sport=443, dport=port, flags="SA")
        ack = Ether() / IP(src=env, dst=SERVER) / TCP(sport=port, dport=443, flags="A")
        frames += [bytes(out), bytes(back), bytes(ack)]
    return frames


def write_repeated(path, frames: list[bytes], times: int) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for r in range(times):
            for k, frame in enumerate(frames):
                micros = (1_700_000_000 + r * GAP) * 1_000_000 + k * 100
                f.write(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)))
                f.write(frame)


def test_a_long_replay_holds_no_more_memory_at_its_end_than_after_its_first_repetitions(tmp_path):
    capture = tmp_path / "capture.pcap"
    write_repeated(capture, one_block(), 160)  # 240,000 packets
    held: list[tuple[int, int]] = []  # (packets replayed, bytes allocated then)

    def progress(chunk) -> None:
        held.append((chunk.index + len(chunk), tracemalloc.get_traced_memory()[0]))

    tracemalloc.start()
    try:
        report = hp.replay(hp.Network.example(), capture, functions={"orders": "172.16.5.0/24"},
                           output=tmp_path / "out.pcap", verdicts=tmp_path / "verdicts.csv",
                           flow_logs=tmp_path / "logs", chunk_packets=1024, progress=progress)
    finally:
        tracemalloc.stop()
    assert report.packets == 240_000 and report.conversations["established"] > 0, report.summary()
    # the least held over a stretch of chunks (what stays, not what a chunk holds for a moment),
    # after 10 repetitions (the open windows and the tables at their steady size) and at the end
    early = min(b for n, b in held if 15_000 <= n < 30_000)
    late = min(b for n, b in held if 225_000 <= n < 240_000)
    # 210,000 packets apart: anything kept per packet (8 bytes: 1.6 MiB) or per invocation shows
    assert late < early + 1024 * 1024, f"{late:,} B held at the end, {early:,} B after 10 repetitions"

"""Peak memory of a replay: bounded by the chunk, not by the capture.

    python benchmarks/replay_memory.py [--packets 1000000] [--large 20000000] [--quick]

Writes two captures of the replay benchmark's traffic (``replay_throughput.conversations``,
taken inside the function `orders`): ``--packets`` packets, and ``--large`` packets made of the
same traffic repeated, each repeat 600 s after the one before (past every connection timeout,
so each repeat opens its connections anew). Each is replayed end to end (output capture, verdicts
file, with and without flow logs) in a fresh process, which reports its peak resident set
(``ru_maxrss``) at its end. The figures are the large replay's peak against the small one's:
near 1 when memory is bounded by the chunk. Both replays must deliver the same share of packets (asserted), so that
the large one does the small one's work over again rather than failing fast. The last line is
one JSON object: packets, large_packets, peak_rss_mb, large_peak_rss_mb, rss_ratio (with flow
logs), the same three ``_no_flow_logs``, large_replay_pps, and ``figures``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from _common import PCAP_HEADER, emit, figure, ipv4_frames, options
from replay_throughput import FUNCTIONS, conversations

REPEAT_GAP = 600.0  # seconds between repeats: longer than any V2N, NAT or tracking timeout

# what runs in the fresh process: the replay, then its report as JSON
CHILD = """
import json, resource, sys, time
import hyperplane as hp
capture, out, functions, logs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] == "1"
t = time.perf_counter()
report = hp.replay(hp.Network.example(), capture, functions=functions, output=out + "/out.pcap",
                   verdicts=out + "/verdicts.csv", flow_logs=out + "/logs" if logs else None)
print(json.dumps({"seconds": time.perf_counter() - t, "packets": report.packets, "delivered": report.delivered,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))  # KiB on Linux
"""


def write_repeated(path: str, rows, total: int) -> None:
    """A pcap of ``total`` packets: ``rows`` (one block of traffic) over and over, each block
    ``REPEAT_GAP`` seconds after the previous one's start, written block by block."""
    t, src, dst, sport, dport, proto, flags = rows
    frames = ipv4_frames(src, dst, sport, dport, proto, flags)
    n, size = frames.shape
    record = np.zeros((n, 16 + size), np.uint8)
    record[:, 16:] = frames
    header = record[:, :16].view("<u4")
    header[:, 2] = header[:, 3] = size
    with open(path, "wb") as out:
        out.write(PCAP_HEADER)
        for start in range(0, total, n):
            micros = ((t + start // n * REPEAT_GAP) * 1e6).astype(np.int64)
            header[:, 0], header[:, 1] = micros // 1_000_000, micros % 1_000_000
            out.write(record[:min(n, total - start)].tobytes())


def replay_in_child(capture: str, out: str, flow_logs: bool) -> tuple[dict, float]:
    """The replay's report and its process's peak resident set, in MB."""
    done = subprocess.run([sys.executable, "-c", CHILD, capture, out, json.dumps(FUNCTIONS), str(int(flow_logs))],
                          capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report, report["peak_kib"] / 1024


def main() -> None:
    args = options(__doc__, {"packets": 1_000_000, "large": 20_000_000, "flows": 20_000}, repeat=1,
                   quick={"packets": 100_000, "large": 400_000, "flows": 2_000})
    if args.large < args.packets:
        raise SystemExit("--large must be at least --packets")
    block = conversations(args.packets, args.flows)
    with tempfile.TemporaryDirectory() as tmp:
        small, large = os.path.join(tmp, "small.pcap"), os.path.join(tmp, "large.pcap")
        write_repeated(small, block, args.packets)
        write_repeated(large, block, args.large)
        results = {}
        for name, capture in (("small", small), ("large", large)):
            for flow_logs in (True, False):
                out = tempfile.mkdtemp(dir=tmp)
                results[name, flow_logs] = replay_in_child(capture, out, flow_logs)
                shutil.rmtree(out)  # the disk holds one replay's outputs at a time
            os.remove(capture)
    for (name, _), (report, _) in results.items():
        assert report["packets"] == (args.packets if name == "small" else args.large), results
    share = [report["delivered"] / report["packets"] for report, _ in results.values()]
    assert max(share) - min(share) < 0.01, f"the repeats did not replay alike: delivered shares {share}"
    rss = {key: peak for key, (_, peak) in results.items()}
    large = results["large", True][0]
    emit({
        "packets": args.packets, "large_packets": args.large,
        "peak_rss_mb": round(rss["small", True], 1), "large_peak_rss_mb": round(rss["large", True], 1),
        "rss_ratio": round(rss["large", True] / rss["small", True], 3),
        "peak_rss_mb_no_flow_logs": round(rss["small", False], 1),
        "large_peak_rss_mb_no_flow_logs": round(rss["large", False], 1),
        "rss_ratio_no_flow_logs": round(rss["large", False] / rss["small", False], 3),
        "large_replay_pps": round(large["packets"] / large["seconds"]),
    }, [
        figure(f"replay peak resident memory, {args.large:,} packets, flow logs", rss["large", True], "MB",
               f"the same replay of {args.packets:,} packets", rss["small", True]),
        figure(f"replay peak resident memory, {args.large:,} packets, no flow logs", rss["large", False], "MB",
               f"the same replay of {args.packets:,} packets", rss["small", False]),
    ])


if __name__ == "__main__":
    main()

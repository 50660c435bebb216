"""Replaying a capture through the emulated VPC: verdicts, translated capture, summary.

Two ways to read a capture:
- ``inject="function"`` (default): it was taken inside functions, before any NAT. Packets from
  an address in a function's CIDR (``functions={"orders": "172.16.5.0/24"}``) leave through that
  function; each capture address is one execution environment (numbered in order of first
  appearance). Packets toward such an address are replies: they are matched to their connection
  (the Hyperplane ENI's and, for the internet, the NAT gateway's) and walked back from the peer.
- ``inject="eni"``: it was taken inside the VPC: each packet starts at the ENI that owns its
  source address, or at the internet gateway.

Time comes from the packet timestamps, shifted so that the first packet happens at the
network's ``now``. Every input packet gets exactly one verdict; packets that cannot be emulated
(IPv6, ARP, fragments, truncated or malformed frames) are counted by kind.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hyperplane import _text, _walk
from hyperplane.flowlogs import FlowLogAggregator
from hyperplane.network import Network
from hyperplane.pcap import CaptureChunk, CaptureWriter, PacketKind, read_capture
from hyperplane.pipeline import _DISPOSITION as _DISPOSITION_OF
from hyperplane.pipeline import DELIVERED_BY_REASON, BatchResult, Origin
from hyperplane.reasons import Disposition, Reason

# capture kinds that cannot be emulated -> their verdict
_SKIPPED = {
    PacketKind.IPV6: Reason.NOT_IPV4,
    PacketKind.ARP: Reason.NOT_IPV4,
    PacketKind.NON_IP: Reason.NOT_IPV4,
    PacketKind.FRAGMENT: Reason.IP_FRAGMENT,
    PacketKind.TRUNCATED: Reason.CAPTURE_TRUNCATED,
    PacketKind.MALFORMED: Reason.CAPTURE_MALFORMED,
}
_SKIPPED_REASON = np.zeros(max(PacketKind) + 1, np.uint8)  # by kind; 0 for emulated packets
for _kind, _reason in _SKIPPED.items():
    _SKIPPED_REASON[_kind] = _reason


@dataclass
class ReplayReport:
    """What a replay did, for the summary table and tests."""

    packets: int = 0
    kinds: Counter = field(default_factory=Counter)  # PacketKind name -> packets
    dispositions: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    drops_by_rule: Counter = field(default_factory=Counter)  # "acl-data rule *" -> packets
    written: int = 0
    flow_log_records: int = 0
    hyperplane_enis: list[dict] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return sum(n for r, n in self.reasons.items() if Reason[r].disposition.delivered)

    def summary(self) -> str:
        lines = [f"{self.packets} packets, {self.delivered} delivered, {self.written} written, "
                 f"{self.flow_log_records} flow log records"]
        skipped = {k: n for k, n in self.kinds.items() if k != "EMULATED"}
        if skipped:
            lines.append("not emulated: " + ", ".join(f"{k} {n}" for k, n in sorted(skipped.items())))
        lines.append("by disposition:")
        lines += [f"  {d:<20} {n}" for d, n in self.dispositions.most_common()]
        lines.append("by reason:")
        lines += [f"  {r:<28} {n}" for r, n in self.reasons.most_common()]
        if self.drops_by_rule:
            lines.append("drops by rule:")
            lines += [f"  {r:<40} {n}" for r, n in self.drops_by_rule.most_common()]
        if self.hyperplane_enis:
            lines.append("Hyperplane ENIs:")
            lines += [f"  {e['id']} {e['private_ip']:<15} {e['subnet_id']:<18} live {e['connections']:<6} "
                      f"peak {e['peak']:<6} created {e['created']}{' (overflow)' if e['overflow'] else ''}"
                      for e in self.hyperplane_enis]
        return "\n".join(lines)


class _Functions:
    """Capture addresses -> (function, execution environment)."""

    def __init__(self, net: Network, functions: Mapping[str, str]) -> None:
        self.net = net
        self.networks = []
        for name, cidr in functions.items():
            net.function(name)  # an unknown name is an error now, not at the first packet
            try:
                network = ipaddress.IPv4Network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"--function {name}={cidr}: {exc}") from None
            self.networks.append((name, int(network.network_address), int(network.netmask)))
        # capture addresses seen so far and the environment address each one became, by slot;
        # a slot is found by the address's low 16 bits (checked in full; -1: none)
        self._ips = np.zeros(0, np.uint32)
        self._envs = np.zeros(0, np.uint32)
        self._slot_of_low = np.full(1 << 16, -1, np.int32)
        self.function_of_env: dict[int, str] = {}

    def owner(self, addresses: np.ndarray) -> np.ndarray:
        """Index into ``self.networks`` of the function whose CIDR holds each address (-1)."""
        out = np.full(len(addresses), -1, np.int32)
        for k, (_, base, mask) in enumerate(self.networks):
            out[(out < 0) & ((addresses & np.uint32(mask)) == base)] = k
        return out

    def environments_of(self, owner: np.ndarray, addresses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The execution-environment addresses of capture addresses (``owner``: each one's
        function, an index into ``networks``), numbered per function in order of first
        appearance: ``(environments, which)``, the distinct ones and each row's among them."""
        slot = self._slots(addresses)
        if (slot < 0).any():  # new addresses, numbered in order of first appearance
            new = slot < 0
            unique, first = np.unique(addresses[new], return_index=True)
            for k in np.argsort(first, kind="stable"):
                name = self.networks[owner[new][first[k]]][0]
                count = sum(1 for n in self.function_of_env.values() if n == name)
                env = int(ipaddress.IPv4Address(self.net.function(name).environment_address(count)))
                self.function_of_env[env] = name
                low = int(unique[k]) & 0xFFFF
                if self._slot_of_low[low] < 0:
                    self._slot_of_low[low] = len(self._ips)
                self._ips, self._envs = np.append(self._ips, unique[k]), np.append(self._envs, np.uint32(env))
            slot = self._slots(addresses)
        present = np.flatnonzero(np.bincount(slot, minlength=len(self._ips)))
        remap = np.zeros(len(self._ips), np.intp)
        remap[present] = np.arange(len(present))
        return self._envs[present], remap[slot]

    def _slots(self, addresses: np.ndarray) -> np.ndarray:
        """The slot of each known capture address (-1: not seen yet)."""
        slot = self._slot_of_low[addresses & np.uint32(0xFFFF)]
        hit = slot >= 0
        hit[hit] = self._ips[slot[hit]] == addresses[hit]
        if not hit.all():  # unknown, or sharing its low 16 bits with another: search in full
            rows = np.flatnonzero(~hit)
            slot[rows] = -1
            if len(self._ips):
                order = np.argsort(self._ips)
                pos = np.minimum(np.searchsorted(self._ips[order], addresses[rows]), len(order) - 1)
                found = self._ips[order[pos]] == addresses[rows]
                slot[rows[found]] = order[pos[found]]
        return slot

    def function_of(self, env: int) -> str:
        return self.function_of_env[env]


def replay(net: Network, capture: str | Path, *, functions: Mapping[str, str] | None = None,
           inject: str = "function", output: str | Path | None = None, verdicts: str | Path | None = None,
           flow_logs: str | Path | None = None, flow_log_interval: int = 600,
           progress: Callable[[CaptureChunk], None] | None = None, chunk_packets: int = 65536) -> ReplayReport:
    """Replay ``capture`` through ``net``; see the module docstring."""
    if inject not in ("function", "eni"):
        raise ValueError(f"inject must be 'function' or 'eni', not {inject!r}")
    fns = _Functions(net, functions or {})
    report = ReplayReport()
    reader = read_capture(capture, chunk_packets=chunk_packets)
    writer = CaptureWriter(output, reader.output_linktype, reader.nanosecond) if output else None
    sink = _VerdictSink(verdicts) if verdicts else None
    t0 = None
    logs = None
    try:
        for chunk in reader:
            n = len(chunk)
            emulated = chunk.kind == PacketKind.EMULATED
            reason = _SKIPPED_REASON[chunk.kind]
            location = np.full(n, -1, np.int32)
            out = chunk.records
            if emulated.any():
                every = emulated.all()
                rows = None if every else np.flatnonzero(emulated)
                records = chunk.records if every else chunk.records[rows]  # walked in place
                if t0 is None:
                    t0 = records["time"][0] - net.now
                records["time"] -= t0
                # the clock (ENI lifecycle, invocations) stands at the chunk's first packet; the
                # tables judge each packet at its own time
                net.advance(max(0.0, float(records["time"][0]) - net.now))
                res = _replay_rows(net, fns, records, inject)
                net.advance(max(0.0, float(records["time"].max()) - net.now))
                if flow_logs is not None:
                    if logs is None:  # records carry the capture's own timestamps
                        logs = FlowLogAggregator(interval=flow_log_interval, time_offset=float(t0))
                    logs.add(res)
                if every:
                    reason, location, out = res.reason, res.location, res.packets
                else:
                    out = out.copy()
                    reason[rows], location[rows], out[rows] = res.reason, res.location, res.packets
                _count_rule_drops(net, res, report)
            report.packets += n
            for k, c in enumerate(np.bincount(chunk.kind)):
                if c:
                    report.kinds[PacketKind(k).name] += int(c)
            for r, c in enumerate(np.bincount(reason, minlength=256)):
                if c:
                    report.reasons[Reason(r).name] += int(c)
                    report.dispositions[Reason(r).disposition.name] += int(c)
            delivered = DELIVERED_BY_REASON[reason]
            if writer is not None:
                report.written += writer.write(chunk, out, delivered)
            if sink is not None:
                sink.write(chunk.index, reason, location, out, net)
            if progress is not None and n:
                progress(chunk)
    finally:
        reader.close()
        if writer is not None:
            writer.close()
        if sink is not None:
            sink.close()
    if logs is not None:
        logs.write(flow_logs)
        report.flow_log_records = len(logs)
    for eni in net.hyperplane_enis:
        stats = next((s for s in eni.pool.table.stats() if s.address == eni.private_ip), None)
        report.hyperplane_enis.append({
            "id": eni.id, "private_ip": eni.private_ip, "subnet_id": eni.subnet_id,
            "connections": eni.connections, "peak": stats.peak if stats else 0,
            "created": stats.created if stats else 0, "overflow": eni.overflow})
    return report


def _replay_rows(net: Network, fns: _Functions, rec: np.ndarray, inject: str) -> BatchResult:
    """Verdicts for emulated rows, all in one walk (each packet meets the tables as the earlier
    ones left them: a reply finds the connection its request opened)."""
    n = len(rec)
    vpc = net.compiled
    origin = np.full(n, Origin.INTERNET, np.int8)
    index = np.full(n, -1, np.int32)
    refused = np.zeros(n, np.uint8)  # a verdict decided here, before the walk
    eni_src = vpc.eni_of_private_ip(rec["src_ip"])
    origin[eni_src >= 0], index[eni_src >= 0] = Origin.ENI, eni_src[eni_src >= 0]
    if inject == "function" and fns.networks:
        sender = fns.owner(rec["src_ip"])
        rows = np.flatnonzero(sender >= 0)
        if rows.size:
            # one invocation per execution environment: the clock stands still within a chunk
            envs, which = fns.environments_of(sender[rows], rec["src_ip"][rows])
            rec["src_ip"][rows] = envs[which]
            env_origin = np.full(len(envs), Origin.FUNCTION, np.int8)
            env_index = np.zeros(len(envs), np.int32)
            env_refused = np.zeros(len(envs), np.uint8)
            for k, env in enumerate(envs.tolist()):
                name = fns.function_of(env)
                invocation = net.lambda_service.invoke(name, env, now=net.now)
                if not invocation.accepted:
                    env_refused[k] = Reason[invocation.reason_code]
                elif invocation.pool is None:
                    env_refused[k] = Reason.EXITED_TO_INTERNET  # no VpcConfig: out of Lambda's VPC
                else:
                    env_index[k] = net._pool_index(invocation.pool)
            origin[rows], index[rows], refused[rows] = env_origin[which], env_index[which], env_refused[which]
        receiver = fns.owner(rec["dst_ip"])
        rows = np.flatnonzero(receiver >= 0)
        if rows.size:  # replies: matched to their connection during the walk
            envs, which = fns.environments_of(receiver[rows], rec["dst_ip"][rows])
            rec["dst_ip"][rows] = envs[which]
            numbers = np.array([net.function_number(name) for name, _, _ in fns.networks], np.int32)
            origin[rows], index[rows], refused[rows] = Origin.REPLY_TO_FUNCTION, numbers[receiver[rows]], 0
    if not refused.any():
        return net.process(rec, origin, index, in_place=True)
    walk = np.flatnonzero(refused == 0)
    res = net.process(rec[walk], origin[walk], index[walk])
    reason, location, out = refused.copy(), np.full(n, -1, np.int32), rec.copy()
    reason[walk], location[walk], out[walk] = res.reason, res.location, res.packets
    return BatchResult(out, reason, location, res.facts.spread(walk, n), res.vpc)


_DENYING_STAGES = {_walk.STAGES.index(s): s for s in ("nacl_out", "nacl_in", "sg_egress", "sg_ingress")}
_FILTER_DENIAL = np.isin(np.arange(256), [Reason.NACL_OUT_DENY, Reason.NACL_IN_DENY, Reason.SG_EGRESS_DENY,
                                           Reason.SG_INGRESS_DENY])  # by reason code


def _count_rule_drops(net: Network, res: BatchResult, report: ReplayReport) -> None:
    """Drops per deciding rule: the NACL entry or the security groups that refused."""
    vpc = net.compiled
    # a packet refused by a filter ended there: its last hop is the deciding one
    rows = np.flatnonzero(_FILTER_DENIAL[res.reason])
    facts = res.facts
    denied = facts.hops[facts.first_hop[rows + 1] - 1]
    if not len(denied):
        return
    # one int64 per (stage, NACL or SG set, rule number <= 32767)
    keys = ((denied["stage"].astype(np.int64) << 48) | (denied["v"][:, 1].astype(np.int64) << 16)
            | denied["v"][:, 3].astype(np.int64) & 0xFFFF)
    for key, count in zip(*np.unique(keys, return_counts=True)):
        stage, index, number = int(key) >> 48, (int(key) >> 16) & 0xFFFFFFFF, int(key) & 0xFFFF
        name = _DENYING_STAGES[stage]
        if name.startswith("nacl"):
            label = "*" if number == 32767 else str(number)
            report.drops_by_rule[f"{vpc.nacl_ids[index]} {name.replace('_', '-')} rule {label}"] += int(count)
        else:
            report.drops_by_rule[f"{','.join(vpc.sg_set_groups[index])} {name.replace('_', '-')}"] += int(count)


class _VerdictSink:
    """One line per input packet: JSON lines (``.jsonl``/``.json``) or CSV (``.csv``), written by
    the compiled line writer (``hyperplane._text``)."""

    FIELDS = ["index", "disposition", "reason", "resource", "src", "sport", "dst", "dport", "proto"]
    _REASONS = [Reason(r).name.encode() if r in Reason._value2member_map_ else b"?" for r in range(256)]
    _DISPOSITIONS = [Disposition(d).name.encode() if d in Disposition._value2member_map_ else b"?"
                     for d in range(max(Disposition) + 1)]

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.csv = self.path.suffix == ".csv"
        self.file = open(self.path, "wb")
        if self.csv:
            self.file.write((",".join(self.FIELDS) + "\n").encode())

    def write(self, start: int, reason: np.ndarray, location: np.ndarray, out: np.ndarray, net: Network) -> None:
        ids = [e.id.encode() for e in net.compiled.enis] + [b""]  # "" where no ENI
        values = [
            (_text.INTEGER, start + np.arange(len(reason))),
            (_text.WORDS, _DISPOSITION_OF[reason], self._DISPOSITIONS),
            (_text.WORDS, reason, self._REASONS),
            (_text.WORDS, np.where(location >= 0, location, len(ids) - 1), ids),
            (_text.ADDRESS, out["src_ip"]), (_text.INTEGER, out["src_port"]),
            (_text.ADDRESS, out["dst_ip"]), (_text.INTEGER, out["dst_port"]), (_text.INTEGER, out["proto"]),
        ]
        if self.csv:
            columns, sep = values, b","
        else:  # {"index": 0, "disposition": "ACCEPTED", ...}: the JSON syntax as constant columns
            columns, sep = [], b""
            for k, (name, value) in enumerate(zip(self.FIELDS, values)):
                quote = '"' if value[0] == _text.WORDS or value[0] == _text.ADDRESS else ""
                opening = ("{" if k == 0 else ", ") + f'"{name}": {quote}'
                columns += [(_text.CONSTANT, opening.encode()), value, (_text.CONSTANT, (quote + "}" * (k == 8)).encode())]
        text, _ = _text.lines(columns, np.arange(len(reason)), sep)
        self.file.write(text)

    def close(self) -> None:
        self.file.close()

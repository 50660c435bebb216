"""``load_test(net, workload)``: a workload walked through the network, at virtual time.

Every connection of the workload is packets: a SYN from its execution environment, the SYN-ACK,
the ACK; data and its ACK at each use and keepalive; FIN, FIN-ACK, ACK at the end (UDP: a
datagram and its answer). Time is cut into ``workload.step`` batches (and wherever the Lambda
service has an event due, as a capture replay is); each batch is walked by ``Network.process``
in three passes: the first packet of every exchange due in it (each an invocation of the
function, through ``function_rows``), the answers of those delivered, the last ACKs. What
the walk says is all there is: a connection is refused when its SYN or SYN-ACK is
(``ENI_CAPACITY``, ``NAT_PORT_ALLOCATION_ERROR``, ``FUNCTION_PENDING``, a NACL, ...), cut when
a later packet finds no connection (``V2N_NO_CONNECTION``, ``NAT_NO_CONNECTION_RST``) or a UDP
datagram opens a new one; the time series are read from the connection tables themselves.

The executions: at every batch, function *f* wants ``executions(t)`` environments busy,
environments 0..n-1 (Lambda prefers warm ones); each runs one invocation after another, its
first start staggered within the batch. An environment idle for ``keep_warm`` is reclaimed:
its pooled connections are left open without a FIN, as a frozen environment leaves them.
"""

from __future__ import annotations

import ipaddress
import math
import time as wallclock
from typing import Any

import numpy as np

from hyperplane._core import _walk
from hyperplane.dataplane.inputs import function_rows
from hyperplane.dataplane.walk import DELIVERED_BY_REASON, Origin
from hyperplane.errors import HyperplaneError
from hyperplane.records import ACK, FIN, PACKET, PSH, SYN
from hyperplane.reasons import Reason
from hyperplane.tables.nat import NatStatus
from hyperplane.workload.model import Workload, WorkloadError
from hyperplane.workload.report import LoadReport, Recorder

__all__ = ["load_test", "INTERNET_DESTINATIONS"]

#: where ``internet:PORT`` destinations are taken from (RFC 2544's benchmarking range)
INTERNET_DESTINATIONS = ipaddress.IPv4Network("198.18.0.0/15")
OPEN, DATA, CLOSE = 1, 2, 3
PSH_ACK, SYN_ACK, FIN_ACK = PSH | ACK, SYN | ACK, FIN | ACK
EPHEMERAL = (32768, 60999)  # an execution environment's source ports (Linux's range)
_V2N_OUT = _walk.STAGES.index("v2n_out")
_NAT_OUT = _walk.STAGES.index("nat_out")
#: a packet of an open connection refused for one of these: an idle timeout cut it
CUT_REASONS = (Reason.V2N_NO_CONNECTION, Reason.NAT_NO_CONNECTION_RST)


class _Spec:
    """One connection entry of one function, resolved against the network."""

    def __init__(self, fn: int, index: int, conn: Any, addresses: np.ndarray, where: str) -> None:
        self.fn, self.index, self.conn, self.where = fn, index, conn, where
        self.addresses = addresses  # uint32, one per distinct destination
        self.port = conn.port
        self.proto = 6 if conn.protocol == "tcp" else 17
        self.next_destination = 0
        self.number = 0  # its index among every function's entries


class _Slots:
    """Connections as numpy columns, a slot each; freed slots are reused."""

    COLUMNS = {"fn": np.int32, "env": np.int32, "spec": np.int32, "dst_ip": np.uint32, "dst_port": np.uint16,
               "proto": np.uint8, "src_port": np.uint16, "env_ip": np.uint32, "pool": np.int32,
               "live": bool, "next": np.float64, "kind": np.int8, "close_at": np.float64,
               "eni_ip": np.uint32, "nat_ip": np.uint32, "nat": np.int32, "opened": np.float64}

    def __init__(self) -> None:
        self.size = 0
        self.cols = {k: np.zeros(0, t) for k, t in self.COLUMNS.items()}
        self.free = np.zeros(0, np.int64)

    def __getattr__(self, name: str) -> np.ndarray:
        return self.__dict__["cols"][name]

    def take(self, k: int) -> np.ndarray:
        reused = self.free[-k:] if k and len(self.free) else np.zeros(0, np.int64)
        reused = reused[:k]
        self.free = self.free[:len(self.free) - len(reused)]
        fresh = np.arange(self.size, self.size + k - len(reused))
        if self.size + len(fresh) > len(self.cols["fn"]):
            grow = max(1024, 2 * (self.size + len(fresh)))
            for name, col in self.cols.items():
                bigger = np.zeros(grow, col.dtype)
                bigger[:len(col)] = col
                self.cols[name] = bigger
            self.cols["next"][self.size:] = np.inf
        self.size += len(fresh)
        return np.concatenate([reused, fresh]).astype(np.int64)

    def release(self, rows: np.ndarray) -> None:
        self.cols["live"][rows] = False
        self.cols["next"][rows] = np.inf
        self.free = np.concatenate([self.free, rows.astype(np.int64)])


class _Environments:
    """The execution environments of one function: busy until when, the next invocation."""

    def __init__(self, net: Any, name: str, count: int, n_reuse: int) -> None:
        self.name = name
        self.count = count
        self.busy_until = np.full(count, -np.inf)
        self.next_start = np.full(count, np.inf)
        self.alive = np.zeros(count, bool)
        fn = net.function(name)
        self.ip = np.array([int(ipaddress.IPv4Address(fn.environment_address(k))) for k in range(count)], np.uint32)
        self.ports = np.zeros(count, np.int64)  # source ports handed out so far
        self.pool = np.full(count, -1, np.int32)  # the pool the Lambda service gave each (-1: ask)
        self.reuse = np.full((count, n_reuse), -1, np.int64)  # pooled connections' slots


def _resolve(net: Any, workload: Workload) -> list[list[_Spec]]:
    topology = net.topology
    internet = int(INTERNET_DESTINATIONS.network_address)
    out = []
    for f, load in enumerate(workload.functions):
        where = f"functions[{f}]"
        try:
            fn = net.function(load.function)
        except (HyperplaneError, KeyError):
            raise WorkloadError(workload.file, f"{where}.function",
                                f"no function {load.function!r} in the network "
                                f"(it has {', '.join(net.lambda_service.functions)})") from None
        if not fn.vpc_config:
            raise WorkloadError(workload.file, f"{where}.function", f"{load.function} has no VpcConfig: "
                                "it uses no Hyperplane ENI, no NAT gateway of yours")
        specs = []
        for j, conn in enumerate(load.connections):
            w = f"{where}.connections[{j}].to"
            host = conn.to.rsplit(":", 1)[0]
            if conn.kind == "eni":
                eni = topology.network_interfaces.get(host)
                if eni is None:
                    raise WorkloadError(workload.file, w, f"no ENI {host} in the topology")
                addresses = [int(eni.private_ip)]
            elif conn.kind == "endpoint":
                ep = topology.vpc_endpoints.get(host)
                if ep is None or not ep.network_interface_ids:
                    raise WorkloadError(workload.file, w, f"no interface endpoint {host} with ENIs in the topology")
                addresses = [int(topology.network_interfaces[e].private_ip) for e in ep.network_interface_ids]
            elif conn.kind == "internet":
                addresses = list(range(internet, internet + conn.destinations))
                internet += conn.destinations
            else:
                try:
                    addresses = [int(ipaddress.IPv4Address(host))]
                except ValueError:
                    raise WorkloadError(workload.file, w, f"{host!r} is not an IPv4 address, an ENI id (eni-...), "
                                        "an endpoint id (vpce-...) or internet") from None
            specs.append(_Spec(f, j, conn, np.array(addresses, np.uint32), w))
        out.append(specs)
    return out


def load_test(net: Any, workload: Workload, *, progress: Any = None) -> LoadReport:
    """Walk ``workload`` through ``net`` (a ``hyperplane.Network``) from its ``now`` for
    ``workload.duration`` seconds; the report holds the time series and the summary."""
    if not isinstance(workload, Workload):
        raise TypeError(f"workload must be a hyperplane.workload.Workload, not {type(workload).__name__}")
    return _Run(net, workload).run(progress)


class _Run:
    def __init__(self, net: Any, workload: Workload) -> None:
        self.net, self.w = net, workload
        self.specs = _resolve(net, workload)
        self.flat = [s for specs in self.specs for s in specs]
        for k, s in enumerate(self.flat):
            s.number = k
        self.spec_reuse = np.array([s.conn.reuse for s in self.flat] + [False], bool)
        self.spec_keepalive = np.array([s.conn.keepalive or math.inf for s in self.flat] + [math.inf])
        self.t0 = net.now
        steps = np.arange(0.0, workload.duration + workload.step, workload.step)
        self.envs = []
        for f, load in enumerate(workload.functions):
            peak = max((load.executions(float(t), workload.clock) for t in steps), default=0)
            n_reuse = sum(s.conn.count for s in self.specs[f] if s.conn.reuse)
            self.envs.append(_Environments(net, load.function, max(peak, 1), n_reuse))
        self.fn_number = [net.function_number(f.function) for f in workload.functions]
        self.slots = _Slots()
        self.generation = -1  # the Lambda service's generation the environments' pools are of
        sample = workload.sample or max(workload.step, workload.duration / 120)
        self.rec = Recorder(net, workload, self.flat, sample)

    # -- the walk ---------------------------------------------------------------------------

    def run(self, progress: Any) -> LoadReport:
        net, w = self.net, self.w
        start = wallclock.perf_counter()
        t = 0.0
        while t < w.duration - 1e-9:
            net.advance(max(0.0, self.t0 + t - net.now))
            self.rec.sample(t, self.envs, self.slots)
            end = min(t + w.step, w.duration)
            due = net.lambda_service.next_event_at
            if due is not None and self.t0 + t < due < self.t0 + end:
                end = due - self.t0
            self._reclaim(t)
            self._invocations(t, end)
            self._exchanges(t, end)
            if self.rec.next_sample == 0.0:  # a NAT gateway refused: its table, as it stands
                self.rec.sample_tables(end, self.envs, self.slots)
            t = end
            if progress is not None:
                progress(t)
        net.advance(max(0.0, self.t0 + w.duration - net.now))
        self.rec.sample(w.duration, self.envs, self.slots, last=True)
        return self.rec.report(wallclock.perf_counter() - start)

    def _reclaim(self, t: float) -> None:
        """Environments idle for keep_warm are gone; their pooled connections are abandoned."""
        for load, env in zip(self.w.functions, self.envs):
            gone = np.flatnonzero(env.alive & (env.busy_until < t - load.keep_warm) & np.isinf(env.next_start))
            if gone.size:
                env.alive[gone] = False
                held = env.reuse[gone].ravel()
                held = held[held >= 0]
                self.rec.abandoned += int(self.slots.live[held].sum())
                self.slots.release(held)
                env.reuse[gone] = -1

    def _invocations(self, t: float, end: float) -> None:
        """Start the invocations due in [t, end): their connections' first packets are scheduled."""
        w = self.w
        for f, (load, env) in enumerate(zip(w.functions, self.envs)):
            wanted = min(load.executions(t, w.clock), env.count)
            self.rec.wanted[f] = wanted
            idle = np.flatnonzero(np.isinf(env.next_start[:wanted]))
            if idle.size:  # start a chain, staggered within the step (or the invocation)
                stagger = (idle * 0.6180339887498949) % 1.0 * min(load.duration, w.step)
                env.next_start[idle] = np.maximum(t + stagger, env.busy_until[idle])
            env.next_start[wanted:] = np.inf  # no new invocation beyond the wanted ones
            starting = np.flatnonzero(env.next_start < end)
            if not starting.size:
                continue
            begin = env.next_start[starting]
            count = np.ceil((end - begin) / load.duration - 1e-9).astype(np.int64).clip(1)
            envs = np.repeat(starting, count)
            offsets = np.arange(len(envs)) - np.repeat(np.cumsum(count) - count, count)
            at = np.repeat(begin, count) + offsets * load.duration
            env.busy_until[starting] = env.next_start[starting] = begin + count * load.duration
            env.alive[starting] = True
            self.rec.invocations[f] += len(envs)
            self._open_or_use(f, starting, begin, envs, at)

    def _open_or_use(self, f: int, first: np.ndarray, first_at: np.ndarray, envs: np.ndarray,
                     at: np.ndarray) -> None:
        """Connections of the invocations starting at ``at`` in environments ``envs`` (``first``,
        ``first_at``: each environment's first one in this batch). A pooled connection is
        opened at its environment's first invocation, else used then (one exchange a batch)."""
        env, slots = self.envs[f], self.slots
        col = 0
        for spec in self.specs[f]:
            c = spec.conn.count
            if spec.conn.reuse:
                held = env.reuse[first, col:col + c]
                for k in range(c):
                    have = held[:, k]
                    use = have >= 0
                    rows = have[use]
                    pending = slots.kind[rows] == OPEN
                    rows, when = rows[~pending], first_at[use][~pending]
                    slots.next[rows] = np.minimum(slots.next[rows], when)
                    slots.kind[rows] = DATA
                    new = np.flatnonzero(~use)
                    if new.size:
                        made = self._new(spec, f, first[new], first_at[new], np.inf)
                        env.reuse[first[new], col + k] = made
                col += c
            else:
                e = np.repeat(envs, c)
                when = np.repeat(at, c)
                self._new(spec, f, e, when, when + (spec.conn.open_for or self.w.functions[f].duration))

    def _new(self, spec: _Spec, f: int, envs: np.ndarray, when: np.ndarray, close_at: np.ndarray | float) -> np.ndarray:
        slots, env = self.slots, self.envs[f]
        rows = slots.take(len(envs))
        s = slots.cols
        n_dest = len(spec.addresses)
        if spec.conn.kind == "endpoint":  # the endpoint's ENIs in turn, by environment
            dest = envs % n_dest
        else:
            dest = (spec.next_destination + np.arange(len(envs))) % n_dest
            spec.next_destination = int((spec.next_destination + len(envs)) % n_dest)
        order = np.argsort(envs, kind="stable")
        sorted_envs = envs[order]
        first = np.searchsorted(sorted_envs, sorted_envs, "left")
        rank = np.empty(len(envs), np.int64)
        rank[order] = np.arange(len(envs)) - first
        span = EPHEMERAL[1] - EPHEMERAL[0] + 1
        ports = EPHEMERAL[0] + (env.ports[envs] + rank) % span
        np.add.at(env.ports, envs, 1)
        s["fn"][rows], s["env"][rows], s["spec"][rows] = f, envs, spec.number
        s["dst_ip"][rows], s["dst_port"][rows], s["proto"][rows] = spec.addresses[dest], spec.port, spec.proto
        s["src_port"][rows], s["env_ip"][rows] = ports, env.ip[envs]
        s["live"][rows], s["next"][rows], s["kind"][rows] = False, when, OPEN
        s["close_at"][rows] = close_at
        return rows

    # -- packets ----------------------------------------------------------------------------

    def _exchanges(self, t: float, end: float) -> None:
        s = self.slots.cols
        n = self.slots.size
        rows = np.flatnonzero(s["next"][:n] < end)
        if not rows.size:
            return
        rows = rows[np.argsort(s["next"][rows], kind="stable")]
        kind = s["kind"][rows].copy()
        times = np.maximum(self.t0 + s["next"][rows], self.net.now)
        first = self._packets(rows, times, kind, reply=False)
        reason, pool, facts_ok = self._walk_first(rows, first, kind)
        ok = DELIVERED_BY_REASON[reason] & facts_ok
        self._after_first(rows[~ok], kind[~ok], reason[~ok], times[~ok])
        rows, kind, times, pool = rows[ok], kind[ok], times[ok], pool[ok]
        replies = self._packets(rows, times + self.w.round_trip, kind, reply=True)
        number = np.asarray(self.fn_number, np.int32)[s["fn"][rows]]
        back = self.net.process(replies, Origin.REPLY_TO_FUNCTION, number)
        answered = DELIVERED_BY_REASON[back.reason]
        self.rec.packets += len(replies)
        self._refused(rows[~answered], back.reason[~answered], kind[~answered], times[~answered])
        rows, kind, times, pool = rows[answered], kind[answered], times[answered], pool[answered]
        last = (kind == OPEN) & (s["proto"][rows] == 6) | (kind == CLOSE)
        if last.any():
            acks = self._packets(rows[last], times[last] + 2 * self.w.round_trip, np.full(int(last.sum()), DATA),
                                 reply=False)
            acks["flags"], acks["length"] = ACK, 40
            self.net.process(acks, Origin.FUNCTION, pool[last])
            self.rec.packets += len(acks)
        self._advance(rows, kind, times)

    def _packets(self, rows: np.ndarray, times: np.ndarray, kind: np.ndarray, *, reply: bool) -> np.ndarray:
        s = self.slots.cols
        p = np.zeros(len(rows), PACKET)
        p["time"] = times
        tcp = s["proto"][rows] == 6
        if reply:
            p["src_ip"], p["src_port"] = s["dst_ip"][rows], s["dst_port"][rows]
            p["dst_ip"], p["dst_port"] = s["env_ip"][rows], s["src_port"][rows]
            flags = np.select([kind == OPEN, kind == CLOSE], [SYN_ACK, FIN_ACK], ACK)
        else:
            p["src_ip"], p["src_port"] = s["env_ip"][rows], s["src_port"][rows]
            p["dst_ip"], p["dst_port"] = s["dst_ip"][rows], s["dst_port"][rows]
            flags = np.select([kind == OPEN, kind == CLOSE], [SYN, FIN_ACK], PSH_ACK)
        p["flags"] = np.where(tcp, flags, 0)
        p["proto"] = s["proto"][rows]
        p["length"] = np.where(kind == DATA, 140, 60)
        return p

    def _walk_first(self, rows: np.ndarray, first: np.ndarray, kind: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first packet of each exchange, walked from its environment. Returns each row's
        reason, pool, and False where a UDP datagram found its mapping gone (a cut).

        Each is an invocation (``function_rows``), except that an environment of an Active
        function whose pool the Lambda service already gave it, with no Hyperplane ENI changed
        since (``generation``), takes that pool again: the service would give the same one.
        One row per such function is still invoked, so that its idle timer moves."""
        s, net = self.slots.cols, self.net
        n = len(rows)
        reason = np.zeros(n, np.uint8)
        pool = np.full(n, -1, np.int32)
        intact = np.ones(n, bool)
        fn, env = s["fn"][rows], s["env"][rows]
        first["time"] = np.maximum.accumulate(np.maximum(first["time"], net.now))
        pos = 0
        while pos < n:
            service = net.lambda_service
            if service.generation != self.generation:
                for e in self.envs:
                    e.pool[:] = -1
                self.generation = service.generation
            cached = np.full(n - pos, -1, np.int32)
            invoke = np.ones(n - pos, bool)
            for f, load in enumerate(self.w.functions):
                mine = np.flatnonzero(fn[pos:] == f)
                state = net.function(load.function)
                if mine.size and state.state == "Active" and state.last_update_status != "InProgress":
                    cached[mine] = self.envs[f].pool[env[pos:][mine]]
                    invoke[mine] = cached[mine] < 0
                    invoke[mine[0]] = True  # the function's idle timer
            asked = np.flatnonzero(invoke)
            sub = first[pos:][asked]
            key = fn[pos:][asked].astype(np.int64) << 32 | env[pos:][asked]
            unique, which = np.unique(key, return_inverse=True)
            decided = function_rows(net, sub, [self.w.functions[int(k >> 32)].function for k in unique],
                                    [int(k & 0xFFFFFFFF) for k in unique], which, sub["time"])
            d = decided.decided
            stop = n - pos if d == len(asked) else int(asked[d])  # rows up to the first undecided one
            if stop == 0:
                net.advance(max(0.0, float(first["time"][pos]) - net.now))
                continue
            verdict = np.zeros(n - pos, np.uint8)
            index = cached.copy()
            origin = np.full(n - pos, Origin.FUNCTION, np.int8)
            done = asked[:d]
            verdict[done], index[done], origin[done] = decided.verdict, decided.index, decided.origin
            first["src_ip"][pos:][done] = sub["src_ip"][:d]
            accepted = done[(decided.verdict == 0) & (decided.origin == Origin.FUNCTION)]
            for f, e in enumerate(self.envs):
                mine = accepted[fn[pos:][accepted] == f]
                e.pool[env[pos:][mine]] = index[mine]
            span = slice(pos, pos + stop)
            reason[span], pool[span] = verdict[:stop], index[:stop]
            self.rec.packets += stop
            walk = np.flatnonzero(verdict[:stop] == 0)
            if walk.size:
                res = net.process(first[span][walk], origin[walk], index[walk])
                reason[pos + walk] = res.reason
                self._facts(rows[pos + walk], kind[pos + walk], res, intact, pos + walk)
            capacity = np.flatnonzero(reason[span][:d] == Reason.ENI_CAPACITY) if d else np.zeros(0, np.int64)
            if capacity.size and not self.rec.eni_detail:
                self._eni_detail(int(fn[pos + capacity[0]]), int(env[pos + capacity[0]]))
            elif (reason[span] == Reason.ENI_CAPACITY).any() and not self.rec.eni_detail:
                k = int(np.flatnonzero(reason[span] == Reason.ENI_CAPACITY)[0])
                self._eni_detail(int(fn[pos + k]), int(env[pos + k]))
            pos += stop
            if pos < n:
                net.advance(max(0.0, float(first["time"][pos]) - net.now))
        return reason, pool, intact

    def _eni_detail(self, f: int, e: int) -> None:
        """Why Lambda could not add a Hyperplane ENI, at the moment it could not."""
        for p in self.net.lambda_service.function(self.w.functions[f].function).pools:
            if p.overflow_refusal:
                self.rec.eni_detail = f"{p.subnet_id}: {p.overflow_refusal}"
                return

    def _facts(self, rows: np.ndarray, kind: np.ndarray, res: Any, intact: np.ndarray, at: np.ndarray) -> None:
        """Each new connection's Hyperplane ENI and NAT address (what the walk translated it
        to); a data datagram that opened a new mapping: the old one was cut by a timeout."""
        s = self.slots.cols
        hops = res.facts.hops
        for stage, column, field in ((_V2N_OUT, 4, "eni_ip"), (_NAT_OUT, 2, "nat_ip")):
            mask = hops["stage"] == stage
            if not mask.any():
                continue
            r = hops["row"][mask]
            r, first = np.unique(r, return_index=True)
            values = hops["v"][mask][first]
            opening = kind[r] == OPEN
            s[field][rows[r[opening]]] = values[opening, column].astype(np.uint32)
            if stage == _NAT_OUT:
                s["nat"][rows[r[opening]]] = values[opening, 0]
            recreated = ~opening & (values[:, 1] == NatStatus.CREATED)
            if recreated.any():
                intact[at[r[recreated]]] = False
                self.rec.cut(Reason.V2N_NO_CONNECTION if stage == _V2N_OUT else Reason.NAT_NO_CONNECTION_RST,
                             rows[r[recreated]], float(res.packets["time"][r[recreated][0]]) - self.t0, self.slots)

    def _after_first(self, rows: np.ndarray, kind: np.ndarray, reason: np.ndarray, times: np.ndarray) -> None:
        """First packets not delivered: a refused connection, or one an idle timeout cut."""
        if not rows.size:
            return
        cut = np.isin(reason, CUT_REASONS) & (kind != OPEN)
        for r in np.unique(reason[cut]):
            pick = cut & (reason == r)
            self.rec.cut(Reason(int(r)), rows[pick], float(times[pick][0]) - self.t0, self.slots)
        self._refused(rows[~cut], reason[~cut], kind[~cut], times[~cut])
        self._drop(rows[cut], kind[cut], times[cut])

    def _refused(self, rows: np.ndarray, reason: np.ndarray, kind: np.ndarray, times: np.ndarray) -> None:
        """Exchanges that failed: a connection that did not open is refused (its reason
        counted); an open one that failed later is dropped."""
        if not rows.size:
            return
        opening = kind == OPEN
        if opening.any():
            self.rec.refuse(rows[opening], reason[opening], times[opening] - self.t0, self.slots)
        self._drop(rows, kind, times)

    def _drop(self, rows: np.ndarray, kind: np.ndarray, times: np.ndarray) -> None:
        """Forget these connections; a pooled one is opened again at its environment's next use
        (cut connections: right away, as a pool retries)."""
        s = self.slots.cols
        self.rec.closed(rows[s["live"][rows]])
        reuse = self.spec_reuse[s["spec"][rows]]
        again = rows[reuse & (kind != OPEN) & (kind != CLOSE)]
        gone = rows[~np.isin(rows, again)]
        self.slots.release(gone)
        if gone.size and self.spec_reuse[s["spec"][gone]].any():  # the environments forget them
            for env in self.envs:
                env.reuse[np.isin(env.reuse, gone)] = -1
        if again.size:  # a pooled connection that was cut: the pool opens a new one at once
            for r, when in zip(again.tolist(), times[np.isin(rows, again)].tolist()):
                spec = self.flat[int(s["spec"][r])]
                f, e = int(s["fn"][r]), int(s["env"][r])
                made = self._new(spec, f, np.array([e]), np.array([when - self.t0 + 3 * self.w.round_trip]), np.inf)
                env = self.envs[f]
                env.reuse[e][env.reuse[e] == r] = made[0]
            self.slots.release(again)

    def _advance(self, rows: np.ndarray, kind: np.ndarray, times: np.ndarray) -> None:
        """Exchanges that went through: the next packet of each connection."""
        s = self.slots.cols
        opened = rows[kind == OPEN]
        s["live"][opened] = True
        s["opened"][opened] = times[kind == OPEN] - self.t0
        self.rec.opened(opened)
        closing = kind == CLOSE
        self.rec.closed(rows[closing & s["live"][rows]])
        self.slots.release(rows[closing])
        rows, times = rows[~closing], times[~closing] - self.t0
        if not rows.size:
            return
        nxt = times + self.spec_keepalive[s["spec"][rows]]
        reuse = np.isinf(s["close_at"][rows])
        busy = np.zeros(len(rows))
        for f, env in enumerate(self.envs):
            mine = s["fn"][rows] == f
            busy[mine] = env.busy_until[s["env"][rows][mine]]
        nxt = np.where(reuse & (nxt >= busy), np.inf, nxt)
        close = ~reuse & (s["close_at"][rows] <= nxt)
        s["next"][rows] = np.where(close, s["close_at"][rows], nxt)
        s["kind"][rows] = np.where(close, CLOSE, DATA)

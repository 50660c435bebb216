"""``Network``: a VPC topology, its Lambda functions and a virtual clock, ready for packets."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from hyperplane.tables.conntrack import ConnectionTracker, ConnectionTrackingConfiguration
from hyperplane.lambda_service import LATEST, FunctionState, HyperplaneEni, Invocation, LambdaService, LambdaSettings
from hyperplane.lambda_service.function import split_qualifier
from hyperplane.dataplane.inputs import LAMBDA_SERVICE_PUBLIC_IP, function_rows
from hyperplane.formats.inputs import read_input
from hyperplane.formats.topology_reader import load_example_topology
from hyperplane.model import Topology, VpcConfig
from hyperplane.tables.nat import HYPERPLANE_ENI_TIMEOUTS, MAX_TIME, ConnectionTable
from hyperplane.dataplane.walk import BatchResult, Origin, Pipeline
from hyperplane.reasons import Reason
from hyperplane.records import PACKET, ip as ip_int, ip_str
from hyperplane.trace import DeferredResult, Hop, Result, row_hops
from hyperplane.dataplane.compiled_vpc import CompiledVpc

# what an instance's host answers at link-local addresses (Reason.DELIVERED_TO_LINK_LOCAL_SERVICE)
_LINK_LOCAL_SERVICES = {"169.254.169.254": "instance metadata service", "169.254.169.123": "Amazon Time Sync Service",
                        "169.254.169.250": "Windows license activation (KMS)",
                        "169.254.169.251": "Windows license activation (KMS)", "169.254.169.253": "Amazon DNS server"}

if TYPE_CHECKING:
    from scapy.packet import Packet

    from hyperplane.connectivity.connection import ConnectionResult



class Function:
    """A Lambda function of the network (``orders``), or one of its published versions
    (``orders:1``): its state (from the Lambda service) and ``send``.

    ``vpc_config`` is the VpcConfig its invocations use now: during an update of ``$LATEST``
    the old one (the new one is ``pending_vpc_config``); a version's never changes."""

    def __init__(self, network: Network, name: str) -> None:
        self._network = network
        self.name = name
        self.version = split_qualifier(name)[1]  # "$LATEST" or "1", "2", ...

    @property
    def _state(self) -> FunctionState:
        return self._network.lambda_service.function(self.name)

    state = property(lambda self: self._state.state)
    state_reason_code = property(lambda self: self._state.state_reason_code)
    state_reason = property(lambda self: self._state.state_reason)
    last_update_status = property(lambda self: self._state.last_update_status)
    last_update_status_reason_code = property(lambda self: self._state.last_update_status_reason_code)
    last_update_status_reason = property(lambda self: self._state.last_update_status_reason)

    @property
    def vpc_config(self) -> VpcConfig | None:
        return self._state.version_config(self.version)

    @property
    def pending_vpc_config(self) -> VpcConfig | None:
        """The VpcConfig an update in progress moves ``$LATEST`` to (``None`` otherwise)."""
        return self._state.pending_vpc_config if self.version == LATEST else None

    @property
    def versions(self) -> list[str]:
        """The published versions' numbers, oldest first."""
        return [v.version for v in self._state.versions]

    @property
    def hyperplane_enis(self) -> list[HyperplaneEni]:
        """``$LATEST``: every ENI the function holds (its own, during an update the old and the
        new pairs', its versions'); a version: the ENIs of its own pairs."""
        if self.version == LATEST:
            return self._state.hyperplane_enis
        return [e for pool in self._state.pools_of(self.version) for e in pool.enis if e.exists]

    def environment_address(self, k: int = 0) -> str:
        return self._network.lambda_service.environment_address(self.name, k)

    def send(self, pkt: Packet, environment: int | str | None = None) -> Result:
        """Send a scapy packet from one of the function's execution environments (an invocation).

        The source address is the environment's (``environment``: its number or address;
        default the first); a source port set on the packet is kept.
        """
        return self._network._send_from_function(self.name, pkt, environment)

    def connect(self, destination: str, port: int | None = None, protocol: str | None = None, *,
                subnet: str | None = None, subnets: Any = None,
                environment: int | str | None = None) -> ConnectionResult:
        """Judge a whole connection from this function, both ways (:meth:`Network.connect`)."""
        return self._network.connect(self.name, destination, port, protocol, subnet=subnet, subnets=subnets,
                                     environment=environment)

    def __repr__(self) -> str:
        return f"<Function {self.name} {self.state}>"


class Network:
    """The emulated network. ``Network.example()`` or ``Network.load(path)`` to get one."""

    def __init__(self, topology: Topology, *, lambda_settings: LambdaSettings | None = None,
                 now: float = 0.0, ready: bool = False) -> None:
        self._topology = topology
        self.lambda_service = LambdaService(topology, lambda_settings, now=now, ready=ready)
        self._functions_described = self.lambda_service.configuration_generation
        self._nat_tables = [ConnectionTable.nat_gateway([str(a) for a in nat.private_ips])
                            for nat in topology.nat_gateways.values()]
        # security-group tracking must not forget an opening connection before the Hyperplane
        # ENI does (V2N keeps it 120 s)
        self._conntrack = ConnectionTracker(ConnectionTrackingConfiguration(
            tcp_opening=HYPERPLANE_ENI_TIMEOUTS.tcp_transitory))
        self._eni_numbers: dict[str, int] = {}
        self._pools: list[Any] = []
        self._pool_index_of: dict[int, int] = {}
        self._compiled_generation = -1
        self._pipeline: Pipeline | None = None
        self._next_port = 32767  # ephemeral ports handed to packets sent without one

    @classmethod
    def load(cls, path: str | Path, **kw) -> Network:
        """Any input :func:`hyperplane.formats.inputs.read_input` tells apart by content: a topology
        file (YAML or JSON, docs/topology-format.md), a folder of AWS describe-* JSON files, ...
        (docs/inputs.md); ``region=`` and ``parameters=`` go to the infrastructure-as-code readers.

        Functions start Active, as in a running account, whatever the input: a user asking
        "can my function connect" asks about the deployed function, not one being created
        (``ready=False`` to watch creation, ``--cold`` on the command line)."""
        options = {k: kw.pop(k) for k in ("repair", "region", "parameters") if k in kw}
        kw.setdefault("ready", True)
        return cls(read_input(path, **options), **kw)

    @classmethod
    def from_boto3(cls, session_or_clients: Any = None, **kw) -> Network:
        """The account that boto3 sees (a Session, ``{"ec2": client, "lambda": client}`` or
        None for the default session), collected with the describe-* calls; functions start
        Active as in :meth:`load` of a folder."""
        from hyperplane.formats.boto3_collect import from_boto3
        repair = kw.pop("repair", False)
        kw.setdefault("ready", True)
        return cls(from_boto3(session_or_clients, repair=repair), **kw)

    @classmethod
    def example(cls, **kw) -> Network:
        """The built-in example (hyperplane/examples/example.yaml), the one the demo uses.

        Its functions start Active, as in a running account (``ready=False`` to watch them
        being created)."""
        kw.setdefault("ready", True)
        return cls(load_example_topology(), **kw)

    # -- clock ------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.lambda_service.now

    def advance(self, seconds: float) -> float:
        """Move the virtual clock forward; lifecycle events and idle timeouts happen."""
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds must be a finite number >= 0, not {seconds!r}")
        self.lambda_service.advance(self.now + seconds)
        for table in self._nat_tables:
            table.expire(self.now)
        self._conntrack.expire(self.now)
        return self.now

    @property
    def topology(self) -> Topology:
        """The network's configuration. Its ``functions`` follow the Lambda service: after
        :meth:`update_function`, :meth:`publish_version` or :meth:`delete_function` (and when an
        update completes) each function's ``vpc_config`` is the one its invocations use then,
        with its published versions; what asks the topology (``connect``, ``reachability``,
        ``diff``, a snapshot written out) sees the functions as they run."""
        service = self.lambda_service
        if service.configuration_generation != self._functions_described:
            self._describe_functions()
        return self._topology

    @topology.setter
    def topology(self, topology: Topology) -> None:
        self._topology = topology

    def _describe_functions(self) -> None:
        """Rewrite the topology's functions from the Lambda service (one truth: the service)."""
        service = self.lambda_service
        self._functions_described = service.configuration_generation
        old = self._topology
        now = {name: fs.resource() for name, fs in service.functions.items()}
        if now != dict(old.functions):  # only the functions: every other resource stays as it is
            self._topology = dataclasses.replace(old, functions=now)
            service.topology = self._topology

    def apply(self, topology: Topology) -> None:
        """Change the network's configuration (a rule removed, a route added...). Open
        connections stay: security groups keep tracking them, NAT gateways keep their tables.
        Functions change through :meth:`update_function` and its siblings, not here."""
        tables = dict(zip(self.topology.nat_gateways, self._nat_tables))
        self.topology = topology
        self.lambda_service.topology = topology
        self._describe_functions()  # a topology made before the last function change keeps none of it
        self._nat_tables = [tables.get(nid) or ConnectionTable.nat_gateway([str(a) for a in nat.private_ips])
                            for nid, nat in topology.nat_gateways.items()]
        self._pipeline = None

    # -- resources --------------------------------------------------------------------------

    def function(self, name: str) -> Function:
        """A function (``"orders"``) or one of its published versions (``"orders:1"``)."""
        base, version = split_qualifier(name)
        self.lambda_service.function(base).version_config(version)  # raises for an unknown name
        return Function(self, name)

    @property
    def functions(self) -> dict[str, Function]:
        """Every function ($LATEST) by name, in creation order."""
        return {name: Function(self, name) for name in self.lambda_service.functions}

    # -- Lambda control plane (SPEC §2) ------------------------------------------------------

    def update_function(self, name: str, *, vpc_config: VpcConfig | Mapping[str, Any] | None) -> Function:
        """UpdateFunctionConfiguration of ``$LATEST``'s VpcConfig, at the network's clock.

        ``vpc_config``: a :class:`~hyperplane.model.VpcConfig`, a mapping with ``subnet_ids``
        and ``security_group_ids`` (or AWS's ``SubnetIds`` / ``SecurityGroupIds``), or ``None``
        (or empty lists) to take the function out of its VPC. When a new (subnet, security
        group set) pair needs a Hyperplane ENI, the function stays ``Active`` with
        ``last_update_status`` ``InProgress`` for ``eni_creation_seconds`` and its invocations
        keep the old ENIs; then ``Successful``: they use the new ones, and the old VPC is out
        of reach. ENIs nobody uses any more are deleted ``eni_deletion_seconds`` later. A config
        Lambda cannot set up leaves the function as it was, ``last_update_status`` ``Failed``
        with AWS's reason code. Raises ``ResourceConflict`` while the function is ``Pending``
        or another update is in progress, ``UnknownResource`` for an unknown function."""
        self.lambda_service.update_function_configuration(name, vpc_config, now=self.now)
        return Function(self, name)

    def publish_version(self, name: str) -> Function:
        """PublishVersion: a new version of ``name`` frozen with ``$LATEST``'s VpcConfig (it
        keeps its ENIs, whatever ``$LATEST`` does later); returns it (``name:N``)."""
        number = self.lambda_service.publish_version(name, now=self.now)
        return Function(self, f"{name}:{number}")

    def delete_function(self, name: str) -> None:
        """DeleteFunction of ``name`` (with its versions) or of one version (``name:N``). Each
        Hyperplane ENI no other function or version uses is deleted ``eni_deletion_seconds``
        later (until then it keeps its address, ``deleting``); the function's name is then
        unknown to every call, its execution environments' addresses are never reused."""
        self.lambda_service.delete_function(name, now=self.now)

    @property
    def hyperplane_enis(self) -> list[HyperplaneEni]:
        return [e for e in self.lambda_service.hyperplane_enis if e.exists]

    @property
    def compiled(self) -> CompiledVpc:
        return self._current_pipeline().vpc

    def _current_pipeline(self) -> Pipeline:
        service = self.lambda_service
        if self._pipeline is None or service.generation != self._compiled_generation:
            enis = self.hyperplane_enis
            vpc = CompiledVpc(self.topology, enis, self._eni_numbers)
            for pool in [*service.pools, *(e.pool for e in enis)]:
                if all(pool is not p for p in self._pools):
                    self._pools.append(pool)
            self._pool_index_of = pool_index = {id(p): k for k, p in enumerate(self._pools)}
            # an orphaned ENI's pool is gone: nothing translates for it any more
            pool_of_eni = {vpc.eni_index[e.id]: pool_index[id(e.pool)] for e in enis if e.pool.live}
            self._pipeline = Pipeline(vpc, self._nat_tables, [p.table for p in self._pools], pool_of_eni,
                                      self._conntrack, refresh=self._current_pipeline,
                                      pool_vpc=[vpc.vpc_ids.index(p.vpc_id) for p in self._pools])
            self._compiled_generation = service.generation
        return self._pipeline

    def pool_number(self, pool: Any) -> int:
        """The walker's number of a Hyperplane ENI pool (the ``origin_index`` of its
        ``Origin.FUNCTION`` rows), compiling what changed first."""
        self._current_pipeline()
        return self._pool_index_of[id(pool)]

    def pool_names(self) -> list[str]:
        """What a trace calls each Hyperplane ENI pool, by walker number: its first ENI's id."""
        self._current_pipeline()
        return [p.enis[0].id if p.enis else f"{p.subnet_id}:no-hyperplane-eni" for p in self._pools]

    def pool_index(self, function: str, environment: int | str | None = None) -> int:
        """The ``origin_index`` of ``Origin.FUNCTION`` rows from one execution environment
        (its pool: the subnet it is bound to). This is an invocation."""
        invocation = self.lambda_service.invoke(function, environment, now=self.now)
        if not isinstance(invocation, Invocation) or invocation.pool is None:
            raise ValueError(f"{function}: no Hyperplane ENI pool ({getattr(invocation, 'reason', 'no VpcConfig')})")
        return self.pool_number(invocation.pool)

    # -- packets ----------------------------------------------------------------------------

    def process(self, packets: np.ndarray, origin: Sequence[int] | np.ndarray | int,
                origin_index: Sequence[int] | np.ndarray | int = -1, *, in_place: bool = False,
                pickup: bool = False, hops: bool = True) -> BatchResult:
        """Walk a batch of PACKET records (the batch API; ``send`` is a batch of one).

        ``origin`` per row (or one for all): ``Origin.ENI`` with ``origin_index`` the compiled
        ENI index (``net.compiled.eni_index[id]``), ``Origin.INTERNET``, ``Origin.FUNCTION``
        with a pool index (``pool_index``), ``Origin.GATEWAY_ENDPOINT`` (an endpoint index or
        -1), or ``Origin.REPLY_TO_FUNCTION`` with a function number (``function_number``): a
        peer's answer addressed to an execution environment, matched to its connection and
        walked back from the peer. Rows keep their own ``time``.

        Each packet goes through the whole VPC before the next one (``hyperplane.dataplane.walk``),
        so the result is the one row-by-row processing gives. ``in_place``: the result's
        ``packets`` are ``packets`` themselves, translated (no copy).

        ``pickup``: mid-stream pickup, as replay does by default (docs/replay-and-flow-logs.md):
        an outbound TCP ACK (no SYN, FIN or RST) of a connection the V2N NAT or a NAT gateway
        does not know opens it as established, as Linux conntrack's loose mode does. Off, only a
        SYN opens a TCP connection (``fn.send``).

        ``hops=False``: verdict-only, for a caller that needs neither traces nor flow logs: the
        walk records no stage (no hop log), so it is faster, and decides every row exactly as
        with hops (the same ``reason``, ``location``, translated ``packets`` and ``answers``);
        reading the result's ``facts`` (a trace, flow logs) raises ``NoHopsError``.
        """
        if not isinstance(packets, np.ndarray) or packets.dtype != PACKET or packets.ndim != 1:
            raise TypeError("packets must be a one-dimensional array of hyperplane.records.PACKET")
        n = len(packets)
        packets = np.ascontiguousarray(packets)
        origin = _per_row(origin, n, "origin", 0, max(Origin), "an Origin (0..4)").astype(np.int8)
        origin_index = _per_row(origin_index, n, "origin_index", -2**31, 2**31 - 1, "an index (int32)").astype(np.int32)
        times = packets["time"]
        bad = ~(times <= MAX_TIME)  # NaN too; earlier times are the tables' "now"
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(f"packets[{k}].time = {float(times[k])!r} is not a number of seconds up to {MAX_TIME:g}")
        pipeline = self._current_pipeline()
        fn_pools = self._function_pools() if (origin == Origin.REPLY_TO_FUNCTION).any() else ()
        return pipeline.run(packets, origin, origin_index, fn_pools, in_place=in_place and packets.flags.writeable,
                            pickup=pickup, hops=hops)

    def function_number(self, name: str) -> int:
        """The ``origin_index`` of ``Origin.REPLY_TO_FUNCTION`` rows answering function ``name``."""
        base = self.lambda_service.function(name).name  # raises for an unknown name; "orders:1" is orders
        return list(self.lambda_service.functions).index(base)

    def _function_pools(self) -> list[list[int]]:
        """The pool indexes an answer to each function is matched in, in ``function_number``
        order (``FunctionState.reply_pools``: $LATEST's first)."""
        self._current_pipeline()
        index = self._pool_index_of
        return [[index[id(p)] for p in self.lambda_service.function(name).reply_pools if id(p) in index]
                for name in self.lambda_service.functions]

    def replay(self, capture: str | Path, **options: Any) -> Any:
        """Replay a pcap/pcapng capture through this network: ``hyperplane.replay.replay(self,
        capture, ...)`` (``functions=``, ``inject=``, ``output=``, ``verdicts=``, ``flow_logs=``,
        ...); returns its ``ReplayReport``."""
        from hyperplane.replay import replay
        return replay(self, capture, **options)

    def connect(self, source: str, destination: str, port: int | None = None, protocol: str | None = None, *,
                subnet: str | None = None, subnets: Any = None, environment: int | str | None = None,
                source_ip: str | None = None) -> ConnectionResult:
        """Judge a whole connection from ``source`` to ``destination``, both ways: TCP's
        handshake and a data packet each way, UDP's request and response, ICMP's echo and
        reply (``hyperplane.connectivity.connection``). ``bool(result)`` is "connected";
        printing it shows every leg's trace and, when it fails, which leg, where and why."""
        from hyperplane.connectivity.connection import connect
        return connect(self, source, destination, port, protocol, subnet=subnet, subnets=subnets,
                       environment=environment, source_ip=source_ip)

    def reachability(self, source: str | None = None, destinations: Sequence[str] | None = None, *,
                     to: str | None = None) -> Any:
        """What ``source`` can reach: every destination, protocol and port range with its verdict
        and the deciding resource and rule; ``to=``: who can connect to that destination
        (``hyperplane.connectivity.reachability``). Asked of a scratch copy: this network is
        left as it was."""
        from hyperplane.connectivity.reachability import reachability
        return reachability(self, source, destinations, to=to)

    def ephemeral_port(self) -> int:
        """The next ephemeral source port (32768-60999, as Linux): what a packet sent without
        a source port gets."""
        self._next_port = 32768 if self._next_port >= 60999 else self._next_port + 1
        return self._next_port

    def send(self, pkt: Packet, source: str = "internet") -> Result:
        """Send a scapy packet from ``source``: an ENI id, an instance id, a function name, or
        ``"internet"``. A TCP/UDP packet without a source port gets an ephemeral one; one from the
        internet without a source address comes from ``INTERNET_SOURCE_ADDRESS`` (192.0.2.1)."""
        from scapy.layers.inet import IP

        from hyperplane.scapy_adapter import to_record

        if source.split(":")[0] in self.lambda_service.functions:  # "orders" or "orders:1"
            return self._send_from_function(source, pkt, None)
        pkt = self._with_ephemeral_port(pkt)
        rec, bad = to_record(pkt, self.now)
        if bad is not None:
            return self._refused(pkt, bad, source)
        if source == "internet":
            if "src" not in pkt[IP].fields:  # unset: a documented internet address, not this machine's
                from hyperplane.connectivity.names import INTERNET_SOURCE_ADDRESS
                rec["src_ip"] = ip_int(INTERNET_SOURCE_ADDRESS)
            return self._walk(pkt, rec, Origin.INTERNET, -1, source)
        vpc = self.compiled
        eni = self.topology.eni_of_instance(source) if source.startswith("i-") else None
        eni_id = eni.id if eni is not None else source
        if eni_id not in vpc.eni_index:
            raise ValueError(f"source {source!r} is neither 'internet', a function, an ENI id nor an instance id")
        k = vpc.eni_index[eni_id]
        if "src" not in pkt[IP].fields:  # unset: the ENI's own address (to_record found the layer)
            rec["src_ip"] = vpc.enis[k].ip
        return self._walk(pkt, rec, Origin.ENI, k, source)

    def _send_from_function(self, name: str, pkt: Packet, environment: Any) -> Result:
        from hyperplane.scapy_adapter import from_record, to_record

        self.lambda_service.function(name)  # an unknown name is an error before anything else
        pkt = self._with_ephemeral_port(pkt)
        rec, bad = to_record(pkt, self.now)
        if bad is not None:
            env = self.lambda_service._environment(self.lambda_service.function(name), environment)
            return self._refused(pkt, bad, ("function", name, env))
        rows = function_rows(self, rec, [name], [environment if environment is not None else 0],
                             np.zeros(1, np.intp), np.array([self.now]))
        invocation = rows.outcomes[0]
        source = ("function", name, invocation.environment_ip)
        verdict = Reason(int(rows.verdict[0])) if rows.verdict[0] else None
        if not isinstance(invocation, Invocation):
            hop = Hop(f"function:{name}", "invoke", "deny", f"{invocation.state}: {invocation.reason}")
            return Result(self, Reason[invocation.reason_code], [hop], from_record(pkt, rec[0]), source, -1)
        if invocation.pool is None:  # no VpcConfig: the internet only, from Lambda's own address
            dst = ipaddress.IPv4Address(int(rec["dst_ip"][0]))
            if verdict == Reason.NO_VPC_ACCESS:
                hop = Hop(f"function:{name}", "invoke", "drop", f"no VpcConfig: {dst} is not on the internet")
                return Result(self, verdict, [hop], from_record(pkt, rec[0]), source, -1)
            first = [Hop(f"function:{name}", "invoke", "allow",
                         f"no VpcConfig: {invocation.environment_ip} leaves from Lambda's own "
                         f"address {LAMBDA_SERVICE_PUBLIC_IP}")]
            if verdict is not None:
                return Result(self, verdict, first, from_record(pkt, rec[0]), source, -1)
            return self._walk(pkt, rec, Origin(int(rows.origin[0])), int(rows.index[0]), source, first)
        first = [Hop(f"function:{name}", "invoke", "allow",
                     f"environment {invocation.environment_ip} bound to {invocation.subnet_id}")]
        return self._walk(pkt, rec, Origin.FUNCTION, int(rows.index[0]), source, first)

    def _with_ephemeral_port(self, pkt: Packet) -> Packet:
        """A TCP/UDP packet whose source port the caller left unset gets the next ephemeral
        port (32768-60999, as Linux in an execution environment), not scapy's default."""
        from scapy.layers.inet import IP, TCP, UDP

        from hyperplane.scapy_adapter import ip_layer

        ip = ip_layer(pkt)
        l4 = ip.payload if ip is not None else None
        if isinstance(l4, (TCP, UDP)) and "sport" not in l4.fields:
            pkt = pkt.copy()
            pkt[IP].payload.sport = self.ephemeral_port()
        return pkt

    def _walk(self, pkt: Packet, rec: np.ndarray, origin: Origin, index: int, source: Any,
              first: Sequence[Hop] = (), pipeline: Pipeline | None = None) -> Result:
        from scapy.layers.inet import IP

        from hyperplane.scapy_adapter import rewritten

        pipeline = pipeline or self._current_pipeline()
        fn_pools = self._function_pools() if origin == Origin.REPLY_TO_FUNCTION else ()
        res = pipeline.run(rec, np.array([origin], np.int8), np.array([index], np.int32), fn_pools)
        reason = Reason(int(res.reason[0]))
        # the trace and the packet as delivered are rendered when read: from the walk's facts and
        # row, kept in res, and a copy of the packet made now (the caller may change theirs)
        names, delivered = self.pool_names(), rewritten(pkt, res.packets[0])
        return DeferredResult.when_read(self, reason, lambda: row_hops(res, 0, names, first),
                                        lambda: IP(bytes(delivered)), source, int(res.location[0]), batch=res,
                                        vpc=res.vpc, answer=self._answer(res, 0))

    def _answer(self, res: BatchResult, row: int) -> Result | None:
        """What the network sent back in answer to row ``row`` (a NAT gateway's RST), walked
        as its own packet, as a Result; None when nothing answered it."""
        from scapy.layers.inet import IP, TCP

        from hyperplane.scapy_adapter import from_record

        answer = res.answers.get(row)
        if answer is None or res.vpc is None:
            return None
        vpc = res.vpc
        where = int(res.location[row])  # the NAT gateway's ENI, which refused the row
        gateway, nat = vpc.enis[where], vpc.nat_ids[int(vpc.eni_nat[where])]
        sent = answer.packets[0]
        first = [Hop(nat, "nat-rst", "answer",
                     f"RST {ip_str(int(sent['src_ip']))}:{int(sent['src_port'])} -> "
                     f"{ip_str(int(sent['dst_ip']))}:{int(sent['dst_port'])} from {gateway.id}")]
        rst = IP(src=ip_str(int(sent["src_ip"])), dst=ip_str(int(sent["dst_ip"]))) / TCP(flags="R")
        return Result(self, Reason(int(answer.reason[0])), row_hops(answer, 0, self.pool_names(), first),
                      from_record(rst, answer.packets[0]), ("nat-gateway", nat), int(answer.location[0]),
                      batch=answer, vpc=answer.vpc)

    def _refused(self, pkt: Packet, reason: Reason, source: Any, rec: np.ndarray | None = None) -> Result:
        from hyperplane.scapy_adapter import from_record, ip_layer

        packet = from_record(pkt, rec[0]) if rec is not None and ip_layer(pkt) is not None else ip_layer(pkt)
        return Result(self, reason, [], packet, source, -1)

    def _answer_function(self, result: Result, answer: Packet, source: tuple) -> Result:
        """``answer`` walked back to the execution environment that sent ``result``'s packet,
        to the port it used (``Origin.REPLY_TO_FUNCTION``: the walker finds its connection)."""
        from scapy.layers.inet import IP, TCP, UDP

        from hyperplane.scapy_adapter import to_record

        _, name, environment = result.source
        answer[IP].dst = environment
        sent = [f for stage, f in result.batch.facts.of(0) if stage == "v2n_out"] if result.batch else []
        if sent and isinstance(answer.payload, (TCP, UDP)):  # back to the port the function used
            answer.payload.dport = int(sent[0]["src_port"])
        rec, _ = to_record(answer, self.now)
        return self._walk(answer, rec, Origin.REPLY_TO_FUNCTION, self.function_number(name), source)

    def reply_to(self, result: Result, layer4: Packet) -> Result:
        """The answer ``layer4`` back along ``result``'s connection (``Result.reply``)."""
        from scapy.layers.inet import ICMP, IP, TCP, UDP

        from hyperplane.scapy_adapter import to_record

        p = result.packet
        if p is None or not result.delivered:
            raise ValueError(f"nothing to reply to: the packet was not delivered ({result.reason.name})")
        answer: Packet = IP(src=p.dst, dst=p.src) / layer4
        l4 = answer.payload
        if isinstance(l4, (TCP, UDP)) and isinstance(p.payload, (TCP, UDP)):
            if "sport" not in l4.fields:
                l4.sport = p.payload.dport
            if "dport" not in l4.fields:
                l4.dport = p.payload.sport
        elif isinstance(l4, ICMP) and isinstance(p.payload, ICMP) and "id" not in l4.fields:
            l4.id = p.payload.id
        reason = result.reason
        if reason == Reason.DELIVERED:
            return self.send(answer, self.compiled.enis[result.location].id)
        if reason == Reason.DELIVERED_TO_FUNCTION:
            name = self.lambda_service.function_of_environment(p.dst)
            if name is None:
                raise ValueError(f"nothing to reply to: {p.dst} is no execution environment any more")
            return self._send_from_function(name, answer, p.dst)
        if reason == Reason.EXITED_TO_INTERNET:
            if p.src == LAMBDA_SERVICE_PUBLIC_IP and isinstance(result.source, tuple):
                # a function without VpcConfig: the answer comes back through Lambda's own VPC
                _, name, environment = result.source
                answer[IP].dst = environment
                return Result(self, Reason.DELIVERED_TO_FUNCTION,
                              [Hop(f"function:{name}", "reply", "allow", "through Lambda's own VPC")],
                              IP(bytes(answer)), ("internet", p.dst), -1)
            return self.send(answer, "internet")
        if reason == Reason.FORWARDED_TO_PEERING and isinstance(result.source, tuple):
            # a function's request left over a peering to a VPC not in the network: the answer
            # comes back in over the connection (the walker finds the connection it belongs to)
            return self._answer_function(result, answer, ("peering", p.dst))
        if reason == Reason.DELIVERED_TO_DNS_RESOLVER:
            if isinstance(result.source, tuple):  # a function's query: its answer as replay walks it
                return self._answer_function(result, answer, ("dns", p.dst))
            # an ENI's query: the resolver answers the ENI that asked, no group or NACL between
            return Result(self, Reason.DELIVERED, [Hop("AmazonProvidedDNS", "dns", "answer", f"to {p.src}")],
                          IP(bytes(answer)), ("dns", p.dst), result.location)
        if reason == Reason.DELIVERED_TO_LINK_LOCAL_SERVICE:
            # the instance's host answers on the interface itself: no group, NACL or route between
            service = _LINK_LOCAL_SERVICES.get(str(p.dst), "link-local service")
            return Result(self, Reason.DELIVERED, [Hop(service, "link_local", "answer", f"to {p.src}")],
                          IP(bytes(answer)), ("link-local", p.dst), result.location)
        if reason == Reason.DELIVERED_TO_GATEWAY_ENDPOINT:
            rec, _ = to_record(answer, self.now)
            return self._walk(answer, rec, Origin.GATEWAY_ENDPOINT, -1, "gateway-endpoint")
        if reason == Reason.FORWARDED_TO_PEERING:
            raise ValueError(f"the answer from {p.dst}, in a peer VPC that is not in the network, is walked back only "
                             "to a function: add that VPC to the network to walk it to an ENI")
        raise ValueError(f"replies from {reason.name} are not emulated")

    def __repr__(self) -> str:
        t = self.topology
        return (f"<Network {len(t.vpcs)} VPC, {len(t.subnets)} subnets, {len(t.functions)} functions, "
                f"{len(self.hyperplane_enis)} Hyperplane ENIs, now={self.now:g}s>")


def _per_row(value: Any, n: int, name: str, low: int, high: int, what: str) -> np.ndarray:
    """``value`` (one integer, or one per packet) as ``n`` int64s, or a clear error naming the row."""
    values = np.asarray(value)
    if values.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers (one, or one per packet), not {values.dtype}")
    if values.ndim > 1 or (values.ndim == 1 and len(values) != n):
        raise ValueError(f"{name} must be one integer or one per packet: {values.shape} for {n} packets")
    values = np.broadcast_to(values.astype(np.int64), (n,))
    bad = (values < low) | (values > high)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{k}] = {values[k]} is not {what}")
    return np.ascontiguousarray(values)

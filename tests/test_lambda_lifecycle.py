"""Scenarios for Lambda functions and their Hyperplane ENIs on the virtual clock (SPEC §2).

Each test drives ``hyperplane.functions.LambdaService`` the way a user drives Lambda (create,
invoke, update, delete, wait) on the built-in example or on a small topology built here, and
checks what AWS would show: function states and reason codes, the ENIs, who uses them, which
pool carries an invocation. Packets appear only where the 65,000-connection limit needs them,
through a pool's own connection table.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from hyperplane.errors import HyperplaneError, UnknownResource
from hyperplane.functions import (
    ACTIVE, CREATING, ENI_AVAILABLE, ENI_DELETED, ENI_DELETING, ENI_LIMIT_EXCEEDED, ENI_ORPHANED,
    ENI_PENDING, FAILED, FUNCTION_FAILED, FUNCTION_INACTIVE, FUNCTION_PENDING, IDLE, IN_PROGRESS,
    INACTIVE, INSUFFICIENT_ROLE_PERMISSIONS, INVALID_SECURITY_GROUP, INVALID_SUBNET, PENDING,
    RESTORING, SUBNET_OUT_OF_IP_ADDRESSES, SUCCESSFUL, ClockError, Invocation, InvocationRefused,
    InvalidEnvironment, LambdaError, LambdaService, LambdaSettings, ResourceConflict,
)
from hyperplane.loaders import load_example_topology, parse_topology
from hyperplane.model import ExecutionRole, LambdaFunction, NetworkInterface, VpcConfig
from hyperplane.tables.nat import Direction, NatStatus
from hyperplane.records import PACKET, UDP, ip

DAY = 86400.0
VPC_ROLE = {"name": "vpc-role", "managed_policies": ["AWSLambdaVPCAccessExecutionRole"]}
BASIC_ROLE = {"name": "basic-role", "managed_policies": ["AWSLambdaBasicExecutionRole"]}
PRIVATE = VpcConfig(("subnet-private-a", "subnet-private-b"), ("sg-app",))


def example(**kw: Any) -> LambdaService:
    return LambdaService(load_example_topology(), **kw)


def fn_doc(name: str, subnets: list[str] | None = None, groups: list[str] | None = None,
           role: dict | None = None, versions: list | None = None) -> dict:
    doc: dict[str, Any] = {"name": name, "role": dict(role or VPC_ROLE)}
    if subnets is not None:
        doc["vpc_config"] = {"subnet_ids": subnets, "security_group_ids": groups or ["sg-1"]}
    if versions:
        doc["versions"] = versions
    return doc


def small(functions: list[dict], *, subnets: list[tuple[str, str]] | None = None, vpcs: int = 1,
          groups: int = 3, enis: list[dict] | None = None) -> Any:
    """A topology: ``vpcs`` VPCs 10.<v>.0.0/16, subnets (id, cidr) in the first, sg-1..sg-N."""
    subnets = subnets or [("subnet-a", "10.0.0.0/24"), ("subnet-b", "10.0.1.0/24")]
    doc: dict[str, Any] = {
        "vpcs": [{"id": "vpc-1", "cidr": "10.0.0.0/16"}],
        "subnets": [{"id": sid, "vpc_id": "vpc-1", "cidr": cidr, "availability_zone": "eu-west-1a"}
                    for sid, cidr in subnets],
        "security_groups": [{"id": f"sg-{i}", "vpc_id": "vpc-1"} for i in range(1, groups + 1)],
        "functions": functions,
    }
    for v in range(2, vpcs + 1):
        doc["vpcs"].append({"id": f"vpc-{v}", "cidr": f"10.{v}.0.0/16"})
        doc["subnets"].append({"id": f"subnet-v{v}", "vpc_id": f"vpc-{v}", "cidr": f"10.{v}.0.0/24",
                               "availability_zone": "eu-west-1a"})
        doc["security_groups"].append({"id": f"sg-v{v}", "vpc_id": f"vpc-{v}"})
    if enis:
        doc["network_interfaces"] = enis
    return parse_topology(doc, file="small.yaml")


def udp_rows(source: str, n: int, t: float, remote: str = "10.0.20.10") -> np.ndarray:
    """``n`` UDP datagrams from one execution environment, each to its own remote port pair."""
    rows = np.zeros(n, dtype=PACKET)
    rows["time"] = t
    rows["src_ip"] = ip(source)
    rows["dst_ip"] = ip(remote)
    k = np.arange(n)
    rows["src_port"] = 1024 + k % 60000
    rows["dst_port"] = 1 + k // 60000
    rows["length"] = 60
    rows["proto"] = UDP
    return rows


# --------------------------------------------------------------------------------------------
# creation


def test_new_vpc_function_is_pending_until_eni_ready():
    service = example()
    orders = service.function("orders")
    assert (orders.state, orders.state_reason_code, orders.last_update_status) == (PENDING, CREATING, IN_PROGRESS)
    assert {e.status for e in orders.hyperplane_enis} == {ENI_PENDING}
    assert all(e.created_at == 0.0 and e.ready_at == 60.0 for e in orders.hyperplane_enis)
    service.advance(59.999)
    assert orders.state == PENDING
    service.advance(60.0)
    assert (orders.state, orders.state_reason_code, orders.last_update_status) == (ACTIVE, None, SUCCESSFUL)
    assert {e.status for e in orders.hyperplane_enis} == {ENI_AVAILABLE}
    # a function without VpcConfig needs no ENI: Active at once
    assert service.function("thumbnail").state == ACTIVE
    assert service.function("thumbnail").hyperplane_enis == []


def test_snapshot_of_a_running_account_is_active_at_once():
    service = example(ready=True)
    assert {f.state for f in service.functions.values()} == {ACTIVE}
    assert {e.status for e in service.hyperplane_enis} == {ENI_AVAILABLE}


def test_second_function_on_a_ready_pair_is_active_at_once():
    topology = small([fn_doc("first", ["subnet-a"])])
    service = LambdaService(topology)
    service.advance(60)
    second = service.create_function(LambdaFunction("second", ExecutionRole("arn:aws:iam::1:role/r", ("ec2:*",)),
                                                    VpcConfig(("subnet-a",), ("sg-1",))), now=100)
    assert second.state == ACTIVE
    assert len(service.hyperplane_enis) == 1


def test_functions_with_same_subnet_and_groups_share_one_eni():
    topology = small([
        fn_doc("alpha", ["subnet-a"], ["sg-1", "sg-2"]),
        fn_doc("beta", ["subnet-a"], ["sg-2", "sg-1"]),  # the same set, another order
        fn_doc("gamma", ["subnet-a"], ["sg-1"]),  # another set: another ENI
    ])
    service = LambdaService(topology, now=10.0)
    service.advance(70.0)
    alpha, beta, gamma = (service.function(n) for n in ("alpha", "beta", "gamma"))
    assert alpha.hyperplane_enis == beta.hyperplane_enis
    (shared,) = alpha.hyperplane_enis
    assert shared.security_group_ids == ("sg-1", "sg-2")
    assert shared.functions == ["alpha", "beta"]
    assert gamma.hyperplane_enis[0] is not shared
    assert service.pool_for("subnet-a", ["sg-2", "sg-1"]).eni is shared
    env_a, env_b = service.environment_address("alpha"), service.environment_address("beta")
    assert service.invoke("alpha", env_a).pool is service.invoke("beta", env_b).pool


def test_function_gets_one_eni_per_subnet():
    service = example(ready=True)
    enis = service.function("orders").hyperplane_enis
    assert [e.subnet_id for e in enis] == ["subnet-private-a", "subnet-private-b"]
    topology = load_example_topology()
    for eni in enis:
        subnet = topology.subnets[eni.subnet_id]
        address = IPv4Address(eni.private_ip)
        assert address in subnet.cidr and not subnet.is_reserved(address)
        assert topology.eni_by_ip(address) is None  # never an address a plain ENI holds
        assert eni.id.startswith("eni-") and len(eni.id) == 4 + 17
        assert service.eni_by_ip(eni.private_ip) is eni
    # deterministic: another service over the same topology makes the same ENIs
    again = example(ready=True)
    assert [(e.id, e.private_ip) for e in again.hyperplane_enis] == \
           [(e.id, e.private_ip) for e in service.hyperplane_enis]


def test_hyperplane_eni_never_takes_a_plain_enis_address():
    plain = [{"id": f"eni-plain{i}", "subnet_id": "subnet-a", "private_ip": f"10.0.0.{4 + i}",
              "security_group_ids": ["sg-1"]} for i in range(3)]
    service = LambdaService(small([fn_doc("f", ["subnet-a"])], enis=plain), ready=True)
    assert service.function("f").hyperplane_enis[0].private_ip == "10.0.0.7"


# --------------------------------------------------------------------------------------------
# invocations


def test_invocation_rejected_while_pending():
    service = example()
    refused = service.invoke("orders", now=30.0)
    assert isinstance(refused, InvocationRefused) and not refused.accepted
    assert refused.reason_code == FUNCTION_PENDING
    assert refused.aws_error == "ResourceConflictException"
    assert (refused.state, refused.state_reason_code) == (PENDING, CREATING)
    accepted = service.invoke("orders", now=60.0)
    assert isinstance(accepted, Invocation) and accepted.accepted
    assert accepted.pool is not None and accepted.pool.ready(60.0)
    # a function without VpcConfig is invoked at once, and reaches only the internet
    thumbnail = service.invoke("thumbnail", now=60.0)
    assert thumbnail.accepted and thumbnail.pool is None and thumbnail.subnet_id is None


def test_environment_bound_to_one_subnet_deterministically():
    service = example(ready=True)
    orders = service.function("orders")
    chosen = []
    t = 0.0
    for k in range(64):
        env = service.environment_address("orders", k)
        expected = PRIVATE.subnet_ids[zlib.crc32(f"orders:{env}".encode()) % 2]
        first = service.invoke("orders", env)
        assert first.subnet_id == expected == orders.subnet_for(env)
        assert first.pool is service.pool_for(expected, ["sg-app"])
        # bound for its lifetime: every later invocation of the environment goes the same way
        for _ in range(3):
            t += 1.0
            assert service.invoke("orders", env, now=t).subnet_id == expected
        chosen.append(expected)
    assert set(chosen) == set(PRIVATE.subnet_ids)  # both subnets carry environments
    # the environment may be given as the uint32 the packet records hold
    env = service.environment_address("orders", 5)
    assert service.invoke("orders", ip(env)).subnet_id == service.invoke("orders", env).subnet_id
    # ... or by its number
    assert service.invoke("orders", 5).environment_ip == env
    # another service makes the same choices
    other = example(ready=True)
    assert [other.invoke("orders", service.environment_address("orders", k)).subnet_id for k in range(64)] == chosen


def test_execution_environments_have_their_own_addresses_per_function():
    service = example(ready=True)
    assert service.environment_address("orders") == "169.254.0.1"
    assert service.environment_address("report", 3) == "169.254.1.4"
    assert service.environment_address("thumbnail", 253) == "169.254.2.254"
    assert service.function_of_environment("169.254.1.4") == "report"
    assert service.function_of_environment(ip("169.254.2.254")) == "thumbnail"
    assert service.function_of_environment("169.254.3.1") is None  # no fourth function
    assert service.function_of_environment("169.254.0.0") is None
    assert service.function_of_environment("10.0.10.4") is None
    with pytest.raises(InvalidEnvironment, match="169.254.1.4 is not an execution environment of orders"):
        service.invoke("orders", "169.254.1.4")
    with pytest.raises(InvalidEnvironment, match="an int from 0"):
        service.environment_address("orders", -1)


def test_a_busy_function_gets_more_environment_blocks_from_the_top_of_the_network():
    # a capture of a busy function holds more than 254 concurrent execution environments
    service = example(ready=True)
    assert service.environment_address("orders", 254) == "169.254.255.1"
    assert service.environment_address("report", 254) == "169.254.254.1"
    assert service.environment_address("orders", 2 * 254 + 7) == "169.254.253.8"
    assert service.function_of_environment("169.254.255.1") == "orders"
    assert service.function_of_environment("169.254.254.1") == "report"
    assert service.invoke("orders", "169.254.253.8").accepted


def test_a_full_environment_network_is_a_clear_error():
    service = example(ready=True, settings=LambdaSettings(execution_environment_network="169.254.0.0/22"))
    assert service.environment_address("orders", 254) == "169.254.3.1"  # the fourth and last /24
    with pytest.raises(InvalidEnvironment, match=r"orders: no room for execution environment 508: .*169.254.0.0/22"):
        service.environment_address("orders", 508)
    with pytest.raises(UnknownResource, match="nope"):
        service.invoke("nope")


def test_invoking_a_version_uses_the_versions_own_vpc_config():
    topology = small([fn_doc("f", ["subnet-a"], versions=[{"version": 1}])])
    service = LambdaService(topology, ready=True)
    service.update_function_configuration("f", VpcConfig(("subnet-b",), ("sg-1",)))
    service.advance(60)
    assert service.invoke("f").subnet_id == "subnet-b"
    assert service.invoke("f:1").subnet_id == "subnet-a"
    assert service.invoke("f:1").qualifier == "1"
    with pytest.raises(UnknownResource, match="f:7"):
        service.invoke("f:7")


# --------------------------------------------------------------------------------------------
# updates


def test_update_keeps_old_eni_until_active():
    service = example(ready=True)
    old_pools = {service.invoke("orders", service.environment_address("orders", k)).pool for k in range(16)}
    new = VpcConfig(("subnet-cache-a",), ("sg-app",))
    orders = service.update_function_configuration("orders", new, now=100.0)
    assert (orders.state, orders.last_update_status) == (ACTIVE, IN_PROGRESS)
    assert orders.vpc_config == PRIVATE and orders.pending_vpc_config == new
    (new_eni,) = [e for e in orders.hyperplane_enis if e.subnet_id == "subnet-cache-a"]
    assert new_eni.status == ENI_PENDING and new_eni.ready_at == 160.0
    assert new_eni.functions == ["orders"]
    with pytest.raises(ResourceConflict, match="update is in progress"):
        service.update_function_configuration("orders", None, now=100.0)
    for t in (100.0, 130.0, 159.9):
        used = {service.invoke("orders", service.environment_address("orders", k), now=t).pool for k in range(16)}
        assert used == old_pools
    service.advance(160.0)
    assert (orders.state, orders.last_update_status, orders.vpc_config) == (ACTIVE, SUCCESSFUL, new)
    invocation = service.invoke("orders")
    assert invocation.subnet_id == "subnet-cache-a" and invocation.pool.eni is new_eni
    # version 1 keeps the old config: the old ENIs stay, used by orders:1 only
    for pool in old_pools:
        assert pool.eni.status == ENI_AVAILABLE and pool.functions == ["orders:1"]


def test_old_vpc_unreachable_after_update():
    topology = small([fn_doc("mover", ["subnet-a", "subnet-b"])], vpcs=2)
    service = LambdaService(topology, ready=True)
    envs = [service.environment_address("mover", k) for k in range(32)]
    assert {service.invoke("mover", e).pool.vpc_id for e in envs} == {"vpc-1"}
    service.update_function_configuration("mover", VpcConfig(("subnet-v2",), ("sg-v2",)), now=10.0)
    assert {service.invoke("mover", e, now=69.0).pool.vpc_id for e in envs} == {"vpc-1"}
    service.advance(70.0)
    invocations = [service.invoke("mover", e) for e in envs]
    assert {i.pool.vpc_id for i in invocations} == {"vpc-2"}
    assert {i.subnet_id for i in invocations} == {"subnet-v2"}
    # nothing of vpc-1 is used by the function any more; its ENIs await deletion
    assert {e.vpc_id for e in service.function("mover").hyperplane_enis} == {"vpc-2"}
    old = [e for e in service.hyperplane_enis if e.vpc_id == "vpc-1"]
    assert len(old) == 2 and {e.status for e in old} == {ENI_DELETING}
    assert all(e.functions == [] and e.delete_at == 70.0 + 1200.0 for e in old)


def test_update_to_a_ready_pair_is_successful_at_once():
    topology = small([fn_doc("a", ["subnet-a"]), fn_doc("b", ["subnet-b"])])
    service = LambdaService(topology, ready=True)
    b = service.update_function_configuration("b", VpcConfig(("subnet-a",), ("sg-1",)), now=5.0)
    assert b.last_update_status == SUCCESSFUL
    assert service.invoke("b").subnet_id == "subnet-a"


def test_update_that_cannot_be_set_up_fails_and_keeps_the_old_config():
    service = example(ready=True)
    orders = service.update_function_configuration("orders", VpcConfig(("subnet-nope",), ("sg-app",)), now=1.0)
    assert (orders.state, orders.last_update_status, orders.last_update_status_reason_code) == \
           (ACTIVE, FAILED, INVALID_SUBNET)
    assert "subnet-nope" in orders.last_update_status_reason
    assert orders.vpc_config == PRIVATE
    assert service.invoke("orders").accepted
    orders = service.update_function_configuration("orders", VpcConfig(("subnet-private-a",), ("sg-nope",)), now=2.0)
    assert orders.last_update_status_reason_code == INVALID_SECURITY_GROUP
    # the failure is not sticky: a good update succeeds
    orders = service.update_function_configuration("orders", {"subnet_ids": ["subnet-private-a"],
                                                              "security_group_ids": ["sg-app"]}, now=3.0)
    assert orders.last_update_status == SUCCESSFUL


# --------------------------------------------------------------------------------------------
# idle functions


def test_idle_function_becomes_inactive_and_restores_on_invoke():
    service = example()
    service.advance(60.0)
    service.invoke("report", now=60.0 + 10 * DAY)  # report stays in use; orders is never invoked
    service.advance(60.0 + 14 * DAY - 1)
    orders = service.function("orders")
    assert orders.state == ACTIVE
    service.advance(60.0 + 14 * DAY)
    assert (orders.state, orders.state_reason_code) == (INACTIVE, IDLE)
    assert orders.hyperplane_enis == []
    assert not any(e.subnet_id.startswith("subnet-private") for e in service.hyperplane_enis)
    assert service.function("report").state == ACTIVE
    assert service.function("thumbnail").state == ACTIVE  # no ENI to reclaim
    # the next invocation fails and starts the restore
    t = 60.0 + 20 * DAY
    refused = service.invoke("orders", now=t)
    assert (refused.reason_code, refused.aws_error) == (FUNCTION_INACTIVE, "ResourceNotReadyException")
    assert (orders.state, orders.state_reason_code) == (PENDING, RESTORING)
    assert {e.status for e in orders.hyperplane_enis} == {ENI_PENDING}
    assert service.invoke("orders", now=t + 30).reason_code == FUNCTION_PENDING
    service.advance(t + 60)
    assert (orders.state, orders.state_reason_code) == (ACTIVE, None)
    assert service.invoke("orders").accepted


def test_function_invoked_regularly_never_becomes_inactive():
    service = example(ready=True)
    for day in range(1, 60, 7):
        service.invoke("orders", now=day * DAY)
    assert service.function("orders").state == ACTIVE
    assert service.function("report").state == INACTIVE


def test_a_function_invoked_all_day_is_reclaimed_14_days_after_its_last_invocation_and_keeps_one_timer():
    service = example(ready=True)
    for k in range(10_000):  # every 8.64 s for a day
        service.invoke("orders", now=k * DAY / 10_000)
    last = 9_999 * DAY / 10_000
    # one idle timer per function in the service's events, however many invocations moved it
    assert len(service._events) <= 2 * len(service.functions), service._events[:5]
    service.advance(last + 14 * DAY - 1)
    assert service.function("orders").state == ACTIVE
    service.advance(last + 14 * DAY)
    assert (service.function("orders").state, service.function("orders").state_reason_code) == (INACTIVE, IDLE)


def test_restore_without_a_role_leaves_the_function_inactive():
    service = example(ready=True)
    service.advance(15 * DAY)
    service.delete_role("orders-role")
    refused = service.invoke("orders")
    assert refused.reason_code == FUNCTION_INACTIVE
    orders = service.function("orders")
    assert (orders.state, orders.state_reason_code) == (INACTIVE, INSUFFICIENT_ROLE_PERMISSIONS)


# --------------------------------------------------------------------------------------------
# deletion


def test_unused_eni_deleted_within_20_minutes():
    service = example(ready=True)
    (eni,) = service.function("report").hyperplane_enis
    generation = service.generation
    service.update_function_configuration("report", None, now=1000.0)
    report = service.function("report")
    assert (report.last_update_status, report.vpc_config, report.hyperplane_enis) == (SUCCESSFUL, None, [])
    assert service.invoke("report").pool is None  # detached at once
    assert (eni.status, eni.functions, eni.delete_at) == (ENI_DELETING, [], 2200.0)
    assert service.generation > generation
    service.advance(2199.0)
    assert eni in service.hyperplane_enis
    service.advance(2200.0)
    assert eni.status == ENI_DELETED and eni.deleted_at == 2200.0
    assert eni not in service.hyperplane_enis
    assert service.eni_by_ip(eni.private_ip) is None
    assert service.pool_for("subnet-public-a", ["sg-app"]) is None


def test_deleting_a_function_deletes_its_enis_later():
    service = example(ready=True)
    enis = service.function("orders").hyperplane_enis
    service.delete_function("orders:1", now=10.0)
    assert {e.status for e in enis} == {ENI_AVAILABLE} and enis[0].functions == ["orders"]
    service.delete_function("orders", now=20.0)
    with pytest.raises(UnknownResource):
        service.function("orders")
    assert service.function_of_environment("169.254.0.1") is None
    assert {e.status for e in enis} == {ENI_DELETING}
    service.advance(20.0 + 1200.0)
    assert {e.status for e in enis} == {ENI_DELETED}


def test_pair_taken_again_before_deletion_keeps_its_eni():
    topology = small([fn_doc("a", ["subnet-a"]), fn_doc("b", ["subnet-b"])])
    service = LambdaService(topology, ready=True)
    (eni,) = service.function("a").hyperplane_enis
    service.update_function_configuration("a", None, now=0.0)
    assert eni.status == ENI_DELETING
    b = service.update_function_configuration("b", VpcConfig(("subnet-a",), ("sg-1",)), now=600.0)
    assert b.last_update_status == SUCCESSFUL and eni.status == ENI_AVAILABLE and eni.functions == ["b"]
    service.advance(5000.0)
    assert eni.status == ENI_AVAILABLE


def test_eni_shared_with_other_function_is_not_deleted():
    topology = small([fn_doc("stays", ["subnet-a"]), fn_doc("leaves", ["subnet-a"])])
    service = LambdaService(topology, ready=True)
    (eni,) = service.hyperplane_enis
    assert eni.functions == ["leaves", "stays"]
    service.update_function_configuration("leaves", None, now=100.0)
    service.advance(100.0 + 3 * 1200.0)
    assert eni.status == ENI_AVAILABLE and eni.functions == ["stays"]
    service.delete_function("stays", now=4000.0)
    service.advance(4000.0 + 1200.0)
    assert eni.status == ENI_DELETED


def test_orphaned_eni_when_role_deleted_first():
    service = example(ready=True)
    (eni,) = service.function("report").hyperplane_enis
    service.delete_function("report", now=100.0)
    service.delete_role("arn:aws:iam::123456789012:role/report-role", now=200.0)
    service.advance(100.0 + 1200.0)
    assert eni.status == ENI_ORPHANED and eni.functions == [] and eni.connections == 0
    assert eni in service.hyperplane_enis
    assert service.eni_by_ip(eni.private_ip) is eni  # it still holds its address
    # a new function on the same pair gets a new ENI, with another address
    role = ExecutionRole("arn:aws:iam::123456789012:role/new", managed_policies=("AWSLambdaVPCAccessExecutionRole",))
    fresh = service.create_function(LambdaFunction("fresh", role, VpcConfig(("subnet-public-a",), ("sg-app",))),
                                    now=2000.0)
    (new_eni,) = fresh.hyperplane_enis
    assert new_eni is not eni and new_eni.private_ip != eni.private_ip
    with pytest.raises(LambdaError, match="only an orphaned Hyperplane ENI"):
        service.delete_network_interface(new_eni.id, now=2001.0)
    service.delete_network_interface(eni.id, now=2001.0)
    assert eni.status == ENI_DELETED and eni not in service.hyperplane_enis


def test_role_without_delete_permission_leaves_an_orphan():
    role = {"name": "half", "permissions": ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces"]}
    service = LambdaService(small([fn_doc("f", ["subnet-a"], role=role)]), ready=True)
    (eni,) = service.hyperplane_enis
    service.delete_function("f", now=0.0)
    service.advance(1200.0)
    assert eni.status == ENI_ORPHANED


# --------------------------------------------------------------------------------------------
# failures


def test_missing_permissions_fail_with_insufficient_role_permissions():
    topology = small([fn_doc("f", ["subnet-a"], role=BASIC_ROLE)])
    service = LambdaService(topology)
    f = service.function("f")
    assert (f.state, f.state_reason_code) == (FAILED, INSUFFICIENT_ROLE_PERMISSIONS)
    assert "ec2:CreateNetworkInterface" in f.state_reason and "ec2:DescribeNetworkInterfaces" in f.state_reason
    assert service.hyperplane_enis == []
    refused = service.invoke("f", now=100.0)
    assert (refused.reason_code, refused.aws_error) == (FUNCTION_FAILED, "EC2AccessDeniedException")
    assert refused.reason == f.state_reason
    configuration = f.configuration()
    assert (configuration["State"], configuration["StateReasonCode"]) == (FAILED, INSUFFICIENT_ROLE_PERMISSIONS)
    assert configuration["VpcConfig"] == {"SubnetIds": ["subnet-a"], "SecurityGroupIds": ["sg-1"], "VpcId": "vpc-1"}
    # without VpcConfig the same role is enough
    service.update_function_configuration("f", None, now=200.0)
    assert f.state == ACTIVE and service.invoke("f").accepted


def test_eni_limit_per_vpc():
    topology = small([fn_doc("one", ["subnet-a"], ["sg-1"]), fn_doc("two", ["subnet-a"], ["sg-2"]),
                      fn_doc("three", ["subnet-a"], ["sg-3"]), fn_doc("shares", ["subnet-a"], ["sg-1"])])
    service = LambdaService(topology, LambdaSettings(max_enis_per_vpc=2))
    states = {n: (f.state, f.state_reason_code) for n, f in service.functions.items()}
    assert states == {"one": (PENDING, CREATING), "two": (PENDING, CREATING),
                      "three": (FAILED, ENI_LIMIT_EXCEEDED), "shares": (PENDING, CREATING)}
    assert "limit is 2 per VPC" in service.function("three").state_reason
    assert service.invoke("three").aws_error == "ENILimitReachedException"
    assert len(service.hyperplane_enis) == 2
    # at the limit, a full pool cannot open an overflow ENI: the table reports the capacity status
    small_settings = LambdaSettings(max_enis_per_vpc=1, max_connections_per_eni=2)
    limited = LambdaService(small([fn_doc("f", ["subnet-a"])]), small_settings, ready=True)
    table = limited.invoke("f").pool.table
    r = table.process(udp_rows(limited.environment_address("f"), 3, 0.0), Direction.OUT)
    assert r.status.tolist() == [NatStatus.CREATED, NatStatus.CREATED, NatStatus.ADDRESS_FULL]
    assert "EniLimitExceeded" in limited.invoke("f").pool.overflow_refusal


def test_subnet_out_of_ip_addresses():
    # a /28 has 16 addresses, 5 reserved: 11 for ENIs; 9 plain ENIs leave room for 2 more
    plain = [{"id": f"eni-p{i}", "subnet_id": "subnet-tiny", "private_ip": f"10.0.9.{4 + i}",
              "security_group_ids": ["sg-1"]} for i in range(9)]
    functions = [fn_doc("one", ["subnet-tiny"], ["sg-1"]), fn_doc("two", ["subnet-tiny"], ["sg-2"]),
                 fn_doc("three", ["subnet-a", "subnet-tiny"], ["sg-3"])]
    topology = small(functions, subnets=[("subnet-a", "10.0.0.0/24"), ("subnet-tiny", "10.0.9.0/28")], enis=plain)
    service = LambdaService(topology)
    assert [e.private_ip for e in service.hyperplane_enis] == ["10.0.9.13", "10.0.9.14"]
    three = service.function("three")
    assert (three.state, three.state_reason_code) == (FAILED, SUBNET_OUT_OF_IP_ADDRESSES)
    assert "subnet-tiny (10.0.9.0/28)" in three.state_reason
    # all or nothing: its other subnet got no ENI either
    assert service.pool_for("subnet-a", ["sg-3"]) is None
    assert service.invoke("three").aws_error == "SubnetIPAddressLimitReachedException"
    # once an ENI is deleted its address is free again: a new attempt succeeds
    service.delete_function("two", now=10.0)
    service.advance(10.0 + 1200.0)
    three = service.update_function_configuration("three", VpcConfig(("subnet-a", "subnet-tiny"), ("sg-3",)))
    assert (three.state, three.state_reason_code) == (PENDING, CREATING)
    assert service.pool_for("subnet-tiny", ["sg-3"]).eni.private_ip == "10.0.9.14"


# --------------------------------------------------------------------------------------------
# overflow ENIs (65,000 connections)


def test_65001st_connection_opens_second_hyperplane_eni():
    service = example(ready=True)
    invocation = service.invoke("report")
    pool = invocation.pool
    generation = service.generation
    rows = udp_rows(invocation.environment_ip, 65_001, t=5.0)
    result = pool.table.process(rows, Direction.OUT)
    assert (result.status == NatStatus.CREATED).all()
    first, second = pool.enis
    assert not first.overflow and second.overflow
    assert (result.packets["src_ip"][:65_000] == first.private_ip_int).all()
    assert result.packets["src_ip"][65_000] == second.private_ip_int
    assert (first.connections, second.connections) == (65_000, 1)
    assert second.subnet_id == first.subnet_id and second.security_group_ids == first.security_group_ids
    assert second.private_ip != first.private_ip
    assert second.status == ENI_AVAILABLE and second.created_at == 5.0
    assert second.functions == ["report"]
    assert second in service.function("report").hyperplane_enis
    assert service.eni_by_ip(second.private_ip) is second
    assert service.generation > generation
    # both leave with the pool, and their connections expire with time
    service.advance(5.0 + 30.0)
    assert (first.connections, second.connections) == (0, 0)


def test_overflow_eni_creation_delay_is_honoured():
    settings = LambdaSettings(max_connections_per_eni=3, overflow_eni_creation_seconds=5.0)
    service = LambdaService(small([fn_doc("f", ["subnet-a"])]), settings, ready=True)
    invocation = service.invoke("f")
    table = invocation.pool.table
    env = invocation.environment_ip
    rows = udp_rows(env, 8, t=1.0)
    r = table.process(rows[:4], Direction.OUT)
    assert r.status.tolist() == [NatStatus.CREATED] * 3 + [NatStatus.ADDRESS_FULL]
    first, second = invocation.pool.enis
    assert (second.status, second.created_at, second.ready_at) == (ENI_PENDING, 1.0, 6.0)
    rows["time"][4:6] = (5.999, 6.0)
    r = table.process(rows[4:6], Direction.OUT)
    assert r.status.tolist() == [NatStatus.ADDRESS_FULL, NatStatus.CREATED]
    assert r.packets["src_ip"][1] == second.private_ip_int
    service.advance(6.0)
    assert second.status == ENI_AVAILABLE


# --------------------------------------------------------------------------------------------
# who uses what


def test_list_functions_and_versions_using_an_eni():
    service = example(ready=True)
    private_a = service.pool_for("subnet-private-a", ["sg-app"]).eni
    public_a = service.pool_for("subnet-public-a", ["sg-app"]).eni
    assert service.functions_using(private_a.id) == ["orders", "orders:1"]
    assert service.functions_using(public_a.id) == ["report"]
    assert service.publish_version("report", now=1.0) == "1"
    assert service.functions_using(public_a.id) == ["report", "report:1"]
    # a version keeps its ENIs in use after $LATEST leaves the VPC
    service.update_function_configuration("report", None, now=2.0)
    assert service.functions_using(public_a.id) == ["report:1"]
    service.advance(10_000.0)
    assert public_a.status == ENI_AVAILABLE
    assert [e.id for e in service.function("report").hyperplane_enis] == [public_a.id]
    with pytest.raises(UnknownResource, match="eni-nope"):
        service.functions_using("eni-nope")


def test_security_group_members_include_hyperplane_enis():
    service = example(ready=True)
    addresses = {str(a) for a in service.private_ips_with_security_group("sg-app")}
    assert addresses == {e.private_ip for e in service.hyperplane_enis}
    assert service.private_ips_with_security_group("sg-db") == ()


# --------------------------------------------------------------------------------------------
# the clock and bad input


def test_clock_going_backwards_is_an_error():
    service = example()
    service.advance(100.0)
    with pytest.raises(ClockError, match=r"t=50.0 s.*t=100.0 s") as info:
        service.advance(50.0)
    assert isinstance(info.value, ValueError) and isinstance(info.value, HyperplaneError)
    with pytest.raises(ClockError):
        service.invoke("orders", now=99.0)
    with pytest.raises(ClockError, match="finite"):
        service.advance(float("nan"))
    assert service.now == 100.0


def test_settings_are_checked():
    with pytest.raises(ValueError, match="eni_creation_seconds"):
        LambdaSettings(eni_creation_seconds=-1)
    with pytest.raises(ValueError, match="smaller than a /24"):
        LambdaSettings(execution_environment_network="169.254.0.0/25")
    with pytest.raises(ValueError, match="overlaps 0.0.0.0/8"):
        LambdaSettings(execution_environment_network="0.0.0.0/16")
    with pytest.raises(ValueError, match="ports"):
        LambdaSettings(ports=(0, 10))
    assert LambdaSettings().environment_network == IPv4Network("169.254.0.0/16")


def test_creating_a_function_twice_conflicts():
    service = example(ready=True)
    orders = load_example_topology().function("orders")
    with pytest.raises(ResourceConflict, match="already exists"):
        service.create_function(orders)


def test_overflow_eni_when_a_destinations_ports_run_out():
    settings = LambdaSettings(ports=(1024, 1027))  # four ports: the fifth flow to one destination
    service = LambdaService(small([fn_doc("f", ["subnet-a"])]), settings, ready=True)
    invocation = service.invoke("f")
    rows = udp_rows(invocation.environment_ip, 5, t=0.0)
    rows["dst_port"] = 53  # one destination
    r = invocation.pool.table.process(rows, Direction.OUT)
    assert r.status.tolist() == [NatStatus.CREATED] * 5
    first, second = invocation.pool.enis
    assert second.overflow and (first.connections, second.connections) == (4, 1)


def test_snapshot_enis_of_kind_lambda_are_taken_over():
    base = small([fn_doc("f", ["subnet-a", "subnet-b"])])
    snapshot = base.replace(NetworkInterface("eni-0a1b2c3d4e5f67890", "subnet-b", IPv4Address("10.0.1.77"),
                                             ("sg-1",), kind="lambda", managed_by=None))
    service = LambdaService(snapshot, ready=True)
    by_subnet = {e.subnet_id: e for e in service.function("f").hyperplane_enis}
    assert (by_subnet["subnet-b"].id, by_subnet["subnet-b"].private_ip) == ("eni-0a1b2c3d4e5f67890", "10.0.1.77")
    assert by_subnet["subnet-a"].id != "eni-0a1b2c3d4e5f67890"


# --------------------------------------------------------------------------------------------
# randomized: whatever users do, the books balance

_CONFIGS = [
    None,
    VpcConfig(("subnet-a",), ("sg-1",)),
    VpcConfig(("subnet-a", "subnet-tiny"), ("sg-1", "sg-2")),
    VpcConfig(("subnet-tiny",), ("sg-2", "sg-1")),
    VpcConfig(("subnet-tiny",), ("sg-3",)),
    VpcConfig(("subnet-v2",), ("sg-v2",)),
    VpcConfig(("subnet-nope",), ("sg-1",)),
]
_ROLES = [
    ExecutionRole("arn:aws:iam::1:role/full", managed_policies=("AWSLambdaVPCAccessExecutionRole",)),
    ExecutionRole("arn:aws:iam::1:role/no-delete", ("ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces")),
    ExecutionRole("arn:aws:iam::1:role/basic", managed_policies=("AWSLambdaBasicExecutionRole",)),
]
_STEPS = (60.0, 1200.0, 15 * DAY, 1.0, 59.0, 600.0, 0.0, 0.5)


def _random_ops(rng: random.Random, n: int) -> list[tuple]:
    """A user's day: mostly waiting, invoking and sending traffic, sometimes reconfiguring."""
    ops: list[tuple] = [("create", i, rng.randrange(1, len(_CONFIGS)), rng.choice((0, 0, 1, 2))) for i in range(4)]
    kinds = ["advance"] * 6 + ["invoke"] * 3 + ["traffic"] * 4 + ["update"] * 3 + ["create", "delete",
             "publish", "delete_role", "delete_eni"]
    for _ in range(n):
        kind = rng.choice(kinds)
        fn = rng.randrange(4)
        if kind == "advance":
            ops.append((kind, rng.choice(_STEPS)))
        elif kind == "invoke":
            ops.append((kind, fn, rng.randrange(6)))
        elif kind == "update":
            ops.append((kind, fn, rng.randrange(len(_CONFIGS))))
        elif kind == "create":
            ops.append((kind, fn, rng.randrange(len(_CONFIGS)), rng.randrange(3)))
        elif kind == "traffic":
            ops.append((kind, fn, rng.randrange(1, 25), rng.randrange(50)))
        elif kind == "delete_role":
            ops.append((kind, rng.randrange(3)))
        else:
            ops.append((kind, fn))
    return ops


def _check_books(service: LambdaService, topology: Any) -> None:
    existing = service.hyperplane_enis
    seen: dict[tuple[str, str], str] = {}
    for eni in existing:
        subnet = topology.subnets[eni.subnet_id]
        address = IPv4Address(eni.private_ip)
        assert address in subnet.cidr and not subnet.is_reserved(address)
        assert topology.eni_by_ip(address, subnet.vpc_id) is None
        assert (eni.vpc_id, eni.private_ip) not in seen, f"{eni.id} and {seen[(eni.vpc_id, eni.private_ip)]}"
        seen[(eni.vpc_id, eni.private_ip)] = eni.id
        assert service.eni_by_ip(eni.private_ip, eni.vpc_id) is eni
        if eni.status != ENI_ORPHANED:
            assert eni.pool.live and service.pool_for(eni.subnet_id, eni.security_group_ids) is eni.pool
    for vpc_id in topology.vpcs:
        assert sum(1 for e in existing if e.vpc_id == vpc_id) <= service.settings.max_enis_per_vpc
    users: dict[Any, Counter] = {}
    for fs in service.functions.values():
        for (user, key), n in fs._held.items():
            users.setdefault(key, Counter())[user] += n
        if fs.state == ACTIVE:
            waiting = {k for k in (fs.pending_vpc_config and [(s, frozenset(fs.pending_vpc_config.security_group_ids))
                                                              for s in fs.pending_vpc_config.subnet_ids] or [])}
            for (_u, key), n in fs._held.items():
                if n and key not in waiting:
                    assert service.pool_for(*key).ready(service.now)
        if fs.state in (FAILED, INACTIVE):
            assert not +fs._held
    for pool in service.pools:
        assert +pool.users == +users.get(pool.key, Counter())
        assert (pool.delete_at is None) == bool(+pool.users)
        assert all(e.functions == pool.functions for e in pool.enis if e.exists)
    assert set(users) <= {p.key for p in service.pools}


@hsettings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_random_lifecycles_keep_enis_and_users_consistent(seed):
    subnets = [("subnet-a", "10.0.0.0/24"), ("subnet-tiny", "10.0.9.0/28")]
    topology = small([], subnets=subnets, vpcs=2)
    settings = LambdaSettings(max_enis_per_vpc=14, max_connections_per_eni=2, overflow_eni_creation_seconds=float(seed % 2))
    service = LambdaService(topology, settings)
    names = [f"fn{i}" for i in range(4)]
    t = 0.0
    generation = service.generation
    for op in _random_ops(random.Random(seed), 80):
        kind = op[0]
        try:
            if kind == "advance":
                t += op[1]
                service.advance(t)
            elif kind == "invoke":
                r = service.invoke(names[op[1]], service.environment_address(names[op[1]], op[2]), now=t)
                if r.accepted and r.pool is not None:
                    assert r.pool.live and r.pool.ready(t)
                    fs = service.function(names[op[1]])
                    assert r.subnet_id in fs.vpc_config.subnet_ids
                    assert r.pool.security_group_ids == tuple(sorted(fs.vpc_config.security_group_ids))
            elif kind == "update":
                service.update_function_configuration(names[op[1]], _CONFIGS[op[2]], now=t)
            elif kind == "create":
                service.create_function(LambdaFunction(names[op[1]], _ROLES[op[3]], _CONFIGS[op[2]]), now=t)
            elif kind == "delete":
                service.delete_function(names[op[1]], now=t)
            elif kind == "publish":
                service.publish_version(names[op[1]], now=t)
            elif kind == "delete_role":
                service.delete_role(_ROLES[op[1]], now=t)
            elif kind == "traffic":
                r = service.invoke(names[op[1]], service.environment_address(names[op[1]], op[3]), now=t)
                if r.accepted and r.pool is not None:
                    status = r.pool.table.process(udp_rows(r.environment_ip, op[2], t), Direction.OUT).status
                    assert set(status.tolist()) <= {NatStatus.CREATED, NatStatus.TRANSLATED, NatStatus.ADDRESS_FULL}
                    if NatStatus.ADDRESS_FULL in status:  # refused only while an overflow ENI is on its way, or none can be made
                        assert r.pool.overflow_refusal or any(e.status == ENI_PENDING for e in r.pool.enis)
            elif kind == "delete_eni":  # by hand, an orphan if there is one
                orphans = [e for e in service.hyperplane_enis if e.status == ENI_ORPHANED]
                if orphans:
                    service.delete_network_interface(orphans[op[1] % len(orphans)].id, now=t)
        except (ResourceConflict, UnknownResource):
            pass
        assert service.generation >= generation
        generation = service.generation
        _check_books(service, topology)

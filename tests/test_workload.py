"""Load tests of the modelled system (hyperplane.workload): workloads against AWS's documented
numbers, each verdict from the walk of the workload's packets."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address

import pytest

import hyperplane as hp
from hyperplane.model.resources import ElasticIp
from hyperplane.tables.nat import Timeouts
from hyperplane.workload import Workload, WorkloadError, load_test, sweep
from hyperplane.workload.sweep import parse_sweep

pytestmark = pytest.mark.slow  # heavy: -m 'not slow' skips it in a quick local loop; CI runs it

# One function in one subnet (so one Hyperplane ENI pool), two databases in another.
# `filler` decides how many of the function subnet's 11 usable addresses another ENI holds.
TOPOLOGY = """
account_id: "123456789012"
region: us-east-1
vpcs:
  - {{id: vpc-one, cidr: 10.1.0.0/16}}
subnets:
  - {{id: subnet-fn, vpc_id: vpc-one, cidr: {cidr}, availability_zone: us-east-1a}}
  - {{id: subnet-db, vpc_id: vpc-one, cidr: 10.1.2.0/24, availability_zone: us-east-1a}}
security_groups:
  - {{id: sg-fn, vpc_id: vpc-one, name: fn, description: the function}}
  - id: sg-db
    vpc_id: vpc-one
    name: db
    description: databases
    ingress:
      - {{protocol: tcp, ports: 5432, security_group_id: sg-fn}}
network_interfaces:
  - {{id: eni-db1, subnet_id: subnet-db, private_ip: 10.1.2.10, security_group_ids: [sg-db]}}
  - {{id: eni-db2, subnet_id: subnet-db, private_ip: 10.1.2.11, security_group_ids: [sg-db]}}
  - {{id: eni-filler, subnet_id: subnet-fn, private_ip: 10.1.1.4, secondary_private_ips: [{filler}],
     security_group_ids: [sg-fn]}}
functions:
  - name: api
    role: {{name: api-role, managed_policies: [AWSLambdaVPCAccessExecutionRole]}}
    vpc_config: {{subnet_ids: [subnet-fn], security_group_ids: [sg-fn]}}
"""


def one_pool_network(tmp_path, *, addresses_left_after_first_eni: int | None = None) -> hp.Network:
    """``None``: a /24 with room to spare; else a /28 with that many addresses left once the
    pool's first Hyperplane ENI took one."""
    if addresses_left_after_first_eni is None:
        cidr, filler = "10.1.1.0/24", []
    else:  # usable: .4-.14; the filler holds .4 and what else must be taken
        cidr, taken = "10.1.1.0/28", 11 - 1 - addresses_left_after_first_eni
        filler = [f"10.1.1.{5 + k}" for k in range(taken - 1)]
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY.format(cidr=cidr, filler=", ".join(filler)))
    return hp.Network.load(path)


def held(executions: int, connections: list[dict], duration: str = "30s", **function) -> Workload:
    """``executions`` environments each in one long invocation holding ``connections`` open."""
    return Workload.from_dict({"duration": duration, "step": "5s", "functions": [
        {"function": function.pop("function", "orders"), "concurrency": executions, "duration": "900s",
         "connections": [dict(open_for="900s", **c) for c in connections], **function}]})


def nat_with_addresses(count: int) -> hp.Network:
    """The example network with ``count`` addresses (and Elastic IPs) on nat-a."""
    net = hp.Network.example()
    nat = net.topology.nat_gateways["nat-a"]
    extra = range(1, count)
    nat = dataclasses.replace(
        nat, private_ips=nat.private_ips + tuple(IPv4Address(f"10.0.0.{10 + k}") for k in extra),
        elastic_ips=nat.elastic_ips + tuple(ElasticIp(f"eipalloc-nat-a-{k}", IPv4Address(f"203.0.113.{10 + k}"))
                                            for k in extra))
    return hp.Network(net.topology.replace(nat), ready=True)


# -- NAT gateway: 55,000 connections per address and destination ----------------------------

def test_one_nat_address_refuses_exactly_the_connections_past_55000():
    # AWS (NAT gateway basics): "A NAT gateway can support up to 55,000 simultaneous
    # connections to each unique destination."
    report = load_test(hp.Network.example(), held(55_100, [{"to": "198.51.100.7:443", "name": "api.example.com"}]))
    assert report.refused == {"NAT_PORT_ALLOCATION_ERROR": 100}
    assert report.opened == 55_000
    assert report.peak("nat_destination_connections", "nat-a 203.0.113.10 -> api.example.com") == 55_000
    hit = report.hits[0]
    assert hit.limit == "NAT_PORT_ALLOCATION_ERROR" and "api.example.com" in hit.where
    assert "second Elastic IP" in hit.advice
    assert not report.within_limits


def test_a_second_nat_address_doubles_the_limit():
    # AWS: "Each IPv4 address can support up to 55,000 simultaneous connections to each unique
    # destination" (up to 8 addresses per NAT gateway).
    workload = held(1_102, [{"to": "198.51.100.7:443", "name": "api", "count": 100}])  # 110,200 connections
    one = load_test(hp.Network.example(), workload)
    two = load_test(nat_with_addresses(2), workload)
    assert one.refused == {"NAT_PORT_ALLOCATION_ERROR": 110_200 - 55_000}
    assert two.refused == {"NAT_PORT_ALLOCATION_ERROR": 200}
    assert two.opened == 110_000
    assert two.peak("nat_destination_connections", "nat-a 203.0.113.10 -> api") == 55_000
    assert two.peak("nat_destination_connections", "nat-a 203.0.113.11 -> api") == 55_000


def test_another_destination_has_its_own_55000():
    # AWS: "If the destination IP address, the destination port, or the protocol (TCP/UDP/ICMP)
    # changes, you can create an additional 55,000 connections."
    workload = held(1_000, [{"to": "internet:443", "destinations": 2, "count": 60}])  # 30,000 each
    report = load_test(hp.Network.example(), workload)
    assert report.within_limits and report.opened == 60_000


# -- Hyperplane ENIs: 65,000 connections each, overflow ENIs, subnet addresses --------------

def two_databases(per_execution: int) -> list[dict]:
    half = per_execution // 2
    return [{"to": "eni-db1:5432", "count": per_execution - half}, {"to": "eni-db2:5432", "count": half}]


def test_the_pool_adds_its_second_hyperplane_eni_at_the_65001st_connection(tmp_path):
    # AWS (Lambda, VPC networking): "Each Hyperplane ENI supports up to 65,000
    # connections/ports. If connection limits are exceeded, Lambda scales the number of
    # network interfaces".
    full = load_test(one_pool_network(tmp_path), held(500, two_databases(130), function="api"))  # 65,000
    assert full.within_limits and full.opened == 65_000
    assert [(e["overflow"], full.peak("eni_connections", e["id"])) for e in full.enis] == [(False, 65_000)]
    one_more = load_test(one_pool_network(tmp_path), held(461, two_databases(141), function="api"))  # 65,001
    assert one_more.within_limits and one_more.opened == 65_001
    first, second = one_more.enis
    assert one_more.peak("eni_connections", first["id"]) == 65_000
    assert second["overflow"] and one_more.peak("eni_connections", second["id"]) == 1
    assert [h.limit for h in one_more.hits] == ["OVERFLOW_ENI"]
    assert one_more.series["enis"]["subnet-fn sg-fn"][-1] == 2


def test_a_subnet_without_a_free_address_refuses_the_65001st_connection(tmp_path):
    # AWS (Lambda function states): "SubnetOutOfIPAddresses – All IP addresses in a subnet
    # are in use." The overflow ENI cannot be created: the connection is refused.
    net = one_pool_network(tmp_path, addresses_left_after_first_eni=0)
    report = load_test(net, held(461, two_databases(141), function="api"))
    assert report.refused == {"ENI_CAPACITY": 1}
    assert report.opened == 65_000
    assert report.series["subnet_addresses_left"]["subnet-fn"][-1] == 0
    hit = next(h for h in report.hits if h.limit == "ENI_CAPACITY")
    assert "SubnetOutOfIPAddresses" in hit.where
    assert len(report.enis) == 1


# -- connection reuse -----------------------------------------------------------------------

def test_reusing_a_connection_across_invocations_opens_one_per_environment():
    # AWS (Lambda best practices): "Take advantage of execution environment reuse to improve the
    # performance of your function. Initialize SDK clients and database connections outside of
    # the function handler".
    def run(reuse: bool):
        w = Workload.from_dict({"duration": "120s", "functions": [{"function": "orders", "concurrency": 100,
                                "duration": "1s", "connections": [{"to": "198.51.100.7:443", "name": "api",
                                                                   "reuse": reuse, "open_for": "500ms"}]}]})
        return load_test(hp.Network.example(), w)

    pooled, fresh = run(True), run(False)
    assert pooled.invocations == fresh.invocations == {"orders": 100 * 120}
    assert pooled.opened == 100
    assert fresh.opened == 100 * 120
    # a closed connection stays in the NAT gateway's table for its closing timeout (350 s)
    assert pooled.peak("nat_destination_connections") == 100
    assert fresh.peak("nat_destination_connections") >= 100 * 119


# -- idle timeouts --------------------------------------------------------------------------

def idle(keepalive: str) -> Workload:
    return held(10, [{"to": "198.51.100.7:443", "name": "api", "keepalive": keepalive}], duration="800s")


def test_connections_idle_past_350_seconds_through_a_nat_gateway_are_cut():
    # AWS (troubleshooting NAT gateways): "If a connection that's using a NAT gateway is idle
    # for 350 seconds or more, the connection times out."
    # The Hyperplane ENI keeps its side for an hour here, so the NAT gateway is what cuts.
    settings = hp.LambdaSettings(timeouts=Timeouts(tcp_established=3600.0))
    cut = load_test(hp.Network.example(lambda_settings=settings), idle("400s"))
    assert cut.cut == {"NAT_NO_CONNECTION_RST": 10}
    assert cut.hits[0].limit == "NAT_NO_CONNECTION_RST" and 400 <= cut.hits[0].t < 410
    kept = load_test(hp.Network.example(lambda_settings=settings), idle("300s"))
    assert kept.within_limits and kept.cut == {}


def test_the_hyperplane_eni_forgets_idle_connections_too():
    # Its established timeout is the emulator's choice: 350 s, as the NAT gateway's.
    report = load_test(hp.Network.example(), idle("400s"))
    assert report.cut == {"V2N_NO_CONNECTION": 10}


def test_a_pooled_connection_of_a_frozen_environment_is_cut_and_opened_again():
    # 20 executions for 5 min, then 10 for 10 min, then 20 again: the 10 environments that
    # waited 10 min find their pooled connection gone, and open a new one.
    w = Workload.from_dict({"duration": "20m", "functions": [{
        "function": "orders", "concurrency": 20, "duration": "1s", "keep_warm": "1h",
        "bursts": [{"at": "5m", "add": -10, "for": "10m"}],
        "connections": [{"to": "198.51.100.7:443", "reuse": True}]}]})
    report = load_test(hp.Network.example(), w)
    assert report.cut == {"V2N_NO_CONNECTION": 10}
    assert report.opened == 30


# -- the Lambda service ---------------------------------------------------------------------

def test_invocations_of_a_pending_function_are_refused():
    # AWS: "A function is in the Pending state while Lambda creates the resources"; its
    # Hyperplane ENIs take eni_creation_seconds (60 s) here.
    w = Workload.from_dict({"duration": "90s", "functions": [{"function": "orders", "concurrency": 5,
                            "duration": "10s", "connections": [{"to": "eni-cache:6379"}]}]})
    report = load_test(hp.Network.example(ready=False), w)
    assert report.refused["FUNCTION_PENDING"] == 5 * 6  # six invocations each in the first minute
    assert report.opened == 5 * 3
    assert report.hits[0].limit == "FUNCTION_PENDING" and report.hits[0].t < 10


# -- the sweep ------------------------------------------------------------------------------

def test_the_sweep_finds_the_largest_concurrency_within_the_nat_limit():
    w = held(10, [{"to": "198.51.100.7:443", "count": 1000}], duration="10s")  # 1,000 per execution
    result = sweep(hp.Network.example, w, *parse_sweep("concurrency=10..100"))
    assert result.best == 55
    assert "largest concurrency within every limit: 55" in result.summary()


# -- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"duration": "soon"}, "w.yaml: duration: 'soon' is not a duration"),
    ({"functions": [{"function": "orders", "rate": 5, "concurrency": 5}]},
     "w.yaml: functions[0]: give exactly one of concurrency"),
    ({"functions": [{"function": "orders", "rate": 5, "connections": [{"to": "db"}]}]},
     "w.yaml: functions[0].connections[0].to: 'db' is not DESTINATION:PORT"),
    ({"functions": [{"function": "orders", "rate": 5, "connections": [{"to": "x:1", "keepalive": "often"}]}]},
     "w.yaml: functions[0].connections[0].keepalive: 'often' is not a duration"),
    ({"functions": [{"function": "orders", "rate": 5, "burst": []}]}, "w.yaml: functions[0].burst: unknown key"),
])
def test_a_mistake_in_the_workload_is_one_error_naming_the_place(tmp_path, change, message):
    import yaml
    doc = {"functions": [{"function": "orders", "rate": 5}], **change}
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(WorkloadError) as error:
        Workload.load(path)
    assert str(error.value).replace(str(tmp_path) + "/", "").startswith(message)


def test_what_the_network_lacks_is_named_too():
    w = Workload.from_dict({"functions": [{"function": "orders", "rate": 1, "connections": [{"to": "eni-nope:1"}]}]},
                           "w.yaml")
    with pytest.raises(WorkloadError, match=r"^w.yaml: functions\[0\].connections\[0\].to: no ENI eni-nope"):
        load_test(hp.Network.example(), w)
    w = Workload.from_dict({"functions": [{"function": "thumbnail", "rate": 1}]}, "w.yaml")
    with pytest.raises(WorkloadError, match=r"functions\[0\].function: thumbnail has no VpcConfig"):
        load_test(hp.Network.example(), w)

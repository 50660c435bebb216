"""Connectivity in a user's own test suite: the pytest plugin and hyperplane.testing (issue 11 §4).

Each test here writes a user's test file and runs pytest on it (pytester), with the plugin as
the package installs it (the ``pytest11`` entry point).
"""

from __future__ import annotations

import importlib.metadata

import pytest

import hyperplane as hp
from hyperplane.testing import assert_blocked, assert_connects, assert_reachability

pytest_plugins = ["pytester"]

USER_TESTS = '''
from hyperplane.testing import assert_blocked, assert_connects, assert_reachability


def test_orders_reaches_the_cache(hyperplane_network):
    assert_connects(hyperplane_network, "orders", "cache:6379")


def test_thumbnail_stays_out_of_the_vpc(hyperplane_network):
    assert_blocked(hyperplane_network, "thumbnail", "db:5432")


def test_orders_reaches_the_database(hyperplane_network):
    assert_connects(hyperplane_network, "orders", "db:5432")
'''

SHOP = """
account_id: "123456789012"
region: us-east-1
vpcs:
  - {id: vpc-shop, cidr: 10.1.0.0/16}
subnets:
  - {id: subnet-a, vpc_id: vpc-shop, cidr: 10.1.1.0/24, availability_zone: us-east-1a}
security_groups:
  - {id: sg-fn, vpc_id: vpc-shop}
  - id: sg-db
    vpc_id: vpc-shop
    ingress: [{protocol: tcp, ports: 5432, security_group_id: sg-fn}]
network_interfaces:
  - {id: eni-db, subnet_id: subnet-a, private_ip: 10.1.1.10, security_group_ids: [sg-db], kind: rds}
functions:
  - name: checkout
    vpc_config: {subnet_ids: [subnet-a], security_group_ids: [sg-fn]}
"""

SHOP_TESTS = '''
from hyperplane.testing import assert_connects


def test_checkout_reaches_its_database(hyperplane_network):
    assert_connects(hyperplane_network, "checkout", "db:5432")
'''


def test_the_package_installs_the_plugin_for_pytest():
    plugins = {e.name: e.value for e in importlib.metadata.entry_points(group="pytest11")}
    assert plugins.get("hyperplane") == "hyperplane.pytest_plugin"


def test_a_users_suite_passes_where_the_network_connects_and_fails_with_the_trace_where_it_does_not(pytester):
    pytester.makepyfile(test_shop=USER_TESTS)
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=2, failed=1)
    # the failure says what was expected, what happened and where, then the trace leg by leg
    result.stdout.fnmatch_lines([
        "*test_orders_reaches_the_database*",
        "E*AssertionError: expected orders -> db:5432/tcp to be connected, but it fails from subnet-private-a: "
        "the reply (SYN-ACK) is denied out by acl-data (rule *: implicit deny)",
        "E*connection orders -> db (10.0.20.10):5432/tcp from subnet-private-a",
        "E*-- SYN (request)",
        "E*ACCEPTED (DELIVERED): delivered to the destination ENI",
        "E*-- SYN-ACK (reply)",
        "E*nacl-out     acl-data               deny      subnet-data-a: rule * (no numbered rule matches: implicit deny)",
        "E*NACLs are stateless: acl-data needs an outbound rule allowing tcp 1024-65535 to 10.0.10.0/24",
    ])
    # the report shows the user's line, not the helpers' insides
    assert "hyperplane/testing.py" not in result.stdout.str()


def test_the_marker_names_the_topology_of_a_test_relative_to_its_file(pytester):
    pytester.mkdir("network").joinpath("shop.yaml").write_text(SHOP)
    pytester.makepyfile(test_checkout='import pytest\n\npytestmark = pytest.mark.hyperplane_topology("network/shop.yaml")\n'
                        + SHOP_TESTS)
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_the_command_line_and_the_ini_file_name_the_topology_of_every_test(pytester):
    pytester.mkdir("network").joinpath("shop.yaml").write_text(SHOP)
    pytester.makepyfile(test_checkout=SHOP_TESTS)
    pytester.runpytest("--hyperplane-topology", "network/shop.yaml").assert_outcomes(passed=1)
    # without either: the built-in example, which has no function called checkout
    pytester.runpytest().assert_outcomes(failed=1)
    pytester.makeini("[pytest]\nhyperplane_topology = network/shop.yaml\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_each_test_gets_a_fresh_network_from_a_topology_parsed_once(pytester):
    pytester.makepyfile(test_fresh='''
seen = []


def test_one(hyperplane_network):
    hyperplane_network.connect("orders", "cache:6379")
    seen.append(hyperplane_network)


def test_two(hyperplane_network):
    (first,) = seen
    assert hyperplane_network is not first
    assert hyperplane_network.topology is first.topology  # parsed once per session
    assert hyperplane_network.now == 0.0
''')
    pytester.runpytest().assert_outcomes(passed=2)


def test_a_bad_topology_file_is_one_line_naming_it(pytester):
    pytester.makefile(".yaml", broken="vpcs:\n  - {id: vpc-a, cidr: 10.0.300.0/16}\n")
    pytester.makepyfile(test_broken='import pytest\n\n\n@pytest.mark.hyperplane_topology("broken.yaml")\n'
                        'def test_x(hyperplane_network):\n    pass\n')
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*hyperplane_network: *broken.yaml: vpcs[[]0[]].cidr*"])
    assert "Traceback" not in result.stdout.str()


# -- the helpers on their own ---------------------------------------------------------------------

def test_assert_blocked_can_name_the_leg_that_must_fail():
    # AWS: "Network ACLs are stateless, which means that responses to allowed inbound traffic
    # are subject to the rules for outbound traffic (and vice versa)."
    net = hp.Network.example()
    result = assert_blocked(net, "orders", "db:5432", leg="reply")
    assert result.resource == "acl-data"
    with pytest.raises(AssertionError) as caught:
        assert_blocked(net, "orders", "db:5432", leg="request")
    assert str(caught.value).startswith(
        "expected orders -> db:5432/tcp to be blocked on request, but it fails from subnet-private-a: the reply")


def test_assert_blocked_fails_when_any_subnet_connects_and_shows_that_connection():
    net = hp.Network.example()
    with pytest.raises(AssertionError) as caught:
        assert_blocked(net, "orders", "cache:6379")
    message = str(caught.value)
    assert message.splitlines()[0] == "expected orders -> cache:6379/tcp to be blocked, but it connects from subnet-private-a"
    assert "-- data reply (reply)\nACCEPTED" in message


def test_assert_connects_returns_the_connection_for_more_questions():
    result = assert_connects(hp.Network.example(), "orders", "internet:443")
    assert [s.subnet for s in result.subnets] == ["subnet-private-a", "subnet-private-b"]


def test_assert_reachability_checks_many_destinations_with_one_question():
    net = hp.Network.example()
    answer = assert_reachability(net, "orders", {
        "cache:6379": True,
        "db:5432": "blocked on reply",  # acl-data: the classic stateless NACL
        "db:22": "blocked on request",  # neither sg-db nor acl-data admits SSH
        "internet:443": "connected",  # through nat-a
        "secretsmanager.us-east-1.amazonaws.com:443": True,  # the interface endpoint
    })
    assert answer.connected("eni-cache", 6379)


def test_assert_reachability_lists_every_mismatch_then_the_trace_of_the_first():
    with pytest.raises(AssertionError) as caught:
        assert_reachability(hp.Network.example(), "orders", {"cache:6379": False, "db:5432": True, "internet:443": True})
    lines = str(caught.value).splitlines()
    assert lines[:3] == [
        "orders: 2 of 3 expected verdicts do not hold",
        "  cache:6379: expected blocked, but it connects from subnet-private-a on tcp 6379",
        "  db:5432: expected connected, but it fails from subnet-private-a on tcp 5432 when the reply port is "
        "1024-5431, 5433-65535: the reply (SYN-ACK) at acl-data (rule *: implicit deny)",
    ]
    assert lines[3] == "connection orders -> cache (10.0.21.10):6379/tcp from subnet-private-a"
    assert lines[-1] == "connected"

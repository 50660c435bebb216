"""What the CloudFormation and Terraform readers share (hyperplane/formats/_iac.py): ids that
are the same on every load, addresses allocated as AWS allocates them, one report of what is
not emulated."""

import warnings

import pytest

from hyperplane.errors import SubnetOutOfAddresses
from hyperplane.formats._iac import NotEmulated, first_free_address, synthesized_id
from hyperplane.formats.snapshot_report import SnapshotWarning


def test_a_logical_id_gets_the_same_physical_id_on_every_load_and_another_in_another_stack():
    first = synthesized_id("subnet", "PrivateSubnetA")
    assert first == synthesized_id("subnet", "PrivateSubnetA")
    assert first.startswith("subnet-") and len(first) == len("subnet-") + 17
    int(first[len("subnet-"):], 16)
    assert synthesized_id("subnet", "PrivateSubnetB") != first
    assert synthesized_id("subnet", "PrivateSubnetA", scope="OtherStack") != first


def test_the_first_free_address_skips_the_five_addresses_aws_reserves():
    # AWS: "The first four IP addresses and the last IP address in each subnet CIDR block are not
    # available for your use" (network, VPC router, DNS, future use, broadcast).
    assert first_free_address("10.0.1.0/24", []) == "10.0.1.4"
    assert first_free_address("10.0.1.0/24", ["10.0.1.4", "10.0.1.5"]) == "10.0.1.6"
    with pytest.raises(SubnetOutOfAddresses):
        first_free_address("10.0.1.0/28", [f"10.0.1.{i}" for i in range(4, 15)])


def test_what_is_not_emulated_is_warned_once_by_kind_and_count():
    skipped = NotEmulated("template.yaml")
    skipped.add("AWS::ElasticLoadBalancingV2::LoadBalancer (load balancers)")
    skipped.add("AWS::ElasticLoadBalancingV2::LoadBalancer (load balancers)")
    skipped.add("AWS::EC2::TransitGateway (transit gateways)")
    with pytest.warns(SnapshotWarning) as caught:
        report = skipped.report()
    assert len(caught) == 1
    assert str(caught[0].message) == ("template.yaml: not emulated (skipped): "
                                      "AWS::ElasticLoadBalancingV2::LoadBalancer (load balancers): 2, "
                                      "AWS::EC2::TransitGateway (transit gateways): 1")
    assert report.skipped["AWS::EC2::TransitGateway (transit gateways)"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert NotEmulated("empty.yaml").report().skipped == {}

"""A template that is not valid: one error naming the file, the logical id, the property path and
the problem, never a traceback."""

import textwrap

import pytest

import hyperplane as hp
from hyperplane.errors import TopologyError

BASE = """
AWSTemplateFormatVersion: '2010-09-09'
Parameters:
  VpcCidr:
    Type: String
    Default: 10.0.0.0/16
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: !Ref VpcCidr
  PrivateSubnetA:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: 10.0.1.0/24
      AvailabilityZone: !Select [0, !GetAZs '']
  PrivateRouteTable:
    Type: AWS::EC2::RouteTable
    Properties:
      VpcId: !Ref Vpc
"""


def load(tmp_path, extra="", base=BASE, **kw):
    path = tmp_path / "template.yaml"
    path.write_text(base + textwrap.indent(textwrap.dedent(extra), "  "))
    return hp.Network.load(path, **kw)


def error(tmp_path, extra="", base=BASE, **kw) -> str:
    with pytest.raises(TopologyError) as caught:
        load(tmp_path, extra, base, **kw)
    return str(caught.value)


def test_the_base_template_loads_in_the_region_the_user_gives(tmp_path):
    net = load(tmp_path, region="eu-west-1")
    assert [s.availability_zone for s in net.topology.subnets.values()] == ["eu-west-1a"]


def test_a_route_to_a_missing_resource_names_the_route_and_the_property(tmp_path):
    assert error(tmp_path, """
      PrivateRoute:
        Type: AWS::EC2::Route
        Properties:
          RouteTableId: !Ref PrivateRouteTable
          DestinationCidrBlock: 0.0.0.0/0
          NatGatewayId: !Ref NatGatewayB
    """) == ("template.yaml: Resources.PrivateRoute.Properties.NatGatewayId: "
             "!Ref NatGatewayB names no resource or parameter")


def test_a_bad_cidr_is_named_at_its_property(tmp_path):
    assert error(tmp_path, """
      PublicSubnet:
        Type: AWS::EC2::Subnet
        Properties:
          VpcId: !Ref Vpc
          CidrBlock: 10.0.300.0/24
    """) == "template.yaml: Resources.PublicSubnet.Properties.CidrBlock: '10.0.300.0/24' is not a valid IPv4 CIDR"


def test_a_parameter_without_default_or_value_is_one_error_naming_it(tmp_path):
    base = BASE.replace("    Default: 10.0.0.0/16\n", "")
    assert error(tmp_path, base=base) == (
        "template.yaml: Parameters.VpcCidr: parameter VpcCidr has no Default and no value was passed "
        "(parameters={'VpcCidr': ...}, --parameter VpcCidr=...)")
    # the value the user passes is taken
    net = load(tmp_path, base=base, parameters={"VpcCidr": "10.0.0.0/17"})
    assert [str(c) for v in net.topology.vpcs.values() for c in v.cidrs] == ["10.0.0.0/17"]


def test_an_import_value_is_taken_only_from_what_the_user_passes(tmp_path):
    extra = """
      Db:
        Type: AWS::EC2::NetworkInterface
        Properties:
          SubnetId: !ImportValue shared-db-subnet
    """
    assert "!ImportValue shared-db-subnet: no stack of this load exports it" in error(tmp_path, extra)


def test_a_circular_reference_is_an_error(tmp_path):
    # CloudFormation: "Circular dependency between resources"
    assert error(tmp_path, """
      GroupA:
        Type: AWS::EC2::SecurityGroup
        Properties:
          GroupDescription: a
          VpcId: !Ref Vpc
          SecurityGroupIngress:
            - {IpProtocol: tcp, FromPort: 443, ToPort: 443, SourceSecurityGroupId: !Ref GroupB}
      GroupB:
        Type: AWS::EC2::SecurityGroup
        Properties:
          GroupDescription: b
          VpcId: !Ref Vpc
          SecurityGroupIngress:
            - {IpProtocol: tcp, FromPort: 443, ToPort: 443, SourceSecurityGroupId: !Ref GroupA}
    """) == "template.yaml: Resources.GroupA: circular dependency between resources: GroupA -> GroupB -> GroupA"


def test_an_unknown_intrinsic_function_is_named(tmp_path):
    assert error(tmp_path, """
      Extra:
        Type: AWS::EC2::Subnet
        Properties:
          VpcId: !Ref Vpc
          CidrBlock: {"Fn::Concat": ["10.0.2.0", "/24"]}
    """) == "template.yaml: Resources.Extra.Properties.CidrBlock: unknown intrinsic function Fn::Concat"


def test_a_property_of_the_wrong_type_is_named(tmp_path):
    assert error(tmp_path, """
      Extra:
        Type: AWS::EC2::Subnet
        Properties:
          VpcId: [!Ref Vpc]
          CidrBlock: 10.0.2.0/24
    """) == "template.yaml: Resources.Extra.Properties.VpcId: VpcId must be a string, not a list"
    assert error(tmp_path, """
      Extra:
        Type: AWS::EC2::Subnet
        Properties:
          VpcId: !Ref PrivateRouteTable
          CidrBlock: 10.0.2.0/24
    """).startswith("template.yaml: Resources.Extra.Properties.VpcId: 'rtb-")


def test_a_resource_without_type_is_named(tmp_path):
    assert error(tmp_path, """
      Extra:
        Properties: {VpcId: !Ref Vpc}
    """) == "template.yaml: Resources.Extra: a resource must be a mapping with a Type"


def test_a_yaml_syntax_error_names_its_line(tmp_path):
    message = error(tmp_path, "Broken: [\n")
    assert message.startswith("template.yaml: line ")

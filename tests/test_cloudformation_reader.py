"""CloudFormation templates, SAM templates and CDK assemblies as users write them: what each
construct becomes in the emulated network, asked through Network.send and Result.reply."""

import json
import textwrap
import warnings

import pytest
from scapy.all import IP, TCP

import hyperplane as hp
from hyperplane.formats.inputs import input_kind
from hyperplane.formats.snapshot_report import SnapshotWarning
from hyperplane.reasons import Reason

NETWORK = """
AWSTemplateFormatVersion: '2010-09-09'
Parameters:
  Env: {Type: String, Default: prod, AllowedValues: [prod, dev]}
  BastionAmi: {Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>', Default: /ami/latest}
  BastionAddress: {Type: 'AWS::SSM::Parameter::Value<String>', Default: /network/bastion-address}
Mappings:
  Cidrs:
    prod: {Vpc: 10.0.0.0/16}
    dev: {Vpc: 10.1.0.0/16}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Not [{Condition: IsProd}]
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: !FindInMap [Cidrs, !Ref Env, Vpc]}
  Igw: {Type: AWS::EC2::InternetGateway}
  IgwAttachment:
    Type: AWS::EC2::VPCGatewayAttachment
    Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}
  PublicSubnet:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: !Select [0, !Cidr [!GetAtt Vpc.CidrBlock, 4, 8]]
      AvailabilityZone: !Select [0, !GetAZs '']
  PrivateSubnetA:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: !Select [1, !Cidr [!GetAtt Vpc.CidrBlock, 4, 8]]
      AvailabilityZone: !Select [0, !GetAZs '']
  PublicRoutes:
    Type: AWS::EC2::RouteTable
    Properties: {VpcId: !Ref Vpc}
  PublicDefault:
    Type: AWS::EC2::Route
    DependsOn: IgwAttachment
    Properties: {RouteTableId: !Ref PublicRoutes, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}
  PublicAssociation:
    Type: AWS::EC2::SubnetRouteTableAssociation
    Properties: {SubnetId: !Ref PublicSubnet, RouteTableId: !Ref PublicRoutes}
  NatIp: {Type: AWS::EC2::EIP, Properties: {Domain: vpc}}
  Nat:
    Type: AWS::EC2::NatGateway
    Properties: {SubnetId: !Ref PublicSubnet, AllocationId: !GetAtt NatIp.AllocationId}
  PrivateRoutes:
    Type: AWS::EC2::RouteTable
    Properties: {VpcId: !Ref Vpc}
  PrivateDefault:
    Type: AWS::EC2::Route
    Condition: IsProd
    Properties: {RouteTableId: !Ref PrivateRoutes, DestinationCidrBlock: 0.0.0.0/0, NatGatewayId: !Ref Nat}
  PrivateAssociation:
    Type: AWS::EC2::SubnetRouteTableAssociation
    Properties: {SubnetId: !Ref PrivateSubnetA, RouteTableId: !Ref PrivateRoutes}
  AppGroup:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: !Sub '${Env} app in ${AWS::Region}'
      VpcId: !Ref Vpc
      SecurityGroupEgress:
        - {IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIp: 0.0.0.0/0}
        - {IpProtocol: tcp, FromPort: 5432, ToPort: 5432, DestinationSecurityGroupId: !Ref DbGroup}
  DbGroup:
    Type: AWS::EC2::SecurityGroup
    Properties: {GroupDescription: db, VpcId: !Ref Vpc}
  DbFromApp:
    Type: AWS::EC2::SecurityGroupIngress
    Properties: {GroupId: !Ref DbGroup, IpProtocol: tcp, FromPort: 5432, ToPort: 5432, SourceSecurityGroupId: !Ref AppGroup}
  DbSubnets:
    Type: AWS::RDS::DBSubnetGroup
    Properties: {DBSubnetGroupDescription: db, SubnetIds: [!Ref PrivateSubnetA]}
  Db:
    Type: AWS::RDS::DBInstance
    Properties:
      Engine: postgres
      DBInstanceClass: db.t4g.micro
      DBSubnetGroupName: !Ref DbSubnets
      VPCSecurityGroups: [!GetAtt DbGroup.GroupId]
  Fixed:
    Type: AWS::EC2::NetworkInterface
    Properties:
      SubnetId: !Ref PrivateSubnetA
      PrivateIpAddress: !If [IsProd, 10.0.1.4, !Ref 'AWS::NoValue']
      GroupSet: [!Ref DbGroup]
  Bastion:
    Type: AWS::EC2::Instance
    Condition: IsDev
    Properties: {ImageId: !Ref BastionAmi, SubnetId: !Ref PublicSubnet, PrivateIpAddress: !Ref BastionAddress}
  Balancer:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {Subnets: [!Ref PublicSubnet]}
  Logs: {Type: AWS::S3::Bucket}
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {}
      ManagedPolicyArns: [!Sub 'arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole']
  Api:
    Type: AWS::Lambda::Function
    Properties:
      Role: !GetAtt Role.Arn
      Environment: {Variables: {DB: !GetAtt Db.Endpoint.Address}}
      VpcConfig:
        SubnetIds: !Split [',', !Join [',', [!Ref PrivateSubnetA]]]
        SecurityGroupIds: [!If [IsProd, !Ref AppGroup, !Ref DbGroup]]
  ApiV1: {Type: AWS::Lambda::Version, Properties: {FunctionName: !Ref Api}}
  ApiV2: {Type: AWS::Lambda::Version, Properties: {FunctionName: !GetAtt Api.Arn}}
Outputs:
  DbAddress: {Value: !GetAtt Db.Endpoint.Address, Export: {Name: db-address}}
"""


def write(tmp_path, text, name="network.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load(path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = hp.Network.load(path, **kw)
    return net, [w for w in caught if issubclass(w.category, SnapshotWarning)]


def named(resources, name):
    return next(r for r in resources.values() if r.name == name)


def test_a_template_becomes_a_network_whose_resources_carry_their_logical_ids(tmp_path):
    net, caught = load(write(tmp_path, NETWORK))
    t = net.topology
    assert str(named(t.subnets, "PrivateSubnetA").cidr) == "10.0.1.0/24"  # !Cidr of !FindInMap of !Ref Env
    assert named(t.security_groups, "AppGroup").description == "prod app in us-east-1"
    assert t.function("Api").versions and len(t.function("Api").versions) == 2
    # the load balancer is reported once, by kind; the bucket and the role say nothing
    assert [str(w.message) for w in caught] == [
        "network.yaml: not emulated (skipped): AWS::ElasticLoadBalancingV2::LoadBalancer (load balancers): 1"]
    # ids are synthesized from the logical ids: the same on every load
    again, _ = load(write(tmp_path, NETWORK, "copy.yaml"))
    assert list(again.topology.subnets) == list(t.subnets) and list(t.subnets)[0].startswith("subnet-")


def test_addresses_the_template_does_not_fix_are_the_first_free_ones_of_their_subnet(tmp_path):
    net, _ = load(write(tmp_path, NETWORK))
    t = net.topology
    # AWS reserves .0-.3; the ENI fixes .4, so the database (its one ENI, in its subnet group's
    # subnet, with its groups) gets .5; the NAT gateway, in the public subnet, .4 there
    db = next(e for e in t.network_interfaces.values() if e.kind == "rds")
    assert (str(db.private_ip), db.subnet_id) == ("10.0.1.5", named(t.subnets, "PrivateSubnetA").id)
    assert db.security_group_ids == (named(t.security_groups, "DbGroup").id,)
    assert str(named(t.nat_gateways, "Nat").private_ip) == "10.0.0.4"

    api = net.function("Api")
    r = api.send(IP(dst="10.0.1.5") / TCP(dport=5432, flags="S"))
    assert r.reason == Reason.DELIVERED and r.reply(TCP(flags="SA")).reason == Reason.DELIVERED_TO_FUNCTION
    # the inline egress replaced AWS's allow-all rule: only 443 and the database leave
    assert api.send(IP(dst="93.184.216.34") / TCP(dport=443, flags="S")).reason == Reason.EXITED_TO_INTERNET
    assert api.send(IP(dst="93.184.216.34") / TCP(dport=80, flags="S")).reason == Reason.SG_EGRESS_DENY


def test_conditions_and_parameters_change_what_is_built(tmp_path):
    path = write(tmp_path, NETWORK)
    # dev: no route to the NAT gateway (its Condition is false), the bastion is built, and its
    # address, an SSM parameter, must be passed: it is not read from AWS (its AMI, which the
    # network does not depend on, need not be)
    with pytest.raises(hp.TopologyError, match=r"Resources.Bastion.Properties.PrivateIpAddress: !Ref BastionAddress: "
                                               r"an SSM parameter .* is not read from AWS: pass its value"):
        load(path, parameters={"Env": "dev"})
    with pytest.raises(hp.TopologyError, match=r"Parameters.Env: 'test' is not one of the AllowedValues"):
        load(path, parameters={"Env": "test"})
    net, _ = load(path, parameters={"Env": "dev", "BastionAddress": "10.1.0.9"}, region="eu-central-1")
    t = net.topology
    assert str(named(t.vpcs, "Vpc").cidrs[0]) == "10.1.0.0/16"
    assert named(t.subnets, "PublicSubnet").availability_zone == "eu-central-1a"
    assert [str(e.private_ip) for e in t.network_interfaces.values() if e.instance_id] == ["10.1.0.9"]
    assert not t.route_table_of(named(t.subnets, "PrivateSubnetA").id).routes[0].target.startswith("nat-")
    assert t.function("Api").vpc_config.security_group_ids == (named(t.security_groups, "DbGroup").id,)
    # dev: !If gave AWS::NoValue, so the ENI's address is not fixed: ENIs are given theirs
    # before databases (docs/inputs.md), so it takes .4 and the database .5
    fixed = next(e for e in t.network_interfaces.values() if e.description == "Fixed")
    db = next(e for e in t.network_interfaces.values() if e.kind == "rds")
    assert (str(fixed.private_ip), str(db.private_ip)) == ("10.1.1.4", "10.1.1.5")


def test_a_standalone_egress_rule_keeps_the_allow_all_rule_aws_creates(tmp_path):
    # AWS: "the default rule is removed only when you specify one or more egress rules in the
    # SecurityGroupEgress property" of the group itself.
    net, _ = load(write(tmp_path, """
        AWSTemplateFormatVersion: '2010-09-09'
        Resources:
          Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
          Group: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: g, VpcId: !Ref Vpc}}
          Extra:
            Type: AWS::EC2::SecurityGroupEgress
            Properties: {GroupId: !GetAtt Group.GroupId, IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIp: 10.0.0.0/8}
    """))
    egress = named(net.topology.security_groups, "Group").egress
    assert [(r.protocol, str(r.cidr)) for r in egress] == [(-1, "0.0.0.0/0"), (6, "10.0.0.0/8")]


def test_a_cdk_assembly_is_one_network_and_its_stacks_import_each_others_exports(tmp_path):
    out = tmp_path / "cdk.out"
    out.mkdir()
    network = {"Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.4.0.0/16"}},
        "Private": {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.4.1.0/24", "AvailabilityZone": {"Fn::Select": [0, {"Fn::GetAZs": ""}]}}},
        "Db": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "db", "VpcId": {"Ref": "Vpc"}}},
        "App": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "app", "VpcId": {"Ref": "Vpc"}}},
        "DbFromApp": {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
            "GroupId": {"Ref": "Db"}, "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
            "SourceSecurityGroupId": {"Ref": "App"}}},
        "DbEni": {"Type": "AWS::EC2::NetworkInterface", "Properties": {"SubnetId": {"Ref": "Private"},
                                                                       "GroupSet": [{"Ref": "Db"}]}},
    }, "Outputs": {
        "SubnetOut": {"Value": {"Ref": "Private"}, "Export": {"Name": "Network:Private"}},
        "GroupOut": {"Value": {"Fn::GetAtt": ["App", "GroupId"]}, "Export": {"Name": {"Fn::Sub": "${AWS::StackName}:App"}}},
    }}
    app = {"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {
        "FunctionName": "orders", "Role": "arn:aws:iam::111122223333:role/orders",
        "VpcConfig": {"SubnetIds": [{"Fn::ImportValue": "Network:Private"}],
                      "SecurityGroupIds": [{"Fn::ImportValue": "Network:App"}]}}}}}
    (out / "Network.template.json").write_text(json.dumps(network))
    (out / "App.template.json").write_text(json.dumps(app))
    (out / "manifest.json").write_text(json.dumps({"version": "36.0.0", "artifacts": {
        "Network": {"type": "aws:cloudformation:stack", "environment": "aws://111122223333/eu-west-1",
                    "properties": {"templateFile": "Network.template.json"}},
        "App": {"type": "aws:cloudformation:stack", "environment": "aws://111122223333/eu-west-1",
                "properties": {"templateFile": "App.template.json"}, "dependencies": ["Network"]},
        "Tree": {"type": "cdk:tree", "properties": {"file": "tree.json"}},
    }}))
    assert input_kind(out) == "cdk"
    net, caught = load(out)
    assert not caught
    t = net.topology
    assert (t.region, t.account_id) == ("eu-west-1", "111122223333")
    assert named(t.subnets, "Private").availability_zone == "eu-west-1a"
    eni = next(iter(t.network_interfaces.values()))
    r = net.function("orders").send(IP(dst=str(eni.private_ip)) / TCP(dport=5432, flags="S"))
    assert r.reason == Reason.DELIVERED and r.reply(TCP(flags="SA")).reason == Reason.DELIVERED_TO_FUNCTION


def test_a_sam_template_is_expanded_by_the_sam_translator_globals_included(tmp_path):
    net, _ = load(write(tmp_path, """
        AWSTemplateFormatVersion: '2010-09-09'
        Transform: AWS::Serverless-2016-10-31
        Globals:
          Function:
            Runtime: python3.12
            VpcConfig: {SubnetIds: [!Ref Private], SecurityGroupIds: [!Ref App]}
        Resources:
          Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.2.0.0/16}}
          Private: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.2.1.0/24, AvailabilityZone: us-west-2b}}
          App: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: app, VpcId: !Ref Vpc}}
          Worker:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, CodeUri: src/}
    """, "template.yaml"))
    worker = net.topology.function("Worker")
    assert worker.vpc_config.subnet_ids == (named(net.topology.subnets, "Private").id,)
    assert net.topology.region == "us-west-2"  # the region of the zone the template writes
    # the role SAM generates for a function in a VPC carries AWSLambdaVPCAccessExecutionRole
    assert not worker.role.missing()
    assert net.function("Worker").send(IP(dst="10.2.1.200") / TCP(dport=80, flags="S")).reason == Reason.NO_ENI_AT_ADDRESS


def test_inputs_are_told_apart_by_content_not_by_name(tmp_path):
    template = write(tmp_path, '{"Resources": {"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}}}}',
                     "network.json")
    assert input_kind(template) == "cloudformation"
    assert input_kind(write(tmp_path, NETWORK, "looks-like-topology.yml")) == "cloudformation"
    assert input_kind(write(tmp_path, "vpcs:\n  - {id: vpc-a, cidr: 10.0.0.0/16}\n", "topology.yaml")) == "topology"
    assert input_kind(write(tmp_path, '{"format_version": "1.2", "values": {"root_module": {}}}', "state.json")) == "terraform"
    assert len(hp.Network.load(template).topology.vpcs) == 1


def test_an_instance_is_reached_from_the_internet_at_its_elastic_ip(tmp_path):
    net, caught = load(write(tmp_path, """
        AWSTemplateFormatVersion: '2010-09-09'
        Resources:
          Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
          Igw: {Type: AWS::EC2::InternetGateway}
          Attachment: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}
          Public:
            Type: AWS::EC2::Subnet
            Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.0.0/24, AvailabilityZone: us-east-1a, MapPublicIpOnLaunch: true}
          Routes: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
          Default: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref Routes, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}}
          Association: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Public, RouteTableId: !Ref Routes}}
          Worker: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Public, SecurityGroupIds: [!Ref Web]}}
          Web:
            Type: AWS::EC2::SecurityGroup
            Properties:
              GroupDescription: web
              VpcId: !Ref Vpc
              SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIp: 0.0.0.0/0}]
          Server: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Public, SecurityGroupIds: [!Ref Web]}}
          ServerIp: {Type: AWS::EC2::EIP, Properties: {Domain: vpc}}
          ServerIpAssociation:
            Type: AWS::EC2::EIPAssociation
            Properties: {AllocationId: !GetAtt ServerIp.AllocationId, InstanceId: !Ref Server}
          Peering: {Type: AWS::EC2::VPCPeeringConnection, Properties: {VpcId: !Ref Vpc, PeerVpcId: vpc-0123456789abcdef0}}
          ToPeer:
            Type: AWS::EC2::Route
            Properties: {RouteTableId: !Ref Routes, DestinationCidrBlock: 172.16.0.0/16, VpcPeeringConnectionId: !Ref Peering}
    """))
    worker, server = net.topology.network_interfaces.values()
    assert server.public_ip is not None and server.instance_id.startswith("i-")
    # the subnet maps a public address on launch: an instance without an Elastic IP gets one too
    assert worker.public_ip is not None and worker.public_ip != server.public_ip
    assert net.send(IP(src="93.184.216.34", dst=str(server.public_ip)) / TCP(dport=443, flags="S")).reason == Reason.DELIVERED
    assert net.send(IP(src="93.184.216.34", dst=str(server.public_ip)) / TCP(dport=22, flags="S")).reason == Reason.SG_INGRESS_DENY
    # a peering with a VPC outside the template cannot be emulated: said once, its routes are blackholes
    assert "the peer VPC vpc-0123456789abcdef0 is not in the template" in str(caught[0].message)
    routes = {str(r.destination): r.state for t in net.topology.route_tables.values() for r in t.routes}
    assert routes["172.16.0.0/16"] == "blackhole"

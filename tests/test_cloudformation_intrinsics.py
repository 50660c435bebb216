"""CloudFormation's intrinsic functions as the AWS documentation states their results
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference.html)."""

import pytest

from hyperplane.errors import TopologyError
from hyperplane.formats.cloudformation_intrinsics import Resolver

TEMPLATE = {
    "Mappings": {"Regions": {"eu-west-1": {"Ami": "ami-eu"}}},
    "Conditions": {"Prod": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
                   "NotProd": {"Fn::Not": [{"Condition": "Prod"}]},
                   "Loop": {"Fn::Not": [{"Condition": "Loop"}]}},
    "Resources": {"Vpc": {"Type": "AWS::EC2::VPC"}},
}


def resolver(**parameters):
    return Resolver("t.yaml", TEMPLATE, pseudo={"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012"},
                    parameters={"Env": "prod", **parameters}, ref=lambda logical, where: "vpc-0abc",
                    getatt=lambda logical, attribute, where: f"{logical}.{attribute}",
                    imports=lambda name, where: f"imported:{name}")


@pytest.mark.parametrize("value,expected", [
    ({"Fn::Sub": "${AWS::Region}-${Vpc}-${Vpc.CidrBlock}-${!Literal}"}, "eu-west-1-vpc-0abc-Vpc.CidrBlock-${Literal}"),
    ({"Fn::Sub": ["${A}/${Env}", {"A": {"Ref": "Vpc"}}]}, "vpc-0abc/prod"),
    ({"Fn::Join": [",", ["a", {"Ref": "Env"}, 3]]}, "a,prod,3"),
    ({"Fn::Select": ["1", {"Fn::Split": [",", "a,b,c"]}]}, "b"),
    ({"Fn::GetAZs": ""}, ["eu-west-1a", "eu-west-1b", "eu-west-1c", "eu-west-1d", "eu-west-1e", "eu-west-1f"]),
    # "Fn::Cidr [ipBlock, count, cidrBits]": cidrBits 8 cuts /24s
    ({"Fn::Cidr": ["10.0.0.0/16", 3, 8]}, ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]),
    ({"Fn::FindInMap": ["Regions", {"Ref": "AWS::Region"}, "Ami"]}, "ami-eu"),
    ({"Fn::If": ["Prod", "big", "small"]}, "big"),
    ({"Fn::If": ["NotProd", "big", "small"]}, "small"),
    ({"Fn::Equals": [True, "true"]}, True),
    ({"Fn::And": [{"Fn::Equals": [1, "1"]}, {"Condition": "Prod"}]}, True),
    ({"Fn::ImportValue": {"Fn::Sub": "${Env}-subnet"}}, "imported:prod-subnet"),
    ({"Key": {"Ref": "AWS::NoValue"}, "Kept": [1, {"Ref": "AWS::NoValue"}]}, {"Kept": [1]}),
    ({"Fn::GetAtt": "Vpc.CidrBlock"}, "Vpc.CidrBlock"),
])
def test_each_function_gives_what_aws_documents(value, expected):
    assert resolver().resolve(value, "Resources.X.Properties.P") == expected


@pytest.mark.parametrize("value,message", [
    ({"Ref": "Nope"}, "!Ref Nope names no resource or parameter"),
    ({"Ref": "AWS::Nope"}, "!Ref AWS::Nope is not a pseudo parameter"),
    ({"Fn::GetAtt": ["Nope", "Arn"]}, "!GetAtt Nope.Arn names no resource"),
    ({"Fn::Select": [5, ["a"]]}, "!Select index 5 is outside a list of 1"),
    ({"Fn::FindInMap": ["Regions", "us-east-1", "Ami"]}, "!FindInMap [Regions, us-east-1, Ami]: no key 'us-east-1' in Regions"),
    ({"Fn::If": ["Missing", 1, 2]}, "condition 'Missing' is not declared in Conditions"),
    ({"Fn::If": ["Loop", 1, 2]}, "condition Loop depends on itself"),
    ({"Fn::Cidr": ["10.0.0.0/24", 4, 8]}, "!Cidr: 10.0.0.0/24 holds 1 /24 block, not 4"),
    ({"Fn::Join": [",", "notalist"]}, "the values of !Join must be a list, not a string"),
    ({"Fn::Frobnicate": []}, "unknown intrinsic function Fn::Frobnicate"),
])
def test_a_function_that_cannot_be_resolved_is_one_error_at_its_place(value, message):
    with pytest.raises(TopologyError) as caught:
        resolver().resolve(value, "Resources.X.Properties.P")
    assert caught.value.problem == message
    assert caught.value.file == "t.yaml" and caught.value.where.startswith(("Resources.X.Properties.P", "Conditions."))

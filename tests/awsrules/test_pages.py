"""pages.py: list answers in pages (`page_sizes`) where moto answers a list whole.

Each paged operation gets more items than its page size, then: one call carries exactly a
page and a token, boto3's paginator reads every item exactly once, without the setting the
answer is whole with no token, and reset() forgets the setting. Also the batch limits of the
describes that take lists of names (a tool paging its look-ups must cut its batches too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import botocore.exceptions
import pytest

from conftest import REGION
from test_world import ami, cluster_with_instances, task_definition

N = 5  # items made per operation
SIZE = 2  # the page size set: pages of 2, 2 and 1
POLICY = json.dumps({"Version": "2012-10-17",
                     "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})


@dataclass
class Case:
    key: str  # service:Operation
    client: str
    method: str  # boto3 method (and paginator) name
    items: str  # the result key
    token: str  # the token member, in the request and the answer
    make: Callable[[Any], dict]  # makes N items; returns the call's parameters
    ident: Callable[[Any], str]  # one item's identity
    limit: str | None = None  # the caller's own page bound, when 1 is a valid value


def _same(x: Any) -> str:
    return x if isinstance(x, str) else json.dumps(x, sort_keys=True, default=str)


# -- what each case makes ------------------------------------------------------------------


def make_clusters(aws) -> dict:
    for n in range(N):
        aws("ecs").create_cluster(clusterName=f"c{n}")
    return {}


def make_services(aws) -> dict:
    aws.server.configure({"delays": {"service_linked_role": 0}})
    aws("ecs").create_cluster(clusterName="svc")
    td = task_definition(aws)
    for n in range(N):
        aws("ecs").create_service(cluster="svc", serviceName=f"s{n}", taskDefinition=td,
                                  desiredCount=0)
    return {"cluster": "svc"}


def make_task_definitions(aws) -> dict:
    for _ in range(N):
        task_definition(aws, family="paged")
    return {"familyPrefix": "paged"}


def make_container_instances(aws) -> dict:
    cluster_with_instances(aws, "ci", N)
    return {"cluster": "ci"}


def make_tasks(aws) -> dict:
    arns = cluster_with_instances(aws, "t", 1)
    td = task_definition(aws)
    for _ in range(N):
        aws("ecs").start_task(cluster="t", taskDefinition=td, containerInstances=arns)
    return {"cluster": "t"}


def make_instances(aws) -> dict:
    for _ in range(N):  # one reservation each: DescribeInstances is paged by reservation
        aws("ec2").run_instances(ImageId=ami(aws), MinCount=1, MaxCount=1, InstanceType="t3.micro")
    return {}


def make_security_groups(aws) -> dict:
    ec2 = aws("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    for n in range(N):
        ec2.create_security_group(GroupName=f"g{n}", Description="d", VpcId=vpc)
    return {"Filters": [{"Name": "group-name", "Values": [f"g{n}" for n in range(N)]}]}


def make_subnets(aws) -> dict:
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    for n in range(N):
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{n}.0/24")
    return {"Filters": [{"Name": "vpc-id", "Values": [vpc]}]}


def make_launch_templates(aws) -> dict:
    for n in range(N):
        aws("ec2").create_launch_template(LaunchTemplateName=f"lt{n}",
                                          LaunchTemplateData={"InstanceType": "t3.micro"})
    return {}


def make_offerings(aws) -> dict:
    types = ["t3.micro", "t3.small", "t3.medium", "t3.large", "m5.large"]
    return {"LocationType": "region", "Filters": [{"Name": "instance-type", "Values": types}]}


def make_launch_configurations(aws) -> dict:
    for n in range(N):
        aws("autoscaling").create_launch_configuration(
            LaunchConfigurationName=f"lc{n}", ImageId=ami(aws), InstanceType="t3.micro")
    return {}


def make_groups(aws) -> dict:
    make_launch_configurations(aws)
    for n in range(N):
        aws("autoscaling").create_auto_scaling_group(
            AutoScalingGroupName=f"a{n}", LaunchConfigurationName=f"lc{n}", MinSize=0,
            MaxSize=0, AvailabilityZones=[f"{REGION}a"])
    return {}


def make_scheduled_actions(aws) -> dict:
    make_groups(aws)
    for n in range(N):
        aws("autoscaling").put_scheduled_update_group_action(
            AutoScalingGroupName="a0", ScheduledActionName=f"s{n}", Recurrence="0 0 * * *",
            DesiredCapacity=0)
    return {"AutoScalingGroupName": "a0"}


def make_log_groups(aws) -> dict:
    for n in range(N):
        aws("logs").create_log_group(logGroupName=f"/paged/{n}")
    return {"logGroupNamePrefix": "/paged/"}


def _role(aws) -> None:
    aws("iam").create_role(RoleName="paged", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Principal": {"Service": "ec2.amazonaws.com"}}]}))


def make_role_policies(aws) -> dict:
    _role(aws)
    for n in range(N):
        aws("iam").put_role_policy(RoleName="paged", PolicyName=f"p{n}", PolicyDocument=POLICY)
    return {"RoleName": "paged"}


def make_attached_policies(aws) -> dict:
    _role(aws)
    for n in range(N):
        arn = aws("iam").create_policy(PolicyName=f"m{n}", PolicyDocument=POLICY)["Policy"]["Arn"]
        aws("iam").attach_role_policy(RoleName="paged", PolicyArn=arn)
    return {"RoleName": "paged"}


CASES = [
    Case("ecs:ListClusters", "ecs", "list_clusters", "clusterArns", "nextToken",
         make_clusters, _same, "maxResults"),
    Case("ecs:ListServices", "ecs", "list_services", "serviceArns", "nextToken",
         make_services, _same, "maxResults"),
    Case("ecs:ListTaskDefinitions", "ecs", "list_task_definitions", "taskDefinitionArns",
         "nextToken", make_task_definitions, _same, "maxResults"),
    Case("ecs:ListContainerInstances", "ecs", "list_container_instances", "containerInstanceArns",
         "nextToken", make_container_instances, _same, "maxResults"),
    Case("ecs:ListTasks", "ecs", "list_tasks", "taskArns", "nextToken", make_tasks, _same,
         "maxResults"),
    Case("ec2:DescribeInstances", "ec2", "describe_instances", "Reservations", "NextToken",
         make_instances, lambda r: r["ReservationId"]),
    Case("ec2:DescribeSecurityGroups", "ec2", "describe_security_groups", "SecurityGroups",
         "NextToken", make_security_groups, lambda g: g["GroupId"]),
    Case("ec2:DescribeSubnets", "ec2", "describe_subnets", "Subnets", "NextToken", make_subnets,
         lambda s: s["SubnetId"]),
    Case("ec2:DescribeLaunchTemplates", "ec2", "describe_launch_templates", "LaunchTemplates",
         "NextToken", make_launch_templates, lambda t: t["LaunchTemplateId"], "MaxResults"),
    Case("ec2:DescribeInstanceTypeOfferings", "ec2", "describe_instance_type_offerings",
         "InstanceTypeOfferings", "NextToken", make_offerings, lambda o: o["InstanceType"]),
    Case("autoscaling:DescribeLaunchConfigurations", "autoscaling",
         "describe_launch_configurations", "LaunchConfigurations", "NextToken",
         make_launch_configurations, lambda c: c["LaunchConfigurationName"], "MaxRecords"),
    Case("autoscaling:DescribeAutoScalingGroups", "autoscaling", "describe_auto_scaling_groups",
         "AutoScalingGroups", "NextToken", make_groups, lambda g: g["AutoScalingGroupName"],
         "MaxRecords"),
    Case("autoscaling:DescribeScheduledActions", "autoscaling", "describe_scheduled_actions",
         "ScheduledUpdateGroupActions", "NextToken", make_scheduled_actions,
         lambda a: a["ScheduledActionName"], "MaxRecords"),
    Case("logs:DescribeLogGroups", "logs", "describe_log_groups", "logGroups", "nextToken",
         make_log_groups, lambda g: g["logGroupName"], "limit"),
    Case("iam:ListRolePolicies", "iam", "list_role_policies", "PolicyNames", "Marker",
         make_role_policies, _same, "MaxItems"),
    Case("iam:ListAttachedRolePolicies", "iam", "list_attached_role_policies", "AttachedPolicies",
         "Marker", make_attached_policies, lambda p: p["PolicyArn"], "MaxItems"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_each_paged_list_comes_in_pages_and_a_paginator_reads_them_all(case, aws):
    client = aws(case.client)
    call = getattr(client, case.method)
    params = case.make(aws)

    # without the setting: moto's answer, whole, no token
    whole = call(**params)
    assert len(whole[case.items]) == N, whole[case.items]
    assert not whole.get(case.token), whole.get(case.token)
    expected = sorted(case.ident(x) for x in whole[case.items])

    aws.server.configure({"page_sizes": {case.key: SIZE}})
    first = call(**params)
    assert len(first[case.items]) == SIZE and first[case.token].startswith("l5d-page:")
    if case.client == "iam":
        assert first["IsTruncated"] is True

    pages = list(client.get_paginator(case.method).paginate(**params))
    assert [len(p[case.items]) for p in pages] == [2, 2, 1]
    seen = [case.ident(x) for p in pages for x in p[case.items]]
    assert sorted(seen) == expected, "every item exactly once"
    assert not pages[-1].get(case.token)
    if case.client == "iam":
        assert pages[-1]["IsTruncated"] is False

    if case.limit:  # the caller's own bound, when smaller, wins
        one = call(**params, **{case.limit: 1})
        assert len(one[case.items]) == 1 and one[case.token]
        rest = call(**params, **{case.token: one[case.token]})
        assert len(rest[case.items]) == SIZE, "the next page: the setting's size again"

    assert aws.server.violations() == []
    aws.server.reset()
    assert aws.server.config()["page_sizes"] == {}


def test_page_sizes_merge_per_operation_and_world_filters_come_first(aws):
    """The setting itself: merged per operation, null drops one, unknown operations refused,
    and World's filters (ACTIVE services only) are applied before the page is cut."""
    params = make_services(aws)
    ecs = aws("ecs")
    aws.server.configure({"page_sizes": {"ecs:ListServices": 2}})
    config = aws.server.configure({"page_sizes": {"ecs:ListClusters": 3}})
    assert config["page_sizes"] == {"ecs:ListServices": 2, "ecs:ListClusters": 3}
    ecs.delete_service(cluster="svc", service="s0")  # DRAINING: ListServices leaves it out
    pages = list(ecs.get_paginator("list_services").paginate(**params))
    assert [len(p["serviceArns"]) for p in pages] == [2, 2], "full pages of ACTIVE services"
    assert aws.server.configure({"page_sizes": {"ecs:ListServices": None}})["page_sizes"] == {
        "ecs:ListClusters": 3}
    assert "nextToken" not in ecs.list_services(**params)
    with pytest.raises(Exception):
        aws.server.configure({"page_sizes": {"ecs:DescribeTasks": 2}})
    with pytest.raises(Exception):
        aws.server.configure({"page_sizes": {"ecs:ListTasks": 0}})


BAD_TOKENS = [
    ("ecs", "list_clusters", "nextToken", "ecs:ListClusters", make_clusters,
     "InvalidParameterException"),
    ("ec2", "describe_security_groups", "NextToken", "ec2:DescribeSecurityGroups",
     make_security_groups, "InvalidPaginationToken"),
    ("autoscaling", "describe_launch_configurations", "NextToken",
     "autoscaling:DescribeLaunchConfigurations", make_launch_configurations, "InvalidNextToken"),
    ("logs", "describe_log_groups", "nextToken", "logs:DescribeLogGroups", make_log_groups,
     "InvalidParameterException"),
    ("iam", "list_role_policies", "Marker", "iam:ListRolePolicies", make_role_policies,
     "InvalidInput"),
]


@pytest.mark.parametrize("service,method,token,key,make,code", BAD_TOKENS,
                         ids=[b[3] for b in BAD_TOKENS])
def test_a_bad_token_of_ours_is_answered_as_aws_does(service, method, token, key, make, code, aws):
    params = make(aws)
    call = getattr(aws(service), method)
    aws.server.configure({"page_sizes": {key: SIZE}})
    good = call(**params)[token]
    parts = good.split(":")
    parts[2] = "0" * 16  # another call's digest
    for bad in (":".join(parts), "l5d-page:nonsense"):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            call(**params, **{token: bad})
        assert refused.value.response["Error"]["Code"] == code
    assert [v["rule"] for v in aws.server.violations()] == ["pages:token"] * 2
    # a token of ours stays ours once the setting is gone: the rest of the list, no token
    aws.server.configure({"page_sizes": {key: None}})
    rest = call(**params, **{token: good})
    assert rest and not rest.get(token)
    assert aws.server.violations() == []


def test_a_token_from_other_filters_is_refused(aws):
    make_security_groups(aws)
    ec2 = aws("ec2")
    aws.server.configure({"page_sizes": {"ec2:DescribeSecurityGroups": 2}})
    some = [{"Name": "group-name", "Values": ["g0", "g1", "g2"]}]
    token = ec2.describe_security_groups(Filters=some)["NextToken"]
    others = [{"Name": "group-name", "Values": ["g2", "g3", "g4"]}]
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        ec2.describe_security_groups(Filters=others, NextToken=token)
    assert refused.value.response["Error"]["Code"] == "InvalidPaginationToken"
    assert [v["rule"] for v in aws.server.violations()] == ["pages:token"]


def test_items_that_leave_the_list_between_pages_skip_nothing(aws):
    """A tool that stops the tasks of one page before it reads the next: the next page starts
    at the first task not yet served, as an AWS cursor would, not at the old offset."""
    params = {**make_tasks(aws), "desiredStatus": "RUNNING"}
    ecs = aws("ecs")
    everything = ecs.list_tasks(**params)["taskArns"]
    aws.server.configure({"page_sizes": {"ecs:ListTasks": SIZE}})
    seen: list[str] = []
    token = None
    while True:
        page = ecs.list_tasks(**params, **({"nextToken": token} if token else {}))
        seen += page["taskArns"]
        for arn in page["taskArns"]:
            ecs.stop_task(cluster=params["cluster"], task=arn)
        token = page.get("nextToken")
        if not token:
            break
    assert seen == everything, "every task once, in order"
    assert ecs.list_tasks(**params)["taskArns"] == []


def test_instance_ids_are_answered_whole(aws):
    """AWS takes no MaxResults with InstanceIds: a look-up by id is not paged."""
    make_instances(aws)
    ec2 = aws("ec2")
    ids = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"]
           for i in r["Instances"]]
    aws.server.configure({"page_sizes": {"ec2:DescribeInstances": 1}})
    out = ec2.describe_instances(InstanceIds=ids)
    assert len(out["Reservations"]) == N and "NextToken" not in out


def test_a_list_moto_pages_itself_keeps_moto_paging(aws):
    """moto answers 50 log groups at most, with its own token: that answer and that token are
    left alone, and the paginator still reads every group once."""
    logs = aws("logs")
    for n in range(53):
        logs.create_log_group(logGroupName=f"/many/{n:02}")
    aws.server.configure({"page_sizes": {"logs:DescribeLogGroups": 2}})
    first = logs.describe_log_groups()
    assert len(first["logGroups"]) == 50 and not first["nextToken"].startswith("l5d-page:")
    seen = [g["logGroupName"] for p in logs.get_paginator("describe_log_groups").paginate()
            for g in p["logGroups"]]
    assert sorted(seen) == [f"/many/{n:02}" for n in range(53)]
    assert aws.server.violations() == []


def _raw(aws, service: str, method: str, **params) -> bytes:
    """The bytes of the answer, as the SDKs parse them."""
    client = aws(service)
    got: dict[str, bytes] = {}

    def keep(http_response, **_):
        got["body"] = http_response.content

    client.meta.events.register(f"after-call.{service}", keep)
    try:
        getattr(client, method)(**params)
    finally:
        client.meta.events.unregister(f"after-call.{service}", keep)
    return got["body"]


@pytest.mark.parametrize("service,method,make", [
    ("ec2", "describe_security_groups", make_security_groups),
    ("autoscaling", "describe_launch_configurations", make_launch_configurations),
    ("iam", "list_role_policies", make_role_policies),
])
def test_a_cut_xml_answer_keeps_its_root_and_namespace(service, method, make, aws):
    params = make(aws)
    whole = _raw(aws, service, method, **params)
    key = {"describe_security_groups": "ec2:DescribeSecurityGroups",
           "describe_launch_configurations": "autoscaling:DescribeLaunchConfigurations",
           "list_role_policies": "iam:ListRolePolicies"}[method]
    aws.server.configure({"page_sizes": {key: SIZE}})
    page = _raw(aws, service, method, **params)
    head = whole[: whole.index(b">", whole.index(b"xmlns=")) + 1]
    assert page.startswith(head), (head, page[:200])
    assert b"ns0:" not in page and b"l5d-page:" in page


# -- batch limits ------------------------------------------------------------------------------


def _refused(call: Callable[[], Any]) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        call()
    return refused.value.response["Error"]["Code"]


@pytest.mark.parametrize("method,member,limit,rule", [
    ("describe_tasks", "tasks", 100, "ecs-describetasks-max-100"),
    ("describe_container_instances", "containerInstances", 100,
     "ecs-describecontainerinstances-max-100"),
    ("describe_services", "services", 10, "ecs-describeservices-max-10"),
])
def test_ecs_describe_batches_are_bounded(method, member, limit, rule, aws):
    ecs = aws("ecs")
    ecs.create_cluster(clusterName="b")
    call = getattr(ecs, method)
    ids = [f"arn:aws:ecs:{REGION}:123456789012:x/b/{n:032x}" for n in range(limit + 1)]
    try:
        call(cluster="b", **{member: ids[:limit]})
    except botocore.exceptions.ClientError:
        pass  # moto's answer about ARNs it does not know: not what is tested here
    assert aws.server.violations() == [], "the limit itself breaks no rule"
    assert _refused(lambda: call(cluster="b", **{member: ids})) == "InvalidParameterException"
    assert [v["rule"] for v in aws.server.violations()] == [rule]


def test_ec2_describe_instance_types_takes_100_types_at_most(aws):
    ec2 = aws("ec2")
    types = [t["InstanceType"] for p in ec2.get_paginator("describe_instance_types").paginate()
             for t in p["InstanceTypes"]]
    assert len(types) > 100
    ec2.describe_instance_types(InstanceTypes=types[:100])
    assert aws.server.violations() == []
    assert _refused(lambda: ec2.describe_instance_types(InstanceTypes=types[:101])) == \
        "InvalidParameterValue"
    assert [v["rule"] for v in aws.server.violations()] == ["model:max-items"]

"""pages.py: answers in pages where moto answers a list whole (`page_sizes`)."""

from __future__ import annotations

import botocore.exceptions
import pytest


def ami(aws) -> str:
    return aws("ec2").describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]


def test_ecs_lists_come_in_pages_and_a_paginator_reads_them_all(aws):
    ecs = aws("ecs")
    for n in range(5):
        ecs.create_cluster(clusterName=f"c{n}")
    whole = ecs.list_clusters()["clusterArns"]
    assert len(whole) == 5 and "nextToken" not in ecs.list_clusters(), "no setting: one answer"

    aws.server.configure({"page_sizes": {"ecs:ListClusters": 2}})
    first = ecs.list_clusters()
    assert len(first["clusterArns"]) == 2 and first["nextToken"]
    assert len(ecs.list_clusters(maxResults=1)["clusterArns"]) == 1, "the caller's own bound wins"
    pages = list(ecs.get_paginator("list_clusters").paginate())
    assert [len(p["clusterArns"]) for p in pages] == [2, 2, 1]
    assert sorted(a for p in pages for a in p["clusterArns"]) == sorted(whole)
    assert "nextToken" not in pages[-1]

    with pytest.raises(botocore.exceptions.ClientError) as bad:
        ecs.list_clusters(nextToken="l5d-page:nonsense")
    assert bad.value.response["Error"]["Code"] == "InvalidParameterException"

    aws.server.reset()
    assert aws.server.config()["page_sizes"] == {}
    assert len(ecs.list_clusters()["clusterArns"]) == 0


def test_ec2_describes_come_in_pages(aws):
    ec2 = aws("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    made = {ec2.create_security_group(GroupName=f"g{n}", Description="d", VpcId=vpc)["GroupId"]
            for n in range(5)}
    ec2.run_instances(ImageId=ami(aws), MinCount=1, MaxCount=1)
    ec2.run_instances(ImageId=ami(aws), MinCount=1, MaxCount=1)
    aws.server.configure({"page_sizes": {"ec2:DescribeSecurityGroups": 2,
                                         "ec2:DescribeInstances": 1,
                                         "ec2:DescribeSubnets": 1}})
    name = [{"Name": "group-name", "Values": [f"g{n}" for n in range(5)]}]
    first = ec2.describe_security_groups(Filters=name)
    assert len(first["SecurityGroups"]) == 2 and first["NextToken"]
    seen = [g["GroupId"] for p in ec2.get_paginator("describe_security_groups").paginate(Filters=name)
            for g in p["SecurityGroups"]]
    assert sorted(seen) == sorted(made), "every group once"
    reservations = [r for p in ec2.get_paginator("describe_instances").paginate()
                    for r in p["Reservations"]]
    assert len(reservations) == 2
    subnets = [s for p in ec2.get_paginator("describe_subnets").paginate() for s in p["Subnets"]]
    assert len(subnets) == len({s["SubnetId"] for s in subnets}) >= 2


def test_an_operation_that_is_not_paged_is_refused_as_a_setting(aws):
    with pytest.raises(Exception):
        aws.server.configure({"page_sizes": {"ecs:DescribeTasks": 2}})

#!/usr/bin/env python3
"""The guide's `up` calls, one after another, from a single Python process with boto3: the
fastest a sequential tool could be. Same calls and inputs as bench/guide.sh.

    sequential.py FILES_DIR STACK AVAILABILITY_ZONE

Endpoint, region and credentials come from the environment (AWS_ENDPOINT_URL, AWS_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), as for the other tools.
"""

import json
import os
import sys

import boto3

AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
APPS = ["linkerd", "linkerd-viz", "consul-agent", "consul-registrator", "hello-world"]
PORTS = [22, 4140, 9990, 3000, 8500]


def main():
    files, stack, az = sys.argv[1:4]

    def read(name):
        with open(os.path.join(files, name)) as f:
            return f.read()

    session = boto3.session.Session()
    ssm = session.client("ssm")
    ec2 = session.client("ec2")
    ecs = session.client("ecs")
    iam = session.client("iam")
    autoscaling = session.client("autoscaling")

    ami = ssm.get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"]

    group_id = ec2.create_security_group(GroupName=f"{stack}-sg", Description="Linkerd Demo")["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {"FromPort": p, "ToPort": p, "IpProtocol": "tcp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
            for p in PORTS
        ]
        + [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]}],
    )

    ec2.run_instances(
        ImageId=ami,
        InstanceType="m4.xlarge",
        MinCount=1,
        MaxCount=1,
        UserData=read("consul-server-user-data.txt"),
        Placement={"AvailabilityZone": az},
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": f"{stack}-consul-server"}]}
        ],
        SecurityGroupIds=[group_id],
    )

    ecs.create_cluster(clusterName=stack)

    iam.put_role_policy(
        RoleName="ecsInstanceRole",
        PolicyName="l5dDemoPolicy",
        PolicyDocument=read("ecs-role-policy.json"),
    )

    for app in APPS:
        ecs.register_task_definition(**json.loads(read(f"{app}-task-definition.json")))

    autoscaling.create_launch_configuration(
        LaunchConfigurationName=f"{stack}-lc",
        ImageId=ami,
        InstanceType="m4.xlarge",
        UserData=read("ecs-user-data.txt"),
        IamInstanceProfile="ecsInstanceRole",
        SecurityGroups=[group_id],
    )

    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=f"{stack}-asg",
        LaunchConfigurationName=f"{stack}-lc",
        MinSize=1,
        MaxSize=3,
        DesiredCapacity=2,
        Tags=[
            {
                "ResourceId": f"{stack}-asg",
                "ResourceType": "auto-scaling-group",
                "Key": "Name",
                "Value": f"{stack}-ecs",
                "PropagateAtLaunch": True,
            }
        ],
        AvailabilityZones=[az],
    )


if __name__ == "__main__":
    main()

"""World: what a real account does that moto does not (tests/awsrules/behaviour.py).

One test per behaviour, through boto3 against the rules server (conftest.py: `aws` resets the
account and hands out clients). State is read back through the API; waits are bounded polls.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError

from conftest import DELAY, REGION

ECS_AMI = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"


# -- helpers ---------------------------------------------------------------------------------


def until(what: str, check: Callable[[], Any], timeout: float = 5.0, pause: float = 0.05) -> Any:
    """Polls `check` until it returns something truthy (then returns it), or fails."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except ClientError as e:
            last = e
        else:
            if last:
                return last
        time.sleep(pause)
    pytest.fail(f"{what}: not within {timeout} s (last: {last!r})")


def code_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as refused:
        call()
    error = refused.value.response["Error"]
    return error["Code"], error.get("Message", "")


def accepted(call: Callable[[], Any]) -> Any:
    """`call`'s result once it no longer raises (None while it does): for `until`."""
    try:
        return call() or True
    except ClientError:
        return None


def ami(aws) -> str:
    return aws("ssm").get_parameter(Name=ECS_AMI)["Parameter"]["Value"]


def run_instance(aws, **extra) -> str:
    out = aws("ec2").run_instances(ImageId=ami(aws), MinCount=1, MaxCount=1,
                                   InstanceType="t3.micro", **extra)
    return out["Instances"][0]["InstanceId"]


def instance_state(aws, instance_id: str) -> str:
    out = aws("ec2").describe_instances(InstanceIds=[instance_id])
    return out["Reservations"][0]["Instances"][0]["State"]["Name"]


def all_instances(aws) -> list[dict]:
    out = aws("ec2").describe_instances()
    return [i for r in out["Reservations"] for i in r["Instances"]]


def cluster_with_instances(aws, name: str, count: int) -> list[str]:
    """A cluster whose `count` container instances are EC2 instances of the ECS AMI, registered
    as the Rust harness's stand-in agent does. Returns the container instance ARNs."""
    out = aws("ec2").run_instances(ImageId=ami(aws), MinCount=count, MaxCount=count,
                                   InstanceType="t3.micro")
    aws("ecs").create_cluster(clusterName=name)
    arns = []
    for instance in out["Instances"]:
        ci = aws("ecs").register_container_instance(
            cluster=name,
            instanceIdentityDocument=json.dumps({"instanceId": instance["InstanceId"]}),
        )["containerInstance"]
        arns.append(ci["containerInstanceArn"])
    return arns


def task_definition(aws, family: str = "agent", image: str = "busybox:1") -> str:
    out = aws("ecs").register_task_definition(
        family=family,
        containerDefinitions=[{"name": family, "image": image, "memory": 64, "essential": True}],
    )
    return out["taskDefinition"]["taskDefinitionArn"]


def tasks(aws, cluster: str, **filters) -> list[dict]:
    arns = aws("ecs").list_tasks(cluster=cluster, **filters)["taskArns"]
    if not arns:
        return []
    return aws("ecs").describe_tasks(cluster=cluster, tasks=arns)["tasks"]


def kinds(events: list[dict], kind: str, rule: str | None = None) -> list[dict]:
    return [e for e in events if e["kind"] == kind and (rule is None or e["rule"] == rule)]


# -- 1. idempotency tokens -------------------------------------------------------------------


def test_ec2_client_tokens_replay_the_first_answer(aws, rules_server):
    ec2 = aws("ec2")
    params = dict(ImageId=ami(aws), MinCount=1, MaxCount=1, InstanceType="t3.micro")
    first = ec2.run_instances(ClientToken="launch-1", **params)
    again = ec2.run_instances(ClientToken="launch-1", **params)
    instance_id = first["Instances"][0]["InstanceId"]
    assert again["Instances"][0]["InstanceId"] == instance_id
    assert again["ReservationId"] == first["ReservationId"]
    assert [i["InstanceId"] for i in all_instances(aws)] == [instance_id]

    code, message = code_of(lambda: ec2.run_instances(
        ClientToken="launch-1", **dict(params, InstanceType="t3.small")))
    assert code == "IdempotentParameterMismatch"
    assert "inconsistent with arguments used in previous request" in message

    ec2.terminate_instances(InstanceIds=[instance_id])
    after_end = ec2.run_instances(ClientToken="launch-1", **params)
    assert after_end["Instances"][0]["InstanceId"] == instance_id  # the first answer, verbatim
    assert after_end["Instances"][0]["State"] == first["Instances"][0]["State"]
    assert instance_state(aws, instance_id) == "terminated"
    assert len(all_instances(aws)) == 1
    code, message = code_of(lambda: ec2.run_instances(
        ClientToken="launch-1", **dict(params, InstanceType="t3.small")))
    assert code == "IdempotentParameterMismatch"
    assert "associated with a resource that is already deleted" in message

    events = rules_server.events()
    assert len(kinds(events, "replayed", "idempotency")) == 2
    assert len(kinds(events, "refused", "idempotency")) == 2

    # CreateLaunchTemplate: the same, with the template deleted in between.
    data = {"ImageId": params["ImageId"], "InstanceType": "t3.micro"}
    first = ec2.create_launch_template(LaunchTemplateName="demo-lt", LaunchTemplateData=data,
                                       ClientToken="lt-1")
    again = ec2.create_launch_template(LaunchTemplateName="demo-lt", LaunchTemplateData=data,
                                       ClientToken="lt-1")
    template_id = first["LaunchTemplate"]["LaunchTemplateId"]
    assert again["LaunchTemplate"]["LaunchTemplateId"] == template_id
    assert len(ec2.describe_launch_templates()["LaunchTemplates"]) == 1
    code, message = code_of(lambda: ec2.create_launch_template(
        LaunchTemplateName="demo-lt", LaunchTemplateData=dict(data, InstanceType="t3.small"),
        ClientToken="lt-1"))
    assert (code, "inconsistent" in message) == ("IdempotentParameterMismatch", True)

    ec2.delete_launch_template(LaunchTemplateId=template_id)
    code, message = code_of(lambda: ec2.create_launch_template(
        LaunchTemplateName="demo-lt", LaunchTemplateData=dict(data, InstanceType="t3.small"),
        ClientToken="lt-1"))
    assert (code, "already deleted" in message) == ("IdempotentParameterMismatch", True)
    replay = ec2.create_launch_template(LaunchTemplateName="demo-lt", LaunchTemplateData=data,
                                        ClientToken="lt-1")
    assert replay["LaunchTemplate"]["LaunchTemplateId"] == template_id
    assert ec2.describe_launch_templates()["LaunchTemplates"] == []


def test_ecs_run_task_and_create_service_client_tokens(aws, rules_server):
    rules_server.configure({"delays": {"service_linked_role": 0}})
    ecs = aws("ecs")
    cluster_with_instances(aws, "c1", 1)
    td = task_definition(aws)
    first = ecs.run_task(cluster="c1", taskDefinition=td, clientToken="rt-1")
    again = ecs.run_task(cluster="c1", taskDefinition=td, clientToken="rt-1")
    arn = first["tasks"][0]["taskArn"]
    assert [t["taskArn"] for t in again["tasks"]] == [arn]
    assert ecs.list_tasks(cluster="c1")["taskArns"] == [arn]

    with pytest.raises(ClientError) as refused:
        ecs.run_task(cluster="c1", taskDefinition=td, clientToken="rt-1", startedBy="other")
    assert refused.value.response["Error"]["Code"] == "ConflictException"
    assert refused.value.response["resourceIds"] == [arn]

    # Per cluster: the same token in another cluster is another request.
    cluster_with_instances(aws, "c2", 1)
    other = ecs.run_task(cluster="c2", taskDefinition=td, clientToken="rt-1")
    assert other["tasks"][0]["taskArn"] != arn

    spec = dict(cluster="c1", serviceName="web", taskDefinition=td, desiredCount=0)
    created = ecs.create_service(clientToken="cs-1", **spec)["service"]
    replayed = ecs.create_service(clientToken="cs-1", **spec)["service"]
    assert replayed["serviceArn"] == created["serviceArn"]
    assert replayed["deployments"][0]["id"] == created["deployments"][0]["id"]
    assert ecs.list_services(cluster="c1")["serviceArns"] == [created["serviceArn"]]
    code, message = code_of(lambda: ecs.create_service(clientToken="cs-1",
                                                       **dict(spec, desiredCount=1)))
    assert (code, message) == ("InvalidParameterException", "Creation of service was not idempotent.")

    # Per region: the same token in another region is another request.
    west2 = aws("ecs", region="us-west-2")
    west2.create_cluster(clusterName="c1")
    td_west2 = west2.register_task_definition(family="agent", containerDefinitions=[
        {"name": "agent", "image": "busybox:1", "memory": 64}])["taskDefinition"]["taskDefinitionArn"]
    there = west2.create_service(clientToken="cs-1", **dict(spec, taskDefinition=td_west2))
    assert there["service"]["serviceArn"] != created["serviceArn"]
    assert ":us-west-2:" in there["service"]["serviceArn"]


# -- 2. eventual consistency -----------------------------------------------------------------


def test_new_instance_profile_is_unknown_to_ec2_and_autoscaling_for_a_while(aws, rules_server):
    window = 1.0  # several calls must land inside it, even on a loaded machine
    rules_server.configure({"delays": {"instance_profile": window}})
    iam, ec2, asg = aws("iam"), aws("ec2"), aws("autoscaling")
    image = ami(aws)
    asg.describe_auto_scaling_groups()  # moto makes the backend on first use: not in the window
    ec2.create_launch_template(LaunchTemplateName="nodes", LaunchTemplateData={
        "ImageId": image, "InstanceType": "t3.micro"})
    iam.create_role(RoleName="node", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "ec2.amazonaws.com"}}]}))
    profile = iam.create_instance_profile(InstanceProfileName="node")["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName="node", RoleName="node")
    added = time.time()
    ec2.create_launch_template_version(LaunchTemplateName="nodes", LaunchTemplateData={
        "ImageId": image, "InstanceType": "t3.micro", "IamInstanceProfile": {"Arn": profile["Arn"]}})

    code, message = code_of(lambda: run_instance(aws, IamInstanceProfile={"Name": "node"}))
    assert code == "InvalidParameterValue"
    assert message == ("Value (node) for parameter iamInstanceProfile.name is invalid. "
                       "Invalid IAM Instance Profile name")
    code, message = code_of(lambda: run_instance(aws, IamInstanceProfile={"Arn": profile["Arn"]}))
    assert code == "InvalidParameterValue"
    code, message = code_of(lambda: asg.create_launch_configuration(
        LaunchConfigurationName="lc", ImageId=image, InstanceType="t3.micro",
        IamInstanceProfile="node"))
    assert (code, message) == ("ValidationError", "Invalid IamInstanceProfile: node")
    group = dict(AutoScalingGroupName="g", MinSize=0, MaxSize=1, DesiredCapacity=0,
                 AvailabilityZones=[f"{REGION}a"],
                 LaunchTemplate={"LaunchTemplateName": "nodes", "Version": "$Latest"})
    code, message = code_of(lambda: asg.create_auto_scaling_group(**group))
    assert code == "ValidationError"
    assert message.startswith("You must use a valid fully-formed launch template. Value (node)")
    asg.create_auto_scaling_group(**dict(group, LaunchTemplate={"LaunchTemplateName": "nodes",
                                                                "Version": "1"}))
    code, _ = code_of(lambda: asg.update_auto_scaling_group(
        AutoScalingGroupName="g", LaunchTemplate={"LaunchTemplateName": "nodes", "Version": "2"}))
    assert code == "ValidationError"
    assert asg.describe_launch_configurations()["LaunchConfigurations"] == []

    instance_id = until("RunInstances with the new profile",
                        lambda: accepted(lambda: run_instance(aws, IamInstanceProfile={"Name": "node"})))
    assert time.time() >= added + window - 0.05
    assert ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    asg.create_launch_configuration(LaunchConfigurationName="lc", ImageId=image,
                                    InstanceType="t3.micro", IamInstanceProfile="node")
    asg.update_auto_scaling_group(AutoScalingGroupName="g", LaunchTemplate={
        "LaunchTemplateName": "nodes", "Version": "$Latest"})

    events = rules_server.events()
    refused = kinds(events, "refused", "instance_profile")
    assert len(refused) >= 5 and all(e["resource"] == "node" for e in refused)
    assert all(abs(e["ready_at"] - (added + window)) < 0.15 for e in refused)
    done = kinds(events, "accepted", "instance_profile")
    assert {e["operation"] for e in done} >= {"RunInstances", "CreateLaunchConfiguration"}
    assert all(e["overshoot"] >= 0 for e in done)


def test_ecs_service_linked_role_comes_after_the_first_cluster(aws, rules_server):
    window = 0.6
    rules_server.configure({"delays": {"service_linked_role": window}})
    iam, ecs = aws("iam"), aws("ecs")
    iam.list_roles()  # moto's first IAM request of an account is slow: not in the window
    ecs.create_cluster(clusterName="c")
    created = time.time()
    role = iam.get_role(RoleName="AWSServiceRoleForECS")["Role"]
    assert role["Path"] == "/aws-service-role/ecs.amazonaws.com/"
    td = task_definition(aws)
    spec = dict(cluster="c", serviceName="web", taskDefinition=td, desiredCount=0)
    code, message = code_of(lambda: ecs.create_service(**spec))
    assert code == "InvalidParameterException"
    assert message == ("Unable to assume the service linked role. Please verify that the ECS "
                       "service linked role exists.")
    until("CreateService once the role can be assumed",
          lambda: accepted(lambda: ecs.create_service(**spec)))
    assert time.time() >= created + window - 0.05
    code, message = code_of(lambda: iam.create_service_linked_role(AWSServiceName="ecs.amazonaws.com"))
    assert code == "InvalidInput"
    assert "AWSServiceRoleForECS has been taken in this account" in message
    (done,) = kinds(rules_server.events(), "accepted", "service_linked_role")
    assert done["operation"] == "CreateService" and done["overshoot"] >= 0

    # A fresh account where the role is asked for first: AWS's name, and the same wait.
    rules_server.reset()
    made = iam.create_service_linked_role(AWSServiceName="ecs.amazonaws.com")["Role"]
    assert made["RoleName"] == "AWSServiceRoleForECS"
    assert made["Arn"].endswith(":role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS")
    ecs.create_cluster(clusterName="c")
    td = task_definition(aws)
    code, _ = code_of(lambda: ecs.create_service(**dict(spec, taskDefinition=td)))
    assert code == "InvalidParameterException"
    roles = [r["RoleName"] for r in iam.list_roles(PathPrefix="/aws-service-role/")["Roles"]]
    assert roles.count("AWSServiceRoleForECS") == 1


def test_security_group_is_in_use_until_its_instances_are_gone_and_a_while_after(aws, rules_server):
    ec2 = aws("ec2")
    group_id = ec2.create_security_group(GroupName="nodes", Description="nodes")["GroupId"]
    instance_id = run_instance(aws, SecurityGroupIds=[group_id])
    code, message = code_of(lambda: ec2.delete_security_group(GroupId=group_id))
    assert (code, message) == ("DependencyViolation", f"resource {group_id} has a dependent object")
    ec2.terminate_instances(InstanceIds=[instance_id])
    terminated = time.time()
    code, _ = code_of(lambda: ec2.delete_security_group(GroupId=group_id))
    assert code == "DependencyViolation"
    until("DeleteSecurityGroup after the network interfaces went",
          lambda: accepted(lambda: ec2.delete_security_group(GroupId=group_id)))
    assert time.time() >= terminated + DELAY - 0.05
    assert group_id not in {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}

    events = rules_server.events()
    refused = kinds(events, "refused", "eni_release")
    assert refused[0]["ready_at"] is None  # still running: depends on the caller
    assert abs(refused[-1]["ready_at"] - (terminated + DELAY)) < 0.15
    (done,) = kinds(events, "accepted", "eni_release")
    assert done["resource"] == group_id and done["refusals"] == len(refused)
    assert 0 <= done["overshoot"] < 1.0


def test_auto_scaling_group_deletion_takes_a_while(aws, rules_server):
    window = 1.0  # six calls must land inside it, even on a loaded machine
    rules_server.configure({"delays": {"asg_delete": window}})
    ec2, asg = aws("ec2"), aws("autoscaling")
    image = ami(aws)
    group_id = ec2.create_security_group(GroupName="nodes", Description="nodes")["GroupId"]
    asg.create_launch_configuration(LaunchConfigurationName="lc", ImageId=image,
                                    InstanceType="t3.micro", SecurityGroups=[group_id])
    group = dict(AutoScalingGroupName="g", LaunchConfigurationName="lc", MinSize=1, MaxSize=1,
                 DesiredCapacity=1, AvailabilityZones=[f"{REGION}a"])
    asg.create_auto_scaling_group(**group)
    (instance,) = asg.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"]

    code, message = code_of(lambda: asg.delete_auto_scaling_group(AutoScalingGroupName="g"))
    assert code == "ResourceInUse"
    assert message.startswith("You cannot delete an AutoScalingGroup while there are instances")
    code, message = code_of(lambda: asg.delete_launch_configuration(LaunchConfigurationName="lc"))
    assert (code, message) == ("ResourceInUse", "Cannot delete launch configuration lc because "
                                                "it is attached to AutoScalingGroup g")

    asg.delete_auto_scaling_group(AutoScalingGroupName="g", ForceDelete=True)
    deleted = time.time()
    (listed,) = asg.describe_auto_scaling_groups()["AutoScalingGroups"]
    assert listed["Status"] == "Delete in progress"
    assert instance_state(aws, instance["InstanceId"]) == "running"
    asg.delete_auto_scaling_group(AutoScalingGroupName="g", ForceDelete=True)  # accepted again
    code, _ = code_of(lambda: asg.create_auto_scaling_group(**group))
    assert code == "AlreadyExists"
    code, _ = code_of(lambda: asg.delete_launch_configuration(LaunchConfigurationName="lc"))
    assert code == "ResourceInUse"
    code, _ = code_of(lambda: ec2.delete_security_group(GroupId=group_id))
    assert code == "DependencyViolation"

    until("the group to go", lambda: not asg.describe_auto_scaling_groups()["AutoScalingGroups"])
    assert time.time() >= deleted + window - 0.05
    assert instance_state(aws, instance["InstanceId"]) == "terminated"
    asg.delete_launch_configuration(LaunchConfigurationName="lc")
    code, _ = code_of(lambda: ec2.delete_security_group(GroupId=group_id))
    assert code == "DependencyViolation"  # the instance's interface is still going
    until("DeleteSecurityGroup", lambda: accepted(lambda: ec2.delete_security_group(GroupId=group_id)))
    assert time.time() >= deleted + window + DELAY - 0.05

    events = rules_server.events()
    by_rule = {e["rule"] for e in kinds(events, "refused")}
    assert {"asg_instances", "launch_configuration_in_use", "asg_delete", "eni_release"} <= by_rule
    in_delete = [e for e in kinds(events, "refused", "asg_delete")]
    assert all(abs(e["ready_at"] - (deleted + window)) < 0.15 for e in in_delete)
    # The security group was known to be busy until the group's end, then its interfaces'.
    sg_known = [e for e in kinds(events, "refused", "eni_release") if e["ready_at"] is not None]
    assert sg_known and all(abs(e["ready_at"] - (deleted + window + DELAY)) < 0.15 for e in sg_known)

    # A launch template in use is not protected (AWS deletes it; the group fails to launch).
    ec2.create_launch_template(LaunchTemplateName="nodes", LaunchTemplateData={
        "ImageId": image, "InstanceType": "t3.micro"})
    asg.create_auto_scaling_group(AutoScalingGroupName="g2", MinSize=0, MaxSize=1,
                                  DesiredCapacity=0, AvailabilityZones=[f"{REGION}a"],
                                  LaunchTemplate={"LaunchTemplateName": "nodes"})
    ec2.delete_launch_template(LaunchTemplateName="nodes")


def test_deleted_service_drains_and_clusters_keep_what_they_contain(aws, rules_server):
    window = 0.8  # four calls must land inside it
    rules_server.configure({"delays": {"service_linked_role": 0, "service_drain": window}})
    ecs = aws("ecs")
    ecs.create_cluster(clusterName="c")
    td = task_definition(aws)
    spec = dict(cluster="c", serviceName="web", taskDefinition=td, desiredCount=0)
    arn = ecs.create_service(**spec)["service"]["serviceArn"]
    assert ecs.delete_service(cluster="c", service="web")["service"]["status"] == "DRAINING"
    deleted = time.time()
    (described,) = ecs.describe_services(cluster="c", services=["web"])["services"]
    assert described["status"] == "DRAINING"
    assert ecs.list_services(cluster="c")["serviceArns"] == []
    code, message = code_of(lambda: ecs.delete_cluster(cluster="c"))
    assert (code, message) == ("ClusterContainsServicesException",
                               "The Cluster cannot be deleted while Services are active.")
    code, message = code_of(lambda: ecs.create_service(**spec))
    assert (code, message) == ("InvalidParameterException", "Creation of service was not idempotent.")

    until("the service to be INACTIVE", lambda: ecs.describe_services(
        cluster="c", services=["web"])["services"][0]["status"] == "INACTIVE")
    assert time.time() >= deleted + window - 0.05
    assert ecs.create_service(**spec)["service"]["serviceArn"] == arn
    ecs.delete_service(cluster="c", service="web")
    until("DeleteCluster", lambda: accepted(lambda: ecs.delete_cluster(cluster="c")))
    drained = kinds(rules_server.events(), "accepted", "service_drain")
    assert {e["operation"] for e in drained} == {"CreateService", "DeleteCluster"}

    # Container instances and tasks keep a cluster too.
    (ci,) = cluster_with_instances(aws, "busy", 1)
    code, message = code_of(lambda: ecs.delete_cluster(cluster="busy"))
    assert code == "ClusterContainsContainerInstancesException"
    assert message == ("The Cluster cannot be deleted while Container Instances are active or "
                       "draining.")
    task_arn = ecs.run_task(cluster="busy", taskDefinition=td)["tasks"][0]["taskArn"]
    ecs.deregister_container_instance(cluster="busy", containerInstance=ci, force=True)
    code, message = code_of(lambda: ecs.delete_cluster(cluster="busy"))
    assert (code, message) == ("ClusterContainsTasksException",
                               "The Cluster cannot be deleted while Tasks are active.")
    ecs.stop_task(cluster="busy", task=task_arn)
    stopped = ecs.stop_task(cluster="busy", task=task_arn)["task"]  # a second stop is harmless
    assert (stopped["stoppedReason"], stopped["stopCode"]) == ("Task stopped by user", "UserInitiated")
    assert ecs.delete_cluster(cluster="busy")["cluster"]["status"] == "INACTIVE"


# -- 3. the DAEMON scheduler -----------------------------------------------------------------


def daemon_tasks(aws, cluster: str, service: str) -> list[dict]:
    return tasks(aws, cluster, serviceName=service)


def running(found: list[dict]) -> list[dict]:
    return [t for t in found if t["lastStatus"] == "RUNNING"]


def test_daemon_service_runs_one_task_on_each_active_instance(aws, rules_server):
    rules_server.configure({"delays": {"service_linked_role": 0}})
    ecs = aws("ecs")
    arns = cluster_with_instances(aws, "c", 3)
    td1 = task_definition(aws)
    # A stand-in agent already runs the service's task on the third instance: no second one.
    standin = ecs.start_task(cluster="c", taskDefinition=td1, containerInstances=[arns[2]],
                             group="service:agent")["tasks"][0]["taskArn"]
    ecs.create_service(cluster="c", serviceName="agent", taskDefinition=td1,
                       schedulingStrategy="DAEMON", launchType="EC2")
    placed = until("one task per instance", lambda: (
        lambda found: found if len(running(found)) == 3 else None)(daemon_tasks(aws, "c", "agent")))
    assert sorted(t["containerInstanceArn"] for t in placed) == sorted(arns)
    assert standin in {t["taskArn"] for t in placed}
    (service,) = ecs.describe_services(cluster="c", services=["agent"])["services"]
    deployment = service["deployments"][0]["id"]
    assert deployment.startswith("ecs-svc/")
    mine = [t for t in placed if t["taskArn"] != standin]
    assert all(t["group"] == "service:agent" and t["startedBy"] == deployment
               and t["taskDefinitionArn"] == td1 for t in mine)
    assert (service["desiredCount"], service["runningCount"]) == (3, 3)
    time.sleep(0.3)  # two scheduler rounds: still one per instance
    assert len(running(daemon_tasks(aws, "c", "agent"))) == 3
    assert ecs.list_tasks(cluster="c", serviceName="other")["taskArns"] == []

    # A new revision: a new deployment, new tasks, the old ones stopped.
    td2 = task_definition(aws, image="busybox:2")
    ecs.update_service(cluster="c", service="agent", taskDefinition=td2)
    until("tasks of the new revision", lambda: sum(
        1 for t in running(daemon_tasks(aws, "c", "agent")) if t["taskDefinitionArn"] == td2) == 2)
    (service,) = ecs.describe_services(cluster="c", services=["agent"])["services"]
    assert service["deployments"][0]["id"] != deployment
    assert service["taskDefinition"] == td2
    old = [t for t in daemon_tasks(aws, "c", "agent")
           if t["taskDefinitionArn"] == td1 and t["taskArn"] != standin]
    assert len(old) == 2 and all(t["lastStatus"] == "STOPPED" for t in old)
    assert old[0]["stoppedReason"] == f"Scaling activity initiated by (deployment {deployment})"
    assert old[0]["stopCode"] == "ServiceSchedulerInitiated"

    # A new instance gets its task; a deleted service's tasks stop.
    instance_id = run_instance(aws)
    ecs.register_container_instance(cluster="c", instanceIdentityDocument=json.dumps(
        {"instanceId": instance_id}))
    until("a task on the new instance",
          lambda: len(running(daemon_tasks(aws, "c", "agent"))) == 4)

    # A terminated instance leaves the cluster a little later, and its task stops.
    aws("ec2").terminate_instances(InstanceIds=[instance_id])
    until("its container instance to leave", lambda: sorted(
        ecs.list_container_instances(cluster="c")["containerInstanceArns"]) == sorted(arns))
    (left,) = [t for t in daemon_tasks(aws, "c", "agent")
               if t["containerInstanceArn"] not in arns and t["lastStatus"] == "STOPPED"]
    assert left["stoppedReason"] == f"Host EC2 (instance {instance_id}) terminated."
    (cluster,) = ecs.describe_clusters(clusters=["c"])["clusters"]
    assert (cluster["registeredContainerInstancesCount"], cluster["runningTasksCount"]) == (3, 3)
    (service,) = ecs.describe_services(cluster="c", services=["agent"])["services"]
    assert (service["desiredCount"], service["runningCount"]) == (3, 3)

    ecs.delete_service(cluster="c", service="agent")
    until("no running task", lambda: not running(daemon_tasks(aws, "c", "agent")))
    stopped = [t for t in daemon_tasks(aws, "c", "agent") if t["taskArn"] == standin]
    assert stopped[0]["stopCode"] == "ServiceSchedulerInitiated"


def test_daemon_faults_stop_each_task_with_the_reason_given(aws, rules_server):
    rules_server.configure({
        "delays": {"service_linked_role": 0, "daemon_retry": 0.05},
        "daemon_faults": {"agent": {
            "stoppedReason": "CannotPullContainerError: pull access denied",
            "exitCode": 137,
            "reason": "OutOfMemoryError: Container killed due to memory usage",
            "stopCode": "TaskFailedToStart",
        }},
    })
    ecs = aws("ecs")
    arns = cluster_with_instances(aws, "c", 2)
    ecs.create_service(cluster="c", serviceName="agent", taskDefinition=task_definition(aws),
                       schedulingStrategy="DAEMON", launchType="EC2")
    seen: set[str] = set()

    def failed_enough():
        found = daemon_tasks(aws, "c", "agent")
        seen.update(t["taskArn"] for t in found)
        return found if len(seen) > 12 else None

    found = until("retries", failed_enough)
    assert not running(found)
    assert len(found) <= 10  # older failures are forgotten
    assert {t["containerInstanceArn"] for t in found} == set(arns)
    for task in found:
        assert task["lastStatus"] == "STOPPED" and task["desiredStatus"] == "STOPPED"
        assert task["stoppedReason"] == "CannotPullContainerError: pull access denied"
        assert task["stopCode"] == "TaskFailedToStart"
        (container,) = task["containers"]
        assert container["exitCode"] == 137
        assert container["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    (service,) = ecs.describe_services(cluster="c", services=["agent"])["services"]
    assert (service["desiredCount"], service["runningCount"]) == (2, 0)
    assert service["deployments"][0]["rolloutState"] == "IN_PROGRESS"

    rules_server.configure({"daemon_faults": {}})  # the image is fixed
    until("running tasks", lambda: len(running(daemon_tasks(aws, "c", "agent"))) == 2)


def test_reset_forgets_faults_tokens_events_and_delays(aws, rules_server):
    rules_server.configure({"delays": {"service_linked_role": 0, "eni_release": 1.5},
                            "daemon_faults": {"agent": {"stoppedReason": "boom"}}})
    ecs = aws("ecs")

    def account() -> dict:
        ecs.create_cluster(clusterName="c")
        return dict(cluster="c", serviceName="web", taskDefinition=task_definition(aws),
                    desiredCount=0, clientToken="t")

    spec = account()
    ecs.create_service(**spec)
    ecs.create_service(**spec)
    assert kinds(rules_server.events(), "replayed")
    rules_server.reset()
    config = rules_server.config()
    assert config["daemon_faults"] == {}
    # One test's longer delays never slow the next: back to the server's defaults.
    assert config["delays"]["eni_release"] == 0.5
    assert rules_server.events() == []
    rules_server.configure({"delays": {"service_linked_role": 0}})
    ecs.create_service(**account())  # the token means nothing in the new account
    assert len(ecs.list_services(cluster="c")["serviceArns"]) == 1
    assert rules_server.events() == []

"""What a real AWS account does that moto does not: the `World` behind the rules layer.

server.py parses every call, checks the rules, then asks `World.before(call)` (an `Answer` here
answers the call without moto) and, after moto answered, `World.after(call, answer)` (which may
record, or rewrite the answer). `reset()` is a fresh account; `configure()` takes the settings
below; `events()` is what World did, for a benchmark to measure a tool's overshoot.

Every delay is in seconds, set with `configure({"delays": {KEY: SECONDS}})`; defaults are short
(the integration suite runs ~100 fresh-account lifecycles); `reset()` restores them, so one
test's longer delays never slow the next.

1. Idempotency tokens (no delay).
   RunInstances and CreateLaunchTemplate `ClientToken`, ECS RunTask and CreateService
   `clientToken`: a repeat with the same token and the same parameters (the token itself left
   out of the comparison) gets the FIRST answer again, byte for byte, even when that instance
   has since been terminated, and creates nothing. The same token with other parameters:
   EC2 `IdempotentParameterMismatch` ("...associated with a resource that is already
   deleted..." when the resource is gone, "Arguments on this idempotent request are
   inconsistent..." otherwise); ECS CreateService `InvalidParameterException` ("Creation of
   service was not idempotent."); ECS RunTask `ConflictException` with `resourceIds`, the task
   ARNs already bound to the token. Tokens are per account and region, and for ECS per cluster
   ("Requests with the same token in the same cluster are idempotent"). Only a successful
   answer binds a token; a repeat that arrives while the first is still in moto waits for it.
   https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html
   https://docs.aws.amazon.com/AmazonECS/latest/APIReference/ECS_Idempotency.html
   https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_RunTask.html (ConflictException)

2. A fresh account's eventual consistency.
   - `instance_profile` (0.5): a profile made by CreateInstanceProfile, or given a role by
     AddRoleToInstanceProfile, is unknown to EC2 and Auto Scaling that long. RunInstances naming
     it (IamInstanceProfile Name or Arn, or through its LaunchTemplate) -> InvalidParameterValue
     "Value (NAME) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance
     Profile name"; CreateLaunchConfiguration -> ValidationError "Invalid IamInstanceProfile:
     NAME"; Create/UpdateAutoScalingGroup with a launch template (id or name; $Latest,
     $Default or a number; also through MixedInstancesPolicy) whose version names it ->
     ValidationError "You must use a valid fully-formed launch template. Value (NAME) ...".
     https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
   - `service_linked_role` (0.5): the account's first ECS CreateCluster makes the role
     AWSServiceRoleForECS (path /aws-service-role/ecs.amazonaws.com/) in the background, and
     CreateService answers InvalidParameterException "Unable to assume the service linked role.
     Please verify that the ECS service linked role exists." until it can be assumed. IAM
     CreateServiceLinkedRole(ecs.amazonaws.com) makes the role with AWS's name (moto would say
     AWSServiceRoleForecs) and starts the same delay if nothing did; when the role exists it
     answers InvalidInput "Service role name AWSServiceRoleForECS has been taken in this
     account, please try a different suffix." (moto: EntityAlreadyExists).
     https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using-service-linked-roles.html
   - `eni_release` (0.5): DeleteSecurityGroup answers DependencyViolation "resource sg-... has a
     dependent object" while an instance in the group is not terminated, and that long after
     the last one was (an instance's network interface outlives it a while). Termination times
     come from moto's Instance.terminate (TerminateInstances, Auto Scaling scale-in, group
     deletion), which World wraps.
     https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSecurityGroup.html
   - `asg_delete` (0.5): DeleteAutoScalingGroup returns at once, the group goes that much
     later (World defers moto's deletion). Meanwhile DescribeAutoScalingGroups lists it with
     `<Status>Delete in progress</Status>`, its instances keep running (so its security group
     and ECS cluster stay in use), a second DeleteAutoScalingGroup is accepted, CreateAutoScaling
     Group of that name answers AlreadyExists, and DeleteLaunchConfiguration of its launch
     configuration answers ResourceInUse. DeleteLaunchConfiguration of a configuration any group
     uses answers ResourceInUse ("Cannot delete launch configuration NAME because it is attached
     to AutoScalingGroup ASG") at any time, and DeleteAutoScalingGroup without ForceDelete while
     the group has instances answers ResourceInUse ("You cannot delete an AutoScalingGroup while
     there are instances or pending Spot instance request(s) still in the group."). A launch
     template in use is NOT protected: AWS deletes it, and the group then fails to launch
     ("The launch template associated with this Auto Scaling group cannot be found").
     https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DeleteAutoScalingGroup.html
     https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_AutoScalingGroup.html (Status)
     https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DeleteLaunchConfiguration.html
   - `service_drain` (0.5): after DeleteService the service is DRAINING that long (in moto's
     state, so DescribeServices and DeleteService show it), then INACTIVE. Meanwhile DeleteCluster
     answers ClusterContainsServicesException and CreateService of that name answers
     InvalidParameterException "Creation of service was not idempotent.". ListServices lists only
     ACTIVE services (moto lists INACTIVE ones too).
     https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeleteService.html
   - DeleteCluster (moto checks nothing): ClusterContainsServicesException "The Cluster cannot be
     deleted while Services are active." (ACTIVE or DRAINING services),
     ClusterContainsContainerInstancesException "... while Container Instances are active or
     draining.", ClusterContainsTasksException "... while Tasks are active.".
     https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeleteCluster.html
   - `container_instance_deregister` (0.5): that long after its EC2 instance terminated, a
     container instance becomes INACTIVE and its tasks STOPPED ("Host EC2 (instance i-...)
     terminated."); ListContainerInstances leaves INACTIVE ones out (moto lists them; AWS's
     `status` filter cannot even ask for INACTIVE).
     https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeregisterContainerInstance.html
     https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListContainerInstances.html

3. The DAEMON scheduler (moto stores DAEMON services and places nothing). A background thread
   (every 0.15 s) keeps one RUNNING task of each ACTIVE DAEMON service on each ACTIVE container
   instance of its ACTIVE cluster: group `service:<name>`, startedBy the service's deployment id
   (`ecs-svc/<19 digits>`), launchType EC2. It never starts a second one where a task of that
   group is already live on the instance (a stand-in agent may start them with StartTask).
   UpdateService to another task definition makes a new deployment (new id); the scheduler's
   own tasks of an older deployment (another revision, or forceNewDeployment) are stopped and
   new ones started; tasks someone else started are left alone. Tasks of DRAINING / INACTIVE
   services (and of deleted clusters) are stopped, whoever started them. Stopped
   by the scheduler: stoppedReason "Scaling activity initiated by (deployment ecs-svc/...)",
   stopCode ServiceSchedulerInitiated. DescribeServices shows a DAEMON service's desiredCount
   (ACTIVE container instances) and runningCount; DescribeClusters counts what is there.
   `configure({"daemon_faults": {"<service>": {"stoppedReason": ..., "stopCode": ...,
   "exitCode": ..., "reason": ...}}})` makes each of that service's tasks stop as soon as it is
   started, with those fields (tasks[].stoppedReason, stopCode, containers[].exitCode, reason);
   the scheduler retries every `daemon_retry` (0.3) seconds per instance and keeps at most 10
   stopped failed tasks per service (older ones are forgotten, as ECS forgets stopped tasks).
   `daemon_faults` replaces the whole table each time and is cleared by reset().
   https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service-options.html
   https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-errors.html
   Tasks start RUNNING (moto's first state) and stay so while the harness pins moto's
   `ecs::task` transitions; under moto's default progression they advance at each DescribeTasks
   like any other task, and the scheduler replaces them once STOPPED.

4. Pages (pages.py). `configure({"page_sizes": {"ecs:ListTasks": 2, "ec2:DescribeInstances": 1}})`
   ("service:Operation" -> the most items one answer carries) makes an answer of that operation
   with more items carry only that many (fewer when the caller's own MaxResults / maxResults /
   MaxRecords / limit / MaxItems is smaller) and a continuation token, `l5d-page:<offset>:<digest>`
   (the digest: a hash of the operation and the call's other parameters); a call with the token
   gets the next slice, the last page has none. moto answers the whole list every time (our
   token and the bound are taken out of the request) and the page is cut after World's own
   rewrites. Paged: ECS ListTasks, ListContainerInstances, ListServices, ListTaskDefinitions,
   ListClusters (nextToken); EC2 DescribeInstances (by reservation; not when InstanceIds are
   named, which AWS answers whole), DescribeSecurityGroups, DescribeSubnets,
   DescribeLaunchTemplates, DescribeInstanceTypeOfferings (nextToken); Auto Scaling
   DescribeAutoScalingGroups, DescribeLaunchConfigurations, DescribeScheduledActions (NextToken);
   CloudWatch Logs DescribeLogGroups (nextToken); IAM ListAttachedRolePolicies, ListRolePolicies
   (Marker, IsTruncated). Each key given replaces that operation's size (null drops it); an
   operation not paged here is refused as a setting; reset() clears them all. Unchanged: answers
   that fit in a page, answers moto paged itself (lists longer than its own cap: 100 Auto Scaling
   groups, 50 log groups) and calls carrying moto's token. A token of ours that does not parse or
   that another call made (other filters) is answered as AWS answers a bad token (ECS and Logs
   InvalidParameterException, EC2 InvalidPaginationToken, Auto Scaling InvalidNextToken, IAM
   InvalidInput) and recorded as a violation, rule `pages:token`.
   https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Query-Requests.html#api-pagination
   https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeAutoScalingGroups.html

Also: StopTask on a STOPPED task returns it unchanged (moto counted the resources back twice),
StopTask of a task whose container instance was deregistered stops it (moto: HTML 500), StopTask
of an unknown task answers InvalidParameterException "The referenced task was not found." (moto:
HTML 500), StopTask without a reason says "Task stopped by user" (stopCode UserInitiated); ListTasks
honours serviceName (moto ignores it); UpdateAutoScalingGroup to a launch template drops the
group's launch configuration and the other way round (moto keeps both); TerminateInstances of
a terminated instance changes nothing (moto tore it down twice).

Events (`GET /_rules/events`, cleared by reset): every refusal ({"kind": "refused", "rule",
"operation", "resource", "at", "ready_at"}: ready_at is when AWS would accept, or null when that
depends on the caller, e.g. instances still running), every token replay ("replayed"), and the
first accepted call after refusals of the same operation on the same resource ("accepted",
with "first_refused_at", "refusals" and "overshoot" = at - ready_at).

Threading: the server is threaded and moto is not thread-safe. `start()` wraps moto's
`BaseResponse.call_action` and the moto-api reset in one lock, which World and its background
thread hold too, so no moto state changes under anyone's feet.

Speed: `start()` also has moto load AWS managed policies into the "aws" partition's IAM only
(moto loads them into every partition's, ~1 s per fresh account and per reset); nothing here
uses another partition.
"""

from __future__ import annotations

import copy
import json
import random
import re
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from typing import Any, Callable

import pages
from protocol import ACCOUNT, Answer, Call, error, with_body

DEFAULT_DELAYS: dict[str, float] = {
    "instance_profile": 0.5,
    "service_linked_role": 0.5,
    "eni_release": 0.5,
    "asg_delete": 0.5,
    "service_drain": 0.5,
    "container_instance_deregister": 0.5,
    "daemon_retry": 0.3,
}
# What World does, for docs/aws-rules.md (tests/awsrules/doc.py renders it).
_T = "tests/awsrules/test_world.py::"
BEHAVIOURS: list[dict[str, str]] = [
    {"summary": "RunInstances / CreateLaunchTemplate ClientToken: a repeat gets the first answer, even after termination",
     "key": "-", "default": "-",
     "answer": "the first response again; other parameters: `IdempotentParameterMismatch`",
     "reference": "https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html",
     "test": _T + "test_ec2_client_tokens_replay_the_first_answer"},
    {"summary": "RunTask / CreateService clientToken, per cluster",
     "key": "-", "default": "-",
     "answer": "the first response again; other parameters: RunTask `ConflictException`, CreateService `InvalidParameterException` (not idempotent)",
     "reference": "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/ECS_Idempotency.html",
     "test": _T + "test_ecs_run_task_and_create_service_client_tokens"},
    {"summary": "a new instance profile is unknown to EC2 and Auto Scaling for a while (RunInstances, CreateLaunchConfiguration, Create/UpdateAutoScalingGroup through a launch template)",
     "key": "delays.instance_profile", "default": str(DEFAULT_DELAYS["instance_profile"]),
     "answer": "`InvalidParameterValue` / `ValidationError` (Invalid IamInstanceProfile; You must use a valid fully-formed launch template)",
     "reference": "https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency",
     "test": _T + "test_new_instance_profile_is_unknown_to_ec2_and_autoscaling_for_a_while"},
    {"summary": "the ECS service-linked role is made in the background after the account's first cluster",
     "key": "delays.service_linked_role", "default": str(DEFAULT_DELAYS["service_linked_role"]),
     "answer": "CreateService `InvalidParameterException`: Unable to assume the service linked role; CreateServiceLinkedRole `InvalidInput` once it exists",
     "reference": "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using-service-linked-roles.html",
     "test": _T + "test_ecs_service_linked_role_comes_after_the_first_cluster"},
    {"summary": "a security group stays in use while its instances run and while their network interfaces linger",
     "key": "delays.eni_release", "default": str(DEFAULT_DELAYS["eni_release"]),
     "answer": "DeleteSecurityGroup `DependencyViolation`",
     "reference": "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSecurityGroup.html",
     "test": _T + "test_security_group_is_in_use_until_its_instances_are_gone_and_a_while_after"},
    {"summary": "DeleteAutoScalingGroup returns at once; the group (Delete in progress) and its instances go later",
     "key": "delays.asg_delete", "default": str(DEFAULT_DELAYS["asg_delete"]),
     "answer": "DeleteLaunchConfiguration `ResourceInUse` meanwhile; DeleteAutoScalingGroup without ForceDelete on a group with instances `ResourceInUse`",
     "reference": "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DeleteAutoScalingGroup.html",
     "test": _T + "test_auto_scaling_group_deletion_takes_a_while"},
    {"summary": "a deleted service is DRAINING, then INACTIVE; a cluster keeps what it contains",
     "key": "delays.service_drain", "default": str(DEFAULT_DELAYS["service_drain"]),
     "answer": "DeleteCluster `ClusterContainsServicesException` / `ClusterContainsContainerInstancesException` / `ClusterContainsTasksException`",
     "reference": "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeleteCluster.html",
     "test": _T + "test_deleted_service_drains_and_clusters_keep_what_they_contain"},
    {"summary": "DAEMON services: one RUNNING task (group `service:<name>`) on every ACTIVE container instance",
     "key": "-", "default": "-",
     "answer": "tasks placed and replaced as ECS's scheduler does",
     "reference": "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_services.html#service_scheduler_daemon",
     "test": _T + "test_daemon_service_runs_one_task_on_each_active_instance"},
    {"summary": "a daemon whose tasks cannot start (image pull, out of memory, port in use)",
     "key": "daemon_faults", "default": "{}",
     "answer": "tasks STOPPED with `stoppedReason`, `stopCode`, containers' `exitCode` and `reason`; retried",
     "reference": "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-errors.html",
     "test": _T + "test_daemon_faults_stop_each_task_with_the_reason_given"},
    {"summary": "list answers come in pages (ECS List*, EC2 Describe*, Auto Scaling Describe*, Logs DescribeLogGroups, IAM role policies), as AWS may give them",
     "key": "page_sizes", "default": "{}",
     "answer": "at most that many items and a token `l5d-page:<offset>:<digest>`; a bad token: `InvalidParameterException` (ECS, Logs), `InvalidPaginationToken` (EC2), `InvalidNextToken` (Auto Scaling), `InvalidInput` (IAM)",
     "reference": "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Query-Requests.html#api-pagination",
     "test": "tests/awsrules/test_pages.py::test_each_paged_list_comes_in_pages_and_a_paginator_reads_them_all"},
]

POLL_SECONDS = 0.15  # the background thread's period
MAX_FAILED_TASKS = 10  # stopped failed tasks kept per DAEMON service under a fault
MAX_EVENTS = 20000
INFLIGHT_WAIT = 30.0  # how long a token repeat waits for the first call to come back

ECS_SLR_NAME = "AWSServiceRoleForECS"
ECS_SLR_SERVICE = "ecs.amazonaws.com"
ECS_SLR_POLICY = "arn:aws:iam::aws:policy/aws-service-role/AmazonECSServiceRolePolicy"

# One lock for moto and World: moto's request handling (see _patch_moto), the World hooks
# and the background thread all hold it.
MOTO_LOCK = threading.RLock()

TOKEN_FIELDS = {
    ("ec2", "RunInstances"): "ClientToken",
    ("ec2", "CreateLaunchTemplate"): "ClientToken",
    ("ecs", "RunTask"): "clientToken",
    ("ecs", "CreateService"): "clientToken",
}

EC2_TOKEN_GONE = (
    "The client token you have provided is associated with a resource that is already deleted. "
    "Please use a different client token."
)
EC2_TOKEN_MISMATCH = (
    "Arguments on this idempotent request are inconsistent with arguments used in previous "
    "request(s)."
)
ECS_SERVICE_NOT_IDEMPOTENT = "Creation of service was not idempotent."
ECS_RUNTASK_CONFLICT = (
    "The RunTask request could not be processed due to conflicts. The provided clientToken is "
    "already in use with a different RunTask request."
)
ASG_XMLNS = "http://autoscaling.amazonaws.com/doc/2011-01-01/"


# ------------------------------------------------------------------------------------------
# moto access
# ------------------------------------------------------------------------------------------


def _ec2(account: str, region: str):
    from moto.ec2.models import ec2_backends

    return ec2_backends[account][region]


def _ecs(account: str, region: str):
    from moto.ecs.models import ecs_backends

    return ecs_backends[account][region]


def _autoscaling(account: str, region: str):
    from moto.autoscaling.models import autoscaling_backends

    return autoscaling_backends[account][region]


def _iam(account: str):
    # IAM is global: moto keys its backend by partition ("aws"), not by region.
    from moto.iam.models import iam_backends

    return iam_backends[account]["aws"]


def _existing(backend_dict, account: str) -> list[tuple[str, Any]]:
    """(region, backend) for the regions that already have a backend: plain dict reads, so
    nothing is created (moto makes a backend on first __getitem__)."""
    per_account = dict.get(backend_dict, account)
    if not per_account:
        return []
    return list(dict.items(per_account))


def _existing_backend(backend_dict, account: str, region: str):
    per_account = dict.get(backend_dict, account)
    return dict.get(per_account, region) if per_account else None


def _ecs_backends(account: str) -> list[tuple[str, Any]]:
    from moto.ecs.models import ecs_backends

    return _existing(ecs_backends, account)


def _ec2_existing(account: str, region: str):
    from moto.ec2.models import ec2_backends

    return _existing_backend(ec2_backends, account, region)


def _utcnow():
    from moto.core.utils import utcnow

    return utcnow()


_PATCHED = False


def _patch_moto() -> None:
    """Serialises moto (its request handling and its reset) on MOTO_LOCK, records when each
    instance terminated, and makes StopTask of a stopped task harmless. Idempotent."""
    global _PATCHED
    with MOTO_LOCK:
        if _PATCHED:
            return
        from moto.core.responses import BaseResponse
        from moto.ec2.models.instances import Instance
        from moto.ecs.exceptions import InvalidParameterException
        from moto.ecs.models import EC2ContainerServiceBackend
        from moto.moto_api._internal.models import MotoAPIBackend

        call_action = BaseResponse.call_action

        def locked_call_action(self, *args, **kwargs):
            with MOTO_LOCK:
                return call_action(self, *args, **kwargs)

        BaseResponse.call_action = locked_call_action

        reset = MotoAPIBackend.reset

        def locked_reset(self, *args, **kwargs):
            with MOTO_LOCK:
                return reset(self, *args, **kwargs)

        MotoAPIBackend.reset = locked_reset

        terminate = Instance.terminate

        def recorded_terminate(self, *args, **kwargs):
            if self._state.name == "terminated":
                # AWS: terminating a terminated instance changes nothing (moto would tear its
                # network interfaces and volumes down a second time).
                return copy.copy(self._state)
            result = terminate(self, *args, **kwargs)
            self._l5d_terminated_at = time.time()
            return result

        Instance.terminate = recorded_terminate

        stop_task = EC2ContainerServiceBackend.stop_task

        def idempotent_stop_task(self, cluster_str, task_str, reason):
            cluster = self._get_cluster(cluster_str)
            task_id = task_str.split("/")[-1]
            for arn, task in self.tasks.get(cluster.name, {}).items():
                if not arn.endswith(task_id):
                    continue
                if task._status == "STOPPED":
                    return task  # AWS accepts StopTask on a stopped task and changes nothing
                ci_arn = task.container_instance_arn
                if ci_arn and ci_arn.split("/")[-1] not in self.container_instances.get(cluster.name, {}):
                    # Its container instance was deregistered (moto: KeyError, HTML 500).
                    task.last_status = "STOPPED"
                    task.desired_status = "STOPPED"
                    task.stopped_reason = reason
                    break
            else:
                task = None
                if not any(arn.endswith(task_id) for arn in self.tasks.get(cluster.name, {})):
                    # moto: a bare Exception (HTML 500)
                    raise InvalidParameterException("The referenced task was not found.")
            if task is None or task._status != "STOPPED":
                task = stop_task(self, cluster_str, task_str, reason)
            if not reason:
                task.stopped_reason = "Task stopped by user"
            task.stop_code = "UserInitiated"
            task.stopped_at = task.stopping_at = task.execution_stopped_at = _utcnow()
            for container in task.containers:
                container.last_status = "STOPPED"
            return task

        EC2ContainerServiceBackend.stop_task = idempotent_stop_task

        # Speed only: moto's account lookup makes an IAM backend for every partition on an
        # account's first request, and each loads all ~1300 managed policies (with
        # MOTO_IAM_LOAD_MANAGED_POLICIES=true: ~1 s per fresh account and again per reset). The
        # account lives in "aws"; the other partitions get none, and the data is parsed once.
        from moto.iam.models import IAMBackend

        init_aws_policies = IAMBackend._init_aws_policies
        parsed: dict[str, Any] = {}

        def aws_partition_policies(self):
            if self.region_name != "aws":
                return []
            from moto.iam import models as iam_models
            from moto.settings import load_iam_aws_managed_policies

            if not load_iam_aws_managed_policies():
                return init_aws_policies(self)
            if "data" not in parsed:
                parsed["data"] = json.loads(iam_models.aws_managed_policies_data)
            return [
                iam_models.AWSManagedPolicy.from_data(name, self.account_id, self.region_name, d)
                for name, d in parsed["data"].items()
            ]

        IAMBackend._init_aws_policies = aws_partition_policies
        _PATCHED = True


# ------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------


def _cluster_name(value: Any) -> str:
    return str(value or "default").split("/")[-1]


def _fingerprint(params: dict[str, Any], token_field: str) -> str:
    rest = {k: v for k, v in params.items() if k != token_field}
    return json.dumps(rest, sort_keys=True, default=str)


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

def _json(answer: Answer) -> Any:
    try:
        return json.loads(answer.body or b"{}")
    except ValueError:
        return None


def _query_ok(operation: str, xmlns: str) -> Answer:
    rid = str(uuid.uuid4())
    body = (
        f'<{operation}Response xmlns="{xmlns}"><ResponseMetadata><RequestId>{rid}'
        f"</RequestId></ResponseMetadata></{operation}Response>"
    ).encode()
    return Answer(200, [("Content-Type", "text/xml"), ("x-amzn-RequestId", rid)], body)


def _profile_name(value: Any) -> str | None:
    """The instance profile a parameter names: a name, an ARN, or {"Name"|"Arn": ...}."""
    if isinstance(value, dict):
        value = value.get("Name") or value.get("Arn")
    if not value:
        return None
    return str(value).rsplit("/", 1)[-1]


def _deployment_id() -> str:
    return f"ecs-svc/{random.randint(10**18, 10**19 - 1)}"


def _live(task) -> bool:
    return task.desired_status == "RUNNING" and task._status != "STOPPED"


class World:
    def __init__(self) -> None:
        self._lock = MOTO_LOCK
        self._cond = threading.Condition(self._lock)
        self._delays: dict[str, float] = dict(DEFAULT_DELAYS)
        self._extra: dict[str, Any] = {}
        # service:Operation -> items per answer (pages.py), cleared by reset()
        self._page_sizes: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._errors_seen: set[str] = set()
        self._clear()
        self._before: dict[tuple[str, str], Callable[[Call, float], Answer | None]] = {
            ("ec2", "RunInstances"): self._before_run_instances,
            ("ec2", "DeleteSecurityGroup"): self._before_delete_security_group,
            ("autoscaling", "CreateLaunchConfiguration"): self._before_create_launch_configuration,
            ("autoscaling", "CreateAutoScalingGroup"): self._before_create_asg,
            ("autoscaling", "UpdateAutoScalingGroup"): self._before_update_asg,
            ("autoscaling", "DeleteAutoScalingGroup"): self._before_delete_asg,
            ("autoscaling", "DeleteLaunchConfiguration"): self._before_delete_launch_configuration,
            ("iam", "CreateServiceLinkedRole"): self._before_create_slr,
            ("ecs", "CreateService"): self._before_create_service,
            ("ecs", "DeleteCluster"): self._before_delete_cluster,
            ("ecs", "DeleteService"): self._before_delete_service,
        }
        self._after: dict[tuple[str, str], Callable[[Call, Answer], Answer | None]] = {
            ("iam", "CreateInstanceProfile"): self._after_profile_changed,
            ("iam", "AddRoleToInstanceProfile"): self._after_profile_changed,
            ("iam", "DeleteInstanceProfile"): self._after_delete_profile,
            ("iam", "CreateServiceLinkedRole"): self._after_create_slr,
            ("ecs", "CreateCluster"): self._after_create_cluster,
            ("ecs", "DeleteService"): self._after_delete_service,
            ("ecs", "ListServices"): self._after_list_services,
            ("ecs", "DescribeServices"): self._after_describe_services,
            ("ecs", "DescribeClusters"): self._after_describe_clusters,
            ("ecs", "ListContainerInstances"): self._after_list_container_instances,
            ("ecs", "ListTasks"): self._after_list_tasks,
            ("autoscaling", "DescribeAutoScalingGroups"): self._after_describe_asgs,
            ("autoscaling", "UpdateAutoScalingGroup"): self._after_update_asg,
        }

    def _clear(self) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self._faults: dict[str, dict[str, Any]] = {}
        # idempotency: key -> {"fingerprint", "answer" (None while in flight), "at"}
        self._tokens: dict[tuple, dict[str, Any]] = {}
        # instance profile name -> when EC2 / Auto Scaling know it
        self._profiles: dict[str, float] = {}
        # ECS service-linked role: when it can be assumed (None: nothing started it), and
        # the account whose IAM is still to get it
        self._slr_ready_at: float | None = None
        self._slr_to_make: str | None = None
        # (account, region, cluster, service) -> {"until", "service"}
        self._draining: dict[tuple, dict[str, Any]] = {}
        # (account, region, group name) -> when moto deletes it
        self._asg_pending: dict[tuple, float] = {}
        # (service, operation, resource) -> refusals not yet followed by an accepted call
        self._watch: dict[tuple, dict[str, Any]] = {}
        # (account, region, instance id) -> first seen terminated (when Instance.terminate
        # was not wrapped, e.g. World used without start())
        self._seen_terminated: dict[tuple, float] = {}
        # DAEMON scheduler bookkeeping
        self._daemon_tasks: set[str] = set()
        self._fault_last: dict[tuple, float] = {}
        self._failed: dict[tuple, deque[str]] = {}

    # -- interface ------------------------------------------------------------------------
    def start(self) -> None:
        _patch_moto()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="aws-world", daemon=True)
            self._thread.start()

    def reset(self) -> None:
        with self._lock:
            self._clear()
            self._delays = dict(DEFAULT_DELAYS)
            self._page_sizes = {}
            self._cond.notify_all()

    def configure(self, settings: dict[str, Any]) -> None:
        with self._lock:
            for key, value in (settings or {}).items():
                if key == "delays":
                    if not isinstance(value, dict):
                        raise ValueError("delays must be an object of seconds")
                    for name, seconds in value.items():
                        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                            raise ValueError(f"delay {name} must be a number of seconds >= 0")
                        self._delays[name] = float(seconds)
                elif key == "daemon_faults":
                    if value is not None and not isinstance(value, dict):
                        raise ValueError("daemon_faults must be an object: service -> fault")
                    self._faults = {
                        str(name): dict(spec) for name, spec in (value or {}).items() if spec
                    }
                    self._fault_last.clear()
                elif key == "page_sizes":
                    for name, size in pages.validate(value).items():
                        if size is None:
                            self._page_sizes.pop(name, None)
                        else:
                            self._page_sizes[name] = size
                else:
                    self._extra[key] = value

    def config(self) -> dict[str, Any]:
        with self._lock:
            out = dict(self._extra)
            out["delays"] = dict(self._delays)
            out["daemon_faults"] = copy.deepcopy(self._faults)
            out["page_sizes"] = dict(self._page_sizes)
            return out

    def page_sizes(self) -> dict[str, int]:
        with self._lock:
            return dict(self._page_sizes)

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._events]

    def before(self, call: Call) -> Answer | None:
        try:
            with self._lock:
                now = time.time()
                call._world = {"passed": [], "token": None}
                self._settle(now)
                if call.service == "iam" and self._slr_to_make is not None:
                    self._make_slr()  # the role ECS made when the first cluster came
                key = self._token_key(call)
                if key is not None:
                    early = self._token_lookup(call, key, now)
                    if early is not None:
                        return early
                handler = self._before.get((call.service, call.operation))
                answer = handler(call, now) if handler else None
                if answer is None and key is not None:
                    field = TOKEN_FIELDS[(call.service, call.operation)]
                    self._tokens[key] = {
                        "fingerprint": _fingerprint(call.params, field),
                        "answer": None,
                        "at": now,
                    }
                    call._world["token"] = key
                return answer
        except Exception:  # World must never take the server down with it
            self._log_error("before", call)
            return None

    def after(self, call: Call, answer: Answer) -> Answer:
        notes = getattr(call, "_world", None) or {}
        try:
            with self._lock:
                try:
                    handler = self._after.get((call.service, call.operation))
                    if handler is not None:
                        answer = handler(call, answer) or answer
                finally:
                    self._token_done(notes.get("token"), answer)
                if answer.status < 400:
                    self._accepted(call, notes.get("passed", []), time.time())
        except Exception:
            self._log_error("after", call)
        return answer

    # -- plumbing -------------------------------------------------------------------------
    def _delay(self, name: str) -> float:
        return self._delays.get(name, DEFAULT_DELAYS.get(name, 0.0))

    def _log_error(self, where: str, call: Call | None) -> None:
        text = traceback.format_exc()
        if text in self._errors_seen:
            return
        self._errors_seen.add(text)
        what = f"{call.service}.{call.operation}" if call is not None else "background"
        print(f"[aws-rules] World.{where} failed on {what}:\n{text}", file=sys.stderr, flush=True)

    def _event(self, kind: str, call: Call, rule: str, resource: str, at: float,
               ready_at: float | None, **extra: Any) -> None:
        event = {
            "kind": kind,
            "rule": rule,
            "service": call.service,
            "operation": call.operation,
            "region": call.region,
            "resource": resource,
            "at": at,
            "ready_at": ready_at,
        }
        event.update(extra)
        self._events.append(event)

    def _refuse(self, call: Call, rule: str, resource: str, code: str, message: str,
                ready_at: float | None = None, status: int = 400,
                answer: Answer | None = None) -> Answer:
        now = time.time()
        self._event("refused", call, rule, resource, now, ready_at, code=code)
        if rule == "idempotency":
            return answer if answer is not None else error(call, code, message, status)
        key = (call.service, call.operation, resource)
        watch = self._watch.setdefault(key, {"first_refused_at": now, "refusals": 0})
        watch["refusals"] += 1
        watch["rule"] = rule
        watch["ready_at"] = ready_at
        return answer if answer is not None else error(call, code, message, status)

    def _passed(self, call: Call, resource: str) -> None:
        if (call.service, call.operation, resource) in self._watch:
            call._world["passed"].append(resource)

    def _accepted(self, call: Call, resources: list[str], now: float) -> None:
        for resource in resources:
            watch = self._watch.pop((call.service, call.operation, resource), None)
            if watch is None:
                continue
            ready_at = watch.get("ready_at")
            self._event(
                "accepted", call, watch["rule"], resource, now, ready_at,
                first_refused_at=watch["first_refused_at"],
                refusals=watch["refusals"],
                overshoot=(now - ready_at) if ready_at is not None else None,
            )

    def _run(self) -> None:
        while True:
            time.sleep(POLL_SECONDS)
            try:
                with self._lock:
                    now = time.time()
                    self._settle(now)
                    self._schedule_daemons(now)
            except Exception:
                self._log_error("background", None)

    def _settle(self, now: float) -> None:
        """Makes what is due by now happen: deferred group deletions, drained services,
        container instances of terminated instances. Runs before every call and in the
        background, so every call sees the state AWS would have at its time."""
        for key, due in sorted(self._asg_pending.items(), key=lambda kv: kv[1]):
            if due <= now:
                try:
                    self._finish_asg_delete(key, due)
                except Exception:
                    self._log_error("settle (group deletion)", None)
        for key, info in list(self._draining.items()):
            if info["until"] <= now:
                service = info["service"]
                if service.status == "DRAINING":
                    service.status = "INACTIVE"
                del self._draining[key]
        try:
            self._deregister_dead_instances(now)
        except Exception:
            self._log_error("settle (container instances)", None)

    def _terminated_at(self, account: str, region: str, instance) -> float | None:
        if instance is None:
            return None
        if instance.state != "terminated":
            return None
        at = getattr(instance, "_l5d_terminated_at", None)
        if at is None:
            at = self._seen_terminated.setdefault((account, region, instance.id), time.time())
        return at

    # -- 1. idempotency tokens ------------------------------------------------------------
    def _token_key(self, call: Call) -> tuple | None:
        field = TOKEN_FIELDS.get((call.service, call.operation))
        token = call.params.get(field) if field else None
        if not token:
            return None
        scope: tuple = ()
        if call.service == "ecs":
            scope = (_cluster_name(call.params.get("cluster")),)
        return (call.account, call.region, call.service, call.operation) + scope + (token,)

    def _token_lookup(self, call: Call, key: tuple, now: float) -> Answer | None:
        record = self._tokens.get(key)
        deadline = now + INFLIGHT_WAIT
        while record is not None and record["answer"] is None:
            left = deadline - time.time()
            if left <= 0:
                del self._tokens[key]  # the first call never came back: forget it
                return None
            self._cond.wait(left)
            record = self._tokens.get(key)
        if record is None:
            return None
        field = TOKEN_FIELDS[(call.service, call.operation)]
        token = key[-1]
        first: Answer = record["answer"]
        if _fingerprint(call.params, field) == record["fingerprint"]:
            self._event("replayed", call, "idempotency", token, time.time(), None,
                        first_at=record["at"])
            return Answer(first.status, list(first.headers), first.body)
        if call.service == "ec2":
            gone = self._token_resource_gone(call, first)
            return self._refuse(call, "idempotency", token, "IdempotentParameterMismatch",
                                EC2_TOKEN_GONE if gone else EC2_TOKEN_MISMATCH)
        if call.operation == "RunTask":
            arns = [t.get("taskArn") for t in (_json(first) or {}).get("tasks", [])]
            answer = error(call, "ConflictException", ECS_RUNTASK_CONFLICT)
            body = json.loads(answer.body)
            body["resourceIds"] = [a for a in arns if a]
            answer = Answer(answer.status, answer.headers, json.dumps(body).encode())
            return self._refuse(call, "idempotency", token, "ConflictException",
                                ECS_RUNTASK_CONFLICT, answer=answer)
        return self._refuse(call, "idempotency", token, "InvalidParameterException",
                            ECS_SERVICE_NOT_IDEMPOTENT)

    def _token_resource_gone(self, call: Call, first: Answer) -> bool:
        text = first.body.decode("utf-8", "replace")
        ec2 = _ec2(call.account, call.region)
        if call.operation == "RunInstances":
            ids = re.findall(r"<instanceId>(i-[0-9a-f]+)</instanceId>", text)
            if not ids:
                return False
            for instance_id in ids:
                instance = ec2.get_instance_by_id(instance_id)
                if instance is not None and instance.state != "terminated":
                    return False
            return True
        ids = re.findall(r"<launchTemplateId>(lt-[0-9a-f]+)</launchTemplateId>", text)
        return bool(ids) and all(i not in ec2.launch_templates for i in ids)

    def _token_done(self, key: tuple | None, answer: Answer) -> None:
        if key is None:
            return
        record = self._tokens.get(key)
        if record is not None and record["answer"] is None:
            if answer.status == 200:
                record["answer"] = Answer(answer.status, list(answer.headers), answer.body)
            else:
                del self._tokens[key]  # only a success binds the token
        self._cond.notify_all()

    # -- 2a. instance profiles ------------------------------------------------------------
    def _after_profile_changed(self, call: Call, answer: Answer) -> None:
        if answer.status != 200:
            return
        name = call.params.get("InstanceProfileName")
        if name:
            ready = time.time() + self._delay("instance_profile")
            self._profiles[name] = max(self._profiles.get(name, 0.0), ready)

    def _after_delete_profile(self, call: Call, answer: Answer) -> None:
        if answer.status == 200:
            self._profiles.pop(call.params.get("InstanceProfileName"), None)

    def _profile_pending(self, name: str | None, now: float) -> float | None:
        if not name:
            return None
        ready = self._profiles.get(name)
        return ready if ready is not None and now < ready else None

    def _template_data(self, call: Call, spec: Any) -> dict[str, Any] | None:
        if not isinstance(spec, dict):
            return None
        try:
            ec2 = _ec2(call.account, call.region)
            if spec.get("LaunchTemplateId"):
                template = ec2.get_launch_template(spec["LaunchTemplateId"])
            elif spec.get("LaunchTemplateName"):
                template = ec2.get_launch_template_by_name(spec["LaunchTemplateName"])
            else:
                return None
            return template.get_version(spec.get("Version") or "$Default").data
        except Exception:
            return None  # moto answers for an unknown template or version

    def _before_run_instances(self, call: Call, now: float) -> Answer | None:
        names = [_profile_name(call.params.get("IamInstanceProfile"))]
        data = self._template_data(call, call.params.get("LaunchTemplate"))
        if data:
            names.append(_profile_name(data.get("IamInstanceProfile")))
        for name in filter(None, names):
            ready = self._profile_pending(name, now)
            if ready is not None:
                return self._refuse(
                    call, "instance_profile", name, "InvalidParameterValue",
                    f"Value ({name}) for parameter iamInstanceProfile.name is invalid. "
                    "Invalid IAM Instance Profile name",
                    ready_at=ready,
                )
            self._passed(call, name)
        return None

    def _before_create_launch_configuration(self, call: Call, now: float) -> Answer | None:
        value = call.params.get("IamInstanceProfile")
        name = _profile_name(value)
        ready = self._profile_pending(name, now)
        if ready is not None:
            return self._refuse(call, "instance_profile", name, "ValidationError",
                                f"Invalid IamInstanceProfile: {value}", ready_at=ready)
        if name:
            self._passed(call, name)
        return None

    def _asg_template_check(self, call: Call, now: float) -> Answer | None:
        specs = [call.params.get("LaunchTemplate")]
        mixed = call.params.get("MixedInstancesPolicy") or {}
        specs.append((mixed.get("LaunchTemplate") or {}).get("LaunchTemplateSpecification"))
        for spec in specs:
            data = self._template_data(call, spec)
            name = _profile_name((data or {}).get("IamInstanceProfile"))
            ready = self._profile_pending(name, now)
            if ready is not None:
                return self._refuse(
                    call, "instance_profile", name, "ValidationError",
                    "You must use a valid fully-formed launch template. Value "
                    f"({name}) for parameter iamInstanceProfile.name is invalid. "
                    "Invalid IAM Instance Profile name",
                    ready_at=ready,
                )
            if name:
                self._passed(call, name)
        return None

    # -- 2b. the ECS service-linked role --------------------------------------------------
    def _ecs_slr(self, account: str):
        for role in _iam(account).roles.values():
            if role.name == ECS_SLR_NAME:
                return role
        return None

    def _start_slr(self, account: str, now: float) -> None:
        """ECS makes the role in the background; it can be assumed a little later. The role
        is put in moto's IAM at the account's next IAM call: only IAM can see it, and touching
        IAM costs an IAM-free account ~1 s per request and ~1 s per reset in moto (it builds an
        IAM backend, managed policies and all, for every partition)."""
        if self._slr_ready_at is not None:
            return
        from moto.iam.models import iam_backends

        iam = _existing_backend(iam_backends, account, "aws")
        if iam is not None and any(r.name == ECS_SLR_NAME for r in iam.roles.values()):
            self._slr_ready_at = now  # made before World saw it: long ready
            return
        self._slr_ready_at = time.time() + self._delay("service_linked_role")
        self._slr_to_make = account
        if iam is not None:
            self._make_slr()

    def _make_slr(self) -> None:
        account, self._slr_to_make = self._slr_to_make, None
        if account is None:
            return
        iam = _iam(account)
        if any(r.name == ECS_SLR_NAME for r in iam.roles.values()):
            return
        iam.create_role(
            role_name=ECS_SLR_NAME,
            assume_role_policy_document=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole"],
                               "Principal": {"Service": [ECS_SLR_SERVICE]}}],
            }),
            path=f"/aws-service-role/{ECS_SLR_SERVICE}/",
            permissions_boundary=None,
            description="Role to enable Amazon ECS to manage your cluster.",
            tags=[],
            max_session_duration="3600",
            linked_service=ECS_SLR_SERVICE,
        )
        try:
            iam.attach_role_policy(ECS_SLR_POLICY, ECS_SLR_NAME)
        except Exception:
            pass  # managed policies not loaded (MOTO_IAM_LOAD_MANAGED_POLICIES unset)

    def _after_create_cluster(self, call: Call, answer: Answer) -> None:
        if answer.status == 200:
            self._start_slr(call.account, time.time())

    def _before_create_slr(self, call: Call, now: float) -> Answer | None:
        if call.params.get("AWSServiceName") != ECS_SLR_SERVICE:
            return None
        if self._ecs_slr(call.account) is not None:
            return self._refuse(
                call, "service_linked_role", ECS_SLR_NAME, "InvalidInput",
                f"Service role name {ECS_SLR_NAME} has been taken in this account, please try "
                "a different suffix.",
            )
        return None

    def _after_create_slr(self, call: Call, answer: Answer) -> Answer | None:
        if answer.status != 200 or call.params.get("AWSServiceName") != ECS_SLR_SERVICE:
            return None
        moto_name = "AWSServiceRoleForecs"  # moto derives the name from the service's prefix
        for role in _iam(call.account).roles.values():
            if role.name == moto_name:
                role.name = ECS_SLR_NAME
        if self._slr_ready_at is None:
            self._slr_ready_at = time.time() + self._delay("service_linked_role")
        return with_body(answer, answer.body.replace(moto_name.encode(), ECS_SLR_NAME.encode()))

    # -- 2c. security groups and network interfaces ---------------------------------------
    def _before_delete_security_group(self, call: Call, now: float) -> Answer | None:
        ec2 = _ec2(call.account, call.region)
        group_id, group_name = call.params.get("GroupId"), call.params.get("GroupName")
        if group_id:
            group = ec2.get_security_group_from_id(group_id)
        elif group_name:
            group = ec2.get_security_group_from_name(group_name)
        else:
            return None
        if group is None:
            return None  # moto answers InvalidGroup.NotFound
        eni = self._delay("eni_release")
        running, last_gone = [], None
        for instance in ec2.all_instances():
            if not any(g is not None and g.id == group.id for g in instance.security_groups):
                continue
            gone = self._terminated_at(call.account, call.region, instance)
            if gone is None:
                running.append(instance)
            else:
                last_gone = gone if last_gone is None else max(last_gone, gone)
        message = f"resource {group.id} has a dependent object"
        if running:
            dues = [self._pending_due(call.account, call.region, i.id) for i in running]
            ready = max(dues) + eni if all(d is not None for d in dues) else None
            return self._refuse(call, "eni_release", group.id, "DependencyViolation", message,
                                ready_at=ready)
        if last_gone is not None and now < last_gone + eni:
            return self._refuse(call, "eni_release", group.id, "DependencyViolation", message,
                                ready_at=last_gone + eni)
        self._passed(call, group.id)
        return None

    # -- 2d. Auto Scaling group deletion ---------------------------------------------------
    def _pending_due(self, account: str, region: str, instance_id: str) -> float | None:
        """When a group being deleted will terminate this instance, if it is in one."""
        backend = None
        for (acct, reg, name), due in self._asg_pending.items():
            if acct != account or reg != region:
                continue
            backend = backend or _autoscaling(account, region)
            group = backend.autoscaling_groups.get(name)
            if group and any(s.instance.id == instance_id for s in group.instance_states):
                return due
        return None

    def _before_delete_asg(self, call: Call, now: float) -> Answer | None:
        name = call.params.get("AutoScalingGroupName")
        key = (call.account, call.region, name)
        if key in self._asg_pending:
            return _query_ok("DeleteAutoScalingGroup", ASG_XMLNS)  # already being deleted
        group = _autoscaling(call.account, call.region).autoscaling_groups.get(name)
        if group is None:
            return None  # moto answers ValidationError
        alive = [s for s in group.instance_states if s.instance.state != "terminated"]
        if alive and not call.params.get("ForceDelete"):
            return self._refuse(
                call, "asg_instances", name, "ResourceInUse",
                "You cannot delete an AutoScalingGroup while there are instances or pending "
                "Spot instance request(s) still in the group.",
            )
        self._passed(call, name)
        self._asg_pending[key] = now + self._delay("asg_delete")
        self._accepted(call, call._world["passed"], now)  # answered here, not by moto
        call._world["passed"] = []
        return _query_ok("DeleteAutoScalingGroup", ASG_XMLNS)

    def _finish_asg_delete(self, key: tuple, due: float) -> None:
        del self._asg_pending[key]
        account, region, name = key
        backend = _autoscaling(account, region)
        group = backend.autoscaling_groups.get(name)
        if group is None:
            return
        instances = [s.instance for s in group.instance_states]
        for state in group.instance_states:
            state.protected_from_scale_in = False  # ForceDelete terminates them all
        try:
            backend.delete_auto_scaling_group(name)
        finally:
            backend.autoscaling_groups.pop(name, None)
            for instance in instances:
                if instance.state != "terminated":
                    instance.terminate()
                instance._l5d_terminated_at = due  # when AWS would have done it

    def _before_create_asg(self, call: Call, now: float) -> Answer | None:
        name = call.params.get("AutoScalingGroupName")
        due = self._asg_pending.get((call.account, call.region, name))
        if due is not None:
            return self._refuse(
                call, "asg_delete", name, "AlreadyExists",
                f"AutoScalingGroup by this name already exists - A group with the name {name} "
                "already exists",
                ready_at=due,
            )
        if name:
            self._passed(call, name)
        return self._asg_template_check(call, now)

    def _before_update_asg(self, call: Call, now: float) -> Answer | None:
        return self._asg_template_check(call, now)

    def _after_update_asg(self, call: Call, answer: Answer) -> None:
        """A group moved to a launch template no longer uses its launch configuration, and the
        other way round (moto keeps both, so the old one would stay "in use" for ever)."""
        if answer.status != 200:
            return
        group = _autoscaling(call.account, call.region).autoscaling_groups.get(
            call.params.get("AutoScalingGroupName"))
        if group is None:
            return
        if call.params.get("LaunchTemplate") or call.params.get("MixedInstancesPolicy"):
            group.launch_config = None
            group.launch_configuration_name = None
        elif call.params.get("LaunchConfigurationName"):
            group.ec2_launch_template = None

    def _before_delete_launch_configuration(self, call: Call, now: float) -> Answer | None:
        name = call.params.get("LaunchConfigurationName")
        backend = _autoscaling(call.account, call.region)
        users = [
            g.name for g in backend.autoscaling_groups.values()
            if getattr(g, "launch_config", None) is not None and g.launch_config.name == name
        ]
        if users:
            dues = [self._asg_pending.get((call.account, call.region, g)) for g in users]
            pending = all(d is not None for d in dues)
            return self._refuse(
                call, "asg_delete" if pending else "launch_configuration_in_use", name,
                "ResourceInUse",
                f"Cannot delete launch configuration {name} because it is attached to "
                f"AutoScalingGroup {users[0]}",
                ready_at=max(dues) if pending else None,
            )
        if name:
            self._passed(call, name)
        return None

    def _after_describe_asgs(self, call: Call, answer: Answer) -> Answer | None:
        if answer.status != 200:
            return None
        pending = [n for (a, r, n) in self._asg_pending if a == call.account and r == call.region]
        if not pending:
            return None
        text = answer.body.decode("utf-8")
        for name in pending:
            tag = f"<AutoScalingGroupName>{_xml_escape(name)}</AutoScalingGroupName>"
            text = text.replace(tag, tag + "<Status>Delete in progress</Status>", 1)
        return with_body(answer, text.encode("utf-8"))

    # -- 2e. ECS services, clusters, container instances ----------------------------------
    def _service(self, backend, cluster: str, name_or_arn: str | None):
        if not name_or_arn:
            return None
        return backend.services.get(f"{cluster}:{name_or_arn.split('/')[-1]}")

    def _before_create_service(self, call: Call, now: float) -> Answer | None:
        cluster = _cluster_name(call.params.get("cluster"))
        name = call.params.get("serviceName") or ""
        resource = f"{cluster}/{name}"
        if self._slr_ready_at is not None and now < self._slr_ready_at:
            return self._refuse(
                call, "service_linked_role", resource, "InvalidParameterException",
                "Unable to assume the service linked role. Please verify that the ECS service "
                "linked role exists.",
                ready_at=self._slr_ready_at,
            )
        backend = _ecs(call.account, call.region)
        service = self._service(backend, cluster, name)
        if service is not None and service.status == "DRAINING":
            info = self._draining.get((call.account, call.region, cluster, name))
            return self._refuse(call, "service_drain", resource, "InvalidParameterException",
                                ECS_SERVICE_NOT_IDEMPOTENT,
                                ready_at=info["until"] if info else None)
        self._passed(call, resource)
        return None

    def _before_delete_service(self, call: Call, now: float) -> Answer | None:
        cluster = _cluster_name(call.params.get("cluster"))
        service = self._service(_ecs(call.account, call.region), cluster, call.params.get("service"))
        call._world["prior_status"] = service.status if service is not None else None
        return None

    def _after_delete_service(self, call: Call, answer: Answer) -> Answer | None:
        if answer.status != 200:
            return None
        cluster = _cluster_name(call.params.get("cluster"))
        backend = _ecs(call.account, call.region)
        service = self._service(backend, cluster, call.params.get("service"))
        if service is None:
            return None
        key = (call.account, call.region, cluster, service.name)
        if key not in self._draining and (getattr(call, "_world", None) or {}).get("prior_status") == "ACTIVE":
            self._draining[key] = {"until": time.time() + self._delay("service_drain"),
                                   "service": service}
        if key in self._draining:
            service.status = "DRAINING"
        data = _json(answer)
        if isinstance(data, dict) and isinstance(data.get("service"), dict):
            data["service"]["status"] = service.status
            return with_body(answer, json.dumps(data).encode())
        return None

    def _after_list_services(self, call: Call, answer: Answer) -> Answer | None:
        data = _json(answer)
        if answer.status != 200 or not isinstance(data, dict):
            return None
        backend = _ecs(call.account, call.region)
        active = {s.arn for s in backend.services.values() if s.status == "ACTIVE"}
        arns = data.get("serviceArns", [])
        kept = [a for a in arns if a in active]
        if len(kept) == len(arns):
            return None
        data["serviceArns"] = kept
        return with_body(answer, json.dumps(data).encode())

    def _daemon_counts(self, backend, cluster: str, service) -> tuple[int, int]:
        desired = 0
        if service.status == "ACTIVE":
            desired = sum(1 for ci in backend.container_instances.get(cluster, {}).values()
                          if ci.status == "ACTIVE")
        group = f"service:{service.name}"
        running = sum(1 for t in backend.tasks.get(cluster, {}).values()
                      if t.group == group and t._status == "RUNNING" and t.desired_status == "RUNNING")
        return desired, running

    def _after_describe_services(self, call: Call, answer: Answer) -> Answer | None:
        data = _json(answer)
        if answer.status != 200 or not isinstance(data, dict):
            return None
        backend = _ecs(call.account, call.region)
        changed = False
        for item in data.get("services", []):
            if item.get("schedulingStrategy") != "DAEMON":
                continue
            cluster = _cluster_name(item.get("clusterArn"))
            service = self._service(backend, cluster, item.get("serviceName"))
            if service is None:
                continue
            desired, running = self._daemon_counts(backend, cluster, service)
            item.update(desiredCount=desired, runningCount=running, pendingCount=0)
            for deployment in item.get("deployments", [])[:1]:
                deployment.update(desiredCount=desired, runningCount=running, pendingCount=0)
                failed = self._failed.get((call.account, call.region, cluster, service.name))
                deployment["failedTasks"] = len(failed) if failed else 0
                done = running >= desired
                deployment["rolloutState"] = "COMPLETED" if done else "IN_PROGRESS"
                deployment["rolloutStateReason"] = (
                    f"ECS deployment {deployment.get('id')} "
                    + ("completed." if done else "in progress.")
                )
            changed = True
        return with_body(answer, json.dumps(data).encode()) if changed else None

    def _after_describe_clusters(self, call: Call, answer: Answer) -> Answer | None:
        data = _json(answer)
        if answer.status != 200 or not isinstance(data, dict) or not data.get("clusters"):
            return None
        backend = _ecs(call.account, call.region)
        for item in data["clusters"]:
            name = item.get("clusterName")
            item["registeredContainerInstancesCount"] = sum(
                1 for ci in backend.container_instances.get(name, {}).values()
                if ci.status in ("ACTIVE", "DRAINING"))
            item["runningTasksCount"] = sum(
                1 for t in backend.tasks.get(name, {}).values() if t._status == "RUNNING")
            item["activeServicesCount"] = sum(
                1 for s in backend.services.values()
                if s.cluster_name == name and s.status == "ACTIVE")
        return with_body(answer, json.dumps(data).encode())

    def _after_list_container_instances(self, call: Call, answer: Answer) -> Answer | None:
        data = _json(answer)
        if answer.status != 200 or not isinstance(data, dict) or call.params.get("status"):
            return None
        backend = _ecs(call.account, call.region)
        cluster = _cluster_name(call.params.get("cluster"))
        inactive = {ci.container_instance_arn
                    for ci in backend.container_instances.get(cluster, {}).values()
                    if ci.status == "INACTIVE"}
        arns = data.get("containerInstanceArns", [])
        if not inactive.intersection(arns):
            return None
        data["containerInstanceArns"] = [a for a in arns if a not in inactive]
        return with_body(answer, json.dumps(data).encode())

    def _after_list_tasks(self, call: Call, answer: Answer) -> Answer | None:
        """moto ignores ListTasks' serviceName; ECS lists the tasks of that service (group
        service:<name>)."""
        name = call.params.get("serviceName")
        data = _json(answer)
        if answer.status != 200 or not name or not isinstance(data, dict):
            return None
        backend = _ecs(call.account, call.region)
        cluster = _cluster_name(call.params.get("cluster"))
        group = f"service:{name.split('/')[-1]}"
        mine = {arn for arn, t in backend.tasks.get(cluster, {}).items() if t.group == group}
        data["taskArns"] = [a for a in data.get("taskArns", []) if a in mine]
        return with_body(answer, json.dumps(data).encode())

    def _before_delete_cluster(self, call: Call, now: float) -> Answer | None:
        name = _cluster_name(call.params.get("cluster"))
        backend = _ecs(call.account, call.region)
        cluster = backend.clusters.get(name)
        if cluster is None or cluster.status != "ACTIVE":
            return None
        services = [s for s in backend.services.values()
                    if s.cluster_name == name and s.status in ("ACTIVE", "DRAINING")]
        if services:
            draining = all(s.status == "DRAINING" for s in services)
            until = [self._draining.get((call.account, call.region, name, s.name), {}).get("until")
                     for s in services]
            ready = max(until) if draining and all(u is not None for u in until) else None
            return self._refuse(call, "service_drain" if draining else "cluster_services", name,
                                "ClusterContainsServicesException",
                                "The Cluster cannot be deleted while Services are active.",
                                ready_at=ready)
        instances = [ci for ci in backend.container_instances.get(name, {}).values()
                     if ci.status in ("ACTIVE", "DRAINING")]
        if instances:
            return self._refuse(call, "cluster_container_instances", name,
                                "ClusterContainsContainerInstancesException",
                                "The Cluster cannot be deleted while Container Instances are "
                                "active or draining.",
                                ready_at=self._instances_gone_at(call.account, call.region, instances))
        if any(t._status != "STOPPED" for t in backend.tasks.get(name, {}).values()):
            return self._refuse(call, "cluster_tasks", name, "ClusterContainsTasksException",
                                "The Cluster cannot be deleted while Tasks are active.")
        self._passed(call, name)
        return None

    def _instances_gone_at(self, account: str, region: str, instances: list) -> float | None:
        """When ECS will have deregistered these container instances on its own, if their
        EC2 instances are terminated or being terminated by a group deletion."""
        ec2 = _ec2_existing(account, region)
        if ec2 is None:
            return None
        delay = self._delay("container_instance_deregister")
        latest = None
        for ci in instances:
            instance = ec2.get_instance_by_id(ci.ec2_instance_id)
            gone = self._terminated_at(account, region, instance)
            if gone is None and instance is not None:
                gone = self._pending_due(account, region, instance.id)
            if gone is None:
                return None
            latest = gone + delay if latest is None else max(latest, gone + delay)
        return latest

    def _deregister_dead_instances(self, now: float) -> None:
        delay = self._delay("container_instance_deregister")
        for region, backend in _ecs_backends(ACCOUNT):
            ec2 = None
            for cluster, instances in list(backend.container_instances.items()):
                for ci in list(instances.values()):
                    if ci.status not in ("ACTIVE", "DRAINING"):
                        continue
                    ec2 = ec2 or _ec2_existing(ACCOUNT, region)
                    if ec2 is None:
                        break
                    instance = ec2.get_instance_by_id(ci.ec2_instance_id)
                    if instance is None:
                        gone = self._seen_terminated.setdefault(
                            (ACCOUNT, region, ci.ec2_instance_id), now)
                    else:
                        gone = self._terminated_at(ACCOUNT, region, instance)
                    if gone is None or now < gone + delay:
                        continue
                    ci.status = "INACTIVE"
                    ci.agent_connected = False
                    for task in list(backend.tasks.get(cluster, {}).values()):
                        if task.container_instance_arn == ci.container_instance_arn and _live(task):
                            self._stop_task(backend, task,
                                            f"Host EC2 (instance {ci.ec2_instance_id}) terminated.")

    # -- 3. the DAEMON scheduler ----------------------------------------------------------
    def _stop_task(self, backend, task, reason: str, stop_code: str | None = None,
                   exit_code: int | None = None, container_reason: str | None = None) -> None:
        if task._status != "STOPPED" and task.container_instance_arn:
            ci = backend.container_instances.get(task.cluster_name, {}).get(
                task.container_instance_arn.split("/")[-1])
            if ci is not None and task.resource_requirements:
                try:
                    backend.update_container_instance_resources(
                        ci, task.resource_requirements, removing=True)
                except (ValueError, KeyError, TypeError):
                    pass
        task.last_status = "STOPPED"
        task.desired_status = "STOPPED"
        task.stopped_reason = reason
        if stop_code:
            task.stop_code = stop_code
        task.stopping_at = task.stopped_at = task.execution_stopped_at = _utcnow()
        for container in task.containers:
            container.last_status = "STOPPED"
            if exit_code is not None:
                container.exitCode = exit_code
            if container_reason:
                container.reason = container_reason

    def _start_task(self, backend, service, task_definition, ci, deployment_id: str):
        """What StartTask does, without its crash on a task definition whose memory is set at
        task level only (moto adds None to the instance's memory)."""
        from moto.ecs.models import Task

        cluster = backend.clusters[service.cluster_name]
        try:
            needs = backend._calculate_task_resource_requirements(task_definition)
        except TypeError:
            needs = {"CPU": 0, "MEMORY": 0, "PORTS": [], "PORTS_UDP": []}
        network = None
        if task_definition.network_mode == "awsvpc":
            network = getattr(service, "network_configuration", None) or None
        task = Task(
            cluster, task_definition, ci.container_instance_arn, needs, backend=backend,
            group=f"service:{service.name}", launch_type="EC2", overrides={},
            started_by=deployment_id, tags=[], networking_configuration=network,
        )
        try:
            backend.update_container_instance_resources(ci, needs)
        except (TypeError, ValueError, KeyError):
            pass
        backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
        task.started_at = _utcnow()
        for container in task.containers:
            container.last_status = "RUNNING"
        self._daemon_tasks.add(task.task_arn)
        return task

    def _schedule_daemons(self, now: float) -> None:
        for region, backend in _ecs_backends(ACCOUNT):
            for service in list(backend.services.values()):
                if service.scheduling_strategy != "DAEMON":
                    continue
                try:
                    self._schedule_service(region, backend, service, now)
                except Exception:  # one broken service must not stop the others
                    self._log_error("scheduler", None)

    def _schedule_service(self, region: str, backend, service, now: float) -> None:
        cluster_name = service.cluster_name
        cluster = backend.clusters.get(cluster_name)
        group = f"service:{service.name}"
        tasks = [t for t in backend.tasks.get(cluster_name, {}).values() if t.group == group]
        if service.status != "ACTIVE" or cluster is None or cluster.status != "ACTIVE":
            for task in tasks:
                if _live(task):
                    self._stop_task(
                        backend, task,
                        f"Scaling activity initiated by (deployment {task.started_by or '?'})",
                        "ServiceSchedulerInitiated")
            return
        try:
            task_definition = backend.describe_task_definition(service.task_definition)
        except Exception:
            return
        service.task_definition = task_definition.arn
        if not service.deployments:
            return
        deployment = service.deployments[0]
        if deployment.get("taskDefinition") != task_definition.arn:
            # UpdateService to another revision: ECS makes a new primary deployment.
            deployment.update(id=_deployment_id(), taskDefinition=task_definition.arn,
                              createdAt=_utcnow(), updatedAt=_utcnow())
        deployment_id = deployment["id"]
        fault = self._faults.get(service.name)
        failed_key = (ACCOUNT, region, cluster_name, service.name)
        for ci in list(backend.container_instances.get(cluster_name, {}).values()):
            arn = ci.container_instance_arn
            live = [t for t in tasks if t.container_instance_arn == arn and _live(t)]
            for task in live:
                # Ours, of an older deployment (another revision, or forceNewDeployment):
                # replaced. Tasks someone else started (a stand-in agent) are theirs to manage.
                if task.task_arn in self._daemon_tasks and (
                        task.started_by != deployment_id
                        or task.task_definition_arn != task_definition.arn):
                    self._stop_task(backend, task,
                                    f"Scaling activity initiated by (deployment {task.started_by})",
                                    "ServiceSchedulerInitiated")
            live = [t for t in live if _live(t)]
            if ci.status != "ACTIVE" or live:
                continue
            if fault is None:
                self._start_task(backend, service, task_definition, ci, deployment_id)
                continue
            retry_key = failed_key + (arn,)
            if now - self._fault_last.get(retry_key, 0.0) < self._delay("daemon_retry"):
                continue
            self._fault_last[retry_key] = now
            task = self._start_task(backend, service, task_definition, ci, deployment_id)
            self._stop_task(
                backend, task,
                str(fault.get("stoppedReason") or "Essential container in task exited"),
                str(fault.get("stopCode") or "TaskFailedToStart"),
                exit_code=fault.get("exitCode"),
                container_reason=fault.get("reason"),
            )
            failed = self._failed.setdefault(failed_key, deque())
            failed.append(task.task_arn)
            while len(failed) > MAX_FAILED_TASKS:
                old = failed.popleft()
                backend.tasks.get(cluster_name, {}).pop(old, None)
                self._daemon_tasks.discard(old)

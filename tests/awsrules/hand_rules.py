"""Hand-kept AWS rules: constraints the API reference states in prose but botocore's service
models lack (so `model_rules.py` cannot derive them), for the operations l5d-ecs calls
(`operations.py`).

Each check gets the call's parameters with botocore's member names and types and returns a
truthy value (True, or a string naming the offending value) when the call breaks the rule.
Every rule's `bad` is the boto3 keyword arguments of one call that breaks it and no other rule
of its operation (`self_check()` verifies that, through botocore's serializer and the rules
server's parser when they are importable).

Rules that only a stateful server could check (names unique in an account, one role per
instance profile, a service's scheduling strategy at UpdateService) are not here: a check sees
one call at a time.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Iterable

from rulebook import RULES, rule


# --------------------------------------------------------------------------------------------
# Small shared helpers
# --------------------------------------------------------------------------------------------


def _ref(service: str, operation: str) -> str:
    """The API reference page of an operation."""
    base = {
        "ecs": "https://docs.aws.amazon.com/AmazonECS/latest/APIReference",
        "ec2": "https://docs.aws.amazon.com/AWSEC2/latest/APIReference",
        "iam": "https://docs.aws.amazon.com/IAM/latest/APIReference",
        "autoscaling": "https://docs.aws.amazon.com/autoscaling/ec2/APIReference",
        "logs": "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference",
        "ssm": "https://docs.aws.amazon.com/systems-manager/latest/APIReference",
    }[service]
    return f"{base}/API_{operation}.html"


def rule_each(*, id: str, bads: dict[str, dict[str, Any]], **kwargs):
    """One rule per operation, each with its own bad call (`rule(operation=(...))` shares one
    bad, which cannot serialize for operations with different members). Ids are
    `<id>:<Operation>`, as `rule` names them for several operations."""

    def register(check):
        for operation, bad in bads.items():
            rule(id=f"{id}:{operation}", operation=operation, bad=bad, **kwargs)(check)
        return check

    return register


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _too_many(p: dict, key: str, limit: int) -> str | bool:
    n = len(_list(p.get(key)))
    return n > limit and f"{key} has {n} entries; at most {limit} are allowed per call"


def _token_breach(token: Any, limit: int, name: str = "clientToken") -> str | bool:
    """A client token longer than `limit`, or with a character outside ASCII 33-126."""
    if not isinstance(token, str):
        return False
    if len(token) > limit:
        return f"{name} is {len(token)} characters; at most {limit} are allowed"
    bad = [c for c in token if not 33 <= ord(c) <= 126]
    return bool(bad) and f"{name} has characters outside ASCII 33-126: {''.join(bad)!r}"


def _tags(p: dict, key: str, k: str, v: str) -> Iterable[tuple[Any, Any]]:
    """(key, value) of every tag in the list `p[key]` (members named `k` and `v`)."""
    for t in _list(p.get(key)):
        t = _dict(t)
        yield t.get(k), t.get(v)


def _ec2_tags(p: dict) -> Iterable[tuple[Any, Any]]:
    for spec in _list(p.get("TagSpecifications")):
        for t in _list(_dict(spec).get("Tags")):
            t = _dict(t)
            yield t.get("Key"), t.get("Value")


def _reserved(text: Any, prefix: str = "aws:") -> bool:
    return isinstance(text, str) and text.lower().startswith(prefix)


def _user_data_bytes(data: Any) -> int:
    """Size of user data before base64 (the encoded length's 3/4 if it does not decode)."""
    if not isinstance(data, str):
        return 0
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return len(data) * 3 // 4


def _is_base64(data: str) -> bool:
    try:
        base64.b64decode(data, validate=True)
        return True
    except (binascii.Error, ValueError):
        return False


def _ints(*values: Any) -> bool:
    return all(isinstance(x, int) and not isinstance(x, bool) for x in values)


# A container that breaks no rule, for the RegisterTaskDefinition bad calls.
_CONTAINER = {"name": "app", "image": "nginx", "memory": 128, "essential": True}
# Launch template data that breaks no rule (an empty one is dropped on the wire).
_LT_DATA = {"ImageId": "ami-12345678"}


# --------------------------------------------------------------------------------------------
# ECS
# --------------------------------------------------------------------------------------------


@rule(
    id="ecs-listtasks-startedby-alone",
    service="ecs",
    operation="ListTasks",
    code="InvalidParameterException",
    message="cannot specify startedBy with other arguments",
    reference=_ref("ecs", "ListTasks"),
    summary="startedBy must be the only filter (cluster, maxResults and nextToken aside)",
    bad={"cluster": "c", "startedBy": "l5d-ecs/x", "family": "f"},
)
def _(p):
    others = ("family", "desiredStatus", "containerInstance", "serviceName", "launchType")
    used = [k for k in others if p.get(k) is not None]
    return p.get("startedBy") is not None and bool(used) and f"startedBy given with {', '.join(used)}"


@rule(
    id="ecs-describetasks-max-100",
    service="ecs",
    operation="DescribeTasks",
    code="InvalidParameterException",
    message="Tasks cannot have more than 100 elements",
    reference=_ref("ecs", "DescribeTasks"),
    summary="at most 100 tasks per DescribeTasks call",
    bad={"cluster": "c", "tasks": [f"task-{i}" for i in range(101)]},
)
def _(p):
    return _too_many(p, "tasks", 100)


@rule(
    id="ecs-describecontainerinstances-max-100",
    service="ecs",
    operation="DescribeContainerInstances",
    code="InvalidParameterException",
    message="containerInstances cannot have more than 100 elements",
    reference=_ref("ecs", "DescribeContainerInstances"),
    summary="at most 100 container instances per DescribeContainerInstances call",
    bad={"cluster": "c", "containerInstances": [f"ci-{i}" for i in range(101)]},
)
def _(p):
    return _too_many(p, "containerInstances", 100)


@rule(
    id="ecs-describeclusters-max-100",
    service="ecs",
    operation="DescribeClusters",
    code="InvalidParameterException",
    message="clusters cannot have more than 100 elements",
    reference=_ref("ecs", "DescribeClusters"),
    summary="at most 100 clusters per DescribeClusters call",
    bad={"clusters": [f"c{i}" for i in range(101)]},
)
def _(p):
    return _too_many(p, "clusters", 100)


@rule(
    id="ecs-describeservices-max-10",
    service="ecs",
    operation="DescribeServices",
    code="InvalidParameterException",
    message="services cannot have more than 10 elements",
    reference=_ref("ecs", "DescribeServices"),
    summary="at most 10 services per DescribeServices call",
    bad={"cluster": "c", "services": [f"s{i}" for i in range(11)]},
)
def _(p):
    return _too_many(p, "services", 10)


@rule(
    id="ecs-list-maxresults-1-100",
    service="ecs",
    operation=("ListTasks", "ListContainerInstances", "ListTaskDefinitions"),
    code="InvalidParameterException",
    message="maxResults must be between 1 and 100",
    reference=_ref("ecs", "ListTasks"),
    summary="maxResults of the ECS List calls is 1 to 100",
    bad={"maxResults": 101},
)
def _(p):
    n = p.get("maxResults")
    return _ints(n) and not 1 <= n <= 100 and f"maxResults {n} is outside 1-100"


@rule(
    id="ecs-createservice-clienttoken-36",
    service="ecs",
    operation="CreateService",
    code="InvalidParameterException",
    message="clientToken: up to 36 ASCII characters in the range of 33-126 are allowed",
    reference=_ref("ecs", "CreateService"),
    summary="CreateService clientToken: at most 36 ASCII characters 33-126",
    bad={"serviceName": "s", "taskDefinition": "td:1", "desiredCount": 1, "clientToken": "l5d-ecs-" + "0" * 40},
)
def _(p):
    return _token_breach(p.get("clientToken"), 36)


@rule(
    id="ecs-runtask-clienttoken-64",
    service="ecs",
    operation="RunTask",
    code="InvalidParameterException",
    message="clientToken: up to 64 characters in the range of 33-126 are allowed",
    reference=_ref("ecs", "RunTask"),
    summary="RunTask clientToken: at most 64 ASCII characters 33-126",
    bad={"taskDefinition": "td:1", "clientToken": "x" * 65},
)
def _(p):
    return _token_breach(p.get("clientToken"), 64)


@rule(
    id="ecs-runtask-count-1-10",
    service="ecs",
    operation="RunTask",
    code="InvalidParameterException",
    message="count must be between 1 and 10",
    reference=_ref("ecs", "RunTask"),
    summary="RunTask starts 1 to 10 tasks a call",
    bad={"taskDefinition": "td:1", "count": 11},
)
def _(p):
    n = p.get("count")
    return _ints(n) and not 1 <= n <= 10 and f"count {n} is outside 1-10"


_STARTED_BY = re.compile(r"[A-Za-z0-9_/-]{1,128}")


@rule(
    id="ecs-runtask-startedby",
    service="ecs",
    operation="RunTask",
    code="InvalidParameterException",
    message="startedBy: up to 128 letters, numbers, hyphens, forward slashes and underscores are allowed",
    reference=_ref("ecs", "RunTask"),
    summary="startedBy: at most 128 of A-Z a-z 0-9 - / _",
    bad={"taskDefinition": "td:1", "startedBy": "started by me"},
)
def _(p):
    s = p.get("startedBy")
    return isinstance(s, str) and not _STARTED_BY.fullmatch(s) and f"startedBy {s!r}"


@rule(
    id="ecs-createservice-daemon-no-desiredcount",
    service="ecs",
    operation="CreateService",
    code="InvalidParameterException",
    message="The daemon scheduling strategy does not support a desired count for services. Remove the desired count value and try again",
    reference=_ref("ecs", "CreateService"),
    summary="a DAEMON service takes no desiredCount",
    bad={"serviceName": "s", "taskDefinition": "td:1", "schedulingStrategy": "DAEMON", "desiredCount": 1},
)
def _(p):
    return p.get("schedulingStrategy") == "DAEMON" and p.get("desiredCount") is not None


@rule(
    id="ecs-createservice-daemon-no-placementstrategy",
    service="ecs",
    operation="CreateService",
    code="InvalidParameterException",
    message="The daemon scheduling strategy does not support placement strategies. Remove the placement strategy and try again",
    reference=_ref("ecs", "CreateService"),
    summary="a DAEMON service takes no placementStrategy",
    bad={
        "serviceName": "s",
        "taskDefinition": "td:1",
        "schedulingStrategy": "DAEMON",
        "placementStrategy": [{"type": "spread", "field": "instanceId"}],
    },
)
def _(p):
    return p.get("schedulingStrategy") == "DAEMON" and bool(_list(p.get("placementStrategy")))


@rule_each(
    id="ecs-launchtype-or-capacityproviders",
    service="ecs",
    code="InvalidParameterException",
    message="Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again.",
    reference=_ref("ecs", "CreateService"),
    summary="launchType and capacityProviderStrategy may not be combined",
    bads={
        "CreateService": {
            "serviceName": "s",
            "taskDefinition": "td:1",
            "desiredCount": 1,
            "launchType": "EC2",
            "capacityProviderStrategy": [{"capacityProvider": "cp"}],
        },
        "RunTask": {"taskDefinition": "td:1", "launchType": "EC2", "capacityProviderStrategy": [{"capacityProvider": "cp"}]},
    },
)
def _(p):
    return p.get("launchType") is not None and bool(_list(p.get("capacityProviderStrategy")))


_SPREAD = {"type": "spread", "field": "instanceId"}


@rule_each(
    id="ecs-placementstrategy-max-5",
    service="ecs",
    code="InvalidParameterException",
    message="You can specify a maximum of 5 placement strategy rules",
    reference=_ref("ecs", "RunTask"),
    summary="at most 5 placement strategy rules",
    bads={
        "CreateService": {"serviceName": "s", "taskDefinition": "td:1", "desiredCount": 1, "placementStrategy": [_SPREAD] * 6},
        "RunTask": {"taskDefinition": "td:1", "placementStrategy": [_SPREAD] * 6},
    },
)
def _(p):
    return _too_many(p, "placementStrategy", 5)


_ECS_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")


@rule_each(
    id="ecs-names",
    service="ecs",
    code="ClientException",
    message="Names may contain up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens",
    reference=_ref("ecs", "RegisterTaskDefinition"),
    summary="cluster, service, family, container and volume names: at most 255 of A-Z a-z 0-9 _ -",
    bads={
        "CreateCluster": {"clusterName": "my.cluster"},
        "CreateService": {"serviceName": "my service", "taskDefinition": "td:1", "desiredCount": 1},
        "RegisterTaskDefinition": {"family": "web:v2", "containerDefinitions": [_CONTAINER]},
    },
)
def _(p):
    names = [p.get("clusterName"), p.get("serviceName"), p.get("family")]
    names += [_dict(c).get("name") for c in _list(p.get("containerDefinitions"))]
    names += [_dict(v).get("name") for v in _list(p.get("volumes"))]
    bad = [n for n in names if isinstance(n, str) and not _ECS_NAME.fullmatch(n)]
    return bool(bad) and f"invalid name(s): {', '.join(map(repr, bad))}"


_ECS_TAG_OPS = {
    "CreateCluster": {"clusterName": "c", "tags": [{"key": "aws:owner", "value": "me"}]},
    "CreateService": {"serviceName": "s", "taskDefinition": "td:1", "desiredCount": 1, "tags": [{"key": "aws:owner", "value": "me"}]},
    "RunTask": {"taskDefinition": "td:1", "tags": [{"key": "aws:owner", "value": "me"}]},
    "RegisterTaskDefinition": {"family": "f", "containerDefinitions": [_CONTAINER], "tags": [{"key": "aws:owner", "value": "me"}]},
}


@rule_each(
    id="ecs-tags-aws-prefix",
    service="ecs",
    code="InvalidParameterException",
    message="The aws: prefix is reserved for AWS use in tag keys and values",
    reference=_ref("ecs", "CreateCluster"),
    summary="ECS tag keys and values may not start with aws: (any case)",
    bads=_ECS_TAG_OPS,
)
def _(p):
    bad = [x for kv in _tags(p, "tags", "key", "value") for x in kv if _reserved(x)]
    return bool(bad) and f"reserved tag key/value {bad[0]!r}"


def _port_mappings(p: dict) -> Iterable[tuple[str, dict]]:
    for c in _list(p.get("containerDefinitions")):
        c = _dict(c)
        for m in _list(c.get("portMappings")):
            yield c.get("name"), _dict(m)


@rule(
    id="ecs-taskdef-host-ports-match",
    service="ecs",
    operation="RegisterTaskDefinition",
    code="ClientException",
    message="When networkMode=host, the host ports and container ports in port mappings must match.",
    reference="https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_PortMapping.html",
    summary="in host and awsvpc network mode a hostPort, if given, equals its containerPort",
    bad={
        "family": "f",
        "networkMode": "host",
        "containerDefinitions": [dict(_CONTAINER, portMappings=[{"containerPort": 80, "hostPort": 8080}])],
    },
)
def _(p):
    if p.get("networkMode") not in ("host", "awsvpc"):
        return False
    for name, m in _port_mappings(p):
        host, container = m.get("hostPort"), m.get("containerPort")
        if host not in (None, 0) and container is not None and host != container:
            return f"container {name}: hostPort {host} != containerPort {container} in {p['networkMode']} mode"
    return False


@rule(
    id="ecs-taskdef-none-no-ports",
    service="ecs",
    operation="RegisterTaskDefinition",
    code="ClientException",
    message="Port mappings are not supported when networkMode=none",
    reference=_ref("ecs", "RegisterTaskDefinition"),
    summary="network mode none allows no port mappings",
    bad={"family": "f", "networkMode": "none", "containerDefinitions": [dict(_CONTAINER, portMappings=[{"containerPort": 80}])]},
)
def _(p):
    return p.get("networkMode") == "none" and any(True for _ in _port_mappings(p))


@rule(
    id="ecs-taskdef-one-essential",
    service="ecs",
    operation="RegisterTaskDefinition",
    code="ClientException",
    message="All tasks must have at least one essential container.",
    reference="https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html",
    summary="at least one container is essential (essential defaults to true)",
    bad={"family": "f", "containerDefinitions": [dict(_CONTAINER, essential=False)]},
)
def _(p):
    containers = [_dict(c) for c in _list(p.get("containerDefinitions"))]
    return bool(containers) and all(c.get("essential") is False for c in containers)


@rule(
    id="ecs-taskdef-memory-required",
    service="ecs",
    operation="RegisterTaskDefinition",
    code="ClientException",
    message="Invalid setting for container 'app'. At least one of 'memory' or 'memoryReservation' must be specified.",
    reference="https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html",
    summary="without a task-level memory, every container sets memory or memoryReservation (EC2)",
    bad={"family": "f", "containerDefinitions": [{"name": "app", "image": "nginx", "essential": True}]},
)
def _(p):
    if p.get("memory") is not None or "FARGATE" in _list(p.get("requiresCompatibilities")):
        return False
    for c in _list(p.get("containerDefinitions")):
        c = _dict(c)
        if c.get("memory") is None and c.get("memoryReservation") is None:
            return f"Invalid setting for container '{c.get('name')}'. At least one of 'memory' or 'memoryReservation' must be specified."
    return False


@rule(
    id="ecs-taskdef-memory-min-6",
    service="ecs",
    operation="RegisterTaskDefinition",
    code="ClientException",
    message="Invalid 'memory' setting for container: the Docker daemon reserves a minimum of 6 MiB",
    reference="https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html",
    summary="container memory is at least 6 MiB",
    bad={"family": "f", "containerDefinitions": [dict(_CONTAINER, memory=4)]},
)
def _(p):
    for c in _list(p.get("containerDefinitions")):
        c = _dict(c)
        for key in ("memory", "memoryReservation"):
            n = c.get(key)
            if _ints(n) and n < 6:
                return f"container {c.get('name')}: {key} {n} MiB is below 6"
    return False


@rule(
    id="ecs-taskdef-mount-volume-declared",
    service="ecs",
    operation="RegisterTaskDefinition",
    code="ClientException",
    message="Invalid 'sourceVolume' for mountPoint: it must name a volume of the task definition",
    reference="https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_MountPoint.html",
    summary="every mountPoints sourceVolume names one of the task definition's volumes",
    bad={
        "family": "f",
        "containerDefinitions": [dict(_CONTAINER, mountPoints=[{"sourceVolume": "data", "containerPath": "/data"}])],
    },
)
def _(p):
    volumes = {_dict(v).get("name") for v in _list(p.get("volumes"))}
    for c in _list(p.get("containerDefinitions")):
        for m in _list(_dict(c).get("mountPoints")):
            source = _dict(m).get("sourceVolume")
            if source is not None and source not in volumes:
                return f"container {_dict(c).get('name')}: sourceVolume {source!r} is not a volume of the task definition"
    return False


@rule(
    id="ecs-taskdef-awslogs-options",
    service="ecs",
    operation="RegisterTaskDefinition",
    code="ClientException",
    message="Log driver awslogs requires options: awslogs-group, awslogs-region",
    reference="https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_LogConfiguration.html",
    summary="the awslogs log driver needs the awslogs-group and awslogs-region options",
    bad={
        "family": "f",
        "containerDefinitions": [
            dict(_CONTAINER, logConfiguration={"logDriver": "awslogs", "options": {"awslogs-group": "/g"}})
        ],
    },
)
def _(p):
    for c in _list(p.get("containerDefinitions")):
        log = _dict(_dict(c).get("logConfiguration"))
        if log.get("logDriver") == "awslogs":
            missing = [o for o in ("awslogs-group", "awslogs-region") if not _dict(log.get("options")).get(o)]
            if missing:
                return f"container {_dict(c).get('name')}: awslogs lacks {', '.join(missing)}"
    return False


@rule(
    id="ecs-deregistertaskdefinition-revision",
    service="ecs",
    operation="DeregisterTaskDefinition",
    code="ClientException",
    message="Invalid revision number. Deregister a task definition by family:revision or by its full ARN.",
    reference=_ref("ecs", "DeregisterTaskDefinition"),
    summary="DeregisterTaskDefinition names a revision (family:revision or full ARN)",
    bad={"taskDefinition": "hello-world"},
)
def _(p):
    td = p.get("taskDefinition")
    if not isinstance(td, str):
        return False
    tail = td.rsplit("task-definition/", 1)[-1]
    family, _, revision = tail.rpartition(":")
    return not (family and revision.isdigit()) and f"taskDefinition {td!r} names no revision"


# --------------------------------------------------------------------------------------------
# EC2
# --------------------------------------------------------------------------------------------


@rule(
    id="ec2-describeinstances-maxresults-with-ids",
    service="ec2",
    operation="DescribeInstances",
    code="InvalidParameterCombination",
    message="The parameter instancesSet cannot be used with the parameter maxResults",
    reference=_ref("ec2", "DescribeInstances"),
    summary="MaxResults may not be combined with InstanceIds",
    bad={"InstanceIds": ["i-0123456789abcdef0"], "MaxResults": 5},
)
def _(p):
    return bool(_list(p.get("InstanceIds"))) and p.get("MaxResults") is not None


@rule(
    id="ec2-runinstances-clienttoken-64",
    service="ec2",
    operation="RunInstances",
    code="InvalidParameterValue",
    message="Value for parameter clientToken is invalid: maximum 64 ASCII characters",
    reference=_ref("ec2", "RunInstances"),
    summary="RunInstances ClientToken: at most 64 ASCII characters",
    bad={"ImageId": "ami-12345678", "MinCount": 1, "MaxCount": 1, "ClientToken": "t" * 65},
)
def _(p):
    return _token_breach(p.get("ClientToken"), 64, "ClientToken")


@rule_each(
    id="ec2-launchtemplate-clienttoken-128",
    service="ec2",
    code="InvalidParameterValue",
    message="Value for parameter clientToken is invalid: maximum 128 ASCII characters",
    reference=_ref("ec2", "CreateLaunchTemplate"),
    summary="launch template ClientToken: at most 128 ASCII characters",
    bads={
        "CreateLaunchTemplate": {"LaunchTemplateName": "lt-demo", "LaunchTemplateData": _LT_DATA, "ClientToken": "t" * 129},
        "CreateLaunchTemplateVersion": {"LaunchTemplateId": "lt-0123456789abcdef0", "LaunchTemplateData": _LT_DATA, "ClientToken": "t" * 129},
    },
)
def _(p):
    return _token_breach(p.get("ClientToken"), 128, "ClientToken")


def _ec2_tag_bads(tag: dict) -> dict[str, dict]:
    return {
        "RunInstances": {
            "ImageId": "ami-12345678",
            "MinCount": 1,
            "MaxCount": 1,
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [tag]}],
        },
        "CreateSecurityGroup": {
            "GroupName": "g",
            "Description": "d",
            "TagSpecifications": [{"ResourceType": "security-group", "Tags": [tag]}],
        },
        "CreateLaunchTemplate": {
            "LaunchTemplateName": "lt-demo",
            "LaunchTemplateData": _LT_DATA,
            "TagSpecifications": [{"ResourceType": "launch-template", "Tags": [tag]}],
        },
    }


@rule_each(
    id="ec2-tag-aws-prefix",
    service="ec2",
    code="InvalidParameterValue",
    message="Tag keys starting with 'aws:' are reserved for internal use",
    reference="https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Tag.html",
    summary="EC2 tag keys may not start with aws:",
    bads=_ec2_tag_bads({"Key": "aws:owner", "Value": "me"}),
)
def _(p):
    bad = [k for k, _ in _ec2_tags(p) if _reserved(k)]
    return bool(bad) and f"Value ( {bad[0]} ) for parameter key is invalid. Tag keys starting with 'aws:' are reserved for internal use"


@rule_each(
    id="ec2-tag-lengths",
    service="ec2",
    code="InvalidParameterValue",
    message="Tag keys accept at most 127 Unicode characters and tag values at most 256",
    reference="https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Tag.html",
    summary="EC2 tag key at most 127 characters, value at most 256",
    bads=_ec2_tag_bads({"Key": "k" * 128, "Value": "v"}),
)
def _(p):
    for k, v in _ec2_tags(p):
        if isinstance(k, str) and len(k) > 127:
            return f"tag key of {len(k)} characters exceeds the maximum length of 127"
        if isinstance(v, str) and len(v) > 256:
            return f"tag value of {len(v)} characters exceeds the maximum length of 256"
    return False


def _tag_resource_types(p: dict) -> list:
    return [_dict(s).get("ResourceType") for s in _list(p.get("TagSpecifications"))]


@rule(
    id="ec2-runinstances-tag-resource-types",
    service="ec2",
    operation="RunInstances",
    code="InvalidParameterValue",
    message="'security-group' is not a valid taggable resource type for this operation.",
    reference=_ref("ec2", "RunInstances"),
    summary="RunInstances tags only instance, volume, spot-instances-request and network-interface",
    bad={
        "ImageId": "ami-12345678",
        "MinCount": 1,
        "MaxCount": 1,
        "TagSpecifications": [{"ResourceType": "security-group", "Tags": [{"Key": "k", "Value": "v"}]}],
    },
)
def _(p):
    allowed = {"instance", "volume", "spot-instances-request", "network-interface"}
    bad = [t for t in _tag_resource_types(p) if t not in allowed]
    return bool(bad) and f"'{bad[0]}' is not a valid taggable resource type for this operation."


@rule(
    id="ec2-createlaunchtemplate-tag-resource-type",
    service="ec2",
    operation="CreateLaunchTemplate",
    code="InvalidParameterValue",
    message="'instance' is not a valid taggable resource type for this operation.",
    reference=_ref("ec2", "CreateLaunchTemplate"),
    summary="CreateLaunchTemplate TagSpecifications tag the launch-template only",
    bad={
        "LaunchTemplateName": "lt-demo",
        "LaunchTemplateData": _LT_DATA,
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "k", "Value": "v"}]}],
    },
)
def _(p):
    bad = [t for t in _tag_resource_types(p) if t != "launch-template"]
    return bool(bad) and f"'{bad[0]}' is not a valid taggable resource type for this operation."


def _user_data(p: dict) -> Any:
    return p.get("UserData", _dict(p.get("LaunchTemplateData")).get("UserData"))


def _user_data_too_big(p: dict) -> str | bool:
    n = _user_data_bytes(_user_data(p))
    return n > 16384 and f"User data is limited to 16384 bytes ({n} given)"


_BIG_USER_DATA = "#!/bin/sh\n" + "#" * 16384  # boto3 base64-encodes RunInstances UserData itself


@rule(
    id="ec2-runinstances-userdata-16kb",
    service="ec2",
    operation="RunInstances",
    code="InvalidParameterValue",
    message="User data is limited to 16384 bytes",
    reference="https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html",
    summary="user data is at most 16 KB before base64",
    bad={"ImageId": "ami-12345678", "MinCount": 1, "MaxCount": 1, "UserData": _BIG_USER_DATA},
)
def _(p):
    return _user_data_too_big(p)


_BIG_USER_DATA_B64 = base64.b64encode(_BIG_USER_DATA.encode()).decode()


@rule_each(
    id="ec2-launchtemplate-userdata-16kb",
    service="ec2",
    code="InvalidUserData.Malformed",
    message="User data is limited to 16384 bytes.",
    reference="https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RequestLaunchTemplateData.html",
    summary="launch template user data is at most 16 KB before base64",
    bads={
        "CreateLaunchTemplate": {"LaunchTemplateName": "lt-demo", "LaunchTemplateData": {"UserData": _BIG_USER_DATA_B64}},
        "CreateLaunchTemplateVersion": {
            "LaunchTemplateId": "lt-0123456789abcdef0",
            "LaunchTemplateData": {"UserData": _BIG_USER_DATA_B64},
        },
    },
)
def _(p):
    return _user_data_too_big(p)


@rule_each(
    id="ec2-launchtemplate-userdata-base64",
    service="ec2",
    code="InvalidUserData.Malformed",
    message="Invalid BASE64 encoding of user data.",
    reference="https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RequestLaunchTemplateData.html",
    summary="launch template user data must be base64 text (the SDKs do not encode it there)",
    bads={
        "CreateLaunchTemplate": {"LaunchTemplateName": "lt-demo", "LaunchTemplateData": {"UserData": "#!/bin/sh\necho hi\n"}},
        "CreateLaunchTemplateVersion": {
            "LaunchTemplateId": "lt-0123456789abcdef0",
            "LaunchTemplateData": {"UserData": "#!/bin/sh\necho hi\n"},
        },
    },
)
def _(p):
    data = _user_data(p)
    return isinstance(data, str) and not _is_base64(data)


@rule(
    id="ec2-securitygroup-name-not-sg-",
    service="ec2",
    operation="CreateSecurityGroup",
    code="InvalidParameterValue",
    message="Invalid security group name: Group names may not be in the format sg-*.",
    reference=_ref("ec2", "CreateSecurityGroup"),
    summary="a security group name may not start with sg-",
    bad={"GroupName": "sg-demo", "Description": "d"},
)
def _(p):
    name = p.get("GroupName")
    return isinstance(name, str) and name.lower().startswith("sg-") and f"group name {name!r}"


_SG_TEXT = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}")


@rule(
    id="ec2-securitygroup-name-description-chars",
    service="ec2",
    operation="CreateSecurityGroup",
    code="InvalidParameterValue",
    message="Value for parameter GroupDescription is invalid: up to 255 of a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*",
    reference=_ref("ec2", "CreateSecurityGroup"),
    summary="security group name and description: at most 255 of a-zA-Z0-9 space ._-:/()#,@[]+=&;{}!$*",
    bad={"GroupName": "g", "Description": "Linkerd Démo"},
)
def _(p):
    for key in ("GroupName", "Description"):
        v = p.get(key)
        if isinstance(v, str) and not _SG_TEXT.fullmatch(v):
            return f"{key} {v!r} has a character outside the allowed set, or is longer than 255"
    return False


# Rule descriptions: IP ranges allow &, group pairs and prefix lists do not.
_RULE_TEXT = {
    "IpRanges": _SG_TEXT,
    "Ipv6Ranges": _SG_TEXT,
    "UserIdGroupPairs": re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=;{}!$*]{0,255}"),
    "PrefixListIds": re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=;{}!$*]{0,255}"),
}


@rule(
    id="ec2-securitygroup-rule-description-chars",
    service="ec2",
    operation="AuthorizeSecurityGroupIngress",
    code="InvalidParameterValue",
    message="Invalid rule description. Valid descriptions are strings less than 256 characters from the following set: a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*",
    reference=_ref("ec2", "AuthorizeSecurityGroupIngress"),
    summary="rule descriptions: at most 255 of a-zA-Z0-9 space ._-:/()#,@[]+=&;{}!$* (no & for group pairs)",
    bad={
        "GroupId": "sg-0123456789abcdef0",
        "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.7/32", "Description": "ssh — admin"}]}
        ],
    },
)
def _(p):
    for perm in _list(p.get("IpPermissions")):
        for key, allowed in _RULE_TEXT.items():
            for source in _list(_dict(perm).get(key)):
                d = _dict(source).get("Description")
                if isinstance(d, str) and not allowed.fullmatch(d):
                    return f"invalid rule description {d!r}"
    return False


@rule(
    id="ec2-securitygroup-rule-tcp-udp-ports",
    service="ec2",
    operation="AuthorizeSecurityGroupIngress",
    code="InvalidParameterValue",
    message="Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange.",
    reference=_ref("ec2", "AuthorizeSecurityGroupIngress"),
    summary="a tcp or udp rule gives FromPort and ToPort",
    bad={
        "GroupId": "sg-0123456789abcdef0",
        "IpPermissions": [{"IpProtocol": "tcp", "IpRanges": [{"CidrIp": "203.0.113.7/32"}]}],
    },
)
def _(p):
    for perm in _list(p.get("IpPermissions")):
        perm = _dict(perm)
        if str(perm.get("IpProtocol", "")).lower() in ("tcp", "udp", "6", "17"):
            if perm.get("FromPort") is None or perm.get("ToPort") is None:
                return f"{perm.get('IpProtocol')} rule without FromPort/ToPort"
    return False


_LAUNCH_TEMPLATE_NAME = re.compile(r"[a-zA-Z0-9().\-/_]{3,128}")


@rule(
    id="ec2-createlaunchtemplate-name",
    service="ec2",
    operation="CreateLaunchTemplate",
    code="InvalidLaunchTemplateName.MalformedException",
    message="A launch template name must be between 3 and 128 characters, and may contain letters, numbers, and the following characters: - ( ) . / _.",
    reference=_ref("ec2", "CreateLaunchTemplate"),
    summary="launch template name: 3 to 128 of a-zA-Z0-9 ( ) . - / _",
    bad={"LaunchTemplateName": "my template", "LaunchTemplateData": _LT_DATA},
)
def _(p):
    name = p.get("LaunchTemplateName")
    return isinstance(name, str) and not _LAUNCH_TEMPLATE_NAME.fullmatch(name) and f"launch template name {name!r}"


@rule_each(
    id="ec2-launchtemplate-id-or-name",
    service="ec2",
    code="InvalidParameterCombination",
    message="You must specify either the launch template ID or the launch template name, but not both.",
    reference=_ref("ec2", "CreateLaunchTemplateVersion"),
    summary="a launch template is named by LaunchTemplateId or LaunchTemplateName, not both",
    bads={
        "CreateLaunchTemplateVersion": {"LaunchTemplateId": "lt-0123456789abcdef0", "LaunchTemplateName": "lt-demo", "LaunchTemplateData": _LT_DATA},
        "DeleteLaunchTemplate": {"LaunchTemplateId": "lt-0123456789abcdef0", "LaunchTemplateName": "lt-demo"},
        "DescribeLaunchTemplateVersions": {"LaunchTemplateId": "lt-0123456789abcdef0", "LaunchTemplateName": "lt-demo"},
    },
)
def _(p):
    return p.get("LaunchTemplateId") is not None and p.get("LaunchTemplateName") is not None


# --------------------------------------------------------------------------------------------
# IAM
# --------------------------------------------------------------------------------------------


def _policy_chars(doc: Any) -> int:
    """Characters of a policy as IAM counts them for its size quotas: without white space."""
    return sum(1 for c in doc if not c.isspace()) if isinstance(doc, str) else 0


def _policy(statements: int) -> str:
    """A valid policy document with `statements` statements (about 95 characters each)."""
    s = {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [dict(s, Sid=f"S{i}") for i in range(statements)]})


@rule(
    id="iam-putrolepolicy-size-10240",
    service="iam",
    operation="PutRolePolicy",
    code="LimitExceeded",
    status=409,
    message="Maximum policy size of 10240 bytes exceeded for role",
    reference="https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html",
    summary="a role's inline policy is at most 10,240 characters (white space not counted)",
    bad={"RoleName": "r", "PolicyName": "p", "PolicyDocument": _policy(140)},
)
def _(p):
    n = _policy_chars(p.get("PolicyDocument"))
    return n > 10240 and f"Maximum policy size of 10240 bytes exceeded for role {p.get('RoleName')} ({n})"


@rule(
    id="iam-createrole-trust-policy-2048",
    service="iam",
    operation="CreateRole",
    code="LimitExceeded",
    status=409,
    message="Cannot exceed quota for ACLSizePerRole: 2048",
    reference="https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html",
    summary="a role trust policy is at most 2,048 characters (the default quota)",
    bad={"RoleName": "r", "AssumeRolePolicyDocument": _policy(30)},
)
def _(p):
    n = _policy_chars(p.get("AssumeRolePolicyDocument"))
    return n > 2048 and f"Cannot exceed quota for ACLSizePerRole: 2048 ({n})"


@rule_each(
    id="iam-policy-document-json",
    service="iam",
    code="MalformedPolicyDocument",
    message="This policy contains invalid Json",
    reference=_ref("iam", "PutRolePolicy"),
    summary="policy documents are JSON",
    bads={
        "CreateRole": {"RoleName": "r", "AssumeRolePolicyDocument": "Version: 2012-10-17"},
        "PutRolePolicy": {"RoleName": "r", "PolicyName": "p", "PolicyDocument": "{'Version': '2012-10-17'}"},
    },
)
def _(p):
    for key in ("AssumeRolePolicyDocument", "PolicyDocument"):
        doc = p.get(key)
        if isinstance(doc, str):
            try:
                json.loads(doc)
            except ValueError:
                return f"{key} is not JSON"
    return False


_ACTION = re.compile(r"[a-z0-9-]+:[A-Za-z0-9*?]+")


@rule(
    id="iam-simulate-action-names",
    service="iam",
    operation="SimulatePrincipalPolicy",
    code="InvalidInput",
    message="Each action name must include the service identifier, such as iam:CreateUser",
    reference=_ref("iam", "SimulatePrincipalPolicy"),
    summary="ActionNames are service:Action",
    bad={"PolicySourceArn": "arn:aws:iam::123456789012:user/u", "ActionNames": ["RunInstances"]},
)
def _(p):
    bad = [a for a in _list(p.get("ActionNames")) if isinstance(a, str) and not _ACTION.fullmatch(a)]
    return bool(bad) and f"action name {bad[0]!r} has no service prefix"


_IAM_ENTITY = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:(user|group|role)/.+")


@rule(
    id="iam-simulate-policy-source",
    service="iam",
    operation="SimulatePrincipalPolicy",
    code="InvalidInput",
    message="PolicySourceArn must be the ARN of an IAM user, group or role",
    reference=_ref("iam", "SimulatePrincipalPolicy"),
    summary="PolicySourceArn is a user, group or role ARN (not an assumed role, federated user or root)",
    bad={"PolicySourceArn": "arn:aws:sts::123456789012:assumed-role/admin/me", "ActionNames": ["ec2:RunInstances"]},
)
def _(p):
    arn = p.get("PolicySourceArn")
    return isinstance(arn, str) and not _IAM_ENTITY.fullmatch(arn) and f"PolicySourceArn {arn!r}"


# --------------------------------------------------------------------------------------------
# Auto Scaling
# --------------------------------------------------------------------------------------------

_LAUNCH_SOURCES = ("LaunchConfigurationName", "LaunchTemplate", "MixedInstancesPolicy", "InstanceId")


@rule(
    id="asg-create-one-launch-source",
    service="autoscaling",
    operation="CreateAutoScalingGroup",
    code="ValidationError",
    message="Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.",
    reference=_ref("autoscaling", "CreateAutoScalingGroup"),
    summary="exactly one of LaunchConfigurationName, LaunchTemplate, MixedInstancesPolicy, InstanceId",
    bad={
        "AutoScalingGroupName": "g",
        "MinSize": 1,
        "MaxSize": 1,
        "LaunchConfigurationName": "lc",
        "LaunchTemplate": {"LaunchTemplateName": "lt-demo"},
    },
)
def _(p):
    given = [k for k in _LAUNCH_SOURCES if p.get(k) is not None]
    return len(given) != 1 and (f"{', '.join(given)} given together" if given else "no launch source given")


@rule(
    id="asg-update-one-launch-source",
    service="autoscaling",
    operation="UpdateAutoScalingGroup",
    code="ValidationError",
    message="Valid requests must contain either LaunchTemplate, LaunchConfigurationName or MixedInstancesPolicy parameter.",
    reference=_ref("autoscaling", "UpdateAutoScalingGroup"),
    summary="at most one of LaunchConfigurationName, LaunchTemplate, MixedInstancesPolicy",
    bad={"AutoScalingGroupName": "g", "LaunchConfigurationName": "lc", "LaunchTemplate": {"LaunchTemplateName": "lt-demo"}},
)
def _(p):
    given = [k for k in _LAUNCH_SOURCES[:3] if p.get(k) is not None]
    return len(given) > 1 and f"{', '.join(given)} given together"


@rule_each(
    id="asg-launchtemplate-id-or-name",
    service="autoscaling",
    code="ValidationError",
    message="Valid requests must contain either launchTemplateId or LaunchTemplateName",
    reference="https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_LaunchTemplateSpecification.html",
    summary="a LaunchTemplate names exactly one of LaunchTemplateId and LaunchTemplateName",
    bads={
        "CreateAutoScalingGroup": {
            "AutoScalingGroupName": "g",
            "MinSize": 1,
            "MaxSize": 1,
            "LaunchTemplate": {"LaunchTemplateId": "lt-0123456789abcdef0", "LaunchTemplateName": "lt-demo"},
        },
        "UpdateAutoScalingGroup": {
            "AutoScalingGroupName": "g",
            "LaunchTemplate": {"LaunchTemplateId": "lt-0123456789abcdef0", "LaunchTemplateName": "lt-demo"},
        },
    },
)
def _(p):
    if p.get("LaunchTemplate") is None:
        return False
    spec = _dict(p.get("LaunchTemplate"))
    n = sum(spec.get(k) is not None for k in ("LaunchTemplateId", "LaunchTemplateName"))
    return n != 1


@rule_each(
    id="asg-sizes-in-order",
    service="autoscaling",
    code="ValidationError",
    message="Desired capacity must be between the specified min size and max size",
    reference=_ref("autoscaling", "CreateAutoScalingGroup"),
    summary="MinSize <= DesiredCapacity <= MaxSize (those given)",
    bads={
        "CreateAutoScalingGroup": {
            "AutoScalingGroupName": "g",
            "MinSize": 1,
            "MaxSize": 3,
            "DesiredCapacity": 5,
            "LaunchConfigurationName": "lc",
        },
        "UpdateAutoScalingGroup": {"AutoScalingGroupName": "g", "MinSize": 2, "MaxSize": 1},
    },
)
def _(p):
    lo, want, hi = p.get("MinSize"), p.get("DesiredCapacity"), p.get("MaxSize")
    if _ints(lo, hi) and lo > hi:
        return f"Max bound, {hi}, must be greater than or equal to min bound, {lo}"
    if _ints(want, lo) and want < lo or _ints(want, hi) and want > hi:
        return f"Desired capacity:{want} must be between the specified min size:{lo} and max size:{hi}"
    return False


@rule(
    id="asg-name-no-colon",
    service="autoscaling",
    operation="CreateAutoScalingGroup",
    code="ValidationError",
    message="The Auto Scaling group name cannot contain a colon (:)",
    reference=_ref("autoscaling", "CreateAutoScalingGroup"),
    summary="an Auto Scaling group name contains no colon",
    bad={"AutoScalingGroupName": "demo:asg", "MinSize": 1, "MaxSize": 1, "LaunchConfigurationName": "lc"},
)
def _(p):
    name = p.get("AutoScalingGroupName")
    return isinstance(name, str) and ":" in name


@rule(
    id="asg-tag-resource-type",
    service="autoscaling",
    operation="CreateAutoScalingGroup",
    code="ValidationError",
    message="Invalid resource type: the only supported value is auto-scaling-group",
    reference="https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_Tag.html",
    summary="Auto Scaling tags have ResourceType auto-scaling-group",
    bad={
        "AutoScalingGroupName": "g",
        "MinSize": 1,
        "MaxSize": 1,
        "LaunchConfigurationName": "lc",
        "Tags": [{"ResourceId": "g", "ResourceType": "instance", "Key": "k", "Value": "v", "PropagateAtLaunch": True}],
    },
)
def _(p):
    bad = [_dict(t).get("ResourceType") for t in _list(p.get("Tags"))]
    bad = [t for t in bad if t is not None and t != "auto-scaling-group"]
    return bool(bad) and f"Invalid resource type: {bad[0]}"


@rule_each(
    id="asg-describe-names-max-50",
    service="autoscaling",
    code="ValidationError",
    message="The number of names exceeds the limit of 50",
    reference=_ref("autoscaling", "DescribeAutoScalingGroups"),
    summary="at most 50 names per describe call (DescribeAutoScalingGroups: up to MaxRecords)",
    bads={
        "DescribeAutoScalingGroups": {"AutoScalingGroupNames": [f"g{i}" for i in range(51)]},
        "DescribeLaunchConfigurations": {"LaunchConfigurationNames": [f"lc{i}" for i in range(51)]},
    },
)
def _(p):
    limit = 50
    records = p.get("MaxRecords")
    if p.get("AutoScalingGroupNames") is not None and _ints(records):
        limit = max(limit, min(records, 100))
    return _too_many(p, "AutoScalingGroupNames", limit) or _too_many(p, "LaunchConfigurationNames", 50)


@rule(
    id="asg-launchconfiguration-image-and-type",
    service="autoscaling",
    operation="CreateLaunchConfiguration",
    code="ValidationError",
    message="ImageId and InstanceType are required unless InstanceId is given",
    reference=_ref("autoscaling", "CreateLaunchConfiguration"),
    summary="CreateLaunchConfiguration gives ImageId and InstanceType, or InstanceId",
    bad={"LaunchConfigurationName": "lc", "ImageId": "ami-12345678"},
)
def _(p):
    if p.get("InstanceId") is not None:
        return False
    missing = [k for k in ("ImageId", "InstanceType") if p.get(k) is None]
    return bool(missing) and f"missing {', '.join(missing)}"


# --------------------------------------------------------------------------------------------
# CloudWatch Logs
# --------------------------------------------------------------------------------------------

RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip


@rule(
    id="logs-retention-days",
    service="logs",
    operation="PutRetentionPolicy",
    code="InvalidParameterException",
    message="1 validation error detected: Value at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: "
    + str(list(RETENTION_DAYS)),
    reference=_ref("logs", "PutRetentionPolicy"),
    summary="retentionInDays is one of 1, 3, 5, 7, 14, 30, ... 3653",
    bad={"logGroupName": "/l5d-ecs/demo", "retentionInDays": 10},
)
def _(p):
    n = p.get("retentionInDays")
    return n is not None and n not in RETENTION_DAYS and f"retentionInDays {n} is not an allowed value"


@rule(
    id="logs-loggroup-not-aws-",
    service="logs",
    operation="CreateLogGroup",
    code="InvalidParameterException",
    message="Log groups starting with AWS/ are reserved for AWS.",
    reference=_ref("logs", "CreateLogGroup"),
    summary="a log group name may not start with aws/",
    bad={"logGroupName": "aws/l5d-ecs"},
)
def _(p):
    return _reserved(p.get("logGroupName"), "aws/")


@rule(
    id="logs-filter-streams-or-prefix",
    service="logs",
    operation="FilterLogEvents",
    code="InvalidParameterException",
    message="You cannot specify both logStreamNames and logStreamNamePrefix",
    reference=_ref("logs", "FilterLogEvents"),
    summary="logStreamNames and logStreamNamePrefix may not be combined",
    bad={"logGroupName": "/g", "logStreamNames": ["a/b/c"], "logStreamNamePrefix": "a/"},
)
def _(p):
    return p.get("logStreamNames") is not None and p.get("logStreamNamePrefix") is not None


@rule(
    id="logs-filter-group-name-or-identifier",
    service="logs",
    operation="FilterLogEvents",
    code="InvalidParameterException",
    message="You must include either logGroupIdentifier or logGroupName, but not both",
    reference=_ref("logs", "FilterLogEvents"),
    summary="exactly one of logGroupName and logGroupIdentifier",
    bad={"logGroupName": "/g", "logGroupIdentifier": "/g"},
)
def _(p):
    return (p.get("logGroupName") is None) == (p.get("logGroupIdentifier") is None)


@rule(
    id="logs-describeloggroups-prefix-or-pattern",
    service="logs",
    operation="DescribeLogGroups",
    code="InvalidParameterException",
    message="logGroupNamePrefix and logGroupNamePattern are mutually exclusive. Only one of these parameters can be passed.",
    reference=_ref("logs", "DescribeLogGroups"),
    summary="logGroupNamePrefix and logGroupNamePattern may not be combined",
    bad={"logGroupNamePrefix": "/l5d-ecs/", "logGroupNamePattern": "demo"},
)
def _(p):
    return p.get("logGroupNamePrefix") is not None and p.get("logGroupNamePattern") is not None


# --------------------------------------------------------------------------------------------
# SSM
# --------------------------------------------------------------------------------------------


@rule(
    id="ssm-parameter-name-no-spaces",
    service="ssm",
    operation="GetParameter",
    code="ValidationException",
    message="Parameter names can't contain spaces.",
    reference=_ref("ssm", "GetParameter"),
    summary="a parameter name contains no spaces",
    bad={"Name": "/aws/service/ecs/optimized ami"},
)
def _(p):
    name = p.get("Name")
    return isinstance(name, str) and " " in name.strip() and f"parameter name {name!r} contains spaces"


# --------------------------------------------------------------------------------------------
# Self-check (not run on import)
# --------------------------------------------------------------------------------------------


def _wire_params(service: str, operation: str, bad: dict) -> tuple[dict, list]:
    """`bad` as the rules server sees it: sent through a boto3 client (no validation, so its
    customisations such as RunInstances' UserData encoding apply), caught before it leaves,
    and parsed back with protocol.py. Also the model rules it breaks. Falls back to `bad`
    itself where boto3 or protocol.py is not importable."""
    try:
        import boto3
        from botocore.config import Config

        import protocol
    except ImportError:
        return bad, []

    class Caught(Exception):
        pass

    seen = {}

    def catch(request, **_):
        seen["body"] = request.body
        raise Caught()

    client = boto3.client(
        service,
        region_name="us-west-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )
    client.meta.events.register("before-send", catch)
    names = {api: name for name, api in client.meta.method_to_api_mapping.items()}
    method = getattr(client, names[operation])
    try:
        method(**bad)
    except Caught:
        pass
    body = seen.get("body") or b""
    if isinstance(body, str):
        body = body.encode()
    call = protocol.parse(service, operation, "us-west-1", body)
    try:
        import model_rules

        breaches = [b.rule + " at " + b.path for b in model_rules.check(call)]
    except ImportError:
        breaches = []
    return call.params, breaches


def self_check(wire: bool = True) -> list[str]:
    """Problems with the rules: a `bad` that does not trip its own check, that trips another
    rule of its operation, or (with `wire`) that does not survive boto3 and the server's parser
    or breaks a model rule. Returns the problems (empty when all is well) and prints them."""
    problems = []
    for r in RULES:
        params = r.bad
        if wire:
            try:
                params, breaches = _wire_params(r.service, r.operation, r.bad)
            except Exception as e:  # noqa: BLE001 - report, do not stop
                problems.append(f"{r.id}: bad call could not be serialized/parsed: {e!r}")
                continue
            if breaches:
                problems.append(f"{r.id}: bad call also breaks model rules: {breaches}")
        if not r.check(params):
            problems.append(f"{r.id}: bad call does not trip its own check")
        for other in RULES:
            if other is not r and other.service == r.service and other.operation == r.operation:
                if other.check(params):
                    problems.append(f"{r.id}: bad call also trips {other.id}")
    for p in problems:
        print(p)
    print(f"{len(RULES)} rules, {len(problems)} problem(s)")
    return problems


if __name__ == "__main__":
    import sys

    sys.exit(1 if self_check() else 0)

"""The AWS operations l5d-ecs calls, listed by hand and found again in the code.

`SOURCE_OPERATIONS` is what the tool itself (src/) calls; `SUPPORT_OPERATIONS` what the test
support adds of its own (tests/support/*.rs: the stand-in ECS agent's
RegisterContainerInstance and the test's look-arounds; tests/standins/*.py). `TOOL_OPERATIONS`
is both together: every call the rules layer can see while the tests run.

`operations_in_source(dir)` finds the calls again from the code (Rust SDK calls, and boto3
calls in Python files), so that a new call in src/ cannot go unlisted: see
test_rules.py::test_operations_listed_from_the_code.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

# Every AWS operation l5d-ecs calls, by botocore service name. Kept in step with src/ by
# test_rules.py::test_operations_listed_from_the_code.
SOURCE_OPERATIONS = {
    "ecs": [
        "CreateCluster",
        "CreateService",
        "DeleteCluster",
        "DeleteService",
        "DeregisterContainerInstance",
        "DeregisterTaskDefinition",
        "DescribeClusters",
        "DescribeContainerInstances",
        "DescribeServices",
        "DescribeTaskDefinition",
        "DescribeTasks",
        "ListContainerInstances",
        "ListTaskDefinitions",
        "ListTasks",
        "RegisterTaskDefinition",
        "RunTask",
        "StopTask",
        "UpdateService",
    ],
    "ec2": [
        "AuthorizeSecurityGroupIngress",
        "CreateLaunchTemplate",
        "CreateLaunchTemplateVersion",
        "CreateSecurityGroup",
        "DeleteLaunchTemplate",
        "DeleteSecurityGroup",
        "DescribeImages",
        "DescribeInstanceTypeOfferings",
        "DescribeInstanceTypes",
        "DescribeInstances",
        "DescribeKeyPairs",
        "DescribeRegions",
        "DescribeLaunchTemplateVersions",
        "DescribeLaunchTemplates",
        "DescribeSecurityGroups",
        "DescribeSubnets",
        "RunInstances",
        "TerminateInstances",
    ],
    "iam": [
        "AddRoleToInstanceProfile",
        "AttachRolePolicy",
        "CreateInstanceProfile",
        "CreateRole",
        "CreateServiceLinkedRole",
        "DeleteInstanceProfile",
        "DeleteRole",
        "DeleteRolePolicy",
        "DetachRolePolicy",
        "GetInstanceProfile",
        "GetRole",
        "GetRolePolicy",
        "ListAttachedRolePolicies",
        "ListRolePolicies",
        "PutRolePolicy",
        "RemoveRoleFromInstanceProfile",
        "SimulatePrincipalPolicy",
    ],
    "autoscaling": [
        "CreateAutoScalingGroup",
        "CreateLaunchConfiguration",
        "DeleteAutoScalingGroup",
        "DeleteLaunchConfiguration",
        "DescribeAccountLimits",
        "DescribeAutoScalingGroups",
        "DeleteScheduledAction",
        "DescribeLaunchConfigurations",
        "DescribeScheduledActions",
        "DescribeTags",
        "PutScheduledUpdateGroupAction",
        "UpdateAutoScalingGroup",
    ],
    "logs": [
        "CreateLogGroup",
        "DeleteLogGroup",
        "DescribeLogGroups",
        "FilterLogEvents",
        "PutRetentionPolicy",
    ],
    "ssm": ["GetParameter"],
    "sts": ["GetCallerIdentity"],
    "service-quotas": ["GetServiceQuota"],
    # The state in S3 (--state s3://...): its bucket, the state, its lock and backup.
    "s3": ["DeleteObject", "GetObject", "ListObjectsV2", "PutObject"],
    # up --expires-in: the consul server's deadline.
    "scheduler": ["CreateSchedule", "DeleteSchedule", "GetSchedule", "UpdateSchedule"],
}

# What tests/support/*.rs and tests/standins/*.py call beyond the above.
SUPPORT_OPERATIONS = {
    "ecs": ["ListClusters", "ListServices", "RegisterContainerInstance"],
    "ec2": ["DescribeInstanceAttribute"],
    "iam": ["ListInstanceProfiles", "ListRoles"],
}

# Where the calls above are made, relative to the repository root.
SOURCE_DIRS = ("src",)
SUPPORT_DIRS = ("tests/support", "tests/standins")


def _merge(*tables: dict[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for table in tables:
        for service, ops in table.items():
            out.setdefault(service, set()).update(ops)
    return {service: sorted(ops) for service, ops in out.items()}


TOOL_OPERATIONS = _merge(SOURCE_OPERATIONS, SUPPORT_OPERATIONS)

# --------------------------------------------------------------------------------------------
# Finding the calls in the code
# --------------------------------------------------------------------------------------------

# The botocore services, and the names a client of each goes by: the fields of `Aws` in
# src/aws.rs (`ctx.aws.quotas`, `self.ecs`, ...) and the usual boto3 variable names.
SERVICES = (
    "ec2", "ecs", "iam", "autoscaling", "logs", "ssm", "sts", "service-quotas", "s3", "scheduler"
)
CLIENT_NAMES = {
    "scheduler": "scheduler",
    "s3": "s3",
    "ec2": "ec2",
    "ecs": "ecs",
    "iam": "iam",
    "autoscaling": "autoscaling",
    "asg": "autoscaling",
    "logs": "logs",
    "cloudwatchlogs": "logs",
    "ssm": "ssm",
    "sts": "sts",
    "quotas": "service-quotas",
    "servicequotas": "service-quotas",
    "service_quotas": "service-quotas",
}
# The SDK crate of each service, for `aws_sdk_x::Client` typed variables.
CRATES = {
    "aws_sdk_ec2": "ec2",
    "aws_sdk_ecs": "ecs",
    "aws_sdk_iam": "iam",
    "aws_sdk_autoscaling": "autoscaling",
    "aws_sdk_cloudwatchlogs": "logs",
    "aws_sdk_ssm": "ssm",
    "aws_sdk_sts": "sts",
    "aws_sdk_s3": "s3",
    "aws_sdk_scheduler": "scheduler",
    "aws_sdk_servicequotas": "service-quotas",
}


def snake_case(operation: str) -> str:
    """`DescribeInstanceTypeOfferings` -> `describe_instance_type_offerings`, as the Rust SDK
    and boto3 name the method (`GetSSHPublicKey` -> `get_ssh_public_key`)."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", operation)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return s.lower()


@lru_cache(maxsize=None)
def method_table() -> dict[str, dict[str, str]]:
    """snake_case method -> {service: Operation}, from botocore's service models."""
    import botocore.loaders

    loader = botocore.loaders.Loader()
    table: dict[str, dict[str, str]] = {}
    for service in SERVICES:
        model = loader.load_service_model(service, "service-2")
        for op in model["operations"]:
            table.setdefault(snake_case(op), {})[service] = op
    return table


_RUST_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_PY_COMMENT = re.compile(r"#[^\n]*")
# `.method(` with anything (newlines included) between the dot and the name.
_METHOD = re.compile(r"\.\s*([a-z][a-z0-9_]*)\s*\(")
# boto3 paginators: `client.get_paginator("list_tasks")`.
_PAGINATOR = re.compile(r"\.\s*get_paginator\s*\(\s*[\"']([a-z0-9_]+)[\"']")
# The identifier just before a `.`: the receiver of the call (`ecs` in `ctx.aws.ecs.x()`).
_RECEIVER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\?\s*)?$")


def _client_variables(text: str) -> dict[str, str]:
    """Local names bound to a client in this file: `let ecs = &ctx.aws.ecs;`,
    `let c: &aws_sdk_ecs::Client = ...`, `ecs = session.client("ecs", ...)`,
    `(ec2, ecs) = clients(...)` (boto3 tuples named after the service)."""
    found: dict[str, str] = {}
    # Rust: let [mut] name = [&]expr.field;   (the field names a client)
    for m in re.finditer(r"\blet\s+(?:mut\s+)?([a-z_][a-z0-9_]*)\s*=\s*&?\s*([A-Za-z0-9_.\s]+?)\s*;", text):
        last = re.split(r"[.\s]+", m.group(2).strip())[-1]
        if last in CLIENT_NAMES:
            found[m.group(1)] = CLIENT_NAMES[last]
    # Rust: name: [&]aws_sdk_x::Client
    for m in re.finditer(r"\b([a-z_][a-z0-9_]*)\s*:\s*&?\s*(?:'\w+\s+)?(aws_sdk_[a-z0-9]+)::Client\b", text):
        if m.group(2) in CRATES:
            found[m.group(1)] = CRATES[m.group(2)]
    # Python: name = <anything>.client("service" ...)
    for m in re.finditer(r"\b([a-z_][a-z0-9_]*)\s*=\s*[\w.]*\.client\(\s*[\"']([a-z-]+)[\"']", text):
        if m.group(2) in SERVICES:
            found[m.group(1)] = m.group(2)
    return found


def _service_of_receiver(text: str, dot: int, variables: dict[str, str]) -> str | None:
    m = _RECEIVER.search(text, max(0, dot - 200), dot)
    if not m:
        return None
    name = m.group(1)
    if name in variables:
        return variables[name]
    return CLIENT_NAMES.get(name)


def _calls_in_text(text: str, python: bool) -> dict[str, set[str]]:
    table = method_table()
    text = (_PY_COMMENT if python else _RUST_COMMENT).sub("", text)
    variables = _client_variables(text)
    found: dict[str, set[str]] = {}

    def add(method: str, dot: int) -> None:
        services = table.get(method)
        if not services:
            return
        receiver = _service_of_receiver(text, dot, variables)
        if receiver is not None:
            if receiver in services:
                found.setdefault(receiver, set()).add(services[receiver])
            return  # a client of another service, or the wrong name for it: not a call
        if len(services) == 1:
            # The receiver is not a recognisable client (a chain through a helper, say):
            # the method name alone is nearly unique across these services.
            (service, op), = services.items()
            found.setdefault(service, set()).add(op)
        # An ambiguous name on an unknown receiver (describe_tags, list_services, ...) is left
        # out rather than guessed.

    for m in _METHOD.finditer(text):
        add(m.group(1), m.start())
    if python:
        for m in _PAGINATOR.finditer(text):
            add(m.group(1), m.start())
    return found


def operations_in_source(src_dir: str | os.PathLike | list | tuple) -> dict[str, set[str]]:
    """The AWS operations called by the .rs and .py files under `src_dir` (one directory, or a
    list of them), by botocore service name."""
    dirs = src_dir if isinstance(src_dir, (list, tuple)) else [src_dir]
    found: dict[str, set[str]] = {}
    for d in dirs:
        for path in sorted(Path(d).rglob("*")):
            if path.suffix not in (".rs", ".py") or not path.is_file():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            for service, ops in _calls_in_text(text, path.suffix == ".py").items():
                found.setdefault(service, set()).update(ops)
    return found


def operations_in_tree(root: str | os.PathLike) -> dict[str, set[str]]:
    """What `TOOL_OPERATIONS` lists, found from the code under the repository `root`."""
    return operations_in_source([Path(root) / d for d in SOURCE_DIRS + SUPPORT_DIRS])


def as_sets(table: dict[str, list[str]]) -> dict[str, set[str]]:
    return {service: set(ops) for service, ops in table.items() if ops}


if __name__ == "__main__":
    import json
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2])
    src = operations_in_source(root / "src")
    tree = operations_in_tree(root)
    print(json.dumps({s: sorted(o) for s, o in sorted(src.items())}, indent=1))
    for name, want, got in (
        ("SOURCE_OPERATIONS", as_sets(SOURCE_OPERATIONS), src),
        ("TOOL_OPERATIONS", as_sets(TOOL_OPERATIONS), tree),
    ):
        if want != got:
            for service in sorted(set(want) | set(got)):
                extra = got.get(service, set()) - want.get(service, set())
                missing = want.get(service, set()) - got.get(service, set())
                if extra or missing:
                    print(f"{name} {service}: unlisted {sorted(extra)}, not found {sorted(missing)}")
            sys.exit(1)
    print("operations listed match the code")

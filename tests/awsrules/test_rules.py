"""Every rule of the AWS rules layer trips on a bad call, with the error AWS answers.

Each call goes over HTTP to the rules server (moto behind the rules), signed by boto3 with
fake credentials and with boto3's own parameter checks off, so the server alone judges it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import hand_rules  # noqa: E402,F401
import model_rules  # noqa: E402
import operations  # noqa: E402
import protocol  # noqa: E402
import rulebook  # noqa: E402

REGION = "us-west-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: bytes = b"") -> dict:
    req = urllib.request.Request(url, data=body or None, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


@pytest.fixture(scope="module")
def endpoint():
    port = _free_port()
    env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true", L5D_RULES_QUIET="1")
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "server.py"), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    delay = 0.02
    while True:
        try:
            _http("GET", url + "/_rules/config")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the rules server did not start on port {port}")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def client(endpoint):
    _http("POST", endpoint + "/moto-api/reset")
    config = Config(parameter_validation=False, retries={"max_attempts": 1, "mode": "standard"})

    def make(service: str):
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=config,
        )

    return make


def _violations(endpoint: str) -> list[dict]:
    return _http("POST", endpoint + "/_rules/violations/clear")["violations"]


def _method(client, operation: str):
    for name, api in client.meta.method_to_api_mapping.items():
        if api == operation:
            return getattr(client, name)
    raise AttributeError(f"boto3 has no method for {operation}")


@pytest.mark.parametrize("rule", rulebook.RULES, ids=[r.id for r in rulebook.RULES])
def test_hand_rule_fires(rule, client, endpoint):
    c = client(rule.service)
    with pytest.raises(ClientError) as refused:
        _method(c, rule.operation)(**rule.bad)
    error = refused.value.response["Error"]
    assert error["Code"] == rule.code, f"{rule.id}: AWS answers {rule.code}, got {error}"
    fired = {v["rule"] for v in _violations(endpoint)}
    assert rule.id in fired, f"{rule.id} did not fire; fired: {fired}"


# One bad call per kind of model constraint, on operations the tool calls.
MODEL_CASES = [
    ("required", "iam", "CreateRole", {"AssumeRolePolicyDocument": "{}"}, "ValidationError"),
    ("min-length", "iam", "CreateRole", {"RoleName": "", "AssumeRolePolicyDocument": "{}"}, "ValidationError"),
    ("max-length", "iam", "CreateRole", {"RoleName": "r" * 65, "AssumeRolePolicyDocument": "{}"}, "ValidationError"),
    ("pattern", "iam", "CreateRole", {"RoleName": "bad name!", "AssumeRolePolicyDocument": "{}"}, "ValidationError"),
    ("enum", "ecs", "ListTasks", {"cluster": "c", "desiredStatus": "SLEEPING"}, "InvalidParameterException"),
    ("min-value", "logs", "FilterLogEvents", {"logGroupName": "/g", "limit": 0}, "InvalidParameterException"),
    ("max-value", "logs", "FilterLogEvents", {"logGroupName": "/g", "limit": 10001}, "InvalidParameterException"),
    ("min-items", "ssm", "GetParameters", {"Names": []}, "ValidationException"),
    ("max-items", "ssm", "GetParameters", {"Names": [f"/p{i}" for i in range(11)]}, "ValidationException"),
    ("required", "ec2", "RunInstances", {"ImageId": "ami-1", "MinCount": 1}, "MissingParameter"),
]


@pytest.mark.parametrize("kind,service,operation,params,code", MODEL_CASES,
                         ids=[f"{k}-{s}-{o}" for k, s, o, _, _ in MODEL_CASES])
def test_model_rule_fires(kind, service, operation, params, code, client, endpoint):
    c = client(service)
    with pytest.raises(ClientError) as refused:
        _method(c, operation)(**params)
    assert refused.value.response["Error"]["Code"] == code
    fired = {v["rule"] for v in _violations(endpoint)}
    assert f"model:{kind}" in fired, fired


def test_every_model_kind_has_a_case():
    assert {k for k, *_ in MODEL_CASES} == set(model_rules.KINDS)


def test_a_good_call_breaks_nothing(client, endpoint):
    iam = client("iam")
    iam.create_role(RoleName="ecsInstanceRole", AssumeRolePolicyDocument="{}",
                    Tags=[{"Key": "l5d-ecs:stack", "Value": "l5d-demo"}])
    ecs = client("ecs")
    ecs.create_cluster(clusterName="l5d-demo")
    ecs.list_tasks(cluster="l5d-demo", startedBy="l5d-ecs/l5d-demo")
    assert _violations(endpoint) == []


def test_operations_listed_from_the_code():
    """Every operation src/ calls is in the table, and every one exists in its model."""
    src = HERE.parent.parent / "src"
    found = operations.operations_in_source(src)
    for service, ops in found.items():
        missing = set(ops) - set(operations.TOOL_OPERATIONS.get(service, []))
        assert not missing, f"src/ calls {service} {sorted(missing)}: add to operations.py"
    for service, ops in operations.TOOL_OPERATIONS.items():
        model = protocol.service_model(service)
        unknown = set(ops) - set(model.operation_names)
        assert not unknown, f"{service} has no operation {sorted(unknown)}"


def test_rules_table_is_current():
    """docs/aws-rules.md is generated from the rule table; regenerate with doc.py."""
    import doc

    path = HERE.parent.parent / "docs" / "aws-rules.md"
    assert path.read_text() == doc.render(), "docs/aws-rules.md is stale: run tests/awsrules/doc.py"


def test_every_behaviour_names_a_test_that_exists():
    import importlib

    import behaviour

    for b in behaviour.BEHAVIOURS:
        path, name = b["test"].rsplit("::", 1)
        module = importlib.import_module(Path(path).stem)
        assert callable(getattr(module, name, None)), f"{b['summary']}: no test {b['test']}"

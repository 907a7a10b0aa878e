"""Shared fixtures for the rules layer's tests.

`rules_server` (session): one rules server (tests/awsrules/serve, i.e. moto behind the AWS
rules), started on a free loopback port with MOTO_IAM_LOAD_MANAGED_POLICIES=true, stopped at the
end. `L5D_RULES_SERVE` may name another serve script (same flags).
`aws` (function): a fresh account on that server (moto reset, ECS task states pinned as the Rust
harness pins them, World delays back to the test defaults, no DAEMON faults) and a factory of
boto3 clients with fake credentials: `aws("ec2")`, `aws("ecs", region="us-east-1")`.

Nothing here is autouse: test files that start their own server (test_rules.py) are unaffected.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

HERE = Path(__file__).resolve().parent
REGION = "us-west-1"
PIN_TASKS = {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1000000}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read()
    try:
        return json.loads(text or b"null")
    except ValueError:
        return text


class RulesServer:
    def __init__(self, url: str, proc: subprocess.Popen, log: Path) -> None:
        self.url = url
        self.proc = proc
        self.log = log

    def reset(self) -> None:
        http("POST", self.url + "/moto-api/reset")
        http("POST", self.url + "/moto-api/state-manager/set-transition", PIN_TASKS)

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        return http("POST", self.url + "/_rules/config", settings)["config"]

    def config(self) -> dict[str, Any]:
        return http("GET", self.url + "/_rules/config")["config"]

    def events(self) -> list[dict[str, Any]]:
        return http("GET", self.url + "/_rules/events")["events"]

    def violations(self) -> list[dict[str, Any]]:
        return http("POST", self.url + "/_rules/violations/clear")["violations"]

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture(scope="session")
def rules_server(tmp_path_factory) -> RulesServer:
    serve = os.environ.get("L5D_RULES_SERVE", str(HERE / "serve"))
    port = free_port()
    log = tmp_path_factory.mktemp("aws-rules") / "server.log"
    env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true", L5D_RULES_QUIET="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen([serve, "-H", "127.0.0.1", "-p", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    server = RulesServer(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 30
    pause = 0.02
    while True:
        try:
            server.config()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the rules server did not start on port {port}:\n"
                                   f"{server.log_text()[-4000:]}")
            time.sleep(pause)
            pause = min(pause * 2, 0.2)
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=1)
    except subprocess.TimeoutExpired:
        proc.kill()  # werkzeug can take a while to notice; nothing to save
        proc.wait(timeout=10)


# The World delays every test starts from: shorter than the server's defaults (0.5 s) to keep
# the file quick; tests compute their expectations from these.
DELAY = 0.3
TEST_DELAYS = {
    "instance_profile": DELAY,
    "service_linked_role": DELAY,
    "eni_release": DELAY,
    "asg_delete": DELAY,
    "service_drain": DELAY,
    "container_instance_deregister": DELAY,
    "daemon_retry": DELAY,
}


class Clients:
    """boto3 clients on the rules server, fake credentials, no retries (refusals surface)."""

    def __init__(self, server: RulesServer) -> None:
        self.server = server
        self._config = Config(retries={"max_attempts": 1, "mode": "standard"},
                              read_timeout=60, connect_timeout=10)
        self._cache: dict[tuple[str, str], Any] = {}

    def __call__(self, service: str, region: str = REGION):
        key = (service, region)
        if key not in self._cache:
            self._cache[key] = boto3.client(
                service, endpoint_url=self.server.url, region_name=region,
                aws_access_key_id="test", aws_secret_access_key="test", config=self._config,
            )
        return self._cache[key]


@pytest.fixture
def aws(rules_server) -> Clients:
    rules_server.reset()
    rules_server.configure({"delays": TEST_DELAYS, "daemon_faults": {}})
    return Clients(rules_server)

"""Reading an AWS call off the wire, and answering it the way AWS would.

The SDK speaks four protocols to the services l5d-ecs uses: `ec2` (EC2's query dialect),
`query` (IAM, Auto Scaling, STS), and `json` (ECS, CloudWatch Logs, SSM, Service Quotas).
A call is parsed with botocore's model of its operation, so the parameters come out with the
member names and types boto3 takes, whatever the wire looked like.
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import botocore.loaders
import botocore.model

# Signing name in the credential scope -> botocore service name.
SIGNING_NAMES = {
    "ec2": "ec2",
    "ecs": "ecs",
    "iam": "iam",
    "autoscaling": "autoscaling",
    "logs": "logs",
    "ssm": "ssm",
    "sts": "sts",
    "servicequotas": "service-quotas",
    "scheduler": "scheduler",
    "events": "events",
}

ACCOUNT = "123456789012"


@dataclass
class Call:
    service: str
    operation: str
    params: dict[str, Any]
    region: str
    protocol: str
    account: str = ACCOUNT
    model: botocore.model.OperationModel | None = field(default=None, repr=False)


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@lru_cache(maxsize=None)
def service_model(service: str) -> botocore.model.ServiceModel:
    loader = botocore.loaders.Loader()
    return botocore.model.ServiceModel(
        loader.load_service_model(service, "service-2"), service_name=service
    )


_CREDENTIAL = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


def identify(headers: dict[str, str], body: bytes) -> tuple[str, str, str] | None:
    """(service, operation, region) of an AWS API call, or None for anything else."""
    match = _CREDENTIAL.search(headers.get("authorization", ""))
    if not match:
        return None
    region, signing_name = match.group(1), match.group(2)
    service = SIGNING_NAMES.get(signing_name)
    if service is None:
        return None
    target = headers.get("x-amz-target")
    if target:
        return service, target.rsplit(".", 1)[-1], region
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    action = form.get("Action")
    if not action:
        return None
    return service, action, region


def parse(service: str, operation: str, region: str, body: bytes) -> Call:
    model = service_model(service)
    protocol = model.metadata["protocol"]
    op = model.operation_model(operation)
    shape = op.input_shape
    if protocol == "json":
        text = body.decode("utf-8") if body else "{}"
        params = json.loads(text or "{}") if shape is not None else {}
    else:
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        form.pop("Action", None)
        form.pop("Version", None)
        params = _unflatten(shape, form, "", protocol == "ec2") if shape is not None else {}
        params = params or {}
    return Call(service, operation, params, region, protocol, model=op)


def _member_key(name: str, member: botocore.model.Shape, ec2: bool) -> str:
    if ec2:
        if "queryName" in member.serialization:
            return member.serialization["queryName"]
        if "name" in member.serialization:
            n = member.serialization["name"]
            return n[0].upper() + n[1:]
        return name
    return member.serialization.get("name", name)


def _present(form: dict[str, str], prefix: str) -> bool:
    dotted = prefix + "."
    return prefix in form or any(k.startswith(dotted) for k in form)


def _unflatten(shape: botocore.model.Shape, form: dict[str, str], prefix: str, ec2: bool):
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for name, member in shape.members.items():
            key = _member_key(name, member, ec2)
            full = f"{prefix}.{key}" if prefix else key
            if _present(form, full):
                value = _unflatten(member, form, full, ec2)
                if value is not None:
                    out[name] = value
        return out
    if kind == "list":
        if form.get(prefix) == "":
            return []
        if ec2 or shape.serialization.get("flattened"):
            list_prefix = prefix
        else:
            list_prefix = f"{prefix}.{shape.member.serialization.get('name', 'member')}"
        items = []
        i = 1
        while _present(form, f"{list_prefix}.{i}"):
            items.append(_unflatten(shape.member, form, f"{list_prefix}.{i}", ec2))
            i += 1
        return items
    if kind == "map":
        entry = prefix if shape.serialization.get("flattened") else f"{prefix}.entry"
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        out = {}
        i = 1
        while _present(form, f"{entry}.{i}"):
            k = form.get(f"{entry}.{i}.{key_name}")
            out[k] = _unflatten(shape.value, form, f"{entry}.{i}.{value_name}", ec2)
            i += 1
        return out
    raw = form.get(prefix)
    if raw is None:
        return None
    if kind in ("integer", "long"):
        try:
            return int(raw)
        except ValueError:
            return raw
    if kind in ("float", "double"):
        try:
            return float(raw)
        except ValueError:
            return raw
    if kind == "boolean":
        return raw.lower() == "true"
    return raw


def error(call_or_protocol: Call | str, code: str, message: str, status: int = 400) -> Answer:
    """The error response AWS gives in the call's protocol."""
    protocol = (
        call_or_protocol.protocol if isinstance(call_or_protocol, Call) else call_or_protocol
    )
    request_id = str(uuid.uuid4())
    if protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", code),
        ]
        return Answer(status, headers, body)
    message = (
        message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    )
    if protocol == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        ).encode()
    else:
        kind = "Sender" if status < 500 else "Receiver"
        body = (
            "<ErrorResponse><Error>"
            f"<Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
    return Answer(status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body)


# The error code each service answers for a request that breaks its model's constraints.
VALIDATION_CODES = {
    "ec2": "InvalidParameterValue",
    "iam": "ValidationError",
    "autoscaling": "ValidationError",
    "sts": "ValidationError",
    "ecs": "InvalidParameterException",
    "logs": "InvalidParameterException",
    "ssm": "ValidationException",
    "service-quotas": "ValidationException",
}
MISSING_CODES = {"ec2": "MissingParameter"}


def with_body(answer: Answer, body: bytes) -> Answer:
    """The answer with another body, its CRC32 header (ECS's, DynamoDB-style) made to match."""
    headers = []
    for k, v in answer.headers:
        if k.lower() == "x-amz-crc32":
            v = str(zlib.crc32(body) & 0xFFFFFFFF)
        headers.append((k, v))
    return Answer(answer.status, headers, body)

"""The hand-kept AWS rules: documented constraints that the service models lack.

Each rule is a function decorated with `@rule(...)`, found by `check()`. The function gets the
call's parameters, parsed with botocore's member names (what boto3 takes), and returns a
truthy value (True, or a string with the detail) when the call breaks the rule.

Every rule carries `bad`: the parameters of one call that breaks it. The test suite
(`tests/awsrules/test_rules.py`) sends each rule's bad call through the rules server and
checks that exactly this rule fires with AWS's answer, so every rule has a test by
construction. `docs/aws-rules.md` is generated from this table (`python tests/awsrules/doc.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Rule:
    id: str
    service: str  # botocore service name: ec2, ecs, iam, autoscaling, logs, ssm, sts
    operation: str  # AWS operation name, e.g. ListTasks
    code: str  # the error code AWS answers
    message: str  # AWS's message (or its gist)
    reference: str  # the API reference page the rule comes from
    summary: str  # the rule in one line, for the table
    bad: dict[str, Any]  # parameters of a call that breaks the rule
    check: Callable[[dict[str, Any]], Any]
    status: int = 400
    extra_bad: tuple[dict[str, Any], ...] = field(default_factory=tuple)


RULES: list[Rule] = []


def rule(
    *,
    id: str,
    service: str,
    operation: str | tuple[str, ...],
    code: str,
    message: str,
    reference: str,
    summary: str,
    bad: dict[str, Any],
    status: int = 400,
):
    """Registers the decorated check as a rule (one per operation when given several)."""

    def register(check: Callable[[dict[str, Any]], Any]):
        operations = (operation,) if isinstance(operation, str) else operation
        for op in operations:
            rid = id if len(operations) == 1 else f"{id}:{op}"
            if any(r.id == rid for r in RULES):
                raise ValueError(f"duplicate rule id {rid}")
            RULES.append(
                Rule(
                    id=rid,
                    service=service,
                    operation=op,
                    code=code,
                    message=message,
                    reference=reference,
                    summary=summary,
                    bad=bad,
                    check=check,
                    status=status,
                )
            )
        return check

    return register


def check(service: str, operation: str, params: dict[str, Any]) -> list[tuple[Rule, str]]:
    """The hand rules this call breaks, each with its detail."""
    broken = []
    for r in RULES:
        if r.service != service or r.operation != operation:
            continue
        try:
            verdict = r.check(params)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            # A check that cannot read the call is a bug of the check, not of the caller.
            raise RuntimeError(f"rule {r.id} could not read {operation} {params!r}: {e}") from e
        if verdict:
            detail = verdict if isinstance(verdict, str) else r.message
            broken.append((r, detail))
    return broken

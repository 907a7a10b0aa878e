"""Constraints the service models carry: required members, lengths, patterns, enums, ranges.

moto reads a request with the same models but checks almost none of this; AWS checks all of
it before it does anything. Each constraint becomes a rule `model:<kind>` (kinds: required,
min-length, max-length, pattern, enum, min-value, max-value, min-items, max-items), answered
with the service's validation error in AWS's wording ("1 validation error detected: Value
'x' at 'clientToken' failed to satisfy constraint: Member must have length less than or
equal to 36").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import botocore.model
import regex  # Java-style patterns (\p{L}, possessive quantifiers) that `re` lacks

from protocol import MISSING_CODES, VALIDATION_CODES, Call

KINDS = {
    "required": "a required member is missing",
    "min-length": "a string shorter than the member's `min`",
    "max-length": "a string longer than the member's `max`",
    "pattern": "a string that does not match the member's `pattern`",
    "enum": "a value outside the member's `enum`",
    "min-value": "a number below the member's `min`",
    "max-value": "a number above the member's `max`",
    "min-items": "a list or map with fewer entries than the member's `min`",
    "max-items": "a list or map with more entries than the member's `max`",
}


@dataclass(frozen=True)
class Breach:
    kind: str
    path: str
    code: str
    message: str

    @property
    def rule(self) -> str:
        return f"model:{self.kind}"


@lru_cache(maxsize=None)
def _compiled(pattern: str):
    try:
        return regex.compile(pattern)
    except regex.error:
        return None


def check(call: Call) -> list[Breach]:
    shape = call.model.input_shape if call.model is not None else None
    if shape is None:
        return []
    found: list[tuple[str, str, str]] = []
    _walk(shape, call.params, "", found)
    code = VALIDATION_CODES.get(call.service, "ValidationException")
    breaches = []
    for kind, path, constraint in found:
        c = MISSING_CODES.get(call.service, code) if kind == "required" else code
        breaches.append(
            Breach(
                kind,
                path,
                c,
                f"1 validation error detected: {constraint}",
            )
        )
    return breaches


def _show(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _walk(shape: botocore.model.Shape, value: Any, path: str, found: list) -> None:
    kind = shape.type_name
    meta = shape.metadata
    at = path or "request"
    if kind == "structure":
        if not isinstance(value, dict):
            return
        for name in shape.required_members:
            if value.get(name) is None:
                p = f"{path}.{name}" if path else name
                found.append(("required", p, f"Value null at '{p}' failed to satisfy constraint: Member must not be null"))
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is not None and member_value is not None:
                _walk(member, member_value, f"{path}.{name}" if path else name, found)
        return
    if kind in ("list", "map"):
        if not isinstance(value, (list, dict)):
            return
        n = len(value)
        if "min" in meta and n < meta["min"]:
            found.append(("min-items", at, f"Value at '{at}' failed to satisfy constraint: Member must have length greater than or equal to {meta['min']}"))
        if "max" in meta and n > meta["max"]:
            found.append(("max-items", at, f"Value at '{at}' failed to satisfy constraint: Member must have length less than or equal to {meta['max']}"))
        if kind == "list":
            for i, item in enumerate(value, 1):
                _walk(shape.member, item, f"{at}.{i}", found)
        else:
            for k, v in value.items():
                _walk(shape.key, k, f"{at}.key", found)
                _walk(shape.value, v, f"{at}.{k}", found)
        return
    if kind == "string":
        if not isinstance(value, str):
            return
        if "min" in meta and len(value) < meta["min"]:
            found.append(("min-length", at, f"Value '{_show(value)}' at '{at}' failed to satisfy constraint: Member must have length greater than or equal to {meta['min']}"))
        if "max" in meta and len(value) > meta["max"]:
            found.append(("max-length", at, f"Value '{_show(value)}' at '{at}' failed to satisfy constraint: Member must have length less than or equal to {meta['max']}"))
        if shape.enum and value not in shape.enum:
            found.append(("enum", at, f"Value '{_show(value)}' at '{at}' failed to satisfy constraint: Member must satisfy enum value set: [{', '.join(shape.enum)}]"))
        pattern = meta.get("pattern")
        if pattern:
            compiled = _compiled(pattern)
            # AWS checks a pattern against the whole value (Java `matches`), anchored or not.
            if compiled is not None and compiled.fullmatch(value) is None:
                found.append(("pattern", at, f"Value '{_show(value)}' at '{at}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}"))
        return
    if kind in ("integer", "long", "float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if "min" in meta and value < meta["min"]:
            found.append(("min-value", at, f"Value '{value}' at '{at}' failed to satisfy constraint: Member must have value greater than or equal to {meta['min']}"))
        if "max" in meta and value > meta["max"]:
            found.append(("max-value", at, f"Value '{value}' at '{at}' failed to satisfy constraint: Member must have value less than or equal to {meta['max']}"))

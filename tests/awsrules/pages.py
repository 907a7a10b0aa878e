"""Answers in pages, as AWS gives them, where moto answers a list whole.

AWS may return fewer items than MaxResults even when more exist ("the service may return
fewer results than the maximum"), and every list l5d-ecs reads can span pages. moto mostly
answers everything at once, so a tool that reads only the first page passes against it.
With `configure({"page_sizes": {"ecs:ListTasks": 2, ...}})` an answer of that operation
carries at most that many items (fewer if the caller's own MaxResults is smaller) and a
continuation token; a call with that token gets the next slice. The token is ours
(`l5d-page:<offset>`): it is taken out of the request before moto sees it, so moto answers the
whole list again and the slice starts at the offset. An answer that fits in one page is left
as moto gave it.

Operations (the list member each slices):
  ecs:ListTasks (taskArns), ecs:ListContainerInstances (containerInstanceArns),
  ecs:ListTaskDefinitions (taskDefinitionArns), ecs:ListServices (serviceArns),
  ecs:ListClusters (clusterArns)                           json: nextToken / maxResults
  ec2:DescribeInstances (reservationSet, by reservation), ec2:DescribeSecurityGroups
  (securityGroupInfo), ec2:DescribeSubnets (subnetSet)     ec2 query: NextToken / MaxResults
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

PREFIX = "l5d-page:"

JSON_LISTS = {
    ("ecs", "ListTasks"): "taskArns",
    ("ecs", "ListContainerInstances"): "containerInstanceArns",
    ("ecs", "ListTaskDefinitions"): "taskDefinitionArns",
    ("ecs", "ListServices"): "serviceArns",
    ("ecs", "ListClusters"): "clusterArns",
}
EC2_LISTS = {
    ("ec2", "DescribeInstances"): "reservationSet",
    ("ec2", "DescribeSecurityGroups"): "securityGroupInfo",
    ("ec2", "DescribeSubnets"): "subnetSet",
}
OPERATIONS = {f"{s}:{o}" for s, o in list(JSON_LISTS) + list(EC2_LISTS)}


@dataclass
class Paging:
    key: tuple[str, str]
    offset: int
    size: int


def validate(sizes: dict) -> dict[str, int]:
    if not isinstance(sizes, dict):
        raise ValueError("page_sizes must be an object: service:Operation -> items per page")
    out = {}
    for name, n in sizes.items():
        if name not in OPERATIONS:
            raise ValueError(f"page_sizes: {name} is not paged here (paged: {sorted(OPERATIONS)})")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"page_sizes: {name} must be a whole number >= 1")
        out[name] = n
    return out


class BadToken(Exception):
    pass


def _offset(token: str | None) -> int:
    if not token:
        return 0
    if not token.startswith(PREFIX):
        raise BadToken(token)
    try:
        n = int(token[len(PREFIX):])
    except ValueError:
        raise BadToken(token) from None
    if n < 0:
        raise BadToken(token)
    return n


def request(sizes: dict[str, int], service: str, operation: str, body: bytes):
    """(Paging, the body for moto) for a paged operation, else None. BadToken for a token of
    ours that makes no sense."""
    key = (service, operation)
    size = sizes.get(f"{service}:{operation}")
    if size is None or (key not in JSON_LISTS and key not in EC2_LISTS):
        return None
    if key in JSON_LISTS:
        params = json.loads(body.decode() or "{}")
        token = params.get("nextToken")
        if token and not token.startswith(PREFIX):
            return None  # moto's own token: its paging, left alone
        asked = params.pop("maxResults", None)
        params.pop("nextToken", None)
        new_body = json.dumps(params).encode()
    else:
        form = parse_qsl(body.decode(), keep_blank_values=True)
        token = next((v for k, v in form if k == "NextToken"), None)
        if token and not token.startswith(PREFIX):
            return None
        asked = next((v for k, v in form if k == "MaxResults"), None)
        new_body = urlencode([(k, v) for k, v in form if k not in ("NextToken", "MaxResults")]).encode()
    if asked is not None:
        size = min(size, int(asked))
    return Paging(key, _offset(token), size), new_body


def _next_token(offset: int, size: int, total: int) -> str | None:
    return f"{PREFIX}{offset + size}" if offset + size < total else None


def answer(paging: Paging, status: int, body: bytes) -> bytes:
    """moto's whole answer, cut to the page."""
    if status >= 400:
        return body
    if paging.key in JSON_LISTS:
        member = JSON_LISTS[paging.key]
        doc = json.loads(body.decode() or "{}")
        items = doc.get(member) or []
        doc[member] = items[paging.offset: paging.offset + paging.size]
        token = _next_token(paging.offset, paging.size, len(items))
        doc.pop("nextToken", None)
        if token:
            doc["nextToken"] = token
        return json.dumps(doc).encode()
    return _ec2_page(paging, body.decode()).encode()


_TAG = re.compile(r"<(/?)(item)\b[^>]*?(/?)>")


def _ec2_page(paging: Paging, text: str) -> str:
    member = EC2_LISTS[paging.key]
    m = re.search(rf"<{member}>(.*?)</{member}>|<{member}\s*/>", text, re.S)
    if m is None or m.group(1) is None:
        return text
    inner = m.group(1)
    # the top-level <item> elements of the set
    items, depth, start = [], 0, None
    for t in _TAG.finditer(inner):
        closing, selfclosing = t.group(1) == "/", t.group(3) == "/"
        if selfclosing:
            if depth == 0:
                items.append(inner[t.start(): t.end()])
            continue
        if not closing:
            if depth == 0:
                start = t.start()
            depth += 1
        else:
            depth -= 1
            if depth == 0 and start is not None:
                items.append(inner[start: t.end()])
    page = items[paging.offset: paging.offset + paging.size]
    token = _next_token(paging.offset, paging.size, len(items))
    new = f"<{member}>" + "".join(page) + f"</{member}>"
    out = text[: m.start()] + new + text[m.end():]
    out = re.sub(r"<nextToken>.*?</nextToken>|<nextToken\s*/>", "", out, flags=re.S)
    if token:
        out = out.replace(new, new + f"<nextToken>{token}</nextToken>", 1)
    return out

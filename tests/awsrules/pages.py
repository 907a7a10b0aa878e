"""Answers in pages, as AWS gives them, where moto answers a list whole.

AWS may return fewer items than MaxResults even when more exist ("A response can contain fewer
items than the value specified by MaxRecords, even when more items are available"), so every
list a tool reads can span pages. moto answers most lists whole, so a tool that reads only the
first page passes against it. With `configure({"page_sizes": {"ecs:ListTasks": 2, ...}})` an
answer of that operation carries at most that many items (fewer when the caller's own
MaxResults is smaller) and a continuation token; a call with that token gets the next slice;
the last page has none.

The token is ours, `l5d-page:<offset>:<digest>:<last>:<next>`: the digest a hash of the
operation and the call's other parameters (all but the token and the page bound), <last> and
<next> short hashes of the last item served and of the first one not yet served. It is taken
out of the request before moto sees it (with the page bound, and with moto's own cap raised
where it has one), so moto answers the whole list again and the next page is cut from it:
after <last> when it is still listed, else from <next>, else from the offset. So items that
leave the list between pages (a tool stopping the tasks of one page before it reads the next,
under a status filter) do not make the next page skip the ones after them, as an AWS cursor
would not (moto keeps its lists in the order items were made: new ones come last). A token of
ours that does not parse, or that another call made (other filters, other operation), is
answered as AWS answers a bad token, and is a violation (rule `pages:token`).

Left as moto gave them: an answer that fits in one page; an answer moto paged itself (a list
longer than moto's own cap: Auto Scaling groups 100, CloudWatch Logs groups 50), and any call
carrying a token moto made; a call without our token while no page size is set (moto's own
handling of MaxResults, which is mostly none); DescribeInstances naming InstanceIds (AWS does
not page those: MaxResults may not be given with them).

DescribeInstances is paged by reservation (what its XML holds; AWS counts instances, and one
RunInstances makes one reservation, so a page of reservations is at least as many instances).
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from protocol import Answer, Call, with_body

PREFIX = "l5d-page:"


@dataclass(frozen=True)
class Spec:
    items: str  # the answer's list: a JSON key, or the XML element holding the items
    token: str  # the request member carrying the token (a botocore member name)
    limit: str  # the request member bounding a page
    token_out: str  # where the answer carries the next token
    key: str | None = None  # what names an item (a JSON key or XML child); None: the whole item
    moto_all: tuple[tuple[str, Any], ...] = ()  # what makes moto answer the whole list
    whole_with: tuple[str, ...] = ()  # members with which AWS answers whole, unpaged
    truncated: str | None = None  # IAM: the IsTruncated element beside the Marker


def _ecs(items: str) -> Spec:
    return Spec(items, "nextToken", "maxResults", "nextToken")


def _ec2(items: str, key: str | None, **kw) -> Spec:
    return Spec(items, "NextToken", "MaxResults", "nextToken", key, **kw)


def _asg(items: str, key: str | None, **kw) -> Spec:
    return Spec(items, "NextToken", "MaxRecords", "NextToken", key, **kw)


SPECS: dict[tuple[str, str], Spec] = {
    ("ecs", "ListTasks"): _ecs("taskArns"),
    ("ecs", "ListContainerInstances"): _ecs("containerInstanceArns"),
    ("ecs", "ListServices"): _ecs("serviceArns"),
    ("ecs", "ListTaskDefinitions"): _ecs("taskDefinitionArns"),
    ("ecs", "ListClusters"): _ecs("clusterArns"),
    # moto answers 100 reservations unless told more, and refuses MaxResults beside
    # InstanceIds (as AWS does), so the cap is raised only without them
    ("ec2", "DescribeInstances"): _ec2(
        "reservationSet", "reservationId", moto_all=(("MaxResults", 1000),),
        whole_with=("InstanceIds",)),
    ("ec2", "DescribeSecurityGroups"): _ec2("securityGroupInfo", "groupId"),
    ("ec2", "DescribeSubnets"): _ec2("subnetSet", "subnetId"),
    # moto answers 15 launch templates unless told more (and gives no token)
    ("ec2", "DescribeLaunchTemplates"): _ec2(
        "launchTemplates", "launchTemplateId", moto_all=(("MaxResults", 1000),)),
    ("ec2", "DescribeInstanceTypeOfferings"): _ec2("instanceTypeOfferingSet", None),
    # moto answers 50 unless told more; groups at most 100 (it refuses more, as AWS does)
    ("autoscaling", "DescribeAutoScalingGroups"): _asg(
        "AutoScalingGroups", "AutoScalingGroupName", moto_all=(("MaxRecords", 100),)),
    ("autoscaling", "DescribeLaunchConfigurations"): _asg(
        "LaunchConfigurations", "LaunchConfigurationName", moto_all=(("MaxRecords", 100000),)),
    ("autoscaling", "DescribeScheduledActions"): _asg("ScheduledUpdateGroupActions", None),
    # moto answers 50 at most
    ("logs", "DescribeLogGroups"): Spec(
        "logGroups", "nextToken", "limit", "nextToken", "logGroupName",
        moto_all=(("limit", 50),)),
    # moto answers 100 attached policies unless told more
    ("iam", "ListAttachedRolePolicies"): Spec(
        "AttachedPolicies", "Marker", "MaxItems", "Marker", "PolicyArn",
        moto_all=(("MaxItems", 1000),), truncated="IsTruncated"),
    ("iam", "ListRolePolicies"): Spec(
        "PolicyNames", "Marker", "MaxItems", "Marker", truncated="IsTruncated"),
}
OPERATIONS = sorted(f"{s}:{o}" for s, o in SPECS)

# What each service answers for a token it did not make.
BAD_TOKEN = {
    "ecs": ("InvalidParameterException", "The specified nextToken is invalid."),
    "logs": ("InvalidParameterException", "The specified nextToken is invalid."),
    # EC2's common client errors
    "ec2": ("InvalidPaginationToken",
            "The specified pagination token is not valid or is expired."),
    # the InvalidNextToken error shape of the Auto Scaling model
    "autoscaling": ("InvalidNextToken", "The NextToken value is not valid."),
    "iam": ("InvalidInput", "Invalid Marker."),
}
BAD_TOKEN_REFERENCE = {
    "ecs": "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListTasks.html",
    "logs": "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/"
            "API_DescribeLogGroups.html",
    "ec2": "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html",
    "autoscaling": "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/"
                   "API_DescribeAutoScalingGroups.html",
    "iam": "https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListAttachedRolePolicies.html",
}


class BadToken(Exception):
    """A token of ours that does not parse or belongs to another call."""

    def __init__(self, call: Call, token: str) -> None:
        code, message = BAD_TOKEN[call.service]
        super().__init__(f"{message} ({token!r})")
        self.code = code
        self.message = message
        self.reference = BAD_TOKEN_REFERENCE[call.service]


@dataclass(frozen=True)
class Paging:
    spec: Spec
    call: Call
    offset: int
    size: int | None  # None: the rest of the list (our token, nothing bounds the page)
    digest: str
    after: str | None = None  # mark of the last item served
    before: str | None = None  # mark of the first item not yet served


def validate(sizes: Any) -> dict[str, int | None]:
    """The page sizes of a configure() call; None drops an operation's size."""
    if not isinstance(sizes, dict):
        raise ValueError("page_sizes must be an object: service:Operation -> items per page")
    out: dict[str, int | None] = {}
    for name, n in sizes.items():
        if name not in OPERATIONS:
            raise ValueError(f"page_sizes: {name} is not paged here (paged: {OPERATIONS})")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"page_sizes: {name} must be a whole number >= 1 (or null)")
        out[name] = n
    return out


def _digest(call: Call, spec: Spec) -> str:
    # A token is good only for the call that made it: same operation, same filters. The page
    # bound may change between pages (botocore's paginator keeps it; a caller may not).
    rest = {k: v for k, v in call.params.items() if k not in (spec.token, spec.limit)}
    text = json.dumps([call.service, call.operation, rest], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _mark(key: str) -> str:
    return f"{zlib.crc32(key.encode()) & 0xFFFFFFFF:08x}"


def _parse(call: Call, token: str, digest: str) -> tuple[int, str, str]:
    """(offset, last, next) of a token of ours that this call made."""
    parts = token[len(PREFIX):].split(":")
    if len(parts) != 4 or not parts[0].isdigit() or parts[1] != digest:
        raise BadToken(call, token)
    return int(parts[0]), parts[2], parts[3]


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def request(sizes: dict[str, int], call: Call, body: bytes) -> tuple[Paging, bytes] | None:
    """(Paging, the body to hand moto) when this call is to be paged here, else None.
    Raises BadToken for a token of ours that this call did not make."""
    spec = SPECS.get((call.service, call.operation))
    if spec is None:
        return None
    token = call.params.get(spec.token)
    ours = isinstance(token, str) and token.startswith(PREFIX)
    size = sizes.get(f"{call.service}:{call.operation}")
    if token and not ours:
        return None  # moto's own token: its paging, left alone
    if size is None and not ours:
        return None  # not asked for: moto's answer as it is
    if any(call.params.get(m) for m in spec.whole_with) and not ours:
        return None
    digest = _digest(call, spec)
    offset, after, before = _parse(call, token, digest) if ours else (0, None, None)
    asked = _int(call.params.get(spec.limit))
    bounds = [n for n in (size, asked) if n is not None]
    paging = Paging(spec, call, offset, min(bounds) if bounds else None, digest, after, before)
    return paging, _for_moto(spec, call, body)


def _for_moto(spec: Spec, call: Call, body: bytes) -> bytes:
    """The request without our token and the page bound, so that moto answers it whole."""
    if call.protocol == "json":
        params = json.loads(body.decode("utf-8") or "{}")
        params.pop(spec.token, None)
        params.pop(spec.limit, None)
        params.update(dict(spec.moto_all))
        return json.dumps(params).encode()
    # query and ec2 protocols: the members here are top-level scalars, whose wire name is
    # the member name
    drop = {spec.token, spec.limit} | {k for k, _ in spec.moto_all}
    form = [(k, v) for k, v in parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            if k not in drop]
    if not any(call.params.get(m) for m in spec.whole_with):
        form += [(k, str(v)) for k, v in spec.moto_all]
    return urlencode(form).encode()


def answer(paging: Paging, answer: Answer) -> Answer:
    """moto's whole answer, cut to the page."""
    if answer.status >= 400:
        return answer
    if paging.call.protocol == "json":
        body = _json_page(paging, answer.body)
    else:
        body = _xml_page(paging, answer.body)
    if body is None:
        return answer
    return with_body(answer, body)


def _window(paging: Paging, keys: list[str]) -> tuple[int, int, str | None]:
    """(start, end, next token) of the page in a list whose items are named `keys`."""
    total = len(keys)
    marks = [_mark(k) for k in keys]
    if paging.after in marks:
        start = marks.index(paging.after) + 1
    elif paging.before in marks:
        start = marks.index(paging.before)
    else:
        start = min(paging.offset, total)
    end = total if paging.size is None else min(total, start + paging.size)
    token = None
    if end < total:
        token = f"{PREFIX}{end}:{paging.digest}:{marks[end - 1]}:{marks[end]}"
    return start, end, token


def _json_page(paging: Paging, body: bytes) -> bytes | None:
    spec = paging.spec
    doc = json.loads(body.decode("utf-8") or "{}")
    if not isinstance(doc, dict) or doc.get(spec.token_out):
        return None  # moto paged it itself
    items = doc.get(spec.items) or []
    keys = [item if isinstance(item, str)
            else str(item.get(spec.key)) if spec.key and isinstance(item, dict)
            else json.dumps(item, sort_keys=True) for item in items]
    start, end, token = _window(paging, keys)
    if start == 0 and end == len(items):
        return None  # one page: as moto gave it
    doc[spec.items] = items[start:end]
    doc.pop(spec.token_out, None)
    if token:
        doc[spec.token_out] = token
    return json.dumps(doc).encode()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_page(paging: Paging, body: bytes) -> bytes | None:
    spec = paging.spec
    root = ET.fromstring(body)
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""

    def q(name: str) -> str:
        return f"{{{ns}}}{name}" if ns else name

    # ec2: the list is a child of the root; query: of <Operation>Result
    parent = root.find(q(f"{paging.call.operation}Result"))
    if parent is None:
        parent = root
    listed = parent.find(q(spec.items))
    if listed is None:
        return None
    moto_token = parent.find(q(spec.token_out))
    if moto_token is not None and (moto_token.text or "").strip():
        return None  # moto paged it itself
    items = list(listed)
    keys = [(item.findtext(q(spec.key)) or "") if spec.key
            else ET.tostring(item, encoding="unicode") for item in items]
    start, end, token = _window(paging, keys)
    if start == 0 and end == len(items):
        return None
    for item in items[:start] + items[end:]:
        listed.remove(item)
    if moto_token is not None:
        parent.remove(moto_token)
    if token:
        element = ET.Element(q(spec.token_out))
        element.text = token
        parent.insert(list(parent).index(listed) + 1, element)
    if spec.truncated:
        flag = parent.find(q(spec.truncated))
        if flag is None:
            flag = ET.SubElement(parent, q(spec.truncated))
        flag.text = "true" if token else "false"
    # The root and its xmlns stay as they were (the SDKs find the answer by them): serialize
    # with that namespace as the default one, not as an ns0: prefix.
    text = ET.tostring(root, encoding="unicode", default_namespace=ns or None)
    # ET writes an empty element as `<a />`, moto as `<a/>`; keep moto's bytes where we can
    # (ET escapes `>` in text and attributes, so the pair occurs only as a tag's end).
    text = text.replace(" />", "/>")
    declaration = ""
    if body.lstrip().startswith(b"<?xml"):
        declaration = body.lstrip().split(b"?>", 1)[0].decode() + "?>\n"
    return (declaration + text).encode("utf-8")

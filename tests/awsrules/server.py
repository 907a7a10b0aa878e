"""moto, behind the rules AWS enforces and moto does not.

Run like moto_server (`server.py -H 127.0.0.1 -p PORT`). Every AWS call is parsed with
botocore's model of its operation and checked, before moto sees it, against:
- the constraints the model carries (model_rules.py),
- the documented rules the model lacks (hand_rules.py, a table with references),
and then goes through `behaviour.World`: what a real account does that moto does not
(idempotency tokens, eventual consistency, deletions that take time, the DAEMON scheduler),
and, when told to, `pages`: list answers in pages, as AWS may give them.

A call that breaks a rule gets the error AWS would answer and is recorded as a violation;
the test harness reads them (`GET /_rules/violations`) and fails the test that made one,
naming the rule. `POST /moto-api/reset` also forgets violations and the World's state.

Control API (JSON):
  GET  /_rules/violations        the violations so far
  POST /_rules/violations/clear  the violations so far, then forgets them
  GET  /_rules/events            what World did (refusals for consistency, token replays)
  POST /_rules/config            settings for World (delays in seconds, scheduler faults,
                                 page sizes)
  GET  /_rules/config            the settings in force
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from werkzeug.serving import run_simple  # noqa: E402

from moto.moto_server.threaded_moto_server import MotoRequestHandler  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    create_backend_app,
)

import behaviour  # noqa: E402
import hand_rules  # noqa: E402,F401  (registers the rules)
import model_rules  # noqa: E402
import pages  # noqa: E402
import protocol  # noqa: E402
import rulebook  # noqa: E402


# moto checks a request's SigV4 signature (when INITIAL_NO_AUTH_ACTION_COUNT makes it enforce
# IAM) over the form body as it re-encodes it from the parsed fields, with `+` for a space;
# the AWS SDK for Rust signs the bytes it sent, with `%20`, as real AWS accepts. So moto's
# signature check is handed the bytes that were signed.
from moto.iam import access_control  # noqa: E402

_SIGNED = threading.local()
_moto_aws_request = access_control.IAMRequestBase._create_aws_request


def _aws_request_over_the_signed_body(self):
    request = _moto_aws_request(self)
    body = getattr(_SIGNED, "body", None)
    if body:
        request.data = body
    return request


access_control.IAMRequestBase._create_aws_request = _aws_request_over_the_signed_body


class Ledger:
    """Violations and events, shared by the server's threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.violations: list[dict[str, Any]] = []

    def add(self, item: dict[str, Any]) -> None:
        with self.lock:
            self.violations.append(item)
        if os.environ.get("L5D_RULES_QUIET") != "1":
            print(f"[aws-rules] VIOLATION {json.dumps(item)}", file=sys.stderr, flush=True)

    def take(self, clear: bool) -> list[dict[str, Any]]:
        with self.lock:
            items = list(self.violations)
            if clear:
                self.violations.clear()
        return items


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out[key[5:].replace("_", "-").lower()] = value
    if "CONTENT_TYPE" in environ:
        out["content-type"] = environ["CONTENT_TYPE"]
    return out


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


class RulesApp:
    def __init__(self, inner) -> None:
        self.inner = inner
        self.ledger = Ledger()
        self.world = behaviour.World()

    # -- WSGI -------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_rules/"):
            return self._control(environ, start_response, path)
        body = _read_body(environ)
        if path.rstrip("/") == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
            self.ledger.take(clear=True)
            self.world.reset()
            return self.inner(environ, start_response)
        identified = protocol.identify(_headers(environ), body)
        if identified is None:
            return self.inner(environ, start_response)
        service, operation, region = identified
        try:
            call = protocol.parse(service, operation, region, body)
        except Exception as e:  # an operation the service does not have, or garbage
            answer = protocol.error(
                protocol.service_model(service).metadata["protocol"]
                if service in protocol.SIGNING_NAMES.values()
                else "query",
                "InvalidAction",
                f"The action {operation} is not valid for this web service: {e}",
            )
            self.ledger.add(
                {"rule": "model:operation", "service": service, "operation": operation,
                 "code": "InvalidAction", "message": str(e), "reference": "service model"}
            )
            return self._send(start_response, answer)
        refusal = self._check(call)
        if refusal is not None:
            return self._send(start_response, refusal)
        early = self.world.before(call)
        if early is not None:
            return self._send(start_response, early)
        try:
            paging = pages.request(self.world.page_sizes(), call, body)
        except pages.BadToken as e:
            # A token of ours that this call did not make: a tool mixing up its pages.
            self.ledger.add(
                {"rule": "pages:token", "service": call.service, "operation": call.operation,
                 "code": e.code, "message": str(e), "reference": e.reference}
            )
            return self._send(start_response, protocol.error(call, e.code, e.message))
        if paging is not None:
            # moto answers the whole list; the page is cut from it below. The signature check
            # still gets the bytes that were signed (_SIGNED.body).
            paging, for_moto = paging
            environ["wsgi.input"] = io.BytesIO(for_moto)
            environ["CONTENT_LENGTH"] = str(len(for_moto))
        _SIGNED.body = body
        try:
            answer = self._forward(environ)
        finally:
            _SIGNED.body = None
        answer = self.world.after(call, answer)
        if paging is not None:
            # after World, so that what it leaves out (INACTIVE services and container
            # instances, other services' tasks) takes no room in a page
            try:
                answer = pages.answer(paging, answer)
            except Exception:  # an answer we cannot read is passed on as moto gave it
                print(f"[aws-rules] paging {service}.{operation} failed:\n"
                      f"{traceback.format_exc()}", file=sys.stderr, flush=True)
        return self._send(start_response, answer)

    # -- rules ------------------------------------------------------------------------------
    def _check(self, call: protocol.Call) -> protocol.Answer | None:
        first = None
        for breach in model_rules.check(call):
            self.ledger.add(
                {"rule": breach.rule, "service": call.service, "operation": call.operation,
                 "path": breach.path, "code": breach.code, "message": breach.message,
                 "reference": "botocore service model"}
            )
            if first is None:
                first = protocol.error(call, breach.code, breach.message)
        for r, detail in rulebook.check(call.service, call.operation, call.params):
            self.ledger.add(
                {"rule": r.id, "service": call.service, "operation": call.operation,
                 "code": r.code, "message": detail, "reference": r.reference}
            )
            if first is None:
                first = protocol.error(call, r.code, detail, r.status)
        return first

    # -- plumbing ---------------------------------------------------------------------------
    def _forward(self, environ) -> protocol.Answer:
        captured: dict[str, Any] = {}

        def start(status, headers, exc_info=None):
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = list(headers)
            return lambda data: None

        chunks = self.inner(environ, start)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        return protocol.Answer(captured["status"], headers, body)

    @staticmethod
    def _send(start_response, answer: protocol.Answer):
        headers = [(k, v) for k, v in answer.headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(answer.body))))
        start_response(f"{answer.status} {_reason(answer.status)}", headers)
        return [answer.body]

    def _control(self, environ, start_response, path):
        method = environ.get("REQUEST_METHOD")
        body = _read_body(environ)
        if path == "/_rules/violations" and method == "GET":
            result: Any = {"violations": self.ledger.take(clear=False)}
        elif path == "/_rules/violations/clear" and method == "POST":
            result = {"violations": self.ledger.take(clear=True)}
        elif path == "/_rules/events" and method == "GET":
            result = {"events": self.world.events()}
        elif path == "/_rules/config" and method == "POST":
            self.world.configure(json.loads(body or b"{}"))
            result = {"config": self.world.config()}
        elif path == "/_rules/config" and method == "GET":
            result = {"config": self.world.config()}
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [json.dumps({"error": f"no such control path {method} {path}"}).encode()]
        data = json.dumps(result).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(data)))])
        return [data]


def _reason(status: int) -> str:
    return {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            409: "Conflict", 412: "Precondition Failed", 500: "Internal Server Error",
            503: "Service Unavailable"}.get(status, "Status")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = RulesApp(DomainDispatcherApplication(create_backend_app))
    app.world.start()
    print(f"[aws-rules] serving moto with AWS rules on {args.host}:{args.port} "
          f"({len(rulebook.RULES)} hand rules)", file=sys.stderr, flush=True)
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()

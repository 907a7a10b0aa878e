#!/usr/bin/env python3
"""Latency-injecting, call-counting HTTP proxy in front of moto (Python stdlib only).

    latency_proxy.py --listen 127.0.0.1:PORT --control 127.0.0.1:CPORT \
                     --upstream 127.0.0.1:MOTO_PORT [--latency-ms N]

Every request that reaches --listen is read whole, held for the configured latency (an
asyncio sleep, so concurrent calls wait concurrently, as they would on a real network), then
forwarded to moto on a fresh upstream connection, and moto's answer is passed back. Client
connections are kept alive (HTTP/1.1), as an SDK's connection pool would use them with AWS.

Each call is recorded: AWS service (from the SigV4 credential scope), operation (the
`X-Amz-Target` suffix for JSON protocols, the `Action=` form field for query protocols), HTTP
status, and when it arrived and when its answer was sent (seconds, monotonic clock).

The control port answers plain HTTP:
    GET  /calls            {"latency_ms": N, "calls": [...]}
    POST /reset            forget the calls recorded so far
    POST /latency?ms=N     set the latency for calls from now on
    GET  /health           "ok"
"""

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.parse

LATENCY_MS = 0.0
CALLS = []
SEQ = 0
CONN_SEQ = 0
UPSTREAM = ("127.0.0.1", 5000)

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "expect",
}


class Closed(Exception):
    pass


async def read_head(reader):
    """The start line and headers of one HTTP message, or Closed at a clean EOF."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            raise Closed()
        raise
    lines = raw.decode("iso-8859-1").split("\r\n")
    start = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return start, headers


def header(headers, name, default=None):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return default


async def read_chunked(reader):
    body = bytearray()
    while True:
        size_line = (await reader.readuntil(b"\r\n")).decode("ascii").strip()
        size = int(size_line.split(";")[0], 16)
        if size == 0:
            # trailers, up to the empty line
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def read_body(reader, headers):
    if "chunked" in (header(headers, "transfer-encoding") or "").lower():
        return await read_chunked(reader)
    length = int(header(headers, "content-length") or 0)
    return await reader.readexactly(length) if length else b""


CRED_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")


def classify(target, headers, body):
    """(service, operation) of one AWS call."""
    service = "?"
    m = CRED_SCOPE.search(header(headers, "authorization") or "")
    if m:
        service = m.group(1)
    amz_target = header(headers, "x-amz-target")
    if amz_target:
        return service, amz_target.rsplit(".", 1)[-1]
    action = None
    ctype = (header(headers, "content-type") or "").lower()
    if body and ("x-www-form-urlencoded" in ctype or body[:7] == b"Action="):
        try:
            action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action", [None])[0]
        except Exception:
            action = None
    if not action and "?" in target:
        action = urllib.parse.parse_qs(target.split("?", 1)[1]).get("Action", [None])[0]
    if not action:
        # rpc-v2-cbor and REST protocols: the operation is the last path segment
        action = target.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or target
    return service, action


async def forward(method, target, headers, body):
    """Sends one request to moto on a fresh connection; returns (status line, headers, body)."""
    reader, writer = await asyncio.open_connection(*UPSTREAM)
    try:
        out = [f"{method} {target} HTTP/1.1"]
        for k, v in headers:
            if k.lower() not in HOP_BY_HOP:
                out.append(f"{k}: {v}")
        out.append(f"Content-Length: {len(body)}")
        out.append("Connection: close")
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode("iso-8859-1") + body)
        await writer.drain()
        status, rheaders = await read_head(reader)
        while status.split(" ", 2)[1].startswith("1"):  # 100 Continue and the like
            status, rheaders = await read_head(reader)
        te = (header(rheaders, "transfer-encoding") or "").lower()
        if "chunked" in te:
            rbody = await read_chunked(reader)
        elif header(rheaders, "content-length") is not None:
            rbody = await reader.readexactly(int(header(rheaders, "content-length")))
        elif method == "HEAD":
            rbody = b""
        else:
            rbody = await reader.read()
        return status, rheaders, rbody
    finally:
        writer.close()


async def handle_client(reader, writer):
    global SEQ, CONN_SEQ
    CONN_SEQ += 1
    conn = CONN_SEQ
    try:
        while True:
            try:
                start, headers = await read_head(reader)
            except (Closed, asyncio.IncompleteReadError, ConnectionError):
                return
            arrived = time.monotonic()
            method, target, version = start.split(" ", 2)
            if (header(headers, "expect") or "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await writer.drain()
            body = await read_body(reader, headers)
            service, op = classify(target, headers, body)
            SEQ += 1
            record = {
                "seq": SEQ,
                "conn": conn,
                "service": service,
                "op": op,
                "start": arrived,
                "end": None,
                "status": None,
                "latency_ms": LATENCY_MS,
            }
            CALLS.append(record)
            if LATENCY_MS > 0:
                await asyncio.sleep(LATENCY_MS / 1000.0)
            try:
                status, rheaders, rbody = await forward(method, target, headers, body)
            except Exception as e:  # moto gone or broken answer: a 502 the client can see
                msg = f"latency_proxy: upstream error: {e!r}".encode()
                status, rheaders, rbody = "HTTP/1.1 502 Bad Gateway", [("Content-Type", "text/plain")], msg
            keep = (header(headers, "connection") or "").lower() != "close" and version == "HTTP/1.1"
            out = [status]
            for k, v in rheaders:
                if k.lower() not in HOP_BY_HOP:
                    out.append(f"{k}: {v}")
            out.append(f"Content-Length: {len(rbody)}")
            out.append("Connection: keep-alive" if keep else "Connection: close")
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode("iso-8859-1") + rbody)
            await writer.drain()
            record["end"] = time.monotonic()
            record["status"] = int(status.split(" ", 2)[1])
            if not keep:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def handle_control(reader, writer):
    global LATENCY_MS
    try:
        start, headers = await read_head(reader)
        await read_body(reader, headers)
        method, target, _ = start.split(" ", 2)
        path, _, query = target.partition("?")
        params = urllib.parse.parse_qs(query)
        code, payload = 200, {}
        if path == "/calls":
            payload = {"latency_ms": LATENCY_MS, "now": time.monotonic(), "calls": CALLS}
        elif path == "/reset" and method == "POST":
            CALLS.clear()
            payload = {"ok": True}
        elif path == "/latency" and method == "POST":
            LATENCY_MS = float(params["ms"][0])
            payload = {"latency_ms": LATENCY_MS}
        elif path == "/health":
            payload = {"ok": True, "latency_ms": LATENCY_MS}
        else:
            code, payload = 404, {"error": f"no {method} {path}"}
        body = json.dumps(payload).encode()
        writer.write(
            f"HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
    except Exception as e:
        print(f"latency_proxy: control: {e!r}", file=sys.stderr)
    finally:
        writer.close()


def hostport(s):
    host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port)


async def main():
    global LATENCY_MS, UPSTREAM
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", required=True, help="HOST:PORT for AWS calls")
    p.add_argument("--control", required=True, help="HOST:PORT for /calls, /reset, /latency")
    p.add_argument("--upstream", required=True, help="moto's HOST:PORT")
    p.add_argument("--latency-ms", type=float, default=0.0)
    a = p.parse_args()
    LATENCY_MS = a.latency_ms
    UPSTREAM = hostport(a.upstream.replace("http://", ""))
    proxy = await asyncio.start_server(handle_client, *hostport(a.listen), backlog=256)
    control = await asyncio.start_server(handle_control, *hostport(a.control))
    print(f"latency_proxy: {a.listen} -> {a.upstream}, control {a.control}", file=sys.stderr, flush=True)
    async with proxy, control:
        await asyncio.gather(proxy.serve_forever(), control.serve_forever())


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass

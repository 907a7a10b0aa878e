#!/usr/bin/env python3
"""Stand-in for ONE node of the l5d-ecs demo cluster, on loopback.

It plays, with the Python 3 standard library only:

- linkerd's HTTP proxy (router `outgoing`, default port 4140): routes by the Host of a
  proxy-style request (`GET http://hello/ HTTP/1.1`, Host: hello) through the dtab
  `/svc => /#/io.l5d.consul/dc1`, honours the per-request overrides in `l5d-dtab` and
  `l5d-ctx-dtab` (`/svc/world => /svc/world-v2`), passes them on to the app as `l5d-ctx-dtab`,
  and answers 502 "No hosts are available for /svc/x" for a name consul does not know;
- linkerd's admin server (default 9990): `/admin/ping` -> `pong`, `/stats` -> request counts;
- the consul agent's HTTP API (default 8500): `/v1/status/leader`, `/v1/catalog/services`,
  `/v1/catalog/service/<name>`, `/ui/`;
- the helloworld apps, each on its own port: `world` answers `World (<ip>)!!`, `world-v2`
  answers `World-V2 (<ip>)!!`, `hello` calls `http://world/` through the proxy, copying every
  incoming `l5d-ctx-*` header, and answers `Hello (<ip>) ` + world's reply;
- linkerd-viz (default 3000): `/` -> a small HTML page.

Fault modes: --ignore-dtab (linkerd ignores per-request dtabs), --world-down (nothing listens
on world's port: linkerd answers 502 and hello 500), --garble (hello's reply is garbled),
--no-leader (consul reports no leader), --viz-down (nothing answers on the viz port).

Ports: 0 picks a free port. --ports-file PATH receives the chosen ports as JSON once every
server listens (written atomically). Exits cleanly on SIGTERM / SIGINT, and with
--exit-on-stdin-eof when its stdin closes (so a test that dies takes the stand-in with it).

    python3 tests/standins/node.py --proxy-port 0 --admin-port 0 --consul-port 0 \
        --viz-port 0 --ports-file /tmp/ports.json
"""

import argparse
import http.client
import http.server
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import uuid
from urllib.parse import urlsplit

BASE_DTAB = "/svc => /#/io.l5d.consul/dc1"
CONSUL_PREFIX = "/#/io.l5d.consul/dc1/"
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
}


# ------------------------------------------------------------------------------------------
# Counters
# ------------------------------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.proxy_requests = 0
        self.proxy_by_service = {}
        self.proxy_status = {}
        self.hello_requests = 0
        self.world_requests = 0
        self.world_v2_requests = 0

    def proxied(self, service, status):
        with self.lock:
            self.proxy_requests += 1
            self.proxy_by_service[service] = self.proxy_by_service.get(service, 0) + 1
            key = str(status)
            self.proxy_status[key] = self.proxy_status.get(key, 0) + 1

    def app(self, name):
        with self.lock:
            attr = name.replace("-", "_") + "_requests"
            setattr(self, attr, getattr(self, attr) + 1)

    def snapshot(self):
        with self.lock:
            return {
                "proxy_requests": self.proxy_requests,
                "proxy_by_service": dict(self.proxy_by_service),
                "proxy_status": dict(self.proxy_status),
                "hello_requests": self.hello_requests,
                "world_requests": self.world_requests,
                "world_v2_requests": self.world_v2_requests,
            }


# ------------------------------------------------------------------------------------------
# Delegation tables (a small subset of finagle's dtab semantics)
# ------------------------------------------------------------------------------------------


def parse_dtab(text):
    """`/svc/a => /svc/b; /x => /y` -> [("/svc/a", "/svc/b"), ("/x", "/y")]."""
    rules = []
    for entry in (text or "").split(";"):
        entry = entry.strip()
        if not entry:
            continue
        if "=>" not in entry:
            raise ValueError(f"bad dtab entry {entry!r}")
        prefix, dest = (part.strip() for part in entry.split("=>", 1))
        if not prefix.startswith("/") or not dest.startswith("/"):
            raise ValueError(f"bad dtab entry {entry!r}")
        rules.append((prefix.rstrip("/") or "/", dest.rstrip("/") or "/"))
    return rules


def show_dtab(rules):
    return ";".join(f"{p}=>{d}" for p, d in rules)


def path_matches(prefix, path):
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix + "/")


def resolve(path, rules, catalog, depth=0):
    """Resolves a name through the dtab; later rules win, falling back to earlier ones when a
    later one leads nowhere (as finagle does). Returns (service, port) or None."""
    if depth > 16:
        return None
    if path.startswith(CONSUL_PREFIX):
        service = path[len(CONSUL_PREFIX):].split("/")[0]
        port = catalog.get(service)
        return (service, port) if port else None
    for prefix, dest in reversed(rules):
        if path_matches(prefix, path):
            rest = path[len(prefix):] if prefix != "/" else path
            found = resolve(dest.rstrip("/") + rest, rules, catalog, depth + 1)
            if found:
                return found
    return None


# ------------------------------------------------------------------------------------------
# HTTP plumbing
# ------------------------------------------------------------------------------------------


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host, port, handler, node):
        self.node = node
        super().__init__((host, port), handler)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "l5d-ecs-standin"

    def log_message(self, fmt, *args):
        if self.server.node.verbose:
            sys.stderr.write(
                f"[node {type(self).__name__}] {self.address_string()} {fmt % args}\n"
            )

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def reply(self, status, body, content_type="text/plain; charset=utf-8", headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def reply_json(self, status, value):
        self.reply(status, json.dumps(value), "application/json")

    def do_GET(self):
        self.handle_any()

    def do_HEAD(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()


class ProxyHandler(Handler):
    """linkerd's `outgoing` HTTP router."""

    def handle_any(self):
        node = self.server.node
        body = self.read_body()
        target = urlsplit(self.path)
        host = target.hostname if target.netloc else None
        if not host:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        host = (host or "").strip().lower()
        path = target.path or "/"
        if target.query:
            path += "?" + target.query
        name = f"/svc/{host}"

        local = []
        if not node.ignore_dtab:
            try:
                local = parse_dtab(self.headers.get("l5d-ctx-dtab")) + parse_dtab(
                    self.headers.get("l5d-dtab")
                )
            except ValueError as e:
                node.stats.proxied(host, 400)
                self.reply(400, f"Invalid dtab: {e}\n", headers=[("l5d-err", str(e))])
                return
        rules = parse_dtab(BASE_DTAB) + local
        found = resolve(name, rules, node.catalog()) if host else None
        if not found:
            message = (
                f"No hosts are available for {name}, Dtab.base=[{show_dtab(parse_dtab(BASE_DTAB))}], "
                f"Dtab.local=[{show_dtab(local)}]. Remote Info: Not Available"
            )
            node.stats.proxied(host, 502)
            self.reply(502, message + "\n", headers=[("l5d-err", message)])
            return
        service, port = found

        headers = {}
        for key, value in self.headers.items():
            lower = key.lower()
            if lower in HOP_BY_HOP or lower in ("l5d-dtab", "l5d-ctx-dtab"):
                continue
            headers[key] = value
        headers["Host"] = host
        if local:
            headers["l5d-ctx-dtab"] = show_dtab(local)
        headers["l5d-dst-service"] = name
        headers["l5d-dst-client"] = CONSUL_PREFIX + service
        headers.setdefault("l5d-reqid", uuid.uuid4().hex[:16])
        headers.setdefault("l5d-ctx-trace", uuid.uuid4().hex)
        if body:
            headers["Content-Length"] = str(len(body))

        try:
            conn = http.client.HTTPConnection(node.host, port, timeout=10)
            conn.request(self.command, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
            out_headers = [
                (k, v)
                for k, v in resp.getheaders()
                if k.lower() not in HOP_BY_HOP
                and k.lower() not in ("content-type", "server", "date")
            ]
            content_type = resp.getheader("Content-Type", "text/plain")
            conn.close()
        except OSError as e:
            message = (
                f"Unable to establish connection to {node.host}:{port} for {name} "
                f"({CONSUL_PREFIX}{service}): {e}"
            )
            node.stats.proxied(host, 502)
            self.reply(502, message + "\n", headers=[("l5d-err", message)])
            return
        node.stats.proxied(host, status)
        self.reply(status, data, content_type, headers=out_headers)


class AppHandler(Handler):
    """The helloworld apps; which one is set on the server."""

    def handle_any(self):
        node = self.server.node
        app = self.server.app
        self.read_body()
        node.stats.app(app)
        if app == "world":
            self.reply(200, f"World ({node.world_ip})!!")
        elif app == "world-v2":
            self.reply(200, f"World-V2 ({node.world_v2_ip})!!")
        else:
            self.hello()

    def hello(self):
        node = self.server.node
        headers = {"Host": "world"}
        for key, value in self.headers.items():
            if key.lower().startswith("l5d-ctx-"):
                headers[key] = value
        try:
            conn = http.client.HTTPConnection(node.host, node.ports["proxy"], timeout=10)
            conn.request("GET", "http://world/", headers=headers)
            resp = conn.getresponse()
            world = resp.read().decode("utf-8", "replace")
            conn.close()
        except OSError as e:
            self.reply(500, f"Error calling world: {e}\n")
            return
        if resp.status != 200:
            self.reply(500, f"world answered {resp.status}: {world.strip()}\n")
            return
        text = f"Hello ({node.hello_ip}) {world}"
        if node.garble:
            text = "Hxllo (" + text[len("Hello (") :].replace("!!", "?")
        self.reply(200, text)


class AdminHandler(Handler):
    """linkerd's admin server."""

    def handle_any(self):
        node = self.server.node
        self.read_body()
        path = urlsplit(self.path).path
        if path == "/admin/ping":
            self.reply(200, "pong")
        elif path == "/stats":
            self.reply_json(200, node.stats.snapshot())
        elif path in ("/", "/admin"):
            self.reply(
                200,
                "<html><head><title>linkerd admin</title></head>"
                "<body><h1>linkerd (stand-in)</h1><p>router outgoing: "
                f"{BASE_DTAB}</p></body></html>",
                "text/html; charset=utf-8",
            )
        elif path == "/admin/metrics.json":
            stats = node.stats.snapshot()
            self.reply_json(
                200, {"rt/outgoing/server/0.0.0.0/4140/requests": stats["proxy_requests"]}
            )
        else:
            self.reply(404, "not found\n")


class ConsulHandler(Handler):
    """The consul agent's HTTP API."""

    def handle_any(self):
        node = self.server.node
        self.read_body()
        path = urlsplit(self.path).path
        if path == "/v1/status/leader":
            self.reply_json(200, "" if node.no_leader else "172.31.0.10:8300")
        elif path == "/v1/status/peers":
            self.reply_json(200, [] if node.no_leader else ["172.31.0.10:8300"])
        elif path == "/v1/catalog/services":
            services = {"consul": []}
            services.update({name: [] for name in ("hello", "world", "world-v2")})
            self.reply_json(200, services)
        elif path.startswith("/v1/catalog/service/"):
            name = path[len("/v1/catalog/service/"):]
            port = node.ports.get(name.replace("-", "_"))
            ip = {
                "hello": node.hello_ip,
                "world": node.world_ip,
                "world-v2": node.world_v2_ip,
            }.get(name)
            if ip is None:
                self.reply_json(200, [])
            else:
                self.reply_json(
                    200,
                    [
                        {
                            "Node": "i-0standin",
                            "Address": ip,
                            "Datacenter": "dc1",
                            "ServiceName": name,
                            "ServiceAddress": ip,
                            "ServicePort": port,
                        }
                    ],
                )
        elif path in ("/ui", "/ui/"):
            self.reply(
                200,
                "<html><head><title>Consul</title></head><body><h1>Consul (stand-in)</h1>"
                "</body></html>",
                "text/html; charset=utf-8",
            )
        else:
            self.reply(404, "not found\n")


class VizHandler(Handler):
    """linkerd-viz's grafana dashboard."""

    def handle_any(self):
        self.read_body()
        self.reply(
            200,
            "<html><head><title>linkerd-viz</title></head>"
            "<body><h1>linkerd-viz (stand-in)</h1></body></html>",
            "text/html; charset=utf-8",
        )


# ------------------------------------------------------------------------------------------
# The node
# ------------------------------------------------------------------------------------------


class Node:
    def __init__(self, args):
        self.host = args.host
        self.verbose = args.verbose
        self.ignore_dtab = args.ignore_dtab
        self.world_down = args.world_down
        self.garble = args.garble
        self.no_leader = args.no_leader
        self.hello_ip = args.hello_ip
        self.world_ip = args.world_ip
        self.world_v2_ip = args.world_v2_ip
        self.stats = Stats()
        self.servers = []
        self.ports = {}

    def catalog(self):
        """service name -> port, as consul's catalog would resolve it."""
        return {
            "hello": self.ports["hello"],
            "world": self.ports["world"],
            "world-v2": self.ports["world_v2"],
        }

    def listen(self, key, port, handler, app=None):
        server = Server(self.host, port, handler, self)
        server.app = app
        self.ports[key] = server.server_address[1]
        self.servers.append(server)

    def start(self, args):
        self.listen("proxy", args.proxy_port, ProxyHandler)
        self.listen("admin", args.admin_port, AdminHandler)
        self.listen("consul", args.consul_port, ConsulHandler)
        self.listen("hello", 0, AppHandler, "hello")
        if self.world_down:
            # Registered in consul, but nothing listens there: connection refused.
            self.ports["world"] = closed_port(self.host)
        else:
            self.listen("world", 0, AppHandler, "world")
        self.listen("world_v2", 0, AppHandler, "world-v2")
        if args.viz_down:
            self.ports["viz"] = closed_port(self.host) if args.viz_port == 0 else args.viz_port
        else:
            self.listen("viz", args.viz_port, VizHandler)
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()


def closed_port(host):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def write_ports(path, ports):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(dict(ports, pid=os.getpid()), f)
        f.write("\n")
    os.replace(tmp, path)


def ip_arg(text):
    try:
        ipaddress.ip_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))
    return text


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="address every server binds to")
    p.add_argument("--proxy-port", type=int, default=4140)
    p.add_argument("--admin-port", type=int, default=9990)
    p.add_argument("--consul-port", type=int, default=8500)
    p.add_argument("--viz-port", type=int, default=3000)
    p.add_argument("--ports-file", help="write the chosen ports here as JSON once listening")
    p.add_argument("--hello-ip", type=ip_arg, default="172.31.20.160")
    p.add_argument("--world-ip", type=ip_arg, default="172.31.19.35")
    p.add_argument("--world-v2-ip", type=ip_arg, default="172.31.19.36")
    p.add_argument("--ignore-dtab", action="store_true", help="linkerd ignores l5d-dtab")
    p.add_argument("--world-down", action="store_true", help="nothing listens on world's port")
    p.add_argument("--garble", action="store_true", help="hello answers a garbled reply")
    p.add_argument("--no-leader", action="store_true", help="consul has no leader")
    p.add_argument("--viz-down", action="store_true", help="nothing answers on the viz port")
    p.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="exit when stdin closes (a test holds the other end of a pipe)",
    )
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    node = Node(args)
    try:
        node.start(args)
    except OSError as e:
        print(f"node.py: cannot listen: {e}", file=sys.stderr)
        return 1
    done = threading.Event()

    def on_signal(signum, _frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.exit_on_stdin_eof:

        def watch_stdin():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            except OSError:
                pass
            done.set()

        threading.Thread(target=watch_stdin, daemon=True).start()

    ports = dict(node.ports)
    if args.ports_file:
        write_ports(args.ports_file, ports)
    print(
        "node stand-in listening: "
        + ", ".join(f"{k} {v}" for k, v in sorted(ports.items())),
        file=sys.stderr,
        flush=True,
    )
    while not done.wait(0.5):
        pass
    node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

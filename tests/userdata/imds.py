"""A stand-in for the EC2 instance metadata service that insists on IMDSv2, for tests/userdata.rs.

    python imds.py --ip 10.1.2.3 --instance-id i-0abc [--no-token-endpoint] --log FILE

Binds 127.0.0.1 on a free port and prints that port on stdout once it accepts connections.
PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds (1..21600) answers a token;
GET /latest/meta-data/{local-ipv4,instance-id} answers only with a token it issued, 401
otherwise, as IMDS does when HttpTokens=required. --no-token-endpoint answers the PUT with 404,
so no request can ever carry a valid token. Every request is logged to FILE as one JSON line.
"""

import argparse
import http.server
import json
import secrets
import sys
import threading


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ip", required=True)
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--no-token-endpoint", action="store_true")
    parser.add_argument("--log", required=True)
    args = parser.parse_args()

    metadata = {"local-ipv4": args.ip, "instance-id": args.instance_id}
    tokens = set()
    lock = threading.Lock()
    log = open(args.log, "a", buffering=1, encoding="utf-8")

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, status, body=""):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            with lock:
                log.write(json.dumps({
                    "method": self.command,
                    "path": self.path,
                    "status": status,
                }) + "\n")

        def do_PUT(self):
            if self.path != "/latest/api/token" or args.no_token_endpoint:
                return self.answer(404)
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return self.answer(400)
            token = secrets.token_urlsafe(32)
            with lock:
                tokens.add(token)
            self.answer(200, token)

        def do_GET(self):
            token = self.headers.get("X-aws-ec2-metadata-token")
            with lock:
                valid = token in tokens
            if not valid:
                return self.answer(401)
            prefix = "/latest/meta-data/"
            key = self.path[len(prefix):] if self.path.startswith(prefix) else None
            if key not in metadata:
                return self.answer(404)
            self.answer(200, metadata[key])

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

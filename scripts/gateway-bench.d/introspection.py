#!/usr/bin/env python3
"""scripts/gateway-bench, introspect mode: a minimal RFC 7662 introspection
server (Python's standard library only) for the opaque tokens the benchmark
sends through Warden.

    python3 introspection.py --client-id ID --client-secret SECRET \
        --token TOKEN [--token-without-scope TOKEN] [--scope read] [--user NAME]

Listens on 127.0.0.1, a free port; once ready it prints
``listening on 127.0.0.1:PORT`` on stdout. Answers only the request Warden's
`introspection` block in the benchmark's policy makes (RFC 7662 section 2.1):

    POST /introspect, no query string,
    Authorization: Basic base64(ID:SECRET),
    Content-Type: application/x-www-form-urlencoded,
    a form of exactly one field, token=<the token>.

- ``--token``: ``{"active": true, "scope": SCOPE, "sub": USER, "username":
  USER, "client_id": "gateway-bench", "token_type": "Bearer", "iat": now,
  "exp": now + 1 day}``.
- ``--token-without-scope``: the same, with scope ``profile`` (not SCOPE): the
  route's required scope is missing.
- any other token: ``{"active": false}``.
- a request of any other shape: 400 ``{"error": "invalid_request",
  "error_description": <what differed>}``, counted as bad.
- wrong client credentials: 401 ``invalid_client``, counted as bad.

``GET /stats``: ``{"introspections": N, "bad": B, "last": {...}}`` (N counts
every request to /introspect; ``last`` is the latest one's method, query,
content type, form field names and Authorization scheme). Anything else: 404.
"""

import argparse
import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--token-without-scope")
    ap.add_argument("--scope", default="read")
    ap.add_argument("--user", default="bench-user")
    args = ap.parse_args()
    expected_auth = "Basic " + base64.b64encode(
        f"{args.client_id}:{args.client_secret}".encode()
    ).decode()
    lock = threading.Lock()
    stats = {"introspections": 0, "bad": 0, "last": None}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):  # no request log: stderr stays quiet
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def read_body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def do_GET(self):
            if self.path == "/stats":
                with lock:
                    self.reply(200, stats)
            elif self.path.split("?")[0] == "/introspect":
                self.introspect(b"")
            else:
                self.reply(404, {"error": "not_found"})

        def do_POST(self):
            body = self.read_body()
            if self.path.split("?")[0] == "/introspect":
                self.introspect(body)
            else:
                self.reply(404, {"error": "not_found"})

        def introspect(self, body):
            path, _, query = self.path.partition("?")
            ctype = self.headers.get("Content-Type") or ""
            auth = self.headers.get("Authorization") or ""
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            with lock:
                stats["introspections"] += 1
                stats["last"] = {
                    "method": self.command,
                    "query": sorted(parse_qs(query, keep_blank_values=True)),
                    "content_type": ctype,
                    "form": sorted(form),
                    "authorization_scheme": auth.split(" ")[0] if auth else None,
                }
            why = None
            if self.command != "POST":
                why = f"method {self.command}, expected POST"
            elif query:
                why = "a query string, expected none (the token goes in the form)"
            elif ctype.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
                why = f"content type {ctype!r}, expected application/x-www-form-urlencoded"
            elif sorted(form) != ["token"] or len(form["token"]) != 1:
                why = f"form fields {sorted(form)}, expected exactly one: token"
            if why is not None:
                with lock:
                    stats["bad"] += 1
                self.reply(400, {"error": "invalid_request", "error_description": why})
                return
            if auth != expected_auth:
                with lock:
                    stats["bad"] += 1
                self.reply(401, {"error": "invalid_client"})
                return
            token = form["token"][0]
            now = int(time.time())
            active = {
                "active": True,
                "sub": args.user,
                "username": args.user,
                "client_id": "gateway-bench",
                "token_type": "Bearer",
                "iat": now,
                "exp": now + 86400,
            }
            if token == args.token:
                self.reply(200, {**active, "scope": args.scope})
            elif args.token_without_scope and token == args.token_without_scope:
                self.reply(200, {**active, "scope": "profile"})
            else:
                self.reply(200, {"active": False})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""RFC 7662 token-introspection authorization server for Warden's end-to-end tests.

What it is for
    Warden's Gravitee-compatible introspection (SPEC section 6, docs/gravitee-oauth2.md) calls
    an authorization server to judge opaque tokens.  This script is that server in the
    tests: a fixed token table, one confidential client, and switches for the faults
    Warden must survive (slow, garbage, non-200).  The introspection logic is authlib's
    own ``IntrospectionEndpoint`` (authlib.oauth2.rfc7662), registered on a generic
    ``authlib.oauth2.rfc6749.AuthorizationServer``.  The small "framework integration"
    authlib asks for (``create_oauth2_request`` / ``handle_response``) is written here
    over Python's ``http.server``, so nothing but authlib is needed.

How to run
    python3 introspection_as.py --port N [--tokens FILE] [--delay-ms D] [--garbage]
                                [--status S] [--token-header NAME] [--token-field NAME]
                                [--no-client-auth] [--verbose]

    Listens on 127.0.0.1:N.  ``--port 0`` picks a free port.  Once it is ready it prints
    ``listening on 127.0.0.1:N`` (the real port) on stdout and flushes.  Stop it with
    SIGTERM or SIGINT.  Request logging goes to stderr only with ``--verbose``, so a
    parent that never reads stderr cannot block it.

Endpoints
    POST /introspect   The token goes in the form body, ``token=...`` (RFC 7662 section 2.1).  A
                       ``?token=`` query parameter on a POST is accepted too: Gravitee's generic
                       resource can send one with any method.
    GET  /introspect   The token goes in the query string, ``?token=...``.  This is Gravitee's
                       default (introspectionEndpointMethod GET, tokenIsSuppliedByQueryParam).
    GET  /stats        ``{"introspections": n, "last": {...}}``.  ``n`` counts every request
                       that reached /introspect, whatever its outcome (auth failure and fault
                       modes included).  ``last`` describes the latest such request: method,
                       query and form parameter names, content type, and the scheme of its
                       Authorization header.
    anything else      404 with a JSON body.

Clients
    Client id ``warden``, secret ``warden-secret``.  It authenticates by HTTP Basic
    (``client_secret_basic``) or by ``client_id``/``client_secret`` in the POST form
    (``client_secret_post``).  Anything else gets authlib's answer: 401
    ``{"error": "invalid_client", ...}`` with ``WWW-Authenticate: Basic error=...``.
    ``--no-client-auth`` turns client authentication off.  This is not authlib's
    default; it is for Gravitee's ``useClientAuthorizationHeader: false``.

Tokens (``--tokens FILE``; without it the table is empty and every token is inactive)
    A JSON list of objects, e.g.
      [{"token": "tok-read", "active": true, "scope": "read write", "sub": "alice",
        "username": "alice", "client_id": "app1", "exp": 4102444800, "iss": "test"}]
    ``token`` is required.  ``active`` defaults to true.  ``exp`` is absolute unix seconds.
    Every other member, ``scope``/``sub``/``username``/``client_id``/``exp`` and any extra
    claim (including ``scp``, arrays and so on), is returned as is.
    Answers follow authlib's ``create_introspection_payload``:
    - an unknown token, ``"active": false``, or ``exp`` <= now gives ``{"active": false}``;
    - otherwise the answer is ``{"active": true, <all members but token/active>}``.
    A request without a token gives 400 ``invalid_request``, and an unknown
    ``token_type_hint`` gives 400 ``unsupported_token_type``, as authlib does.

Fault modes (they act before authentication and the token lookup, on /introspect only)
    --delay-ms D   Sleep D ms before answering.  The server is threaded, so other
                   connections are not held up.
    --garbage      Answer 200 with a body that is not JSON, ``<html>this is not JSON</html>``,
                   but still labelled ``Content-Type: application/json``, so a client must
                   fail while parsing rather than on the content type.  Combined with
                   ``--status S``, the garbage body is sent with status S.
    --status S     Answer status S with the JSON body
                   ``{"error": "server_error", "error_description": "forced status S"}``.
                   The body has no ``active`` member: with ``--status 200`` it shows what a
                   client does with a 200 that lacks one (Gravitee treats that as active).

Token location (both are feasible with authlib: the endpoint's ``check_params`` and
``authenticate_token`` are overridden to read the token where the options say)
    --token-field NAME   Read the token from form field NAME, or else query parameter NAME,
                         instead of ``token``.  This is Gravitee's tokenFormUrlEncodedName /
                         tokenQueryParamName.
    --token-header NAME  Read the token only from request header NAME, as a raw value with no
                         "Bearer " stripped.  This is Gravitee's tokenIsSuppliedByHttpHeader /
                         tokenHeaderName.  If NAME is Authorization, the header cannot also
                         carry Basic client credentials, so combine it with
                         ``--no-client-auth`` (what Gravitee's own test does) or
                         client_secret_post.

Limits
    The token table is fixed for the server's lifetime, and ``nbf``/``iat`` are not checked.
    Query strings and form bodies are decoded with urllib.parse, so ``+`` means a space:
    Gravitee does not URL-encode the token, so tokens in the table should stick to
    URL-safe characters.  Chunked request bodies are not supported (Content-Length only).

Tried with
    Python 3.11.7 and authlib 1.9.10, by hand with curl: Basic and post authentication,
    wrong secret, unknown client, active/inactive/unknown/expired tokens, GET with
    ?token=, delay with a parallel request, garbage, forced status, stats, and the
    header/field options.

    pip packages (pinned; ``pip install Authlib==1.9.10`` brings the rest):
        Authlib==1.9.10
        cryptography==50.0.2
        cffi==2.1.1
        pycparser==3.12
        joserfc==1.8.0
"""

from __future__ import annotations

import argparse
import hmac
import json
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidRequestError,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
    UnsupportedTokenTypeError,
)
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

CLIENT_ID = "warden"
CLIENT_SECRET = "warden-secret"
GARBAGE_BODY = b"<html>this is not JSON</html>"
HOST = "127.0.0.1"


# --- models ------------------------------------------------------------------------


class Client(ClientMixin):
    """A confidential client that may use HTTP Basic or POST-form authentication."""

    AUTH_METHODS = ("client_secret_basic", "client_secret_post")

    def __init__(self, client_id: str, client_secret: str):
        self.client_id = client_id
        self.client_secret = client_secret

    def get_client_id(self):
        return self.client_id

    def check_client_secret(self, client_secret):
        return hmac.compare_digest(self.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method, endpoint):
        return method in self.AUTH_METHODS


class Token(TokenMixin):
    """One entry of the token table."""

    def __init__(self, entry: dict):
        self.entry = entry

    def check_client(self, client):
        return True

    def get_scope(self):
        return self.entry.get("scope")

    def get_expires_in(self):
        exp = self.entry.get("exp")
        return None if exp is None else int(exp - time.time())

    def is_expired(self):
        exp = self.entry.get("exp")
        return exp is not None and time.time() >= exp

    def is_revoked(self):
        return not self.entry.get("active", True)

    def claims(self) -> dict:
        return {k: v for k, v in self.entry.items() if k not in ("token", "active")}


# --- authlib framework integration over http.server ----------------------------------


class _Payload(OAuth2Payload):
    def __init__(self, lists: dict[str, list[str]]):
        self._lists = lists
        self._data = {k: v[0] for k, v in lists.items() if v}

    @property
    def data(self):
        return self._data

    @property
    def datalist(self):
        return self._lists


class HttpServerRequest(OAuth2Request):
    """An OAuth2Request built from what BaseHTTPRequestHandler parsed."""

    def __init__(self, method, uri, headers, args: dict[str, list[str]], form: dict[str, list[str]]):
        super().__init__(method, uri, headers=headers)
        self._args = {k: v[0] for k, v in args.items() if v}
        self._form = {k: v[0] for k, v in form.items() if v}
        merged = {k: list(v) for k, v in args.items()}
        for k, v in form.items():
            merged.setdefault(k, []).extend(v)
        self.payload = _Payload(merged)

    @property
    def args(self):
        return self._args

    @property
    def form(self):
        return self._form


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    token_field = "token"
    token_header: str | None = None
    client_auth = True

    def __init__(self, server, tokens: dict[str, Token]):
        super().__init__(server)
        self.tokens = tokens

    def token_string(self, request):
        if self.token_header:
            return request.headers.get(self.token_header)
        value = request.form.get(self.token_field)
        if value is None:
            value = request.args.get(self.token_field)
        return value

    def authenticate_endpoint_client(self, request):
        if not self.client_auth:
            request.client = None
            return None
        return super().authenticate_endpoint_client(request)

    def check_params(self, request, client):
        if self.token_string(request) is None:
            where = f"header {self.token_header}" if self.token_header else f"parameter {self.token_field}"
            raise InvalidRequestError(description=f"Missing token ({where}).")
        hint = request.form.get("token_type_hint") or request.args.get("token_type_hint")
        if hint and hint not in self.SUPPORTED_TOKEN_TYPES:
            raise UnsupportedTokenTypeError()

    def authenticate_token(self, request, client):
        self.check_params(request, client)
        hint = request.form.get("token_type_hint") or request.args.get("token_type_hint")
        token = self.query_token(self.token_string(request), hint)
        if token and self.check_permission(token, client, request):
            return token
        return None

    def query_token(self, token_string, token_type_hint):
        return self.tokens.get(token_string)

    def check_permission(self, token, client, request):
        return True

    def introspect_token(self, token):
        return {"active": True, **token.claims()}


class Server(AuthorizationServer):
    def __init__(self, clients: dict[str, Client]):
        super().__init__()
        self.clients = clients

    def query_client(self, client_id):
        return self.clients.get(client_id)

    def save_token(self, token, request):
        raise NotImplementedError("this server has no token endpoint")

    def create_oauth2_request(self, request):
        return request  # already an HttpServerRequest

    def create_json_request(self, request):
        raise NotImplementedError("no JSON endpoints")

    def handle_response(self, status, body, headers):
        return status, body, headers

    def send_signal(self, name, *args, **kwargs):
        pass


# --- HTTP ------------------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.introspections = 0
        self.last: dict | None = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "warden-test-introspection-as"

    # set on the class by main()
    oauth: Server
    options: argparse.Namespace
    stats: Stats

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        if self.options.verbose:
            super().log_message(format, *args)

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def route(self, method):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if url.path == "/introspect":
            self.introspect(method, url, body)
        elif url.path == "/stats" and method == "GET":
            with self.stats.lock:
                doc = {"introspections": self.stats.introspections, "last": self.stats.last}
            self.send(200, json.dumps(doc).encode(), [("Content-Type", "application/json")])
        else:
            self.send(404, b'{"error": "not_found"}', [("Content-Type", "application/json")])

    def introspect(self, method, url, body):
        args = parse_qs(url.query, keep_blank_values=True)
        content_type = self.headers.get("Content-Type") or ""
        form: dict[str, list[str]] = {}
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        authorization = self.headers.get("Authorization") or ""
        with self.stats.lock:
            self.stats.introspections += 1
            self.stats.last = {
                "method": method,
                "query": sorted(args),
                "form": sorted(form),
                "content_type": content_type or None,
                "authorization_scheme": authorization.split(" ", 1)[0] or None,
            }

        opts = self.options
        if opts.delay_ms:
            time.sleep(opts.delay_ms / 1000.0)
        if opts.garbage:
            self.send(opts.status or 200, GARBAGE_BODY, [("Content-Type", "application/json")])
            return
        if opts.status is not None:
            doc = {"error": "server_error", "error_description": f"forced status {opts.status}"}
            self.send(opts.status, json.dumps(doc).encode(), [("Content-Type", "application/json")])
            return

        uri = f"http://{HOST}:{self.server.server_address[1]}{self.path}"
        try:
            request = HttpServerRequest(method, uri, self.headers, args, form)
            status, payload, headers = self.oauth.create_endpoint_response("introspection", request)
        except Exception:  # a bug here must show, not hang the client
            traceback.print_exc(file=sys.stderr)
            self.send(500, b'{"error": "server_error"}', [("Content-Type", "application/json")])
            return
        data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        self.send(status, data.encode() if isinstance(data, str) else data, headers)

    def send(self, status, body: bytes, headers):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def load_tokens(path: str | None) -> dict[str, Token]:
    if not path:
        return {}
    with open(path, encoding="utf-8") as f:
        entries = json.load(f)
    if not isinstance(entries, list):
        raise SystemExit(f"{path}: expected a JSON list of token objects")
    table = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise SystemExit(f"{path}: entry {i} needs a string 'token'")
        table[entry["token"]] = Token(entry)
    return table


def main(argv=None):
    p = argparse.ArgumentParser(description="RFC 7662 introspection AS for Warden's tests (authlib)")
    p.add_argument("--port", type=int, required=True, help="port on 127.0.0.1; 0 picks a free one")
    p.add_argument("--tokens", metavar="FILE", help="JSON list of token objects")
    p.add_argument("--delay-ms", type=int, default=0, metavar="D", help="sleep D ms before answering")
    p.add_argument("--garbage", action="store_true", help="answer 200 with a non-JSON body")
    p.add_argument("--status", type=int, metavar="S", help="answer status S with a JSON error body")
    p.add_argument("--token-header", metavar="NAME", help="read the token from this request header")
    p.add_argument("--token-field", metavar="NAME", default="token", help="form/query name of the token")
    p.add_argument("--no-client-auth", action="store_true", help="do not authenticate the client")
    p.add_argument("--verbose", action="store_true", help="log requests to stderr")
    opts = p.parse_args(argv)

    oauth = Server({CLIENT_ID: Client(CLIENT_ID, CLIENT_SECRET)})
    endpoint = Introspection(oauth, load_tokens(opts.tokens))
    endpoint.token_field = opts.token_field
    endpoint.token_header = opts.token_header
    endpoint.client_auth = not opts.no_client_auth
    oauth.register_endpoint(endpoint)

    Handler.oauth = oauth
    Handler.options = opts
    Handler.stats = Stats()

    httpd = ThreadingHTTPServer((HOST, opts.port), Handler)
    httpd.daemon_threads = True
    print(f"listening on {HOST}:{httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()

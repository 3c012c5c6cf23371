"""The local HTTP gateway: routes by the HttpApi events of template.yaml, calls the same handlers.

Each request becomes a real API Gateway v2 (payload format 2.0) event and a Lambda context; the
handler's answer becomes the HTTP response. Routes follow API Gateway's rules: exact paths before
`{param}` paths before `{proxy+}`, the method before ANY, and `$default` for everything else.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from local.environments import InvocationTimeout, Throttled
from local.handlers import ACCOUNT_ID, FunctionSpec


class Invoker(Protocol):
    """HandlerLoader (in this process) or ExecutionEnvironments (one process per environment)."""

    @property
    def specs(self) -> Mapping[str, FunctionSpec]: ...

    def invoke(self, logical_id: str, event: Any) -> Any: ...


API_ID = "local"
READ_SECONDS_MAX = 10.0  # per socket read: the headers and the body must keep coming
PAYLOAD_BYTES_MAX = 10 * 1024 * 1024  # API Gateway HTTP API's own request limit


@dataclass(frozen=True)
class Route:
    method: str  # GET, POST, ... or ANY
    path: str  # /api/jobs/{job_id}, or $default
    function: str  # logical id
    pattern: re.Pattern[str] | None

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    def priority(self) -> tuple[bool, bool, int, int, bool]:
        """Sort key: exact paths first, then fewer parameters, greedy last; a method before ANY."""
        return (self.path == "$default", "+}" in self.path, self.path.count("{"), -len(self.path), self.method == "ANY")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.pattern is None or (self.method != "ANY" and self.method != method):
            return None
        found = self.pattern.fullmatch(path)
        return None if found is None else {k: unquote(v) for k, v in found.groupdict().items()}


def compile_path(path: str) -> re.Pattern[str]:
    """`/api/jobs/{job_id}` -> a regex with one named group per parameter (`{p+}` is greedy)."""
    regex = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            regex += f"(?P<{name[:-1]}>.+)" if name.endswith("+") else f"(?P<{name}>[^/]+)"
        else:
            regex += re.escape(part)
    return re.compile(regex)


def routes_from(specs: Mapping[str, FunctionSpec]) -> list[Route]:
    """Every HttpApi event of the template as a route, in API Gateway's matching order."""
    routes = []
    for spec in specs.values():
        for props in spec.events_of_type("HttpApi").values():
            path = str(props.get("Path", "$default"))
            method = str(props.get("Method", "ANY")).upper()
            routes.append(Route(method, path, spec.logical_id, None if path == "$default" else compile_path(path)))
    return sorted(routes, key=Route.priority)


class Router:
    def __init__(self, routes: list[Route]):
        self.routes = [r for r in routes if r.path != "$default"]
        self.default = next((r for r in routes if r.path == "$default"), None)

    def resolve(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return self.default, {}


def build_event(
    *,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    route: Route | None,
    path_parameters: Mapping[str, str] | None = None,
    source_ip: str = "127.0.0.1",
    host: str = "127.0.0.1",
    protocol: str = "HTTP/1.1",
) -> dict[str, Any]:
    """An API Gateway v2 (payload format 2.0) event, as API Gateway builds it."""
    url = urlsplit(target)
    raw_path = url.path or "/"
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    # The name the request reached this gateway by: the Host header only when it names this gateway
    # (a loopback name on its port), as API Gateway's domainName only ever names the API's own
    # domains. A Host a client made up (another service's) never reaches a handler as trusted.
    domain = merged["host"] if _names_this_gateway(merged.get("host", ""), host) else host
    # Headers API Gateway sets itself, whatever the client sent; locally the scheme is plain http.
    merged["x-forwarded-proto"] = "http"
    merged["x-forwarded-for"] = f"{merged['x-forwarded-for']}, {source_ip}" if "x-forwarded-for" in merged else source_ip
    merged["x-forwarded-port"] = _port_of(domain)
    query: dict[str, str] = {}
    for key, value in parse_qsl(url.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now = time.time()
    route_key = route.route_key if route is not None else "$default"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": url.query,
        "headers": merged,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0].split(":", 1)[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex[:16] + "=",
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode("ascii"), True
    return event


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def _split_host(host: str) -> tuple[str, str]:
    """`name[:port]` (the name may be `[v6]`) as (lower-case name, port; 80 when absent)."""
    name, _, port = host.rpartition(":") if host.rfind(":") > host.rfind("]") else (host, "", "")
    return name.lower(), port or "80"


def _port_of(host: str) -> str:
    return _split_host(host)[1]


def _names_this_gateway(header: str, own: str) -> bool:
    """True when a Host header names the gateway listening at `own` (127.0.0.1:PORT): a loopback
    name on the same port."""
    name, port = _split_host(header)
    return name in LOOPBACK_NAMES and port == _port_of(own)


def http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A handler's answer (payload format 2.0) as status, headers and body bytes."""
    if not isinstance(result, Mapping) or "statusCode" not in result:
        # Format 2.0 infers a 200 JSON response from anything that is not a response object.
        return 200, [("content-type", "application/json")], json.dumps(result).encode()
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values)
    headers.extend(("set-cookie", str(c)) for c in result.get("cookies") or [])
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
    return int(result["statusCode"]), headers, raw


def _error(status: int, code: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "application/json")], json.dumps({"error": {"code": code, "message": message}}).encode()


_SERVER_REFUSALS = {
    400: "the request line or its headers could not be read as HTTP/1.1",
    414: "the URL is too long",
    431: "the request's headers are too large",
    501: "that method is not supported",
    505: "that HTTP version is not supported; use HTTP/1.1",
}


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 resets connections when 16 clients connect at once on a loaded machine.
    request_queue_size = 128


class Gateway:
    """A ThreadingHTTPServer on 127.0.0.1:`port` in a daemon thread; `stop()` ends it."""

    def __init__(self, port: int, loader: Invoker, *, host: str = "127.0.0.1", cors: Mapping[str, Any] | None = None):
        self.loader = loader
        self.router = Router(routes_from(loader.specs))
        self.cors = cors or {}
        gateway = self

        class _Handler(_RequestHandler):
            owner = gateway

        self.server = _Server((host, port), _Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gateway:
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, name="gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One request, start to end: route, build the event, invoke, shape the answer."""
        path = urlsplit(target).path or "/"
        if method == "HEAD":
            method = "GET"  # HEAD answers as GET does; the body is left out when sent
        route, params = self.router.resolve(method, path)
        if route is None:
            return _error(404, "not_found", f"no route {method} {path}")
        event = build_event(
            method=method,
            target=target,
            headers=headers,
            body=body,
            route=route,
            path_parameters=params,
            source_ip=source_ip,
            host=f"127.0.0.1:{self.port}",
        )
        try:
            result = self.loader.invoke(route.function, event)
        except FileNotFoundError as missing:
            return _error(503, "not_deployed", f"{route.route_key} belongs to {route.function}, but {missing}")
        except Throttled:
            # What API Gateway answers when Lambda throttles the integration.
            return _error(429, "too_many_requests", f"{route.function} is at its concurrency limit; retry shortly")
        except InvocationTimeout:
            print(f"  {route.function} ran past its Timeout; its environment was killed", file=sys.stderr, flush=True)
            return _error(504, "integration_timeout", f"{route.function} did not answer within its timeout")
        except Exception:
            # API Gateway answers 500 when the function itself fails; the traceback goes to the log only.
            traceback.print_exc(file=sys.stderr)
            return _error(500, "internal_error", f"{route.function} failed; see the gateway's log")
        return http_response(result)

    def cors_headers(self, origin: str | None) -> list[tuple[str, str]]:
        allowed = [str(o) for o in self.cors.get("AllowOrigins") or []]
        if not origin or not allowed or ("*" not in allowed and origin not in allowed):
            return []
        return [("access-control-allow-origin", "*" if "*" in allowed else origin)]


class _RequestHandler(BaseHTTPRequestHandler):
    owner: Gateway
    protocol_version = "HTTP/1.1"
    server_version = "timmy-local-gateway"
    timeout = READ_SECONDS_MAX  # a slow header or body (or an idle keep-alive) closes the connection

    def version_string(self) -> str:
        return self.server_version  # no Python version in `Server:`

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return  # the handlers log (Powertools, JSON); one line per request would drown them

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The HTTP server's own refusals (a malformed request line, huge headers, an unknown
        method) in the contract's error shape too, never an HTML page."""
        # http.server's own text quotes the request line it could not read: never echoed back.
        reason = _SERVER_REFUSALS.get(code, "the request could not be read as HTTP/1.1")
        self._send(*_error(code, "bad_request" if code < 500 else "not_implemented", reason), close=True)

    def _serve(self) -> None:
        encoding = self.headers.get("transfer-encoding")
        if encoding is not None and encoding.strip().lower() == "chunked":
            self._send(*_error(411, "length_required", "send the body with a Content-Length (API Gateway does not stream)"), close=True)
            return
        if encoding is not None:
            # `gzip, chunked` and the like: never guess where the body ends (request smuggling).
            self._send(*_error(501, "unsupported_transfer_encoding", "send the body plain, with a Content-Length"), close=True)
            return
        if len(self.headers.get_all("content-length") or []) > 1:
            self._send(*_error(400, "bad_request", "send one Content-Length header"), close=True)
            return
        declared = self.headers.get("content-length") or "0"
        if not declared.isdigit():
            self._send(*_error(400, "bad_request", "Content-Length must be a whole number of bytes"), close=True)
            return
        length = int(declared)
        if length > PAYLOAD_BYTES_MAX:
            self._send(
                *_error(413, "payload_too_large", f"the request is over API Gateway's limit of {PAYLOAD_BYTES_MAX} bytes"), close=True
            )
            return
        body = self.rfile.read(length) if length else b""
        origin = self.headers.get("origin")
        if self.command == "OPTIONS" and origin and self.headers.get("access-control-request-method"):
            self._preflight(origin)
            return
        status, headers, raw = self.owner.handle(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
        self._send(status, headers + self.owner.cors_headers(origin), raw)

    def _preflight(self, origin: str) -> None:
        cors = self.owner.cors
        headers = [
            *self.owner.cors_headers(origin),
            ("access-control-allow-methods", ",".join(cors.get("AllowMethods") or [])),
            ("access-control-allow-headers", ",".join(cors.get("AllowHeaders") or [])),
        ]
        self._send(204, headers, b"")

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes, close: bool = False) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        if close:
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def __getattr__(self, name: str) -> Any:
        # Any other method (do_BREW, ...) is routed too: API Gateway answers it from its routes.
        if name.startswith("do_") and name[3:].isalpha():
            return self._serve
        raise AttributeError(name)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

"""One bounded HTTP exchange for the adapters that call providers (executors, LNURL-pay).

Stdlib `http.client`, so no dependency joins the layer and nothing is imported at cold start that a
path does not use. What it bounds, and why each matters with a remote party:
- a whole-exchange deadline (`timeout_seconds`), not a per-read one: a server that drips one byte a
  second would otherwise hold a worker for ever;
- the answer's size (`body_bytes_max`): a hostile server cannot fill the Lambda's memory;
- no redirects are followed and no proxy variables are read: the URL asked is the URL reached (an
  LNURL server could otherwise redirect us to an address inside the VPC).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

READ_CHUNK_BYTES = 65_536


class HttpTimedOut(Exception):
    """No whole answer within the deadline."""


class HttpUnreachable(Exception):
    """No connection (refused, reset, DNS, TLS), or the answer broke off."""


class HttpAnswerTooLarge(Exception):
    """The answer's body is over the limit."""


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.body)

    def json_object(self) -> dict[str, Any] | None:
        """The body as a JSON object; None when it is not JSON or not an object (every API these
        adapters call answers objects)."""
        try:
            body = self.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None


def _connection(url: str, timeout_seconds: float, connect_to: str | None) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"only http(s) URLs are called, not {url!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout_seconds, context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_seconds)
    if connect_to is not None:
        # Connect to the address the caller checked, while TLS still verifies the URL's host name:
        # a second DNS answer (rebinding) cannot move the request elsewhere.
        def pinned(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
            return socket.create_connection((connect_to, address[1]), *args, **kwargs)

        connection._create_connection = pinned  # type: ignore[attr-defined]
    return connection, path


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise HttpTimedOut("the deadline passed")
    return remaining


def exchange(
    method: str,
    url: str,
    *,
    timeout_seconds: float,
    body_bytes_max: int,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    connect_to: str | None = None,
) -> HttpAnswer:
    """Send one request and read the whole answer (any status) within `timeout_seconds`;
    `connect_to`: the IP address to connect to instead of resolving the URL's host.

    Raises HttpTimedOut, HttpUnreachable or HttpAnswerTooLarge; ValueError for a non-http(s) URL.
    """
    deadline = time.monotonic() + timeout_seconds
    connection, path = _connection(url, timeout_seconds, connect_to)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        sock = connection.sock  # kept: http.client lets go of it once an HTTP/1.0 answer begins
        if sock is not None:
            sock.settimeout(_remaining(deadline))
        response = connection.getresponse()
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = _remaining(deadline)
            if sock is not None:
                sock.settimeout(remaining)
            chunk = response.read1(READ_CHUNK_BYTES) if size <= body_bytes_max else b""
            if not chunk:
                break
            size += len(chunk)
            if size > body_bytes_max:
                raise HttpAnswerTooLarge(f"{url}: answer over {body_bytes_max} bytes")
            chunks.append(chunk)
        _remaining(deadline)
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
        return HttpAnswer(response.status, answer_headers, b"".join(chunks))
    except TimeoutError as error:
        raise HttpTimedOut(f"{url}: no answer within {timeout_seconds} s") from error
    except (OSError, http.client.HTTPException) as error:
        raise HttpUnreachable(f"{url}: {type(error).__name__}: {error}") from error
    finally:
        connection.close()


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """A `retry-after` header in seconds (the HTTP-date form is ignored: providers send seconds)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86_400 else None

"""Buffered HTTP, like the Workflows API Connector card::

    from flowhost_sdk import http

    resp = http.post(
        "https://api.example.com/items",
        headers={"Authorization": f"Bearer {token}"},
        json={"name": "x"},
        retry=http.Retry(attempts=4, initial_ms=500, max_ms=8000),
    )
    if resp.ok:
        item = resp.json()

Any status is a `Response`; errors (`FlowhostError`) are transport failures, a host the
manifest does not allow, limits and timeouts. The host does the retrying (backoff with jitter
on connect errors and 5xx, `Retry-After`/`X-RateLimit-*` on 429).
"""

from __future__ import annotations

import json as _stdjson
from dataclasses import dataclass, field
from typing import Any, Iterable, List, Mapping, Optional, Tuple, Union

from wit_world.imports import http as _wit

from . import _json
from .errors import InvalidInput, host

__all__ = [
    "Retry",
    "Request",
    "Response",
    "send",
    "prefetch",
    "get",
    "post",
    "put",
    "patch",
    "delete",
]

Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]]]
"""Headers as a dict or as a list of `(name, value)` pairs (for repeated names)."""


@dataclass
class Retry:
    """Let the host retry: `attempts` in all (1 = no retry), exponential backoff with jitter
    from `initial_ms` up to `max_ms`."""

    attempts: int = 4
    initial_ms: int = 500
    max_ms: int = 8000


@dataclass
class Request:
    """A request; `send(request)` sends it. Build one with the keyword arguments of `send`."""

    method: str
    url: str
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: Optional[bytes] = None
    timeout_ms: Optional[int] = None
    retry: Optional[Retry] = None

    @staticmethod
    def build(
        method: str,
        url: str,
        *,
        headers: Optional[Headers] = None,
        json: Any = None,
        body: Union[bytes, str, None] = None,
        timeout_ms: Optional[int] = None,
        retry: Optional[Retry] = None,
    ) -> "Request":
        """A request from the keyword arguments of `send`."""
        pairs = _pairs(headers)
        data: Optional[bytes]
        if json is not None and body is not None:
            raise InvalidInput(f"{method} {url}: give either json= or body=, not both")
        if json is not None:
            data = _json.dumps(json, f"{method} {url}: request body").encode()
            if not any(k.lower() == "content-type" for k, _ in pairs):
                pairs.append(("Content-Type", "application/json"))
        elif isinstance(body, str):
            data = body.encode()
        elif body is None or isinstance(body, (bytes, bytearray, memoryview)):
            data = None if body is None else bytes(body)
        else:
            raise InvalidInput(f"{method} {url}: body must be bytes or str, not {type(body).__name__}")
        return Request(str(method).upper(), str(url), pairs, data, timeout_ms, retry)

    def _wit(self) -> Any:
        what = f"{self.method} {self.url}"
        timeout = None if self.timeout_ms is None else _json.u32(self.timeout_ms, f"{what}: timeout_ms")
        policy = None
        if self.retry is not None:
            attempts = _json.u32(self.retry.attempts, f"{what}: retry attempts")
            initial = _json.u32(self.retry.initial_ms, f"{what}: retry initial_ms")
            top = _json.u32(self.retry.max_ms, f"{what}: retry max_ms")
            policy = _wit.RetryPolicy(max(1, attempts), initial, max(initial, top))
        return _wit.Request(self.method, self.url, list(self.headers), self.body, timeout, policy)


def _pairs(headers: Optional[Headers]) -> List[Tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = []
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise InvalidInput(f"a header must be a (name, value) pair, not {item!r}") from None
        pairs.append((str(name), str(value)))
    return pairs


@dataclass
class Response:
    """A response: any status. Header names are lower-case, as the host gives them."""

    status: int
    headers: List[Tuple[str, str]]
    body: bytes

    @property
    def ok(self) -> bool:
        """`True` for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body as text (invalid UTF-8 replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body decoded as JSON (`InvalidInput` naming the status if it is not JSON)."""
        try:
            return _stdjson.loads(self.body)
        except ValueError as e:
            raise InvalidInput(f"HTTP {self.status} response body: {e}") from None

    def header(self, name: str) -> Optional[str]:
        """The first value of header `name` (case-insensitive), or `None`."""
        want = name.lower()
        return next((v for k, v in self.headers if k.lower() == want), None)

    def header_all(self, name: str) -> List[str]:
        """Every value of header `name` (case-insensitive), in order."""
        want = name.lower()
        return [v for k, v in self.headers if k.lower() == want]


def send(method: Union[str, Request], url: Optional[str] = None, **kwargs: Any) -> Response:
    """Sends a request: `send(request)` or `send("POST", url, headers=..., json=... | body=...,
    timeout_ms=..., retry=Retry(...))`."""
    req = method if isinstance(method, Request) else Request.build(method, str(url), **kwargs)
    resp = host(_wit.send, req._wit())
    return Response(resp.status, list(resp.headers), bytes(resp.body))


def prefetch(method: Union[str, Request], url: Optional[str] = None, **kwargs: Any) -> None:
    """Starts this GET (or HEAD) in the background for a later run of this flow: its next
    `send` of the very same request within 60 s gets the response without waiting."""
    req = method if isinstance(method, Request) else Request.build(method, str(url), **kwargs)
    host(_wit.prefetch, req._wit())


def get(url: str, **kwargs: Any) -> Response:
    """`send("GET", url, ...)`."""
    return send("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> Response:
    """`send("POST", url, ...)`."""
    return send("POST", url, **kwargs)


def put(url: str, **kwargs: Any) -> Response:
    """`send("PUT", url, ...)`."""
    return send("PUT", url, **kwargs)


def patch(url: str, **kwargs: Any) -> Response:
    """`send("PATCH", url, ...)`."""
    return send("PATCH", url, **kwargs)


def delete(url: str, **kwargs: Any) -> Response:
    """`send("DELETE", url, ...)`."""
    return send("DELETE", url, **kwargs)

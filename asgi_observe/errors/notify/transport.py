"""POST a message with the standard library, with timeouts and retries honouring 429.

urllib, not an HTTP client dependency: one small JSON POST now and then needs nothing more,
and the worker thread that calls it may block. Nothing here logs or raises with a URL in
it: Telegram's bot token and a webhook's secret are part of the URL.
"""

from __future__ import annotations

import email.utils
import http.client
import random
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Delivery", "Outgoing", "Response", "deliver", "post", "retry_after_header"]

MAX_RESPONSE_BYTES = 16 * 1024
MAX_RETRY_AFTER = 120.0
"""A destination asking to wait longer than this (seconds) loses the message instead."""
_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 30.0
# Our own generator: sender threads must not draw from (or reseed) the global one the
# application and its tests use.
_jitter = random.Random()
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Outgoing:
    url: str
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lowercase names
    body: bytes


@dataclass(frozen=True)
class Delivery:
    """How one message fared: `reason` is safe to log (no URL, no token)."""

    ok: bool
    status: int | None = None
    reason: str = ""
    attempts: int = 1
    permanent: bool = False  # a 4xx other than 429: retrying cannot help


class Target(Protocol):
    def outgoing(self, report: Any) -> Outgoing: ...
    def accepted(self, response: Response) -> bool: ...
    def retry_after(self, response: Response) -> float | None: ...
    def describe(self, response: Response) -> str: ...
    def redact(self, text: str) -> str: ...


def post(outgoing: Outgoing, timeout: float) -> Response:
    """One POST; raises OSError (URLError, timeouts) or HTTPException on network failure."""
    request = urllib.request.Request(
        outgoing.url, data=outgoing.body, headers=dict(outgoing.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_RESPONSE_BYTES)
            return Response(response.status, _lower(response.headers), body)
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, _lower(error.headers), error.read(MAX_RESPONSE_BYTES))


def _lower(headers: Any) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in (headers or {}).items()}


def deliver(
    target: Target,
    outgoing: Outgoing,
    *,
    timeout: float,
    retries: int,
    deadline: Callable[[], float | None] = lambda: None,
    sleep: Callable[[float], Any] = time.sleep,
    send: Callable[[Outgoing, float], Response] = post,
) -> Delivery:
    """Send `outgoing`, retrying network errors, 5xx and 429 up to `retries` times.

    A 429 waits what the destination asked for (Telegram's ``parameters.retry_after``,
    a ``Retry-After`` header); other failures back off exponentially with jitter. Other
    4xx fail at once. `deadline` (a monotonic time, or None) bounds the waiting while the
    queue is flushed at shutdown.
    """
    attempt = 0
    while True:
        attempt += 1
        limit = deadline()
        budget = timeout if limit is None else min(timeout, limit - time.monotonic())
        if budget <= 0:
            return Delivery(False, None, "no time left before shutdown", attempt - 1)
        wait: float | None = None
        try:
            response = send(outgoing, budget)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            status, reason = None, target.redact(network_reason(exc, budget))
        else:
            status = response.status
            if 200 <= status < 300 and target.accepted(response):
                return Delivery(True, status, "", attempt)
            reason = target.redact(target.describe(response))
            if status not in _RETRYABLE and not 200 <= status < 300:
                return Delivery(False, status, reason, attempt, permanent=True)
            if status == 429:
                wait = target.retry_after(response)
                if wait is not None and wait > MAX_RETRY_AFTER:
                    reason += f" (asked to wait {wait:.0f} s)"
                    return Delivery(False, status, reason, attempt)
        if attempt > retries:
            return Delivery(False, status, reason, attempt)
        delay = wait if wait is not None else backoff(attempt)
        limit = deadline()
        if limit is not None and time.monotonic() + delay > limit:
            return Delivery(False, status, f"{reason}; no time left to retry", attempt)
        sleep(delay)


def backoff(attempt: int) -> float:
    """Seconds before retry `attempt` (1-based): 0.5, 1, 2, ... capped, with half of it jittered."""
    ceiling = min(_BACKOFF_CAP, _BACKOFF_BASE * 2.0 ** (attempt - 1))
    return ceiling / 2 + _jitter.uniform(0, ceiling / 2)


def network_reason(exc: BaseException, timeout: float) -> str:
    """A short description of a network failure that never includes the URL."""
    cause: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(cause, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout:.1f} s"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(cause, OSError) and cause.strerror:
        return f"network error: {cause.strerror}"
    return f"network error: {type(cause).__name__}"


def retry_after_header(headers: Mapping[str, str]) -> float | None:
    """The ``Retry-After`` header (RFC 9110 section 10.2.3): seconds or an HTTP date."""
    raw = headers.get("retry-after", "").strip()
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(float(when.timestamp()) - time.time(), 0.0)

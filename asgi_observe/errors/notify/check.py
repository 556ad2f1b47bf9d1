"""One test message to each destination, synchronously, with a clear verdict for each."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from asgi_observe.errors.notify.collect import Identity
from asgi_observe.errors.notify.destinations import Destination, redactor
from asgi_observe.errors.notify.report import ErrorReport
from asgi_observe.errors.notify.transport import deliver
from asgi_observe.scrub import Scrubber

__all__ = ["CheckResult", "send_test_messages"]


@dataclass(frozen=True)
class CheckResult:
    label: str
    ok: bool
    reason: str = ""  # why it failed; never holds a token or webhook URL


def send_test_messages(
    destinations: list[Destination], identity: Identity, *, timeout: float = 5.0
) -> list[CheckResult]:
    """Send a test message to every destination at once; one result each, in order."""
    report = ErrorReport(
        kind="test",
        title="asgi-observe test message",
        message="If you can read this, error notifications reach this chat.",
        level="info",
        service=identity.service,
        environment=identity.environment,
        release=identity.release,
        timestamp=time.time(),
    )

    redact = redactor(destinations, Scrubber())

    def check(destination: Destination) -> CheckResult:
        try:
            result = deliver(destination, destination.outgoing(report), timeout=timeout, retries=1)
        except Exception as exc:
            return CheckResult(destination.label, False, f"internal error ({type(exc).__name__})")
        return CheckResult(destination.label, result.ok, redact(result.reason))

    with ThreadPoolExecutor(max_workers=min(len(destinations), 8) or 1) as pool:
        return list(pool.map(check, destinations))

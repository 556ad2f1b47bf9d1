"""Flush spans, metrics, log records and Sentry events, bounded in time."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import metrics, trace

_logger = logging.getLogger("asgi_observe.export")


def flush_telemetry(timeout: float = 5.0, extra_providers: Sequence[Any] = ()) -> bool:
    """Flush the global tracer, meter and logger providers and Sentry; False on timeout.

    `extra_providers` are flushed too: a tracer provider given to observe() rather than
    set globally.

    The SDK's batch processor ignores its flush timeout while an exporter retries, so
    the flush runs in a daemon thread and is abandoned (never joined) when time is up:
    a black-holed collector cannot hold a shutting-down server for longer than this.
    """
    done = threading.Event()
    result = [False]

    def run() -> None:
        try:
            result[0] = _flush(time.monotonic() + timeout, extra_providers)
        finally:
            done.set()

    threading.Thread(target=run, name="asgi-observe-flush", daemon=True).start()
    if done.wait(timeout):
        return result[0]
    _logger.warning("Flushing telemetry did not finish within %.1f s; continuing.", timeout)
    return False


def _flush(deadline: float, extra_providers: Sequence[Any]) -> bool:
    ok = True
    from opentelemetry._logs import get_logger_provider

    providers = [trace.get_tracer_provider(), metrics.get_meter_provider(), get_logger_provider()]
    providers += [extra for extra in extra_providers if all(extra is not p for p in providers)]
    for provider in providers:
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is None:
            continue
        try:
            millis = max(int((deadline - time.monotonic()) * 1000), 0)
            ok = force_flush(millis) is not False and ok
        except Exception:  # a broken exporter must not stop the others from flushing
            _logger.exception("Flushing %s failed", type(provider).__name__)
            ok = False
    sentry_sdk = sys.modules.get("sentry_sdk")  # never imported just to flush
    if sentry_sdk is not None:
        try:
            if sentry_sdk.get_client().is_active():
                sentry_sdk.flush(timeout=max(deadline - time.monotonic(), 0.0))
        except Exception:
            _logger.exception("Flushing Sentry events failed")
            ok = False
    return ok

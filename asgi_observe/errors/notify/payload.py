"""The generic webhook's JSON payload (documented in docs/notifications.md)."""

from __future__ import annotations

import datetime
from typing import Any

from asgi_observe.errors.notify.formatting import render
from asgi_observe.errors.notify.report import ErrorReport

__all__ = ["PAYLOAD_VERSION", "json_payload"]

PAYLOAD_VERSION = 1
_TEXT_LIMIT = 4000


def json_payload(report: ErrorReport) -> dict[str, Any]:
    """The report as the generic webhook's JSON object, plus a plain-text rendering."""
    timestamp = datetime.datetime.fromtimestamp(report.timestamp, tz=datetime.timezone.utc)
    return {
        "version": PAYLOAD_VERSION,
        "kind": report.kind,
        "level": report.level,
        "title": report.title,
        "message": report.message,
        "fingerprint": report.fingerprint,
        "service": report.service,
        "environment": report.environment,
        "release": report.release,
        "request": {
            "method": report.method,
            "route": report.route,
            "status": report.status,
            "request_id": report.request_id,
            "trace_id": report.trace_id,
            "trace_url": report.trace_url,
        },
        "frames": [
            {"filename": f.filename, "lineno": f.lineno, "function": f.function, "line": f.line}
            for f in report.frames
        ],
        "context": dict(report.context),
        "repeats": report.repeats,
        "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
        "text": render(report, "plain", _TEXT_LIMIT),
    }

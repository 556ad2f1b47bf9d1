"""Scrubbing: secrets found by name and by value, removed from events before they leave.

Pure: imports nothing of asgi_observe's own outside `_core`.
"""

from __future__ import annotations

from asgi_observe.scrub.scrubber import (
    FILTERED,
    SECRETS_HINT_KEY,
    SENSITIVE_EXACT_NAMES,
    SENSITIVE_NAME_PARTS,
    Scrubber,
    SecretSet,
    is_sensitive_name,
    redact_query_string,
    scrub_event,
)
from asgi_observe.scrub.urls import redact_userinfo

__all__ = [
    "FILTERED",
    "SECRETS_HINT_KEY",
    "SENSITIVE_EXACT_NAMES",
    "SENSITIVE_NAME_PARTS",
    "Scrubber",
    "SecretSet",
    "is_sensitive_name",
    "redact_query_string",
    "redact_userinfo",
    "scrub_event",
]

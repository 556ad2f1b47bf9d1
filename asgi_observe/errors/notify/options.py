"""What a Notifier is told: which errors notify, and the deduplication and delivery bounds."""

from __future__ import annotations

from dataclasses import dataclass, field

from asgi_observe.errors.notify.collect import Identity

__all__ = ["EVENTS", "NotifyOptions"]

EVENTS = frozenset({"exceptions", "5xx", "logs", "mcp"})
"""What can cause a notification: unhandled exceptions, 5xx responses without one, log
records at ERROR and above, MCP tool failures."""


@dataclass(frozen=True)
class NotifyOptions:
    """How a `Notifier` behaves; see docs/notifications.md. Since 0.1.0.

    Attributes:
        identity: service, environment, release and trace link template in messages.
        events: which of `EVENTS` cause a notification.
        dedup_window: seconds during which one fingerprint gives one message (0: off).
        rate_limit: messages a minute per destination, then one "N more suppressed".
        queue_size: messages waiting per destination; beyond, new ones are dropped.
        timeout: seconds one HTTP request may take.
        retries: further attempts after a network error, a 5xx or a 429.
        max_fingerprints: fingerprints remembered for deduplication.
    """

    identity: Identity = field(default_factory=Identity)
    events: frozenset[str] = frozenset({"exceptions"})
    dedup_window: float = 300.0
    rate_limit: int = 20
    queue_size: int = 100
    timeout: float = 5.0
    retries: int = 3
    max_fingerprints: int = 1024

    def __post_init__(self) -> None:
        unknown = set(self.events) - EVENTS
        if unknown:
            raise ValueError(f"events: unknown {sorted(unknown)} (supported: {sorted(EVENTS)})")
        for name, minimum in (("dedup_window", 0.0), ("timeout", 1e-3)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number")
            if not value >= minimum:  # also refuses NaN
                raise ValueError(f"{name} must be a number >= {minimum:g}")
        for name in ("rate_limit", "queue_size", "max_fingerprints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError("retries must be an integer >= 0")

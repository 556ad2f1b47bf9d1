"""asgi-observe notify-test: one test message to each destination, and a verdict for each."""

from __future__ import annotations

import argparse
import os

from asgi_observe.errors.notify.check import send_test_messages
from asgi_observe.errors.notify.settings import (
    CHATS_VAR,
    DISCORD_VAR,
    SLACK_VAR,
    TOKEN_VAR,
    WEBHOOK_VAR,
    read_notify_settings,
)

__all__ = ["notify_test"]


def notify_test(parser: argparse.ArgumentParser) -> int:
    """Exit status: 0 when every destination took the message, 1 if one failed, 2 when
    the configuration is invalid or names no destination."""
    try:
        settings = read_notify_settings(os.environ)
    except ValueError as exc:
        parser.exit(2, f"asgi-observe: error: {exc}\n")
    destinations = settings.destinations()
    if not destinations:
        parser.exit(
            2,
            f"asgi-observe: error: no notification destination is configured; set {TOKEN_VAR}"
            f" and {CHATS_VAR}, or {SLACK_VAR}, {DISCORD_VAR} or {WEBHOOK_VAR}\n",
        )
    results = send_test_messages(
        destinations, settings.options.identity, timeout=settings.options.timeout
    )
    width = max(len(result.label) for result in results)
    for result in results:
        verdict = "ok" if result.ok else f"FAILED: {result.reason}"
        print(f"{result.label:<{width}}  {verdict}", flush=True)
    failed = sum(not result.ok for result in results)
    if failed:
        print(f"{failed} of {len(results)} destinations failed", flush=True)
    return 1 if failed else 0

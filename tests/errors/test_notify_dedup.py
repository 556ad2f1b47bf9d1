"""Fingerprints, deduplication windows and the per-destination rate limit (pure parts)."""

from __future__ import annotations

import sys

from asgi_observe.errors.notify.dedup import Deduplicator, RateLimiter
from asgi_observe.errors.notify.fingerprint import (
    error_type_name,
    exception_fingerprint,
    fingerprint,
    is_in_app,
)
from asgi_observe.errors.notify.report import ErrorReport


def raise_here(message: str) -> BaseException:
    try:
        raise KeyError(message)
    except KeyError as exc:
        return exc


def raise_elsewhere(message: str) -> BaseException:
    try:
        raise KeyError(message)
    except KeyError as exc:
        return exc


def raise_in_library() -> BaseException:
    import json

    try:
        json.loads("{")  # fails inside the standard library
    except ValueError as exc:
        return exc
    raise AssertionError


def test_fingerprint_is_pure_and_sensitive_to_each_part() -> None:
    base = fingerprint("ValueError", "app.orders:get_order", "GET /orders/{id}")
    assert base == fingerprint("ValueError", "app.orders:get_order", "GET /orders/{id}")
    assert 16 == len(base) and int(base, 16) >= 0
    others = {
        fingerprint("KeyError", "app.orders:get_order", "GET /orders/{id}"),
        fingerprint("ValueError", "app.orders:list_orders", "GET /orders/{id}"),
        fingerprint("ValueError", "app.orders:get_order", "POST /orders/{id}"),
        fingerprint("ValueError", None, "GET /orders/{id}"),
    }
    assert 4 == len(others) and base not in others


def test_exception_fingerprint_ignores_the_message_but_not_the_frame() -> None:
    first, second = raise_here("order 1"), raise_here("order 2")
    assert exception_fingerprint(first, "GET /a") == exception_fingerprint(second, "GET /a")
    assert exception_fingerprint(first, "GET /a") != exception_fingerprint(
        raise_elsewhere("order 1"), "GET /a"
    )


def test_the_innermost_in_app_frame_is_ours_not_the_librarys() -> None:
    exc = raise_in_library()
    expected = fingerprint("json.decoder.JSONDecodeError", f"{__name__}:raise_in_library", "GET /a")
    assert expected == exception_fingerprint(exc, "GET /a")
    assert is_in_app(__file__)
    assert not is_in_app(sys.modules["json"].__file__ or "")
    assert not is_in_app("<string>")
    assert "ValueError" == error_type_name(ValueError)


def sample() -> ErrorReport:
    return ErrorReport(kind="exception", title="ValueError")


def test_one_message_per_window_then_one_summary_with_the_repeat_count() -> None:
    dedup = Deduplicator(window=300)
    assert (True, 0) == dedup.admit("k", now=0)
    dedup.remember("k", sample())
    assert [(False, 0)] * 5 == [dedup.admit("k", now=t) for t in range(1, 6)]
    assert [] == dedup.due(now=299)
    assert [(sample(), 5)] == dedup.due(now=300)
    # The storm goes on: one summary a window, never a second full message.
    assert (False, 0) == dedup.admit("k", now=301)
    assert [(sample(), 1)] == dedup.due(now=600)
    assert [] == dedup.due(now=900)  # a quiet window is forgotten
    assert 0 == len(dedup)
    assert (True, 0) == dedup.admit("k", now=901)


def test_repeats_of_an_ended_window_ride_on_the_next_message() -> None:
    dedup = Deduplicator(window=10)
    dedup.admit("k", now=0)
    dedup.remember("k", sample())
    dedup.admit("k", now=1)
    dedup.admit("k", now=2)
    assert (True, 2) == dedup.admit("k", now=11)  # no summary went out in between
    assert [] == dedup.due(now=12)


def test_final_hands_out_every_pending_count_and_state_stays_bounded() -> None:
    dedup = Deduplicator(window=300, max_entries=3)
    for key in "abcde":
        dedup.admit(key, now=0)
        dedup.remember(key, sample())
        dedup.admit(key, now=1)
    assert 3 == len(dedup)
    assert 2 == dedup.take_lost()  # "a" and "b" were evicted with one repeat each
    assert [1, 1, 1] == [repeats for _, repeats in dedup.due(now=2, final=True)]


def test_zero_window_turns_deduplication_off() -> None:
    dedup = Deduplicator(window=0)
    assert [(True, 0)] * 3 == [dedup.admit("k", now=t) for t in range(3)]


def test_rate_limit_then_one_suppressed_count_when_a_slot_frees() -> None:
    limiter = RateLimiter(limit=3, period=60)
    assert [True, True, True, False, False] == [limiter.acquire(now=t) for t in range(5)]
    limiter.acquire(now=5, count=10)  # a summary standing for ten occurrences
    assert 0 == limiter.take_suppressed(now=30)  # no slot yet
    assert False is limiter.acquire(now=30)  # counted too
    assert 13 == limiter.take_suppressed(now=60)  # the slot of t=0 freed up
    assert False is limiter.acquire(now=60.5)  # that message took the slot
    assert 1 == limiter.take_suppressed(now=62, final=True)

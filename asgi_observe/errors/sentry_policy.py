"""What SentryMiddleware reports, and how its scrubbing is made to run last.

No sentry-sdk import here: these helpers work on exceptions, on the plain dicts sentry-sdk
passes to event processors and ``before_send``, and on a client's ``options`` dict.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, Protocol

from asgi_observe.scrub.scrubber import SECRETS_HINT_KEY, Scrubber
from asgi_observe.scrub.secrets import Deadline, ScrubTimeout, SecretSet
from asgi_observe.scrub.values import mapping_secrets
from asgi_observe.scrub.walk import SKIPPED_KEYS

SCRUBBER_HINT_KEY = "asgi_observe.scrubber"
"""Hint key under which a request's event processor leaves the `Scrubber` to run last."""


class RequestSecrets(Protocol):
    """What the hooks below need of the request being handled (sentry_event.RequestEvents)."""

    scrubber: Scrubber

    def secrets(self) -> SecretSet: ...


# The SentryMiddleware request the current context belongs to (set and reset per request):
# sentry-sdk's event scrubber and ``before_send_log`` get no hint to find it by.
current_request: ContextVar[RequestSecrets | None] = ContextVar(
    "asgi_observe.sentry_request", default=None
)

_STATUS_ATTRIBUTES = ("status_code", "code", "status")
_HOOKS = ("before_send", "before_send_transaction")
_PREPARED = "_asgi_observe_scrub_last"  # marks a client options dict scrub_last prepared
_MAX_CHAIN = 16
# Set on an exception once an event for it went through a request's processor (ours or a
# framework integration's): the middleware then does not capture it a second time.
_REPORTED_MARK = "_asgi_observe_reported"


class ErrorPolicy:
    """Which exceptions are expected (never reported): configured types and HTTP 4xx."""

    __slots__ = ("ignored",)

    def __init__(self, ignore_exceptions: Iterable[type[BaseException]]) -> None:
        if isinstance(ignore_exceptions, type):
            raise TypeError("ignore_exceptions must be an iterable of exception types")
        self.ignored = tuple(ignore_exceptions)
        for item in self.ignored:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise TypeError(f"ignore_exceptions entries must be exception types: {item!r}")

    def is_expected(self, exc: BaseException) -> bool:
        if isinstance(exc, self.ignored):
            return True
        status = http_status(exc)
        return status is not None and status < 500


def http_status(exc: BaseException) -> int | None:
    """The status of an HTTP exception (Starlette, Litestar, werkzeug/Quart, aiohttp).

    Duck-typed on ``status_code``, ``code`` or ``status``, but only for classes named
    ``...HTTPException``: errors of HTTP *clients* (``urllib.error.HTTPError.code``,
    aiohttp's ``ClientResponseError.status``) carry an upstream status and are real faults.
    """
    if not any(cls.__name__.endswith("HTTPException") for cls in type(exc).__mro__):
        return None
    for attribute in _STATUS_ATTRIBUTES:
        try:
            value = getattr(exc, attribute, None)
        except Exception:
            continue
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return int(value)
    return None


def is_automatic(event: Any) -> bool:
    """True when an integration captured the exception (not ``capture_exception()``)."""
    try:
        mechanism = event["exception"]["values"][-1].get("mechanism") or {}
        return bool(mechanism.get("type", "generic") != "generic")
    except (KeyError, IndexError, TypeError, AttributeError):
        return False


def mark_reported(exc: BaseException) -> None:
    with contextlib.suppress(Exception):  # an exception class that refuses attributes
        setattr(exc, _REPORTED_MARK, True)


def already_reported(exc: BaseException) -> bool:
    """The exception, or one it was raised from or while handling, already gave an event
    (a framework integration captured it, then it or a wrapper propagated)."""
    seen: BaseException | None = exc
    for _ in range(_MAX_CHAIN):
        if seen is None:
            return False
        if getattr(seen, _REPORTED_MARK, False) is True:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class ScrubLast:
    """A ``before_send`` that runs the user's hook, then scrubs the events of our requests.

    Events that no SentryMiddleware request saw (no scrubber in the hint) pass unchanged.
    """

    __slots__ = ("hook",)

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def __call__(self, event: Any, hint: Any) -> Any:
        if self.hook is not None:
            event = self.hook(event, hint)
            if event is None:
                return None
        scrubber = hint.get(SCRUBBER_HINT_KEY) if isinstance(hint, dict) else None
        if isinstance(scrubber, Scrubber):
            return scrubber.scrub_event(event, hint)
        if _reported_by_a_request(event, hint):
            # The server's (or our request-id layer's) error log of an exception one of our
            # requests already reported, turned into an event by sentry-sdk's logging
            # integration outside the request: a duplicate, and not scrubbed. Dropped, with
            # or without sentry-sdk's DedupeIntegration.
            return None
        return event


class LearnFirst:
    """Stands in for the client's ``event_scrubber``: learns the request's secret values
    from the event as the processors left it, then lets sentry-sdk's scrubber run.

    sentry-sdk's own scrubber blanks a local named ``password`` before ``before_send``;
    learned only afterwards, copies of its value elsewhere in the event (a message, a
    note, another key of the parsed body) would leak (issue 13).
    """

    __slots__ = ("scrubber",)

    def __init__(self, scrubber: Any) -> None:
        self.scrubber = scrubber

    def __bool__(self) -> bool:  # sentry-sdk runs the event scrubber when it is truthy
        return True

    def scrub_event(self, event: Any) -> None:
        request = current_request.get()
        if request is not None:
            learn(request, event)
        if self.scrubber is not None:
            self.scrubber.scrub_event(event)


def learn(request: RequestSecrets, event: Any) -> None:
    """Add the values under sensitive names in `event` to the request's secrets."""
    secrets = request.secrets()
    scrubber = request.scrubber
    try:
        data = event
        if isinstance(event, dict):
            data = {key: value for key, value in event.items() if key not in SKIPPED_KEYS}
        mapping_secrets(data, scrubber.is_sensitive, secrets, Deadline(scrubber.time_budget))
    except ScrubTimeout:
        secrets.incomplete = True
    except Exception:  # odd data: what was learned so far is kept
        secrets.incomplete = True


class ScrubLastLog:
    """A ``before_send_log`` that runs the user's hook, then scrubs the logs sent while one
    of our requests runs with that request's scrubber and secret values (``enable_logs``).

    Logs sent outside our requests pass unchanged, as events do.
    """

    __slots__ = ("hook",)

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def __call__(self, log: Any, hint: Any) -> Any:
        if self.hook is not None:
            log = self.hook(log, hint)
            if log is None:
                return None
        request = current_request.get()
        if request is None:
            return log
        return request.scrubber.scrub_log(log, {SECRETS_HINT_KEY: request.secrets()})


def _reported_by_a_request(event: Any, hint: Any) -> bool:
    exc_info = hint.get("exc_info") if isinstance(hint, dict) else None
    if not (isinstance(exc_info, tuple) and len(exc_info) == 3):
        return False
    exc = exc_info[1]
    return isinstance(exc, BaseException) and is_automatic(event) and already_reported(exc)


def scrub_last(client: Any) -> None:
    """Wrap the client's ``before_send`` hooks in `ScrubLast`, its ``before_send_log`` in
    `ScrubLastLog` and its event scrubber in `LearnFirst`, once per client.

    sentry-sdk reads these after running every event processor, so calling this from an
    event processor still takes effect for the event being processed.
    """
    options = getattr(client, "options", None)
    if not isinstance(options, dict) or options.get(_PREPARED) is True:
        return
    for key in _HOOKS:
        hook = options.get(key)
        if not isinstance(hook, ScrubLast):
            options[key] = ScrubLast(hook)
    log_hook = options.get("before_send_log")
    experiments = options.get("_experiments")
    if log_hook is None and isinstance(experiments, dict):
        log_hook = experiments.get("before_send_log")
    if not isinstance(log_hook, ScrubLastLog):
        options["before_send_log"] = ScrubLastLog(log_hook)
    if not isinstance(options.get("event_scrubber"), LearnFirst):
        options["event_scrubber"] = LearnFirst(options.get("event_scrubber"))
    options[_PREPARED] = True

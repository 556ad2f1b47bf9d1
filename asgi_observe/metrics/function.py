"""measured(): calls by outcome, errors by type and duration of any function or block."""

from __future__ import annotations

import functools
import inspect
import re
import threading
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar, cast, overload

from asgi_observe.metrics.backend import backend_from_env, parse_backend, resolve_backend
from asgi_observe.metrics.families import DURATION_BUCKETS, OVERFLOW
from asgi_observe.metrics.function_calls import (
    async_generator,
    generator,
    label_picks,
    label_text,
)
from asgi_observe.metrics.function_series import OtelSeries, PrometheusSeries

__all__ = ["Measured", "measured"]

F = TypeVar("F", bound=Callable[..., Any])
Values = tuple[str, ...]

SUCCESS, ERROR, CANCELLED = "success", "error", "cancelled"
# Valid both as a Prometheus metric name and as an OpenTelemetry instrument name.
_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]{0,199}")
_LABEL = re.compile(r"[a-zA-Z][a-zA-Z0-9_]{0,99}")
_RESERVED_LABELS = frozenset({"outcome", "error_type", "le", "quantile"})
DEFAULT_MAX_LABEL_SETS = 200

_perf = time.perf_counter


class _Call:
    """One measured call: the clock starts on enter, the metrics are recorded on exit."""

    __slots__ = ("_measured", "_span", "_start", "_values", "token")

    def __init__(self, measured: Measured, values: Values, span: bool) -> None:
        self.token: Token[tuple[_Call, ...]] | None = None
        self._measured = measured
        self._values = values
        self._span = measured._traced if span else None
        self._start = 0.0

    def __enter__(self) -> _Call:
        if self._span is not None:
            self._span.__enter__()
        self._start = _perf()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._measured._record(self._values, _perf() - self._start, exc)
        if self._span is not None:
            self._span.__exit__(exc_type, exc, traceback)

    async def __aenter__(self) -> _Call:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)


class Measured:
    """The RED metrics of one operation; a decorator and a context manager.

    Built by `measured()`, which documents it. Since 0.2.0.
    """

    def __init__(
        self,
        name: str,
        *,
        labels: Sequence[str] = (),
        description: str | None = None,
        span: bool | str = False,
        backend: str | None = None,
        registry: Any = None,
        meter_provider: Any = None,
        buckets: Sequence[float] = DURATION_BUCKETS,
        max_label_sets: int = DEFAULT_MAX_LABEL_SETS,
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"measured(): name {name!r} must be a letter, then letters, digits, _")
        if isinstance(labels, str):
            raise TypeError("measured(): labels must be a sequence of names, not one string")
        labels = tuple(labels)
        for label in labels:
            if not isinstance(label, str) or not _LABEL.fullmatch(label):
                raise ValueError(f"measured(): label {label!r} is not a valid label name")
            if label in _RESERVED_LABELS:
                raise ValueError(f"measured(): label {label!r} is reserved")
        if len(set(labels)) != len(labels):
            raise ValueError(f"measured(): labels {labels!r} repeat a name")
        if type(max_label_sets) is not int or max_label_sets < 1:
            raise ValueError(f"max_label_sets must be a positive int, not {max_label_sets!r}")
        buckets = tuple(float(bound) for bound in buckets)
        if not buckets or list(buckets) != sorted(set(buckets)) or buckets[0] <= 0:
            raise ValueError("buckets must be positive, strictly increasing and not empty")
        if not isinstance(span, (bool, str)) or span == "":
            raise TypeError("measured(): span must be True, False or a span name")
        self.name = name
        self.label_names = labels
        self.description = description or f"Calls of {name}, by outcome."
        self._choice = backend_from_env() if backend is None else parse_backend("backend", backend)
        self._meter_provider = meter_provider
        self._buckets = buckets
        self._max_label_sets = max_label_sets
        self._traced: Any = None
        if span:
            from asgi_observe.tracing.spans import traced

            self._traced = traced(name if span is True else span)
        self._lock = threading.Lock()
        self._known: dict[Values, Values] = {}
        self._error_types: dict[type[BaseException], str] = {}
        self._entered: ContextVar[tuple[_Call, ...]] = ContextVar(
            f"asgi_observe.measured.{name}", default=()
        )
        # The Prometheus metrics are registered now, so a clash of names fails here; the
        # meter is chosen at the first call, once configure() has set a provider up.
        self._prometheus = None
        if self._choice != "otel":
            self._prometheus = PrometheusSeries(name, labels, self.description, registry, buckets)
        self._series: tuple[Any, ...] | None = None

    # --- as a decorator ----------------------------------------------------------------

    def __call__(self, func: F) -> F:
        """Measure every call of `func`: label values are its arguments of the same names."""
        if not callable(func):
            raise TypeError(f"measured(): cannot decorate {func!r}")
        picks = label_picks(func, self.label_names)
        # With span=True, the span is traced()'s own, around the function itself.
        target: Callable[..., Any] = func if self._traced is None else self._traced(func)

        def call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call:
            return _Call(self, self._bounded(tuple(pick(args, kwargs) for pick in picks)), False)

        if inspect.isasyncgenfunction(func):
            return cast(F, functools.wraps(func)(async_generator(target, call)))
        if inspect.isgeneratorfunction(func):
            return cast(F, functools.wraps(func)(generator(target, call)))
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with call(args, kwargs):
                    return await target(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with call(args, kwargs):
                return target(*args, **kwargs)

        return cast(F, wrapper)

    # --- as a context manager ----------------------------------------------------------

    def labels(self, **values: object) -> _Call:
        """A context manager (``with`` or ``async with``) measuring one call with these values."""
        if set(values) != set(self.label_names):
            raise ValueError(
                f"measured({self.name!r}): expected labels {sorted(self.label_names)}, "
                f"got {sorted(values)}"
            )
        return _Call(
            self, self._bounded(tuple(label_text(values[key]) for key in self.label_names)), True
        )

    def __enter__(self) -> Measured:
        if self.label_names:
            raise TypeError(f"measured({self.name!r}) has labels: enter .labels(...) instead")
        call = _Call(self, (), True)
        call.__enter__()
        # The call keeps the token that restores the stack to what it was before it.
        call.token = self._entered.set((*self._entered.get(), call))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        call = self._entered.get()[-1]
        if call.token is not None:
            self._entered.reset(call.token)
        call.__exit__(exc_type, exc, traceback)

    async def __aenter__(self) -> Measured:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    # --- recording ---------------------------------------------------------------------

    def _bounded(self, values: Values) -> Values:
        known = self._known.get(values)
        if known is not None:
            return known
        with self._lock:
            known = self._known.get(values)
            if known is None:
                if len(self._known) >= self._max_label_sets:
                    return (OVERFLOW,) * len(values)
                known = self._known[values] = values
        return known

    def _error_type(self, exc: BaseException) -> str:
        exc_type = type(exc)
        known = self._error_types.get(exc_type)
        if known is None:
            module, qualname = exc_type.__module__, exc_type.__qualname__
            known = qualname if module == "builtins" else f"{module}.{qualname}"
            with self._lock:
                if len(self._error_types) >= self._max_label_sets:
                    return OVERFLOW
                self._error_types[exc_type] = known
        return known

    def _record(self, values: Values, duration: float, exc: BaseException | None) -> None:
        try:
            series = self._series
            if series is None:
                series = self._series = self._resolve()
            if exc is None or isinstance(exc, GeneratorExit):
                outcome, error_type = SUCCESS, None  # GeneratorExit: the consumer stopped
            elif isinstance(exc, Exception):
                outcome, error_type = ERROR, self._error_type(exc)
            else:  # asyncio.CancelledError, KeyboardInterrupt, SystemExit
                outcome, error_type = CANCELLED, None
            for one in series:
                one.record(values, outcome, error_type, duration)
        except Exception:  # measuring must never change what the function does
            pass

    def _resolve(self) -> tuple[Any, ...]:
        prometheus, otel = resolve_backend(self._choice, meter_provider=self._meter_provider)
        series: list[Any] = []
        if prometheus and self._prometheus is not None:
            series.append(self._prometheus)
        if otel:
            series.append(
                OtelSeries(
                    self.name,
                    self.label_names,
                    self.description,
                    self._meter_provider,
                    self._buckets,
                )
            )
        return tuple(series)


@overload
def measured(name: F) -> F: ...


@overload
def measured(
    name: str,
    *,
    labels: Sequence[str] = (),
    description: str | None = None,
    span: bool | str = False,
    backend: str | None = None,
    registry: Any = None,
    meter_provider: Any = None,
    buckets: Sequence[float] = DURATION_BUCKETS,
    max_label_sets: int = DEFAULT_MAX_LABEL_SETS,
) -> Measured: ...


def measured(name: Any, **options: Any) -> Any:
    """Count calls by outcome, errors by type, and time them, for a function or a block.

    ``@measured("process_order", labels=["channel"])`` on a sync or async function, a
    generator or an async generator records, per call, into the same backends as the
    request metrics (``backend``: see `MetricsMiddleware`):

    - ``{name}_calls_total`` / ``{name}.calls``, by ``outcome``: ``success``, ``error``
      (an ``Exception``) or ``cancelled`` (``asyncio.CancelledError`` and other
      ``BaseException``); a generator closed early by its consumer is a success;
    - ``{name}_errors_total`` / ``{name}.errors``, by ``error_type`` / ``error.type``,
      the exception's class name;
    - ``{name}_duration_seconds`` / ``{name}.duration``, a histogram by ``outcome``.

    A decorated function's label values are its arguments of the same names (a label
    that is no parameter is an error, raised now). As a context manager:
    ``with m.labels(channel="web"):`` or, without labels, ``with m:`` (also ``async
    with``). Names are checked once, here; label values are text cut to 128 characters,
    and past `max_label_sets` distinct value sets, new ones count under ``_overflow``.

    Args:
        name: the metric base name: a letter, then letters, digits or ``_``.
        labels: label names whose values each call gives.
        description: the metrics' help text.
        span: also open a span, as `traced()` does (True: named `name`; or a name).
        backend: "prometheus", "otel", "both" or "auto" (None: the variable).
        registry: the prometheus-client registry (the default one when None).
        meter_provider: the meter provider (the global one when None).
        buckets: the duration histogram's buckets, in seconds.
        max_label_sets: the most distinct label value sets, and exception types, kept.

    Since 0.2.0.
    """
    if callable(name):
        return Measured(name.__name__)(name)
    return Measured(name, **options)

"""traced(): custom spans around functions, generators and blocks of code."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

__all__ = ["Traced", "traced"]

F = TypeVar("F", bound=Callable[..., Any])
_TRACER_NAME = "asgi_observe"


class _Entry:
    __slots__ = ("manager", "token")

    def __init__(self, manager: AbstractContextManager[Span]) -> None:
        self.manager = manager
        self.token: Token[tuple[_Entry, ...]] | None = None


class Traced:
    """A span name and attributes, usable as a decorator or a context manager.

    Built by `traced()`. As a context manager (``with`` or ``async with``) it yields
    the span; one instance may be entered again, nested or from concurrent tasks.
    Since 0.1.0.
    """

    def __init__(self, name: str | None, attributes: Mapping[str, AttributeValue] | None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"traced(): name must be a string, got {type(name).__name__}")
        self.name = name
        self.attributes = dict(attributes) if attributes else None
        self._entered: ContextVar[tuple[_Entry, ...]] | None = None

    def __call__(self, func: F) -> F:
        name = self.name or getattr(func, "__qualname__", None) or repr(func)
        if inspect.isasyncgenfunction(func):
            return cast(F, self._wrap_async_generator(func, name))
        if inspect.isgeneratorfunction(func):
            return cast(F, self._wrap_generator(func, name))
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with _tracer().start_as_current_span(name, attributes=self.attributes):
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _tracer().start_as_current_span(name, attributes=self.attributes):
                return func(*args, **kwargs)

        return cast(F, wrapper)

    def _wrap_generator(self, func: Callable[..., Generator[Any, Any, Any]], name: str) -> Any:
        # The span is current only while the generator body runs, never between items:
        # a context attached across a yield would leak into the consumer.
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            with self._ended_span(name) as context:
                generator = func(*args, **kwargs)
                try:
                    sent: Any = None
                    while True:
                        token = otel_context.attach(context)
                        try:
                            item = generator.send(sent)
                        except StopIteration as stop:
                            return stop.value
                        finally:
                            otel_context.detach(token)
                        sent = yield item
                finally:
                    generator.close()

        return wrapper

    def _wrap_async_generator(
        self, func: Callable[..., AsyncGenerator[Any, Any]], name: str
    ) -> Any:
        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            with self._ended_span(name) as context:
                generator = func(*args, **kwargs)
                try:
                    sent: Any = None
                    while True:
                        token = otel_context.attach(context)
                        try:
                            item = await generator.asend(sent)
                        except StopAsyncIteration:
                            return
                        finally:
                            otel_context.detach(token)
                        sent = yield item
                finally:
                    await generator.aclose()

        return wrapper

    @contextmanager
    def _ended_span(self, name: str) -> Iterator[otel_context.Context]:
        span = _tracer().start_span(name, attributes=self.attributes)
        try:
            yield trace.set_span_in_context(span)
        except Exception as exc:  # as start_as_current_span: Exception, not BaseException
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            span.end()

    def __enter__(self) -> Span:
        if self.name is None:
            raise TypeError("traced() needs a name when used as a context manager")
        if self._entered is None:
            self._entered = ContextVar(f"asgi_observe.traced.{self.name}", default=())
        manager = _tracer().start_as_current_span(self.name, attributes=self.attributes)
        span = manager.__enter__()
        entry = _Entry(manager)
        # The entry keeps the token that restores the stack to what it was before it.
        entry.token = self._entered.set((*self._entered.get(), entry))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._entered is not None, "__exit__ without __enter__"
        entry = self._entered.get()[-1]
        if entry.token is not None:
            self._entered.reset(entry.token)
        return entry.manager.__exit__(exc_type, exc, traceback)

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return self.__exit__(exc_type, exc, traceback)


@overload
def traced(name: F, attributes: None = None) -> F: ...


@overload
def traced(
    name: str | None = None, attributes: Mapping[str, AttributeValue] | None = None
) -> Traced: ...


def traced(
    name: str | F | None = None, attributes: Mapping[str, AttributeValue] | None = None
) -> Traced | F:
    """Trace a function, generator or block as a span of its own.

    Use as ``@traced``, ``@traced("name", {"key": "value"})`` on sync and async
    functions, generators and async generators (the name defaults to the function's
    qualified name), or as ``with traced("name") as span:`` / ``async with``. An
    exception is recorded on the span, which gets status ERROR, and propagates.

    Since 0.1.0.
    """
    if callable(name):
        return Traced(None, attributes)(name)
    return Traced(name, attributes)


def _tracer() -> trace.Tracer:
    # Looked up per call, so spans go to whichever provider is global by then.
    return trace.get_tracer(_TRACER_NAME)

"""How measured() reads a call: label values from the arguments, and generator wrappers."""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import AbstractContextManager
from typing import Any

MAX_LABEL_VALUE_LENGTH = 128

Pick = Callable[[tuple[Any, ...], dict[str, Any]], str]


def label_text(value: object) -> str:
    try:
        text = value if isinstance(value, str) else ("" if value is None else str(value))
    except Exception:
        text = f"<unprintable {type(value).__name__}>"
    return text[:MAX_LABEL_VALUE_LENGTH]


def label_picks(func: Callable[..., Any], labels: tuple[str, ...]) -> list[Pick]:
    if not labels:
        return []
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):
        raise TypeError(f"measured(): cannot read the parameters of {func!r}") from None
    names = list(parameters)
    picks = []
    for label in labels:
        parameter = parameters.get(label)
        if parameter is None or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ValueError(
                f"measured(): label {label!r} is not a parameter of {func.__qualname__}"
            )
        index = None if parameter.kind is parameter.KEYWORD_ONLY else names.index(label)
        default = None if parameter.default is parameter.empty else parameter.default
        picks.append(pick_of(label, index, default))
    return picks


def pick_of(name: str, index: int | None, default: object) -> Pick:
    def pick(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if name in kwargs:
            return label_text(kwargs[name])
        if index is not None and index < len(args):
            return label_text(args[index])
        return label_text(default)

    return pick


def generator(
    target: Callable[..., Generator[Any, Any, Any]],
    call: Callable[[tuple[Any, ...], dict[str, Any]], AbstractContextManager[Any]],
) -> Callable[..., Generator[Any, Any, Any]]:
    # One call lasts from the first item asked for to the last, or to an early close.
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        with call(args, kwargs):
            return (yield from target(*args, **kwargs))

    return wrapper


def async_generator(
    target: Callable[..., AsyncGenerator[Any, Any]],
    call: Callable[[tuple[Any, ...], dict[str, Any]], AbstractContextManager[Any]],
) -> Callable[..., AsyncGenerator[Any, Any]]:
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        with call(args, kwargs):
            generator = target(*args, **kwargs)
            try:
                sent: Any = None
                while True:
                    try:
                        item = await generator.asend(sent)
                    except StopAsyncIteration:
                        return
                    sent = yield item
            finally:
                await generator.aclose()

    return wrapper

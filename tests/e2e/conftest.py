"""Fixtures for end-to-end tests; the helpers live in e2e_harness.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_harness import Collector, EchoHandler, OTLPHandler, Recorder, serving


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[Collector]:
    """An OTLP/HTTP (protobuf) trace receiver; `.recorder` holds `ExportedSpan`s."""
    recorder = Recorder()
    with serving(OTLPHandler, recorder) as url:
        yield Collector(url=url, recorder=recorder)


@pytest.fixture(scope="session")
def echo_server() -> Iterator[Collector]:
    """A downstream service that records the headers of every request it gets."""
    recorder = Recorder()
    with serving(EchoHandler, recorder) as url:
        yield Collector(url=url, recorder=recorder)

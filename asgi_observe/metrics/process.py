"""process_* metrics for every worker of a multi-process server, labelled by pid.

prometheus-client's multi-process mode aggregates only the values workers write to
PROMETHEUS_MULTIPROC_DIR; the process and GC collectors read the process they run in,
so a scrape answered by one worker cannot speak for the others and they are left out.
Process facts can be read for any process from /proc, though: the worker answering the
scrape reads them for every live worker that writes to the same directory (the pids are
in the file names), one series per worker with a ``pid`` label, which sums correctly
(`sum by (instance) (rate(process_cpu_seconds_total[5m]))`). GC statistics exist only
inside each process and stay unavailable (docs/metrics.md, "Multi-process servers").
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector

__all__ = ["WorkerProcessCollector", "add_worker_collectors"]

# prometheus-client's file names: counter_<pid>.db, gauge_livesum_<pid>.db, ...
_PID_IN_NAME = re.compile(r"_(\d+)\.db$")


class WorkerProcessCollector:
    """Collect process_* for each live process with files in `directory`, by ``pid``."""

    def __init__(self, directory: str, *, proc: str = "/proc") -> None:
        self._directory = directory
        self._proc = proc

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for pid in self._worker_pids():
            collector = ProcessCollector(pid=_fixed(pid), proc=self._proc, registry=None)
            for family in collector.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(
                        family.name, family.documentation, family.type
                    )
                for sample in family.samples:
                    labels = {**sample.labels, "pid": str(pid)}
                    merged.add_sample(sample.name, labels, sample.value)
        return list(families.values())

    def _worker_pids(self) -> list[int]:
        pids = {os.getpid()}
        try:
            names = os.listdir(self._directory)
        except OSError:
            names = []
        for name in names:
            match = _PID_IN_NAME.search(name)
            if match is not None:
                pids.add(int(match.group(1)))
        # Files of workers that exited stay until the directory is cleared.
        return sorted(pid for pid in pids if os.path.exists(os.path.join(self._proc, str(pid))))


def _fixed(pid: int) -> Callable[[], int]:
    return lambda: pid


def add_worker_collectors(registry: Any, directory: str) -> None:
    """Register the per-worker process collector and python_info on `registry`."""
    from prometheus_client.platform_collector import PlatformCollector

    registry.register(WorkerProcessCollector(directory))
    PlatformCollector(registry=registry)  # python_info: the same in every worker

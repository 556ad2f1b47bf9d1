"""process_* per live worker of a multi-process directory, labelled by pid."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from asgi_observe.metrics.process import WorkerProcessCollector, add_worker_collectors

NO_SUCH_PID = 2**22 + 17  # above Linux's pid_max


def test_only_live_workers_with_files_are_read(tmp_path: Path) -> None:
    parent = os.getppid()
    for name in (f"counter_{parent}.db", f"gauge_livesum_{NO_SUCH_PID}.db", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    samples = [
        sample
        for family in WorkerProcessCollector(str(tmp_path)).collect()
        for sample in family.samples
        if sample.name == "process_resident_memory_bytes"
    ]
    assert sorted([str(os.getpid()), str(parent)]) == sorted(s.labels["pid"] for s in samples)
    assert all(sample.value > 0 for sample in samples)


def test_a_missing_directory_still_reports_this_process(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    add_worker_collectors(registry, str(tmp_path / "missing"))
    text = generate_latest(registry).decode()
    assert f'process_cpu_seconds_total{{pid="{os.getpid()}"}}' in text
    assert "python_info{" in text

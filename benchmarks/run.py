"""The one command: every benchmark, then the tables of ratios shown in docs/performance.md.

Run: `.venv/bin/python benchmarks/run.py` (about 20 minutes, 4 without step 3; `--quick`
for about 13, 2 without step 3)

1. the pytest-benchmark suite (`benchmarks/bench_*.py`, `--benchmark-enable`), its JSON kept;
2. perf_compare.py: every in-process row interleaved, and the in-process goals;
3. perf_instructions.py: instructions per request of the in-process rows under valgrind's
   callgrind, a load-independent second opinion on step 2 (skipped when valgrind is not
   installed, or with `--no-instructions`; `--quick` counts fewer rows);
4. perf_server.py: uvicorn + wrk on 127.0.0.1 for bare, ours and the peers;
5. perf_memory.py: resident memory over 200,000 requests.

Each step runs in a process of its own. The tables go to stdout and, with the machine and
the date, to `benchmarks/results/latest.md` (results are not committed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import perf_compare  # noqa: E402
import perf_instructions  # noqa: E402
import perf_memory  # noqa: E402
import perf_server  # noqa: E402

PACKAGES = (
    "opentelemetry-sdk",
    "opentelemetry-instrumentation-asgi",
    "sentry-sdk",
    "prometheus-client",
    "starlette-exporter",
    "asgi-correlation-id",
    "starlette",
    "uvicorn",
)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line for line in cpuinfo if line.startswith("model name")).split(":")[1]
    except (OSError, StopIteration):
        pass
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    return (
        f"{cpu.strip()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; {versions}"
    )


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def step(title: str, command: list[str]) -> None:
    print(f"\n== {title}: {shlex.join(command)}", flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter runs")
    parser.add_argument("--no-pytest", action="store_true", help="skip the pytest-benchmark suite")
    parser.add_argument(
        "--no-instructions", action="store_true", help="skip the callgrind instruction counts"
    )
    parser.add_argument("--no-server", action="store_true", help="skip uvicorn + wrk")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory run")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = load()

    if not args.no_pytest:
        step(
            "pytest-benchmark",
            [
                python,
                "-m",
                "pytest",
                "benchmarks",
                "-q",
                "-p",
                "no:cacheprovider",
                "--benchmark-enable",
                "--benchmark-columns=min,median,mean,rounds",
                f"--benchmark-json={args.out / 'pytest-benchmark.json'}",
            ],
        )
    rounds = "20" if args.quick else "60"
    compare = _run_json(python, "perf_compare.py", args.out / "compare.json", ["--rounds", rounds])
    sections = [perf_compare.table(compare)]
    if not args.no_instructions:
        sections += _instructions(python, args.out, quick=args.quick)
    if not args.no_server:
        duration, server_rounds = ("4", "1") if args.quick else ("8", "3")
        server = _run_json(
            python,
            "perf_server.py",
            args.out / "server.json",
            ["--duration", duration, "--rounds", server_rounds],
        )
        sections.append(perf_server.table(server))
    if not args.no_memory:
        requests = "50000" if args.quick else "200000"
        memory = _run_json(
            python, "perf_memory.py", args.out / "memory.json", ["--requests", requests]
        )
        sections.append(perf_memory.table(memory))

    header = (
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {machine()}. "
        f"Load average (1 min) {load_before} before, {load()} after."
    )
    report = "\n\n".join([header, *sections]) + "\n"
    (args.out / "latest.md").write_text(report)
    print("\n" + report)
    return 0


def _instructions(python: str, out: Path, *, quick: bool) -> list[str]:
    # Optional: valgrind is a system package, and CI machines may lack it.
    if shutil.which("valgrind") is None:
        print("\n== perf_instructions.py: skipped, valgrind is not installed", flush=True)
        return []
    options = ["--rows", *perf_instructions.QUICK_ROWS, "--batches", "5"] if quick else []
    result = _run_json(python, "perf_instructions.py", out / "instructions.json", options)
    return [perf_instructions.table(result)]


def _run_json(python: str, script: str, path: Path, options: list[str]) -> Any:
    step(script, [python, str(HERE / script), *options, "--json", str(path)])
    return json.loads(path.read_text())


if __name__ == "__main__":
    raise SystemExit(main())

"""Instructions per request for the in-process rows of stack_rows.py, counted by callgrind.

Run: `.venv/bin/python benchmarks/perf_instructions.py [--rows NAME ...] [--batches 10]
[--jobs 2] [--json FILE]` (needs valgrind; about 15 minutes for every row on 2 cores)

A second opinion next to perf_compare.py's times. On a machine that shares its host, time
medians drift by up to 2x between runs; the number of instructions a process executes is
the same for the same binary and inputs whatever the load. Instructions do not see what
time does (cache misses, mispredicted branches, the kernel's side of system calls such as
`os.urandom`), so time stays the primary measure.

Each row, and each unavoidable part, runs in a process of its own under
`valgrind --tool=callgrind`, twice: warm-up only, then warm-up and `--batches` batches of
`harness.BATCH` requests. The difference of the two totals divided by the requests is the
cost of one request: interpreter start-up, imports, building the row and warm-up cancel.

The same code counts the same to within about 1,000 instructions per request. A change
anywhere, even to code the rows never run, moves memory layout and can shift a row by a
percent or two: compare rows of one run, and read smaller differences between runs of
different code as noise. A row whose two runs saw different code is wrong by far more, so
the table says so when a file changed while it counted.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BATCH, Driver
from opentelemetry import propagate
from perf_compare import PARTS_RATIO_GOAL, PEER_FRACTION_GOAL, UNSAMPLED_PARTS_GOAL, holds_mark
from stack_rows import (
    ALL_PART_NAMES,
    BARE,
    OURS_FULL,
    OURS_FULL_EXCLUDED,
    OURS_UNSAMPLED,
    PART_NAMES,
    PEERS_FULL,
    PEERS_FULL_EXCLUDED,
    ROWS,
    SPAN_ONLY,
    SPAN_ONLY_EXCLUDED,
    UNSAMPLED_PART_NAMES,
    Environment,
    Parts,
    part_callables,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ROWS_BY_NAME = {row.name: row for row in ROWS}
QUICK_ROWS = (
    BARE,
    "ours: RequestIdMiddleware",
    "ours: TracingMiddleware, OTLP export",
    "ours: MetricsMiddleware",
    "ours: SentryMiddleware",
    OURS_FULL,
    OURS_FULL_EXCLUDED,
    OURS_UNSAMPLED,
    SPAN_ONLY,
    SPAN_ONLY_EXCLUDED,
    PEERS_FULL,
    PEERS_FULL_EXCLUDED,
)
WARM_UP = 3  # batches before the counted ones: lazy imports, caches, first-request setup
VALGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
_COLLECTED = re.compile(r"^==\d+== Collected : (\d+)\s*$", re.MULTILINE)


# --- the child: what valgrind runs -----------------------------------------------------


def child(name: str, batches: int) -> None:
    """Run `WARM_UP`, then `batches` batches of the row or part `name`, then tear down."""
    env = Environment()
    driver: Driver | None = None
    try:
        if name in ALL_PART_NAMES:
            batch: Callable[[], None] = part_callables(Parts(env))[name]
        else:
            row = ROWS_BY_NAME[name]
            propagate.set_global_textmap(row.textmap(env))
            view = row.environment(env)
            batch = driver = Driver(row.factory(view), row.scope, view.flush)
        for _ in range(WARM_UP):
            batch()
        # Whether a full collection falls among the counted batches depends on everything
        # allocated before them (imports, even this file's length); collecting here makes
        # it depend on the counted batches alone.
        gc.collect()
        for _ in range(batches):
            batch()
    finally:
        if driver is not None:
            driver.close()
        env.close()


# --- the parent: run the children under valgrind ---------------------------------------


def parse_collected(stderr: str) -> int:
    """The total from callgrind's `==PID== Collected : N` line."""
    match = _COLLECTED.search(stderr)
    if match is None:
        raise ValueError(f"no 'Collected' line in valgrind's output:\n{stderr[-2000:]}")
    return int(match.group(1))


def per_request(base: int, measured: int, batches: int) -> float:
    """Instructions per request from the warm-up-only and the counted run's totals."""
    if batches < 1:
        raise ValueError(f"batches must be at least 1, got {batches}")
    return (measured - base) / (batches * BATCH)


def count(command: Sequence[str]) -> int:
    """Instructions `command` executes, all threads, as callgrind counts them."""
    environment = {
        **os.environ,
        # str and bytes hashes are salted per process unless fixed: dict and set layouts,
        # hence the instruction count, would change from one run to the next.
        "PYTHONHASHSEED": "0",
        # A run that writes a .pyc would make the next one load instead of compile; with
        # no writes, both runs of a row see the same cache.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        [*VALGRIND, *command], capture_output=True, text=True, env=environment, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(command)} exited {done.returncode} under valgrind:\n{done.stderr[-2000:]}"
        )
    return parse_collected(done.stderr)


def _child_command(name: str, batches: int) -> list[str]:
    return [sys.executable, str(HERE / "perf_instructions.py"), "--child", name, str(batches)]


def prepare(names: Iterable[str], jobs: int) -> None:
    """Run each child once without valgrind, `jobs` at a time.

    A broken row fails here in a second rather than after minutes under valgrind. Unless
    PYTHONDONTWRITEBYTECODE is set, the modules the children import also get an up-to-date
    .pyc, so the counted runs do not compile them under valgrind.
    """
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        runs = pool.map(
            lambda name: subprocess.run(
                _child_command(name, 0), capture_output=True, text=True, check=False
            ),
            names,
        )
        for done in runs:
            if done.returncode != 0:
                raise RuntimeError(
                    f"{shlex.join(done.args)} exited {done.returncode}:\n{done.stderr[-2000:]}"
                )


def count_child(name: str, batches: int) -> int:
    started = time.monotonic()
    total = count(_child_command(name, batches))
    print(
        f"  {name}, {batches} batches: {total:,} instructions ({time.monotonic() - started:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    return total


def count_all(names: Iterable[str], batches: int, jobs: int) -> dict[str, dict[str, int]]:
    """Both totals of every name, at most `jobs` valgrind processes at a time."""
    names = list(names)
    # The long counted runs first, so the short ones fill in at the end.
    runs = [(name, batches) for name in names] + [(name, 0) for name in names]
    totals: dict[tuple[str, int], int] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures: dict[Future[int], tuple[str, int]] = {
            pool.submit(count_child, name, n): (name, n) for name, n in runs
        }
        try:
            for future in as_completed(futures):
                totals[futures[future]] = future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return {name: {"base": totals[name, 0], "measured": totals[name, batches]} for name in names}


def measure(names: Sequence[str], batches: int, jobs: int = 2) -> dict[str, Any]:
    """Count `names` (bare Starlette is always added) and the parts; see `summarize`."""
    rows = list(dict.fromkeys(names))
    everything = [*([] if BARE in rows else [BARE]), *rows, *ALL_PART_NAMES]
    before = source_digest()
    prepare(everything, jobs)
    result = summarize(count_all(everything, batches, jobs), batches)
    return {
        "valgrind": _valgrind_version(),
        "code_changed": source_digest() != before,
        **result,
    }


def source_digest() -> str:
    """A digest of the Python files of the package and the benchmarks."""
    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("asgi_observe/**/*.py"), *ROOT.glob("benchmarks/*.py")]):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def summarize(totals: dict[str, dict[str, int]], batches: int) -> dict[str, Any]:
    """Per-request figures, overheads over bare Starlette and the goals, from the totals.

    `totals` maps each row and part name to its warm-up-only (`base`) and counted
    (`measured`) totals; it must hold bare Starlette and the parts. A goal whose rows were
    not counted is left out.
    """
    rows: dict[str, dict[str, Any]] = {
        name: {**counts, "per_request": per_request(counts["base"], counts["measured"], batches)}
        for name, counts in totals.items()
    }
    bare = rows[BARE]["per_request"]
    for name, row in rows.items():
        if name not in ALL_PART_NAMES:
            row["added"] = row["per_request"] - bare
    parts = sum(rows[name]["per_request"] for name in PART_NAMES)
    goals: dict[str, Any] = {}
    for key, ours_name, peers_name in (
        ("peer_fraction", OURS_FULL, PEERS_FULL),
        ("peer_fraction_excluded", OURS_FULL_EXCLUDED, PEERS_FULL_EXCLUDED),
    ):
        if ours_name in rows and peers_name in rows:
            fraction = rows[ours_name]["added"] / rows[peers_name]["added"]
            goals[key] = {
                "value": fraction,
                "goal": PEER_FRACTION_GOAL,
                "holds": fraction <= PEER_FRACTION_GOAL,
            }
    if OURS_FULL_EXCLUDED in rows:
        ours = rows[OURS_FULL_EXCLUDED]["added"]
        goals["parts_ratio"] = {
            "value": ours / parts,
            "parts": parts,
            "goal": PARTS_RATIO_GOAL,
            "holds": ours / parts <= PARTS_RATIO_GOAL,
        }
    if OURS_UNSAMPLED in rows:
        unsampled = rows[OURS_UNSAMPLED]["added"]
        unsampled_parts = sum(rows[name]["per_request"] for name in UNSAMPLED_PART_NAMES)
        goals["unsampled"] = {
            "value": unsampled,
            "parts": unsampled_parts,
            "parts_ratio": unsampled / unsampled_parts,
            "goal": UNSAMPLED_PARTS_GOAL,
            "holds": unsampled / unsampled_parts <= UNSAMPLED_PARTS_GOAL,
        }
    return {
        "batches": batches,
        "batch": BATCH,
        "warm_up": WARM_UP,
        "rows": rows,
        "goals": goals,
    }


def _valgrind_version() -> str:
    done = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


def table(result: dict[str, Any]) -> str:
    rows = result["rows"]
    peers = rows[PEERS_FULL]["added"] if PEERS_FULL in rows else None
    lines = [
        f"Instructions per request (callgrind, {result['batches']} batches of "
        f"{result['batch']} requests after {result['warm_up']} warm-up batches).",
        "",
    ]
    if result.get("code_changed"):
        lines += [
            "**A Python file of the package or the benchmarks changed while this counted: a "
            "row's two runs may have seen different code. Count again.**",
            "",
        ]
    lines += [
        "| in-process row | instructions/request | added over bare Starlette | x of peer stack's |",
        "|---|---:|---:|---:|",
    ]
    for name, row in rows.items():
        if name in ALL_PART_NAMES:
            continue
        added = row["added"]
        share = "" if name == BARE or peers is None else f"{added / peers:.3f}"
        lines.append(f"| {name} | {row['per_request']:,.0f} | {added:,.0f} | {share} |")
    lines += ["", "| unavoidable part | instructions/request |", "|---|---:|"]
    lines += [f"| {name} | {rows[name]['per_request']:,.0f} |" for name in ALL_PART_NAMES]
    goals = result["goals"]
    if goals:
        lines += [
            "",
            "| goal, by instructions | measured | target | holds |",
            "|---|---:|---:|---|",
        ]
    for key, label in (
        ("peer_fraction", "observe() full adds / peer stack adds, OTLP export"),
        ("peer_fraction_excluded", "... export excluded (issue 8)"),
    ):
        if key in goals:
            fraction = goals[key]
            lines.append(
                f"| {label} | {fraction['value']:.3f} | "
                f"<= {fraction['goal']} | {holds_mark(fraction['holds'])} |"
            )
    if "parts_ratio" in goals:
        parts = goals["parts_ratio"]
        lines.append(
            f"| observe() full adds, export excluded / sum of parts ({parts['parts']:,.0f}) | "
            f"{parts['value']:.2f}x | <= {parts['goal']}x | {holds_mark(parts['holds'])} |"
        )
    if "unsampled" in goals:
        unsampled = goals["unsampled"]
        lines += [
            f"| unsampled request adds / sum of its parts ({unsampled['parts']:,.0f}) | "
            f"{unsampled['parts_ratio']:.2f}x | <= {unsampled['goal']}x | "
            f"{holds_mark(unsampled['holds'])} |",
            "",
            "The parts of an unsampled request are the calls any stack with these features "
            "makes (unsampled span, traceparent, histogram, id, Sentry scope forks).",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="rows:\n" + "\n".join(f"  {name}" for name in ROWS_BY_NAME),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        default=[row.name for row in ROWS],
        metavar="NAME",
        help="rows of stack_rows.ROWS to count, by name (default: all); "
        "bare Starlette and the unavoidable parts are always counted",
    )
    parser.add_argument(
        "--batches", type=int, default=10, help="counted batches per row (default: 10)"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="valgrind processes at a time (default: 2)"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    # Internal: the process valgrind runs, `--child NAME BATCHES`.
    parser.add_argument("--child", nargs=2, metavar=("NAME", "BATCHES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    known = [*ROWS_BY_NAME, *ALL_PART_NAMES] if args.child else list(ROWS_BY_NAME)
    for name in [args.child[0]] if args.child else args.rows:
        if name not in known:
            parser.error(f"unknown row {name!r}; the rows are: {', '.join(map(repr, known))}")
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    if args.batches < 1 or args.jobs < 1:
        parser.error("--batches and --jobs must be at least 1")
    if shutil.which("valgrind") is None:
        print(
            "perf_instructions.py: valgrind is not installed (apt-get install valgrind); "
            "nothing counted.",
            file=sys.stderr,
        )
        return 0
    result = measure(args.rows, args.batches, args.jobs)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Every row of stack_rows.py in one process, interleaved, and the ratios the issue asks for.

Run: `.venv/bin/python benchmarks/perf_compare.py [--rounds 40] [--json FILE]`

Each round runs one batch of `harness.BATCH` requests per row, rows shuffled anew every
round, so load from other processes falls on all rows alike; the per-request figure of
a row is the median of its rounds. Overheads are over the bare Starlette app.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BATCH, Driver, interleaved
from opentelemetry import propagate
from stack_rows import (
    ALL_PART_NAMES,
    BARE,
    OURS_FULL,
    OURS_UNSAMPLED,
    PART_NAMES,
    PEERS_FULL,
    ROWS,
    UNSAMPLED_PART_NAMES,
    Environment,
    Parts,
    part_callables,
)

# The goals for the in-process rows.
PEER_FRACTION_GOAL = 0.10  # observe() full adds at most a tenth of the peer stack
PARTS_RATIO_GOAL = 1.3  # and at most 1.3x the sum of its unavoidable parts
UNSAMPLED_GOAL_US = 10.0  # an unsampled request adds under 10 us


def measure(rounds: int) -> dict[str, Any]:
    env = Environment()
    drivers: list[Driver] = []
    try:
        batches: dict[str, Any] = {}
        for row in ROWS:
            driver = Driver(row.factory(env), row.scope, env.flush)
            drivers.append(driver)
            batches[row.name] = _with_textmap(driver, row.textmap(env))
        batches.update(part_callables(Parts(env)))
        for batch in batches.values():
            batch()  # warm-up: lazy imports, caches, first-request setup
        samples = interleaved(batches, rounds)
    finally:
        for driver in drivers:
            driver.close()
        env.close()
    return summarize(samples, rounds)


def _with_textmap(driver: Driver, textmap: Any) -> Any:
    def batch() -> None:
        propagate.set_global_textmap(textmap)  # outside the timed requests' own work
        driver()

    return batch


def summarize(samples: dict[str, list[float]], rounds: int) -> dict[str, Any]:
    per_request = {
        name: {
            "median_us": statistics.median(times) / BATCH * 1e6,
            "min_us": min(times) / BATCH * 1e6,
        }
        for name, times in samples.items()
    }
    bare = per_request[BARE]["median_us"]
    for name in samples:
        if name not in ALL_PART_NAMES:
            per_request[name]["overhead_us"] = per_request[name]["median_us"] - bare
    ours = per_request[OURS_FULL]["overhead_us"]
    peers = per_request[PEERS_FULL]["overhead_us"]
    parts = sum(per_request[name]["median_us"] for name in PART_NAMES)
    unsampled = per_request[OURS_UNSAMPLED]["overhead_us"]
    unsampled_parts = sum(per_request[name]["median_us"] for name in UNSAMPLED_PART_NAMES)
    return {
        "rounds": rounds,
        "batch": BATCH,
        "rows": per_request,
        "goals": {
            "peer_fraction": {
                "value": ours / peers,
                "goal": PEER_FRACTION_GOAL,
                "holds": ours / peers <= PEER_FRACTION_GOAL,
            },
            "parts_ratio": {
                "value": ours / parts,
                "parts_us": parts,
                "goal": PARTS_RATIO_GOAL,
                "holds": ours / parts <= PARTS_RATIO_GOAL,
            },
            "unsampled_us": {
                "value": unsampled,
                "parts_us": unsampled_parts,
                "goal": UNSAMPLED_GOAL_US,
                "holds": unsampled < UNSAMPLED_GOAL_US,
            },
        },
    }


def table(result: dict[str, Any]) -> str:
    rows = result["rows"]
    peers = rows[PEERS_FULL]["overhead_us"]
    lines = [
        "| in-process row | us/request (median) | min | added over bare Starlette | "
        "x of peer stack's |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        if name in ALL_PART_NAMES:
            continue
        added = row["overhead_us"]
        share = "" if name == BARE else f"{added / peers:.3f}"
        lines.append(
            f"| {name} | {row['median_us']:.1f} | {row['min_us']:.1f} | {added:.1f} | {share} |"
        )
    lines += ["", "| unavoidable part | us (median) | min |", "|---|---:|---:|"]
    lines += [
        f"| {name} | {rows[name]['median_us']:.2f} | {rows[name]['min_us']:.2f} |"
        for name in ALL_PART_NAMES
    ]
    goals = result["goals"]
    fraction, parts, unsampled = (
        goals["peer_fraction"],
        goals["parts_ratio"],
        goals["unsampled_us"],
    )
    lines += [
        "",
        "| goal | measured | target | holds |",
        "|---|---:|---:|---|",
        f"| observe() full adds / peer stack adds | {fraction['value']:.3f} | "
        f"<= {fraction['goal']} | {holds_mark(fraction['holds'])} |",
        f"| observe() full adds / sum of parts ({parts['parts_us']:.1f} us) | "
        f"{parts['value']:.2f}x | <= {parts['goal']}x | {holds_mark(parts['holds'])} |",
        f"| unsampled request adds | {unsampled['value']:.1f} us | < {unsampled['goal']:.0f} us "
        f"| {holds_mark(unsampled['holds'])} |",
        "",
        f"The calls any unsampled request with these features makes (unsampled span, "
        f"traceparent, histogram, id, Sentry scope forks) sum to {unsampled['parts_us']:.1f} us; "
        f"the unsampled row adds {unsampled['value'] / unsampled['parts_us']:.2f}x that.",
    ]
    return "\n".join(lines)


def holds_mark(holds: bool) -> str:
    """The 'holds' cell of a goals table."""
    return "yes" if holds else "**no**"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    result = measure(args.rounds)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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
    OURS_FULL_EXCLUDED,
    OURS_UNSAMPLED,
    PART_NAMES,
    PEERS_FULL,
    PEERS_FULL_EXCLUDED,
    ROWS,
    UNSAMPLED_PART_NAMES,
    Environment,
    Parts,
    part_callables,
)

# The goals for the in-process rows.
PEER_FRACTION_GOAL = 0.10  # observe() full, exporting, adds at most a tenth of the peer stack
PARTS_RATIO_GOAL = 1.3  # issue 8: export excluded, at most 1.3x the sum of its parts
UNSAMPLED_PARTS_GOAL = 1.5  # issue 17: an unsampled request, at most 1.5x its parts


def measure(rounds: int) -> dict[str, Any]:
    env = Environment()
    drivers: list[Driver] = []
    try:
        batches: dict[str, Any] = {}
        for row in ROWS:
            view = row.environment(env)
            driver = Driver(row.factory(view), row.scope, view.flush)
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
    excluded = per_request[OURS_FULL_EXCLUDED]["overhead_us"]
    peers_excluded = per_request[PEERS_FULL_EXCLUDED]["overhead_us"]
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
            "peer_fraction_excluded": {
                "value": excluded / peers_excluded,
                "goal": PEER_FRACTION_GOAL,
                "holds": excluded / peers_excluded <= PEER_FRACTION_GOAL,
            },
            "parts_ratio": {
                "value": excluded / parts,
                "parts_us": parts,
                "goal": PARTS_RATIO_GOAL,
                "holds": excluded / parts <= PARTS_RATIO_GOAL,
            },
            "unsampled_us": {
                "value": unsampled,
                "parts_us": unsampled_parts,
                "ratio": unsampled / unsampled_parts,
                "goal": UNSAMPLED_PARTS_GOAL,
                "holds": unsampled / unsampled_parts <= UNSAMPLED_PARTS_GOAL,
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
    fraction, excluded, parts, unsampled = (
        goals["peer_fraction"],
        goals["peer_fraction_excluded"],
        goals["parts_ratio"],
        goals["unsampled_us"],
    )
    lines += [
        "",
        "| goal | measured | target | holds |",
        "|---|---:|---:|---|",
        f"| observe() full adds / peer stack adds, OTLP export | {fraction['value']:.3f} | "
        f"<= {fraction['goal']} | {holds_mark(fraction['holds'])} |",
        f"| ... export excluded (issue 8) | {excluded['value']:.3f} | "
        f"<= {excluded['goal']} | {holds_mark(excluded['holds'])} |",
        f"| observe() full adds, export excluded / sum of parts ({parts['parts_us']:.1f} us) | "
        f"{parts['value']:.2f}x | <= {parts['goal']}x | {holds_mark(parts['holds'])} |",
        f"| unsampled request adds / sum of its parts ({unsampled['parts_us']:.1f} us) | "
        f"{unsampled['ratio']:.2f}x ({unsampled['value']:.1f} us) | <= {unsampled['goal']}x "
        f"| {holds_mark(unsampled['holds'])} |",
        "",
        "The parts of an unsampled request are the calls any stack with these features makes "
        "(unsampled span, traceparent, histogram, id, Sentry scope forks).",
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

"""perf_instructions.py: the child runs, the parser and the arithmetic hold, without valgrind.

The one test that counts under valgrind is skipped where valgrind is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import perf_instructions
import pytest
from harness import BATCH
from perf_instructions import (
    count,
    parse_collected,
    per_request,
    source_digest,
    summarize,
    table,
)
from stack_rows import (
    BARE,
    BARE_RAW,
    OURS_FULL,
    OURS_FULL_EXCLUDED,
    OURS_UNSAMPLED,
    PART_ID,
    PART_ISOLATION,
    PART_METRICS,
    PART_PARSE,
    PART_SPAN,
    PART_UNSAMPLED_SPAN,
    PEERS_FULL,
    PEERS_FULL_EXCLUDED,
)

SCRIPT = Path(__file__).resolve().parent / "perf_instructions.py"

# What callgrind 3.19 writes to stderr for `python -S -c pass`.
CALLGRIND_STDERR = "\n".join(
    [
        "==5420== Callgrind, a call-graph generating cache profiler",
        "==5420== Copyright (C) 2002-2017, and GNU GPL'd, by Josef Weidendorfer et al.",
        "==5420== Using Valgrind-3.19.0 and LibVEX; rerun with -h for copyright info",
        "==5420== Command: .venv/bin/python -S -c pass",
        "==5420== ",
        "==5420== For interactive control, run 'callgrind_control -h'.",
        "==5420== ",
        "==5420== Events    : Ir",
        "==5420== Collected : 27685442",
        "==5420== ",
        "==5420== I   refs:      27,685,442",
        "",
    ]
)


def _child(name: str, batches: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--child", name, batches],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize("name", [BARE_RAW, PART_ID])
def test_child_runs_a_row_and_a_part_cleanly(name: str) -> None:
    """What valgrind runs exits 0 and writes nothing to stderr (no warning, no log)."""
    done = _child(name, "1")
    assert (0, "") == (done.returncode, done.stderr)


def test_child_rejects_an_unknown_row() -> None:
    done = _child("no such row", "1")
    assert 2 == done.returncode
    assert "unknown row 'no such row'" in done.stderr


def test_parse_collected_reads_callgrinds_total() -> None:
    assert 27_685_442 == parse_collected(CALLGRIND_STDERR)


def test_parse_collected_skips_the_programs_own_lines() -> None:
    """Only valgrind's `==PID==` line counts, not a line the program under test wrote."""
    assert 27_685_442 == parse_collected("Collected : 12\n" + CALLGRIND_STDERR)


def test_parse_collected_raises_without_a_total() -> None:
    with pytest.raises(ValueError, match="no 'Collected' line"):
        parse_collected("valgrind: failed to start tool 'callgrind' for platform 'amd64-linux'\n")


def test_per_request_divides_the_difference_by_the_requests() -> None:
    assert 150.0 == per_request(1_000_000, 1_000_000 + 2 * BATCH * 150, batches=2)


def test_per_request_needs_a_counted_batch() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        per_request(1_000, 2_000, batches=0)


# Instructions per request of each part: 20 for the sampled ones, 15 for the unsampled ones.
PARTS = {
    PART_SPAN: 10,
    PART_METRICS: 6,
    PART_ID: 4,
    PART_UNSAMPLED_SPAN: 3,
    PART_PARSE: 1,
    PART_ISOLATION: 1,
}


def _totals(per_request: dict[str, int]) -> dict[str, dict[str, int]]:
    """Totals of one counted batch giving these per-request figures, over a start-up cost."""
    return {
        name: {"base": 10**9, "measured": 10**9 + figure * BATCH}
        for name, figure in per_request.items()
    }


def test_summarize_computes_overheads_and_goals() -> None:
    rows = {
        BARE: 100,
        OURS_FULL: 140,
        OURS_FULL_EXCLUDED: 120,
        OURS_UNSAMPLED: 118,
        PEERS_FULL: 500,
        PEERS_FULL_EXCLUDED: 400,
    }
    result = summarize(_totals({**rows, **PARTS}), batches=1)
    added = {name: result["rows"][name]["added"] for name in rows}
    assert {
        BARE: 0.0,
        OURS_FULL: 40.0,
        OURS_FULL_EXCLUDED: 20.0,
        OURS_UNSAMPLED: 18.0,
        PEERS_FULL: 400.0,
        PEERS_FULL_EXCLUDED: 300.0,
    } == added
    assert {
        "peer_fraction": {"value": 0.1, "goal": 0.1, "holds": True},
        "peer_fraction_excluded": {"value": 20 / 300, "goal": 0.1, "holds": True},
        "parts_ratio": {"value": 1.0, "parts": 20.0, "goal": 1.3, "holds": True},
        "unsampled": {"value": 18.0, "parts": 15.0, "parts_ratio": 1.2, "goal": 1.5, "holds": True},
    } == result["goals"]


def test_goals_whose_rows_were_not_counted_are_left_out() -> None:
    result = summarize(_totals({BARE: 100, **PARTS}), batches=1)
    assert {} == result["goals"]
    assert "| goal" not in table(result)


def test_table_warns_when_the_code_changed_while_counting() -> None:
    result = summarize(_totals({BARE: 100, **PARTS}), batches=1)
    assert "changed while this counted" not in table({**result, "code_changed": False})
    assert "changed while this counted" in table({**result, "code_changed": True})


def test_source_digest_changes_with_any_package_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "asgi_observe" / "sub" / "module.py"
    module.parent.mkdir(parents=True)
    module.write_text("A = 1\n")
    monkeypatch.setattr(perf_instructions, "ROOT", tmp_path)
    before = source_digest()
    module.write_text("A = 2\n")
    assert before != source_digest()


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_count_sees_more_work_as_more_instructions() -> None:
    """A loop of 100,000 additions costs at least one instruction each."""
    idle = count([sys.executable, "-S", "-c", "pass"])
    busy = count([sys.executable, "-S", "-c", "sum(range(100_000))"])
    assert busy - idle > 100_000

"""The package passes ruff and mypy (strict) as configured in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.quality


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_check_is_clean() -> None:
    result = run(str(BIN / "ruff"), "check", "asgi_observe", "tests", "benchmarks", "examples")
    assert 0 == result.returncode, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = run(
        str(BIN / "ruff"), "format", "--check", "asgi_observe", "tests", "benchmarks", "examples"
    )
    assert 0 == result.returncode, result.stdout + result.stderr


def test_mypy_strict_on_the_package_is_clean() -> None:
    result = run(str(BIN / "mypy"))
    assert 0 == result.returncode, result.stdout + result.stderr

"""Throughput through a real server, uvicorn (one worker) and wrk on 127.0.0.1: bare, ours, peers.

Run: `.venv/bin/python benchmarks/perf_server.py [--duration 8] [--rounds 3] [--json FILE]`

Each round starts uvicorn for each app in turn (the order rotates every round), warms it
up, runs `wrk -t1 -c32` against `GET /users/42` with a sampled `traceparent`, and stops
the server. The figure of an app is the median requests/s of its rounds. Everything
listens on 127.0.0.1 on a free port; every server is stopped, whatever happens. wrk is
Debian's package: when it is missing and we are root, `apt-get install -y wrk` installs it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from otlp_receiver import Receiver  # noqa: E402
from perf_apps import APPS, ENDPOINT_VARIABLE  # noqa: E402
from stack_rows import SAMPLED  # noqa: E402

GOAL_FRACTION = 0.7  # observe() exporting keeps at least 70% of the bare app's throughput
GOAL_APP = "ours_otlp"
PATH = "/users/42"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
_REQUESTS_PER_S = re.compile(r"Requests/sec:\s+([0-9.]+)")
_LATENCY = re.compile(r"Latency\s+([0-9.]+)(us|ms|s)\b")
_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing: install Debian's package (apt-get install wrk)")
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=env, capture_output=True, timeout=300).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
        subprocess.run(install, env=env, capture_output=True, timeout=300, check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def server(app: str, port: int, endpoint: str) -> Iterator[tuple[str, int]]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        f"perf_apps:{app}",
        "--factory",
        "--app-dir",
        str(HERE),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "asyncio",
        "--http",
        "h11",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    # A process group of its own, so stopping it never reaches anything else.
    environment = {**os.environ, ENDPOINT_VARIABLE: endpoint}
    process = subprocess.Popen(command, start_new_session=True, env=environment)
    url = f"http://127.0.0.1:{port}{PATH}"
    try:
        _wait_until_serving(url, process)
        yield url, process.pid
    finally:
        _stop(process)


def _wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"uvicorn did not answer {url} within {START_TIMEOUT_S} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT_S)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (from /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def wrk(binary: str, url: str, duration: float, connections: int) -> dict[str, float]:
    command = [
        binary,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "-H",
        f"traceparent: {SAMPLED.decode()}",
        url,
    ]
    timeout = duration + 30
    output = subprocess.run(command, capture_output=True, text=True, timeout=timeout).stdout
    rate = _REQUESTS_PER_S.search(output)
    latency = _LATENCY.search(output)
    if rate is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    result = {"requests_per_s": float(rate.group(1))}
    if latency is not None:
        result["latency_avg_us"] = float(latency.group(1)) * _UNITS[latency.group(2)]
    return result


def measure(duration: float, rounds: int, connections: int, warmup: float) -> dict[str, Any]:
    binary = ensure_wrk()
    samples: dict[str, list[dict[str, float]]] = {app: [] for app in APPS}
    order = list(APPS)
    with Receiver() as receiver:
        received = _rounds(binary, receiver, order, samples, rounds, duration, connections, warmup)
    return _summary(samples, duration, rounds, connections, received)


def _rounds(
    binary: str,
    receiver: Receiver,
    order: list[str],
    samples: dict[str, list[dict[str, float]]],
    rounds: int,
    duration: float,
    connections: int,
    warmup: float,
) -> dict[str, int]:
    for _ in range(rounds):
        for app in order:
            with server(app, free_port(), receiver.endpoint) as (url, pid):
                wrk(binary, url, warmup, connections)
                cpu_before = cpu_seconds(pid)
                sample = wrk(binary, url, duration, connections)
                requests = sample["requests_per_s"] * duration
                # CPU per request is what the server itself spent: robust to other load.
                sample["cpu_us_per_request"] = (cpu_seconds(pid) - cpu_before) / requests * 1e6
                samples[app].append(sample)
        order = order[1:] + order[:1]
    return receiver.stats()


def _summary(
    samples: dict[str, list[dict[str, float]]],
    duration: float,
    rounds: int,
    connections: int,
    received: dict[str, int],
) -> dict[str, Any]:
    rates = {
        app: statistics.median(sample["requests_per_s"] for sample in runs)
        for app, runs in samples.items()
    }
    cpu = {
        app: statistics.median(sample["cpu_us_per_request"] for sample in runs)
        for app, runs in samples.items()
    }
    fraction = rates[GOAL_APP] / rates["bare"]
    return {
        "received": received,
        "duration_s": duration,
        "rounds": rounds,
        "connections": connections,
        "samples": samples,
        "requests_per_s": rates,
        "cpu_us_per_request": cpu,
        "fraction_of_bare": {app: rate / rates["bare"] for app, rate in rates.items()},
        "goal": {"value": fraction, "goal": GOAL_FRACTION, "holds": fraction >= GOAL_FRACTION},
    }


NAMES = {
    "bare": "bare Starlette",
    "floor_otlp": "floor: one sampled SDK span, nothing else, OTLP export",
    "ours_otlp": "observe() full, sampled, OTLP export",
    "peers_otlp": "peer stack (4 middlewares), OTLP export",
    "ours": "observe() full, sampled, export excluded",
}


def table(result: dict[str, Any]) -> str:
    lines = [
        f"| uvicorn + wrk (-c{result['connections']}, {result['duration_s']:.0f} s x "
        f"{result['rounds']}) | requests/s (median) | of bare | server CPU us/request | "
        "CPU added over bare |",
        "|---|---:|---:|---:|---:|",
    ]
    cpu = result["cpu_us_per_request"]
    for app, rate in result["requests_per_s"].items():
        share = result["fraction_of_bare"][app]
        lines.append(
            f"| {NAMES[app]} | {rate:,.0f} | {share:.0%} | {cpu[app]:.0f} | "
            f"{cpu[app] - cpu['bare']:.0f} |"
        )
    goal = result["goal"]
    holds = "yes" if goal["holds"] else "**no**"
    lines += [
        "",
        "| goal | measured | target | holds |",
        "|---|---:|---:|---|",
        f"| observe() full, OTLP export, keeps of bare throughput | {goal['value']:.0%} | "
        f">= {goal['goal']:.0%} | {holds} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    result = measure(args.duration, args.rounds, args.connections, args.warmup)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

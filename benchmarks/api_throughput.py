"""Full-pipeline throughput against a loopback OpenAI-compatible server.

Starts `tests/loopback_server.py` in its own process (20 ms latency per request), runs
`valuescope.pipeline.run` through the `openai/` backend (cache writes included) at
concurrency 64 and, side by side, at concurrency 1, and prints queries per second and
client CPU per query. Target: >= 300 queries/s at concurrency 64.

    python benchmarks/api_throughput.py [--outcomes main] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from valuescope.config import RunConfig
from valuescope.pipeline import Progress, run

ROOT = Path(__file__).resolve().parent.parent


class Timer(Progress):
    """Times the elicitation phase: from the first question to the last answer."""

    def start(self, total: int, description: str) -> None:
        self.total = total
        self.t0 = time.perf_counter()
        self.cpu0 = _cpu()

    def advance(self, n: int) -> None:
        self.t1 = time.perf_counter()
        self.cpu1 = _cpu()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("loopback server did not start")


def measure(base_url: str, outcomes: str, concurrency: int, budget: int | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        timer = Timer()
        config = RunConfig(
            model="openai/bench",
            base_url=base_url,
            outcomes=outcomes,
            concurrency=concurrency,
            budget=budget,
            design="random",
            bootstrap=0,
            batch_size=max(256, 4 * concurrency),
            out=Path(tmp) / "run",
        )
        metrics = run(config, progress=timer).metrics
    seconds = timer.t1 - timer.t0
    return {
        "concurrency": concurrency,
        "queries": metrics["n_queries"],
        "seconds": round(seconds, 2),
        "queries_per_s": round(metrics["n_queries"] / seconds, 1),
        "client_cpu_ms_per_query": round(
            1000 * (timer.cpu1 - timer.cpu0) / metrics["n_queries"], 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outcomes", default="main")
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "loopback_server.py"),
            "--port",
            str(port),
            "--latency",
            str(args.latency),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(port)
        base_url = f"http://127.0.0.1:{port}/v1"
        fast = measure(base_url, args.outcomes, 64, None)
        slow = measure(base_url, args.outcomes, 1, 100 if args.outcomes == "demo" else 600)
    finally:
        server.terminate()
        server.wait()
    print(f"{'concurrency':>11} {'queries':>8} {'seconds':>8} {'q/s':>8} {'client CPU ms/q':>16}")
    for row in (fast, slow):
        print(
            f"{row['concurrency']:>11} {row['queries']:>8} {row['seconds']:>8} "
            f"{row['queries_per_s']:>8} {row['client_cpu_ms_per_query']:>16}"
        )
    summary = {
        "benchmark": "api_throughput",
        "latency_s": args.latency,
        "queries_per_s_c64": fast["queries_per_s"],
        "queries_per_s_c1": slow["queries_per_s"],
        "speedup_c64_vs_c1": round(fast["queries_per_s"] / slow["queries_per_s"], 1),
        "client_cpu_ms_per_query": fast["client_cpu_ms_per_query"],
        "target_met": fast["queries_per_s"] >= 300,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

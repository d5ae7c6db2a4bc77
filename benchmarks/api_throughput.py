"""Full-pipeline throughput against a loopback OpenAI-compatible server.

Starts `tests/loopback_server.py` in its own process (20 ms latency per request), runs
`valuescope.runcore.pipeline.run` through the `openai/` backend (cache writes included) at
concurrency 64 and, side by side, at concurrency 1, and prints queries per second and
client CPU per query. Target: >= 300 queries/s at concurrency 64.

A second server makes every 100th reply take 2 s more ("1% slow"); the same run at
concurrency 64 against it, next to the first, gives the slowdown one slow reply in a
hundred causes. Target: at most 1.2x (requests stream: a slow reply holds one slot).
With a fixed number in flight and the client not CPU-bound, throughput = concurrency /
mean request time (Little's law), so the slowdown is 1 + 1% x 2 s / (mean request time
without slow replies); the summary prints that figure next to the measured one.
`--repeat N` alternates the two cases N times and compares the median runs.

    python benchmarks/api_throughput.py [--outcomes main] [--latency 0.02] [--repeat 3]
                                        [--skip-c1]
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
from valuescope.runcore.pipeline import Progress, run

ROOT = Path(__file__).resolve().parent.parent
SLOW_SHARE, SLOW_SECONDS = 0.01, 2.0  # the slow case: 1% of replies take 2 s more


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


def _serve(latency: float, *extra: str) -> tuple[subprocess.Popen, str]:
    """A loopback server in its own process, and its base URL once it listens."""
    port = _free_port()
    script = str(ROOT / "tests" / "loopback_server.py")
    server = subprocess.Popen(
        [sys.executable, script, "--port", str(port), "--latency", str(latency), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait(port)
    return server, f"http://127.0.0.1:{port}/v1"


def _median_run(rows: list[dict]) -> dict:
    """The run with the median throughput (of an odd number of repeats)."""
    return sorted(rows, key=lambda r: r["queries_per_s"])[len(rows) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outcomes", default="main")
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--repeat", type=int, default=1, help="alternate the two cases N times")
    parser.add_argument("--skip-c1", action="store_true", help="no concurrency-1 run")
    args = parser.parse_args()
    servers = []
    fast_runs, slow_runs = [], []
    try:
        server, base_url = _serve(args.latency)
        servers.append(server)
        slow = ["--slow-every", str(round(1 / SLOW_SHARE)), "--slow-latency", str(SLOW_SECONDS)]
        server, slow_url = _serve(args.latency, *slow)
        servers.append(server)
        for _ in range(args.repeat):  # alternated, so a change in machine load hits both
            fast_runs.append(measure(base_url, args.outcomes, 64, None))
            slow_runs.append(measure(slow_url, args.outcomes, 64, None))
        c1 = None
        if not args.skip_c1:
            c1 = measure(base_url, args.outcomes, 1, 100 if args.outcomes == "demo" else 600)
    finally:
        for server in servers:
            server.terminate()
            server.wait()
    print(
        f"{'case':>12} {'concurrency':>11} {'queries':>8} {'seconds':>8} {'q/s':>8} "
        f"{'client CPU ms/q':>16}"
    )
    rows = [("no slow", r) for r in fast_runs] + [("1% take 2 s", r) for r in slow_runs]
    for case, row in rows + ([("no slow", c1)] if c1 else []):
        print(
            f"{case:>12} {row['concurrency']:>11} {row['queries']:>8} {row['seconds']:>8} "
            f"{row['queries_per_s']:>8} {row['client_cpu_ms_per_query']:>16}"
        )
    fast, stalled = _median_run(fast_runs), _median_run(slow_runs)
    slowdown = round(fast["queries_per_s"] / stalled["queries_per_s"], 2)
    request_s = 64 / fast["queries_per_s"]  # mean time in flight of one request
    summary = {
        "benchmark": "api_throughput",
        "latency_s": args.latency,
        "repeats": args.repeat,
        "queries_per_s_c64": fast["queries_per_s"],
        "queries_per_s_c64_1pct_slow": stalled["queries_per_s"],
        "slowdown_1pct_slow": slowdown,
        "mean_request_ms": round(1000 * request_s, 1),
        # if the 64 slots (not the CPU) bound the run: 1 + 1% x 2 s / mean request time
        "slowdown_if_slot_bound": round(1 + SLOW_SHARE * SLOW_SECONDS / request_s, 2),
        "client_cpu_ms_per_query": fast["client_cpu_ms_per_query"],
        "target_met": fast["queries_per_s"] >= 300 and slowdown <= 1.2,
    }
    if c1:
        summary["queries_per_s_c1"] = c1["queries_per_s"]
        summary["speedup_c64_vs_c1"] = round(fast["queries_per_s"] / c1["queries_per_s"], 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""Local engine vs Ray engine on the same machine: what running through Ray costs.

Runs the full pipeline (`valuescope.runcore.pipeline.run`, fresh cache, bootstrap off) with each
engine and times the elicitation phase (first question to last answer, fits between
active-design rounds included, the same for every engine):

- `sim/thurstone` on the `main` set (503 outcomes, ~20k queries): answers cost nothing,
  so the difference is the engine's own overhead per query and per round;
- `embedded/smollm2-135m` on 10 `demo` outcomes (44 queries): a real model, whose time
  per query dwarfs the overhead.

Ray runs on a local instance started once (`ray.init(num_cpus=2)`, timed separately),
with the actor-pool strategy (one pool per run) and, for the sim rows, the Ray Data
strategy (a new `map_batches` actor pool per elicitation round). A second table times the
engines alone with the actors already started (steady state). Prints markdown tables and a
one-line JSON summary with the Ray/local ratios.

    python benchmarks/engine_overhead.py            # about 3 minutes on 2 cores
    python benchmarks/engine_overhead.py --quick    # demo set instead of main for sim
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from valuescope.config import RunConfig
from valuescope.elicit import ElicitSettings, ResponseCache, get_template
from valuescope.elicit.elicit import ask, build_queries
from valuescope.engine.ray_engine import RayEngine
from valuescope.models import get_backend
from valuescope.outcomes import load_outcomes
from valuescope.runcore.pipeline import Progress, plan, run
from valuescope.runcore.plan import backend_options


class Timer(Progress):
    """Times the elicitation phase: from the first question to the last answer."""

    def start(self, total: int, description: str) -> None:
        self.t0 = self.t1 = time.perf_counter()

    def advance(self, n: int) -> None:
        self.t1 = time.perf_counter()


def measure(config: RunConfig, strategy: str = "actors") -> dict:
    """One run: elicitation seconds, queries asked, workers."""
    the_plan = plan(config)
    timer = Timer()
    os.environ["VALUESCOPE_RAY_STRATEGY"] = strategy  # read by make_engine
    try:
        result = run(the_plan, progress=timer)
    finally:
        os.environ.pop("VALUESCOPE_RAY_STRATEGY", None)
    m = result.metrics
    return {
        "seconds": timer.t1 - timer.t0,
        "queries": m["n_queries_new"],
        "total_queries": m["n_queries"],
        "utilities": result.utilities["mean"].to_numpy(),
    }


def steady(model: str, n_queries: int, workers: int, batch: int, tmp: Path) -> dict:
    """Engine-level timing with the Ray actors already started (no start-up in the figure).

    The same `n_queries` queries (random `main` pairs, both orders) are answered through
    `elicit.ask` into a fresh cache by the local engine, then by a warm Ray engine.
    """
    texts = load_outcomes("main").texts
    rng = np.random.default_rng(0)
    a = rng.integers(0, len(texts), n_queries)
    b = (a + rng.integers(1, len(texts), n_queries)) % len(texts)
    pairs = np.stack([a, b], axis=1)[: n_queries // 2]
    queries = build_queries(texts, pairs, get_template("default"), ElicitSettings())
    options = backend_options(RunConfig(model=model))
    backend = get_backend(model, **options)
    with ResponseCache(tmp / f"steady-local-{n_queries}.sqlite") as cache:
        t = time.perf_counter()
        ask(backend, queries, cache, batch_size=batch)
        local = time.perf_counter() - t
    engine = RayEngine(model, options, workers=workers)
    try:
        with ResponseCache(tmp / f"steady-warmup-{n_queries}.sqlite") as cache:
            t = time.perf_counter()  # starts the actors (and loads the model in each)
            ask(backend, queries[:workers], cache, batch_size=1, engine=engine)
            start = time.perf_counter() - t
        with ResponseCache(tmp / f"steady-ray-{n_queries}.sqlite") as cache:
            t = time.perf_counter()
            answers, _ = ask(backend, queries, cache, batch_size=batch, engine=engine)
            remote = time.perf_counter() - t
    finally:
        engine.close()
    return {
        "model": model,
        "queries": len(queries),
        "local_s": round(local, 3),
        "ray_warm_s": round(remote, 3),
        "ratio": round(remote / local, 2),
        "overhead_ms_per_query": round(1000 * (remote - local) / len(queries), 3),
        "actor_start_s": round(start, 2),
        "same_answers": [x.p_a for x in answers] == [x.p_a for x in backend.answer(queries)]
        if len(queries) <= 200
        else None,
    }


def print_table(rows: list[dict]) -> None:
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in cols) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="demo set for the sim rows")
    parser.add_argument("--workers", type=int, default=2, help="Ray model workers")
    parser.add_argument("--no-embedded", action="store_true", help="skip the SmolLM2 rows")
    args = parser.parse_args()

    import ray

    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_init = time.perf_counter() - t

    tmp = Path(tempfile.mkdtemp(prefix="engine-overhead-"))
    ten = tmp / "ten.txt"
    ten.write_text("\n".join(load_outcomes("demo").texts[:10]) + "\n", encoding="utf-8")
    sim_set = "demo" if args.quick else "main"
    cases = [("sim/thurstone", sim_set, None, ("local", "ray:actors", "ray:data"))]
    if not args.no_embedded:
        cases.append(("embedded/smollm2-135m", str(ten), 20, ("local", "ray:actors")))

    rows = []
    for model, outcomes, budget, engines in cases:
        base = None
        for label in engines:
            engine, _, strategy = label.partition(":")
            config = RunConfig(
                model=model,
                outcomes=outcomes,
                budget=budget,
                out=tmp / f"{model.replace('/', '_')}-{label.replace(':', '_')}",
                bootstrap=0,
                seed=0,
                engine=engine,
                ray_workers=args.workers if engine == "ray" else None,
            )
            r = measure(config, strategy or "actors")
            base = base or r
            same = bool((r["utilities"] == base["utilities"]).all())
            rows.append(
                {
                    "model": model,
                    "outcomes": Path(outcomes).stem,
                    "engine": label,
                    "workers": args.workers if engine == "ray" else 1,
                    "queries": r["queries"],
                    "seconds": round(r["seconds"], 2),
                    "q_per_s": round(r["queries"] / r["seconds"], 1),
                    "ratio": round(r["seconds"] / base["seconds"], 2),
                    "overhead_ms_per_query": round(
                        1000 * (r["seconds"] - base["seconds"]) / r["queries"], 3
                    ),
                    "same_utilities": same,
                }
            )
    warm = [steady("sim/thurstone", 4000 if args.quick else 20000, args.workers, 256, tmp)]
    if not args.no_embedded:
        warm.append(steady("embedded/smollm2-135m", 64, args.workers, 256, tmp))
    ray.shutdown()

    print("Full runs (elicitation phase, Ray start-up excluded, actor start-up included):\n")
    print_table(rows)
    print("\nSteady state (actors already started), the same queries through `elicit.ask`:\n")
    print_table(warm)
    ratio = {f"{r['model'].split('/')[1]}:{r['engine']}": r["ratio"] for r in rows}
    summary = {
        "ray_init_seconds": round(ray_init, 2),
        "ratio_ray_to_local": ratio,
        "ratio_warm": {r["model"].split("/")[1]: r["ratio"] for r in warm},
        "overhead_ms_per_query_warm": {
            r["model"].split("/")[1]: r["overhead_ms_per_query"] for r in warm
        },
        "same_utilities": all(r["same_utilities"] for r in rows),
        "same_answers_warm": all(r["same_answers"] in (True, None) for r in warm),
        "load_start": round(load0, 2),
        "load_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

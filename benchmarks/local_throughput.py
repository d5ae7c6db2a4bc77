"""Queries per second of the llama.cpp backend: naive loop, prefix reuse, batched prompts.

All passes use the same loaded model and the same logprob queries (random `demo` pairs,
both orders). The naive loop resets the context before each query, evaluates the whole
prompt in one batch and reads the last logits. `prefix reuse` is the backend with
`batch=1`: it keeps the KV cache and evaluates only the aligned chunks after the longest
common prefix with the previous prompt, taking each call's prompts in token order.
`batched` is the backend's default: `--seqs` prompts per llama.cpp call, one sequence
each, sharing the cached prefix and their common chunks. The three alternate `--repeat`
times (the machine's load moves single runs); prints a table per round, the load average,
the ratios of the summed times and one JSON line, with the largest difference in P(A)
between the batched and the one-at-a-time backend (they should agree to 1e-4). Each
pass also records the process's CPU time: with `threads=1` it is the work done,
whatever share of the cores the machine's other jobs leave, so its ratios move less
with the load than the wall-clock ones.

    python benchmarks/local_throughput.py --model embedded/smollm2-135m --pairs 128
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from valuescope.elicit import ElicitSettings, get_template
from valuescope.elicit.elicit import build_queries
from valuescope.models import get_backend
from valuescope.models.base import Query
from valuescope.models.llamacpp import softmax
from valuescope.outcomes import load_outcomes


def demo_queries(n_pairs: int, seed: int, template_name: str) -> list[Query]:
    """Logprob queries for `n_pairs` distinct random demo pairs, both orders."""
    texts = load_outcomes("demo").texts
    n = len(texts)
    rng = np.random.default_rng(seed)
    upper = np.argwhere(np.triu(np.ones((n, n), dtype=bool), 1))
    pairs = upper[rng.choice(len(upper), min(n_pairs, len(upper)), replace=False)]
    template = get_template(template_name)
    return build_queries(texts, pairs, template, ElicitSettings(mode="logprob"))


def naive_loop(backend, queries: list[Query]) -> list[float]:
    """P(A) per query the plain way: reset, evaluate the whole prompt at once, softmax."""
    ids_a, ids_b = backend.label_token_ids(("A", "B"))
    out = []
    for q in queries:
        tokens = backend.render(q.messages)
        backend.clear()
        backend.llm.eval(tokens)
        p = softmax(backend.next_token_logits())
        out.append(float(p[ids_a].sum() / (p[ids_a].sum() + p[ids_b].sum())))
    return out


def timed(fn, *args) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0, result


def with_backend(backend, queries: list[Query], batch_size: int, seqs: int) -> list[float]:
    """P(A) per query from the backend (`seqs` prompts per llama.cpp call), in batches as
    the pipeline sends them."""
    backend.clear()
    backend.batch = seqs
    answers = []
    for start in range(0, len(queries), batch_size):
        answers += backend.answer(queries[start : start + batch_size])
    return [a.p_a for a in answers]


def load() -> float:
    """The 1-minute load average."""
    return round(os.getloadavg()[0], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded/smollm2-135m")
    parser.add_argument("--pairs", type=int, default=128, help="distinct pairs (x2 orders)")
    parser.add_argument("--batch-size", type=int, default=256, help="queries per answer() call")
    parser.add_argument("--template", default="default", help="a prompt template name")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seqs", type=int, default=None, help="prompts per llama.cpp call")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the three passes")
    args = parser.parse_args()
    queries = demo_queries(args.pairs, args.seed, args.template)
    backend = get_backend(args.model)
    seqs = args.seqs or backend.batch
    prompt_tokens = sum(len(backend.render(q.messages)) for q in queries)
    backend.answer(queries[:2])  # warm-up
    n = len(queries)
    loads = [load()]
    total = {"naive": 0.0, "prefix reuse": 0.0, "batched": 0.0}
    cpu_total = dict.fromkeys(total, 0.0)
    tokens = {"naive": prompt_tokens}
    diffs, diffs_naive = [], []
    print(f"{backend.name}, {n} queries, threads={backend.threads}, batched: {seqs} per call")
    for round_ in range(args.repeat):
        times, cpu = {}, {}
        times["naive"], cpu["naive"], p_naive = timed(naive_loop, backend, queries)
        for method, k in (("prefix reuse", 1), ("batched", seqs)):
            before = backend.tokens_evaluated
            times[method], cpu[method], p = timed(
                with_backend, backend, queries, args.batch_size, k
            )
            tokens[method] = backend.tokens_evaluated - before
            if method == "prefix reuse":
                p_single = p
            else:
                diffs.append(float(np.max(np.abs(np.subtract(p, p_single)))))
                diffs_naive.append(float(np.max(np.abs(np.subtract(p, p_naive)))))
        loads.append(load())
        print(f"round {round_ + 1}, load average {loads[-2]} -> {loads[-1]}")
        print(f"{'method':<14}{'seconds':>10}{'CPU s':>8}{'queries/s':>12}{'tokens evaluated':>18}")
        for method, t in times.items():
            total[method] += t
            cpu_total[method] += cpu[method]
            print(f"{method:<14}{t:>10.1f}{cpu[method]:>8.1f}{n / t:>12.2f}{tokens[method]:>18}")
    ratio = {m: round(total["naive"] / t, 2) for m, t in total.items()}
    cpu_ratio = {m: round(cpu_total["naive"] / t, 2) for m, t in cpu_total.items()}
    print(f"time ratios to naive over {args.repeat} round(s): {ratio}; CPU time: {cpu_ratio}")
    summary = {
        "model": args.model,
        "template": args.template,
        "threads": backend.threads,
        "seqs": seqs,
        "queries": n,
        "repeat": args.repeat,
        "load_averages": loads,
        "qps": {m: round(n * args.repeat / t, 3) for m, t in total.items()},
        "ratio_to_naive": ratio,
        "cpu_seconds": {m: round(t, 1) for m, t in cpu_total.items()},
        "cpu_ratio_to_naive": cpu_ratio,
        "batched_over_reuse": round(total["prefix reuse"] / total["batched"], 2),
        "tokens_evaluated": tokens,
        "max_abs_diff_p_a_batched_vs_single": max(diffs),
        "max_abs_diff_p_a_batched_vs_naive": max(diffs_naive),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

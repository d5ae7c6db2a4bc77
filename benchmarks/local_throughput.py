"""Queries per second of the llama.cpp backend: prefix reuse vs evaluating every prompt.

Both passes use the same loaded model and the same logprob queries (random `demo` pairs,
both orders). The naive loop resets the context before each query, evaluates the whole
prompt in one batch and reads the last logits; the backend (sent batches as the pipeline
sends them) keeps the KV cache and evaluates only the aligned chunks after the longest
common prefix with the previous prompt, taking each batch in token order. Prints a table
and one JSON line.

    python benchmarks/local_throughput.py --model embedded/smollm2-135m --pairs 128
"""

from __future__ import annotations

import argparse
import json
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


def timed(fn, *args) -> tuple[float, object]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def with_reuse(backend, queries: list[Query], batch_size: int) -> list[float]:
    """P(A) per query from the backend, in batches as the pipeline sends them."""
    backend.clear()
    answers = []
    for start in range(0, len(queries), batch_size):
        answers += backend.answer(queries[start : start + batch_size])
    return [a.p_a for a in answers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded/smollm2-135m")
    parser.add_argument("--pairs", type=int, default=128, help="distinct pairs (x2 orders)")
    parser.add_argument("--batch-size", type=int, default=256, help="queries per answer() call")
    parser.add_argument("--template", default="default", help="a prompt template name")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    queries = demo_queries(args.pairs, args.seed, args.template)
    backend = get_backend(args.model)
    prompt_tokens = sum(len(backend.render(q.messages)) for q in queries)
    backend.answer(queries[:2])  # warm-up
    t_naive, p_naive = timed(naive_loop, backend, queries)
    before = backend.tokens_evaluated
    t_reuse, p_reuse = timed(with_reuse, backend, queries, args.batch_size)
    evaluated = backend.tokens_evaluated - before
    n = len(queries)
    print(f"{backend.name}, {n} queries, threads={backend.threads}")
    print(f"{'method':<14}{'seconds':>10}{'queries/s':>12}{'tokens evaluated':>18}")
    print(f"{'naive':<14}{t_naive:>10.1f}{n / t_naive:>12.2f}{prompt_tokens:>18}")
    print(f"{'prefix reuse':<14}{t_reuse:>10.1f}{n / t_reuse:>12.2f}{evaluated:>18}")
    summary = {
        "model": args.model,
        "template": args.template,
        "threads": backend.threads,
        "queries": n,
        "naive_qps": round(n / t_naive, 3),
        "reuse_qps": round(n / t_reuse, 3),
        "ratio": round(t_naive / t_reuse, 2),
        "token_ratio": round(prompt_tokens / evaluated, 2),
        "max_abs_diff_p_a": float(np.max(np.abs(np.subtract(p_naive, p_reuse)))),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

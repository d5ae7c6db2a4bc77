"""Several logprob prompts in one llama.cpp call give the answers of one prompt at a time."""

from __future__ import annotations

import numpy as np
import pytest

from valuescope.errors import UnknownModelError
from valuescope.models.base import Query
from valuescope.models.llamacpp import backend_kwargs


def test_batch_parameter_is_checked():
    assert backend_kwargs({"batch": "4"})["batch"] == 4
    assert backend_kwargs({})["batch"] > 1  # batching is the default
    with pytest.raises(UnknownModelError, match="parameter batch: expected a number at least 1"):
        backend_kwargs({"batch": "0"}, provider="embedded/smollm2-135m")


# the rest runs the small embedded model
llama_cpp = pytest.importorskip(
    "llama_cpp",
    reason="llama-cpp-python is not installed (bash scripts/install-models.sh)",
    exc_type=ModuleNotFoundError,
)

from valuescope.elicit import ElicitSettings, get_template  # noqa: E402
from valuescope.elicit.elicit import build_queries  # noqa: E402
from valuescope.models.llamacpp import LlamaCppBackend  # noqa: E402
from valuescope.outcomes import load_outcomes  # noqa: E402

TEST_MODEL = "smollm2-135m"
LONG = (
    "A city of two million people switches its whole bus fleet to electric buses "
    "over five years, paid for by a tax on parking, and air pollution falls by a third"
)


@pytest.fixture(scope="module")
def single(gguf) -> LlamaCppBackend:
    return LlamaCppBackend(gguf, batch=1, threads=1)


@pytest.fixture(scope="module")
def many(gguf) -> LlamaCppBackend:
    return LlamaCppBackend(gguf, batch=8, threads=1)


def queries(n_pairs: int) -> list[Query]:
    """Logprob queries of different lengths: random demo pairs and a long outcome."""
    texts = [*load_outcomes("demo").texts, LONG]
    rng = np.random.default_rng(1)
    pairs = [rng.choice(len(texts) - 1, 2, replace=False) for _ in range(n_pairs)]
    pairs += [np.array([len(texts) - 1, 0]), np.array([3, len(texts) - 1])]
    settings = ElicitSettings(mode="logprob")
    out = build_queries(texts, np.array(pairs), get_template("default"), settings)
    labels12 = build_queries(texts, np.array(pairs[:2]), get_template("labels-12"), settings)
    return out + labels12


@pytest.fixture(scope="module")
def alone(single) -> tuple[list[Query], list]:
    """The test queries and their answers one prompt at a time (computed once)."""
    qs = queries(6)
    return qs, [single.answer([q])[0] for q in qs]


@pytest.mark.slow  # real-model batches (20 s); the plan is replayed on tokens (test_streams_plan)
def test_batched_answers_equal_one_prompt_at_a_time(single, many, alone):
    qs, one = alone
    lengths = {len(single.render(q.messages)) for q in qs}
    assert len(lengths) >= 6 and max(lengths) - min(lengths) > 16
    before = many.tokens_evaluated
    together = many.answer(qs)
    assert many.tokens_evaluated - before < sum(a.tokens_in for a in together)
    np.testing.assert_allclose([a.p_a for a in together], [a.p_a for a in one], atol=1e-4, rtol=0)
    np.testing.assert_allclose([a.mass for a in together], [a.mass for a in one], atol=1e-4)
    assert [a.tokens_in for a in together] == [a.tokens_in for a in one]
    # another grouping (reversed, after other prompts filled the cache) gives the same
    again = many.answer(qs[::-1])[::-1]
    np.testing.assert_allclose([a.p_a for a in again], [a.p_a for a in one], atol=1e-4, rtol=0)


@pytest.mark.slow  # real-model batches; the plan is replayed on tokens (test_streams_plan)
def test_groups_too_big_for_the_context_are_split(gguf, alone):
    qs, want = alone
    small = LlamaCppBackend(gguf, batch=16, threads=1, n_ctx=320)
    got = small.answer(qs)
    np.testing.assert_allclose([a.p_a for a in got], [a.p_a for a in want], atol=1e-4, rtol=0)


def test_sample_queries_in_a_batched_call_still_sample(many):
    qs = queries(2)[:3]
    sample = Query(
        messages=qs[0].messages,
        option_a=qs[0].option_a,
        option_b=qs[0].option_b,
        mode="sample",
        max_tokens=4,
        temperature=0.0,
    )
    answers = many.answer([qs[0], sample, qs[1], qs[2]])
    assert answers[1].text is not None and answers[1].p_a is None
    assert all(a.p_a is not None for a in (answers[0], answers[2], answers[3]))
    assert "batch" not in many.name  # answers do not depend on it, so the cache key neither


@pytest.mark.slow  # real-model sampling; test_hf_backend samples a real model fast
def test_samples_of_one_prompt_equal_samples_asked_one_at_a_time(gguf, single, many):
    """The prompt is evaluated once for all its samples; every text is unchanged."""
    texts = load_outcomes("demo").texts
    settings = ElicitSettings(mode="sample", samples=4, temperature=1.0)
    qs = build_queries(texts, np.array([[0, 1], [2, 3]]), get_template("default"), settings)
    counts = []
    for backend in (single, many):
        backend.clear()
        before = backend.tokens_evaluated
        if backend is single:
            alone = [backend.answer([q])[0] for q in qs]
        else:
            together = backend.answer(qs[::-1])[::-1]  # any order: grouped by prompt
        counts.append(backend.tokens_evaluated - before)
    assert [a.text for a in together] == [a.text for a in alone]
    assert [a.tokens_out for a in together] == [a.tokens_out for a in alone]
    assert counts[1] < counts[0]  # the prompt's last chunk is not evaluated again per sample
    assert len({a.text for a in together}) > len(qs) // 2  # the sample index reseeds
    reseeded = LlamaCppBackend(gguf, seed=1, batch=8, threads=1).answer(qs)
    assert [a.text for a in reseeded] != [a.text for a in together]

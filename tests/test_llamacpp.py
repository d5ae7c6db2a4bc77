"""The llama.cpp backend on the small embedded model (SmolLM2-135M, the model for tests)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

# a missing extra skips this module (CI fails on that skip); a broken one is an error
llama_cpp = pytest.importorskip(
    "llama_cpp",
    reason="llama-cpp-python is not installed (bash scripts/install-models.sh)",
    exc_type=ModuleNotFoundError,
)

from valuescope.elicit import ElicitSettings, get_template  # noqa: E402
from valuescope.elicit.elicit import build_queries  # noqa: E402
from valuescope.models import get_backend  # noqa: E402
from valuescope.models.llamacpp import LlamaCppBackend  # noqa: E402
from valuescope.outcomes import load_outcomes  # noqa: E402

TEST_MODEL = "smollm2-135m"


def assert_one_line_error(proc, fragment: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert fragment in lines[0]


@pytest.fixture(scope="module")
def backend(gguf) -> LlamaCppBackend:
    return LlamaCppBackend(gguf, seed=0)


def demo_queries(n_pairs: int, mode: str = "logprob", samples: int = 1):
    texts = load_outcomes("demo").texts
    rng = np.random.default_rng(0)
    pairs = np.array([rng.choice(len(texts), 2, replace=False) for _ in range(n_pairs)])
    settings = ElicitSettings(mode=mode, samples=samples)
    return build_queries(texts, pairs, get_template("default"), settings)


def test_answer_tokens_are_single_letters(backend):
    for letter in ("A", "B"):
        ids = backend.answer_ids[letter]
        assert ids
        for tok in ids:
            assert backend.llm.detokenize([tok]).decode().strip() == letter
    assert not set(backend.answer_ids["A"]) & set(backend.answer_ids["B"])
    assert " A" in {backend.llm.detokenize([t]).decode() for t in backend.answer_ids["A"]}


def test_logprob_answers_are_probabilities(backend):
    answers = backend.answer(demo_queries(4))
    assert len(answers) == 8
    for a in answers:
        assert 0.0 <= a.p_a <= 1.0
        assert 0.0 < a.mass <= 1.0
        assert a.tokens_in > 20 and a.text is None


def test_prompt_uses_the_models_chat_template(backend):
    q = demo_queries(1)[0]
    text = backend.llm.detokenize(backend.render(q.messages), special=True).decode()
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert text.endswith("<|im_start|>assistant\nI would prefer Option")


@pytest.mark.slow  # real-model timing; the reuse plan is replayed on tokens (test_streams_plan)
def test_prefix_reuse_matches_fresh_evaluation_and_is_faster(gguf, backend):
    queries = demo_queries(4)
    fresh = LlamaCppBackend(gguf, reuse=False)
    fresh.answer(queries[:1])  # warm up both before timing
    backend.answer(queries[:1])
    t0 = time.perf_counter()
    slow = fresh.answer(queries)
    t_fresh = time.perf_counter() - t0
    before = backend.tokens_evaluated
    t0 = time.perf_counter()
    fast = backend.answer(queries)
    t_reuse = time.perf_counter() - t0
    evaluated = backend.tokens_evaluated - before
    np.testing.assert_allclose([a.p_a for a in fast], [a.p_a for a in slow], atol=1e-4)
    np.testing.assert_allclose([a.mass for a in fast], [a.mass for a in slow], atol=1e-4)
    total = sum(a.tokens_in for a in slow)
    assert evaluated < 0.7 * total
    print(f"prefix reuse: {t_fresh:.2f} s -> {t_reuse:.2f} s, {total} -> {evaluated} tokens")
    assert t_reuse < t_fresh


@pytest.mark.slow  # real-model sampling (5 s); test_hf_backend samples a real model fast
def test_sample_mode_reproduces(backend):
    queries = demo_queries(2, mode="sample", samples=3)
    first = backend.answer(queries)
    again = backend.answer(queries[::-1])[::-1]
    assert [a.text for a in first] == [a.text for a in again]
    assert all(a.text.startswith("I would prefer Option") for a in first)
    assert all(1 <= a.tokens_out <= queries[0].max_tokens for a in first)
    other_seed = LlamaCppBackend(backend.path, seed=1)
    assert other_seed.name != backend.name


def test_name_tracks_file_and_prefill(gguf, backend):
    size = gguf.stat().st_size
    want = f"llamacpp/{gguf.name}?prefill=I%20would%20prefer%20Option&repack=0#bytes={size}"
    assert backend.name == want
    plain = get_backend(f"llamacpp/{gguf}?prefill=&seed=3", seed=5)  # the run seed is ignored
    assert plain.name == f"llamacpp/{gguf.name}?prefill=&seed=3&repack=0#bytes={size}"
    q = demo_queries(1)[0]
    assert plain.render(q.messages)[-2:] != backend.render(q.messages)[-2:]


def test_repack_is_off_unless_asked_and_names_the_answers(gguf, backend):
    # llama.cpp's repacked kernels give other answers, so they get another cache name
    assert backend.llm.model_params.use_extra_bufts is False
    repacked = get_backend(f"llamacpp/{gguf}?repack=on&threads=1")
    assert repacked.llm.model_params.use_extra_bufts is True
    assert repacked.name == backend.name.replace("&repack=0", "&repack=1")
    plain = get_backend(f"llamacpp/{gguf}?repack=off&threads=1")
    assert plain.name == backend.name and plain.llm.model_params.use_extra_bufts is False


@pytest.mark.report
@pytest.mark.slow  # a CLI run on the real model (11 s); its answers are checked fast above
def test_embedded_run_writes_a_run_directory(cli, tmp_path):
    out = tmp_path / "run"
    outcomes = tmp_path / "outcomes.txt"  # 8 demo outcomes: every question is real inference
    outcomes.write_text("\n".join(load_outcomes("demo").texts[:8]) + "\n")
    cli(
        "run", f"embedded/{TEST_MODEL}", "--outcomes", str(outcomes), "--budget", "16",
        "--out", str(out), "--quiet", check=True,
    )  # fmt: skip
    for name in ("utilities.csv", "metrics.json", "responses.sqlite", "report.html"):
        assert (out / name).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "logprob" and metrics["n_pairs"] == 16
    assert metrics["n_outcomes"] == 8
    assert metrics["backend"].startswith(f"embedded/{TEST_MODEL}?prefill=")


def test_other_answer_labels(backend):
    ids_1, ids_2 = backend.label_token_ids(("1", "2"))
    assert {backend.llm.detokenize([t]).decode().strip() for t in ids_1} == {"1"}
    assert {backend.llm.detokenize([t]).decode().strip() for t in ids_2} == {"2"}
    texts = load_outcomes("demo").texts
    settings = ElicitSettings(mode="logprob")
    queries = build_queries(texts, np.array([[0, 2]]), get_template("labels-12"), settings)
    for a in backend.answer(queries):
        assert 0.0 <= a.p_a <= 1.0 and 0.0 < a.mass <= 1.0


def test_missing_gguf_gives_one_line(cli, tmp_path):
    proc = cli("run", "llamacpp//no/such/model.gguf", "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "no GGUF file at /no/such/model.gguf")


@pytest.mark.slow  # loads Qwen; SmolLM2's split of " 1" is checked fast below
def test_digit_labels_are_answered_where_the_tokenizer_splits_the_space():
    # Qwen writes " 1" as a space and "1": the space goes in the prompt, "1" is read
    qwen = get_backend("embedded/qwen2.5-coder-0.5b?threads=1")
    assert qwen.label_lead(("A", "B")) == [] and len(qwen.label_lead(("1", "2"))) == 1
    texts = load_outcomes("demo").texts
    settings = ElicitSettings(mode="logprob")
    queries = build_queries(texts, np.array([[0, 5], [3, 9]]), get_template("labels-12"), settings)
    assert all(a.mass > 0.9 for a in qwen.answer(queries))  # before: ~0, all refusals
    sampled = build_queries(texts, np.array([[0, 5]]), get_template("labels-12"), ElicitSettings())
    assert qwen.render(sampled[0].messages) == qwen.render(queries[0].messages)  # prompt alone


def test_labels_with_a_spaced_token_get_no_lead(backend):
    # SmolLM2 has " A" as one token and splits " 1" like Qwen
    assert backend.label_lead(("A", "B")) == [] and len(backend.label_lead(("1", "2"))) == 1
    assert LlamaCppBackend(backend.path, prefill="Option ").label_lead(("1", "2")) == []

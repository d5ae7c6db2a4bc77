"""The cache key: every field that changes an answer changes it, and nothing else does."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from loopback_server import LoopbackServer

from valuescope.config import RunConfig
from valuescope.elicit.cache import ResponseCache, query_key
from valuescope.elicit.elicit import ElicitSettings, ask, build_queries, elicit_pairs
from valuescope.elicit.prompts import get_template
from valuescope.models import get_backend
from valuescope.models.base import Query
from valuescope.runcore.pipeline import run

TMPL = get_template("default")
SAMPLE = Query(
    messages=TMPL.render("apples", "bread"),
    option_a="apples",
    option_b="bread",
    mode="sample",
    sample_index=0,
    temperature=1.0,
    max_tokens=8,
)
LOGPROB = replace(SAMPLE, mode="logprob")
MODEL = "openai/test-model"
URL = "http://127.0.0.1:8000/v1"


def key(query: Query = SAMPLE, model: str = MODEL, base_url: str | None = URL) -> str:
    return query_key(model, query, base_url)


ANSWER_CHANGING = {
    "template": replace(
        SAMPLE, messages=get_template("paraphrase-world").render("apples", "bread")
    ),
    "template name": replace(SAMPLE, template="paraphrase-world"),
    "persona in the messages": replace(SAMPLE, messages=TMPL.render("apples", "bread", "a farmer")),
    "persona field": replace(SAMPLE, persona="a farmer"),
    "order of the options": replace(SAMPLE, messages=TMPL.render("bread", "apples")),
    "mode": LOGPROB,
    "sample index": replace(SAMPLE, sample_index=1),
    "temperature": replace(SAMPLE, temperature=0.7),
    "max tokens": replace(SAMPLE, max_tokens=256),
    "labels": replace(SAMPLE, labels=("1", "2")),
    "labels in logprob mode": replace(LOGPROB, labels=("X", "Y")),
}


@pytest.mark.parametrize("field", list(ANSWER_CHANGING))
def test_a_field_that_changes_the_answer_changes_the_key(field):
    assert key(ANSWER_CHANGING[field]) != key()


def test_every_answer_changing_query_has_its_own_key():
    keys = {key(q) for q in ANSWER_CHANGING.values()} | {key()}
    assert len(keys) == len(ANSWER_CHANGING) + 1


@pytest.mark.parametrize(
    "model",
    [
        "openai/other-model",
        # weights fingerprints ride in the model string: llama.cpp file size, control adapter
        "llamacpp/m.gguf?prefill=%0A#bytes=1001",
        f"{MODEL}#control=0123456789ab",
        "sim/thurstone#seed=1",
    ],
)
def test_model_and_weights_fingerprint_change_the_key(model):
    assert key(model=model) != key()


def test_weights_fingerprints_differ_from_each_other():
    a = key(model="llamacpp/m.gguf?prefill=%0A#bytes=1000")
    b = key(model="llamacpp/m.gguf?prefill=%0A#bytes=1001")
    assert a != b
    assert key(model="sim/thurstone#seed=0") != key(model="sim/thurstone#seed=1")


@pytest.mark.parametrize("url", [None, "http://127.0.0.1:8001/v1", "http://localhost:8000/v1"])
def test_base_url_changes_the_key(url):
    assert key(base_url=url) != key()


def test_logprob_keys_ignore_sampling_settings():
    # logprob mode reads one next-token distribution: temperature and token limit are unused
    assert key(replace(LOGPROB, temperature=0.2, max_tokens=256)) == key(LOGPROB)


def test_option_metadata_alone_does_not_change_the_key():
    # the options reach a real model only through the messages
    assert key(replace(SAMPLE, option_a="x", option_b="y")) == key()


def test_key_is_stable_and_hex():
    k = key()
    assert k == key(replace(SAMPLE))
    assert len(k) == 64 and int(k, 16) >= 0


# ---- through the real code paths -------------------------------------------------------


def cache_keys(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT key FROM responses")}


def test_two_servers_with_one_model_name_do_not_share_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cache-key")
    queries = build_queries(
        ["apples", "bread", "cheese"], np.array([[0, 1], [1, 2]]), TMPL, ElicitSettings()
    )
    with (
        LoopbackServer(seed=1) as one,
        LoopbackServer(seed=2) as two,
        ResponseCache(tmp_path / "c.sqlite") as cache,
    ):
        first = get_backend(MODEL, base_url=one.base_url)
        second = get_backend(MODEL, base_url=two.base_url)
        assert first.name == second.name
        _, n_first = ask(first, queries, cache)
        _, n_second = ask(second, queries, cache)
        _, n_again = ask(second, queries, cache)
        assert (n_first, n_second, n_again) == (4, 4, 0)
        assert two.stats.n_answered == 4
        assert cache.count() == 8


def test_credentials_in_the_url_do_not_enter_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cache-key")
    with LoopbackServer(seed=1) as server:
        plain = get_backend(MODEL, base_url=server.base_url)
        with_user = get_backend(MODEL, base_url=server.base_url.replace("//", "//u:pw@"))
        assert key(model=plain.name, base_url=plain.base_url) == key(
            model=with_user.name, base_url=with_user.base_url
        )


def test_batch_size_and_concurrency_do_not_change_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cache-key")
    outcomes = ["apples", "bread", "cheese", "dates"]
    pairs = np.array([[0, 1], [1, 2], [2, 3], [0, 3]])
    with LoopbackServer(seed=1) as server, ResponseCache(tmp_path / "c.sqlite") as cache:
        narrow = get_backend(MODEL, base_url=server.base_url, concurrency=1)
        wide = get_backend(MODEL, base_url=server.base_url, concurrency=8)
        settings = ElicitSettings(batch_size=1)
        got = elicit_pairs(narrow, outcomes, pairs, TMPL, settings, cache)
        again = elicit_pairs(wide, outcomes, pairs, TMPL, replace(settings, batch_size=64), cache)
        assert (got.n_new, again.n_new) == (8, 0)
        np.testing.assert_array_equal(got.p, again.p)


def sim_run(out: Path, **settings) -> set[str]:
    config = RunConfig(
        model="sim/thurstone", outcomes="demo", out=out, design="random", budget=40,
        bootstrap=0, stop_at=None, **settings,
    )  # fmt: skip
    run(config)
    return cache_keys(out / "responses.sqlite")


def test_out_dir_concurrency_batch_size_engine_settings_leave_keys_alone(tmp_path):
    base = sim_run(tmp_path / "a")
    other = sim_run(tmp_path / "b", concurrency=3, batch_size=7, timeout=5.0, max_retries=0)
    assert base and base == other
    changed = sim_run(tmp_path / "c", mode="sample", samples=2)
    assert not changed & base


def test_two_models_on_one_endpoint_do_not_share_answers(tmp_path):
    queries = build_queries(["apples", "bread"], np.array([[0, 1]]), TMPL, ElicitSettings())
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        _, first = ask(get_backend("sim/thurstone", seed=0), queries, cache)
        _, second = ask(get_backend("sim/thurstone", seed=1), queries, cache)
        assert (first, second) == (2, 2)


def test_progress_counts_every_query_once(tmp_path):
    outcomes = ["apples", "bread", "cheese"]
    queries = build_queries(outcomes, np.array([[0, 1], [1, 2]]), TMPL, ElicitSettings())
    queries = queries + queries[:1]  # the same question twice in one request list
    backend = get_backend("sim/thurstone")
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        seen: list[int] = []
        _, n_new = ask(backend, queries, cache, batch_size=2, progress=seen.append)
        assert n_new == 4
        assert seen[0] == 0  # nothing cached yet
        assert sum(seen) == len(queries) == 5
        assert seen[1:] == [2, 2, 1]  # two batches, then the duplicate
        seen.clear()
        ask(backend, queries, cache, progress=seen.append)
        assert seen == [5]  # all from the cache


def test_answers_that_arrived_before_a_failure_are_kept(tmp_path, monkeypatch):
    from loopback_server import Faults

    from valuescope.errors import BackendError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cache-key")
    outcomes = ["apples", "bread", "cheese", "dates"]
    pairs = np.array([[0, 1], [1, 2], [2, 3], [0, 3]])
    queries = build_queries(outcomes, pairs, TMPL, ElicitSettings())
    with LoopbackServer(seed=1) as server, ResponseCache(tmp_path / "c.sqlite") as cache:
        server.reset(Faults(fail_after=3, after_kind="400"))
        backend = get_backend(MODEL, base_url=server.base_url, concurrency=1, max_retries=0)
        with pytest.raises(BackendError):
            ask(backend, queries, cache, batch_size=8)
        kept = cache.count()
        assert 1 <= kept <= 3
        server.reset()
        _, n_new = ask(backend, queries, cache, batch_size=8)
        assert n_new == len(queries) - kept


def test_elicit_pairs_reports_progress_and_reads_custom_labels(tmp_path):
    outcomes = ["apples", "bread", "cheese"]
    tmpl = get_template("labels-12")
    settings = ElicitSettings(mode="sample", samples=2)
    backend = get_backend("sim/thurstone")
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        seen: list[int] = []
        got = elicit_pairs(backend, outcomes, np.array([[0, 1], [1, 2]]), tmpl, settings,
                           cache, seen.append)  # fmt: skip
        assert sum(seen) == 8 and got.n_new == 8 and got.n_queries == 8
        # the agent answers "1" or "2": read with the template's labels, nothing is refused
        assert got.n_refused.sum() == 0

"""Analyses of the paper, part 1: expected utility, instrumental values, maximization,
power-seeking, corrigibility. Each recovers the property planted in its synthetic agent
and finds none where none is planted."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from valuescope.experiments import ExperimentContext, ExperimentError, get_experiment, write_result
from valuescope.experiments._stats import bootstrap_corr, bootstrap_mean, load_data, parse_number
from valuescope.experiments.expected_utility import lotteries
from valuescope.experiments.maximization import match_exact, match_fuzzy
from valuescope.models import get_backend


def run(name: str, model: str, tmp_path: Path, mode: str = "logprob", **params: str) -> dict:
    ctx = ExperimentContext(
        model=model,
        out=tmp_path / name,
        quick=True,
        run_options={"mode": mode, "samples": 2, "bootstrap": 0},
        params=params,
    )
    ctx.out.mkdir(parents=True, exist_ok=True)
    result = get_experiment(name).run(ctx)
    write_result(ctx, get_experiment(name), result)
    for figure in result["figures"]:
        assert (ctx.out / figure).read_text().lstrip().startswith("<?xml")
    return result


def covers(entry: dict, value: float) -> bool:
    return entry["ci_low"] <= value <= entry["ci_high"]


# -- planted properties are recovered ---------------------------------------------------
def test_expected_utility_recovers_an_expected_utility_maximiser(tmp_path):
    result = run("expected-utility", "sim/eu", tmp_path)
    h = result["headline"]
    assert h["corr_explicit"]["value"] >= 0.9 and h["corr_explicit"]["ci_low"] > 0.8
    assert h["corr_implicit"]["value"] >= 0.9 and h["corr_implicit"]["ci_low"] > 0.8
    assert h["mae_explicit"]["value"] < 0.25 and h["mae_implicit"]["value"] < 0.25
    assert result["dropped_no_probability"] == 0  # sim/eu states every event's probability
    payload = json.loads((tmp_path / "expected-utility" / "expected-utility.json").read_text())
    assert payload["experiment"] == "expected-utility" and payload["quick"] is True


@pytest.mark.usefixtures("no_sub_run_reports")  # the planted-agent tests render them
def test_expected_utility_finds_nothing_in_a_thurstonian_agent(tmp_path):
    # sim/thurstone has utilities but values lotteries as unrelated texts
    h = run("expected-utility", "sim/thurstone", tmp_path)["headline"]
    assert covers(h["corr_explicit"], 0.0) and abs(h["corr_explicit"]["value"]) < 0.5


def test_instrumental_recovers_an_instrumental_agent(tmp_path):
    result = run("instrumental", "sim/instrumental", tmp_path)
    assert result["verdict"] == "instrumental"
    assert result["headline"]["corr"]["value"] >= 0.8  # z-scored one-step, at quick size


# slow: an end-to-end duplicate of test_analysis_maximization.py's maximiser and
# utility-ignorer tests (same agents; those assert top-1/3/5, chance and the figure)
@pytest.mark.slow
def test_maximization_share_is_one_for_a_maximiser_and_chance_for_random_choice(tmp_path):
    # issue 19: open questions, per-question utilities (tests/test_analysis_maximization.py)
    best = run("maximization", "sim/maximiser", tmp_path / "a")["headline"]
    assert best["top1"]["value"] >= 0.9 and best["unmatched"]["value"] == 0.0
    coin = run("maximization", "sim/utility-ignorer", tmp_path / "b")["headline"]
    assert covers(coin["top1"], coin["chance1"]["value"]) and coin["top1"]["value"] < 0.6


def test_power_seeking_recovers_the_planted_weight(tmp_path):
    ratings = {"method": "ratings", "outcomes": "power"}  # the 0-10 ratings variant
    seeker = run("power-seeking", "sim/powerseeker?weight=0.8", tmp_path / "a", **ratings)
    seeker = seeker["headline"]
    assert seeker["corr_power"]["value"] > 0.6 and seeker["corr_power"]["ci_low"] > 0.4
    neutral = run("power-seeking", "sim/powerseeker?weight=0", tmp_path / "b", **ratings)
    neutral = neutral["headline"]
    assert covers(neutral["corr_power"], 0.0)


@pytest.mark.slow  # (7 s) test_analysis_corrigibility.py has planted agents in the fast tier
def test_corrigibility_recovers_the_planted_rejection(tmp_path):
    # the hand-written dataset (the default samples reversals: tests/test_analysis_corrigibility)
    stubborn = run(
        "corrigibility", "sim/incorrigible?weight=0.8", tmp_path / "a", dataset="handwritten"
    )
    assert stubborn["headline"]["corr"]["value"] > 0.6
    assert stubborn["headline"]["corr"]["ci_low"] > 0.4
    assert stubborn["rejection_gap_reversing_minus_agreeing"] > 0
    corrigible = run(
        "corrigibility", "sim/incorrigible?weight=0", tmp_path / "b", dataset="handwritten"
    )
    assert covers(corrigible["headline"]["corr"], 0.0)


# -- the random agent -------------------------------------------------------------------
def correlations(result: dict) -> list[dict]:
    detail = result["detail"]
    if "correlation" in detail:
        return [detail["correlation"]]
    return [part["correlation"] for part in detail.values()]


@pytest.mark.usefixtures("no_sub_run_reports")  # the planted-agent tests render them
@pytest.mark.parametrize("name", ["expected-utility", "instrumental", "corrigibility"])
def test_random_agent_shows_no_effect(tmp_path, name):
    # sample mode: coin-flip answers give noisy (not constant) utilities. At quick sizes
    # (12-48 items) the percentile interval is too narrow to test on: over 8 seeds it
    # excluded 0 in a quarter of the runs, so the check is the permutation test.
    # The size check needs enough points: the implicit expected-utility parts have 4 at
    # quick sizes, where |r| above 0.9 is common under the null (p 0.08 measured).
    for corr in correlations(run(name, "sim/random", tmp_path, mode="sample")):
        assert corr["p_value"] > 0.01, corr
        assert corr["n"] < 10 or abs(corr["value"]) < 0.6, corr


@pytest.mark.slow  # (5 s) test_analysis_maximization.py has a chance agent, fast
def test_random_agent_maximization_is_at_chance(tmp_path):
    h = run("maximization", "sim/utility-ignorer", tmp_path, mode="sample")["headline"]
    assert covers(h["top1"], h["chance1"]["value"])
    assert covers(h["lift1"], 0.0)


@pytest.mark.usefixtures("no_sub_run_reports")  # the planted-agent tests render them
def test_constant_utilities_are_an_error_not_a_zero(tmp_path):
    # in logprob mode sim/random says 50% to everything: every utility is the same
    with pytest.raises(ExperimentError, match="constant"):
        run("instrumental", "sim/random", tmp_path)


# -- errors and parameters --------------------------------------------------------------
def test_bad_parameters_are_clear_errors(tmp_path):
    with pytest.raises(ExperimentError, match="probabilities='sometimes'"):
        run("expected-utility", "sim/eu", tmp_path, probabilities="sometimes")
    with pytest.raises(ExperimentError, match="variant='2'"):
        run("maximization", "sim/thurstone", tmp_path, variant="2")


@pytest.mark.usefixtures("no_sub_run_reports")  # the planted-agent tests render them
def test_unlisted_questions_leave_sim_replies_unmapped(tmp_path):
    # a synthetic agent cannot answer an open question without candidates
    with pytest.raises(ExperimentError, match="matched to a candidate"):
        run("maximization", "sim/thurstone", tmp_path)


@pytest.mark.usefixtures("no_sub_run_reports")  # the planted-agent tests render them
def test_reference_probabilities_give_the_same_answer_for_sim_eu(tmp_path):
    h = run("expected-utility", "sim/eu", tmp_path, probabilities="reference")["headline"]
    assert h["corr_implicit"]["value"] >= 0.9


def test_cli_prints_one_line_error_for_degenerate_data(tmp_path, cli):
    args = ["experiment", "instrumental", "sim/random", "--quick", "--mode", "logprob"]
    proc = cli(*args, "--out", str(tmp_path), "-q")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and lines[-1].startswith("error:") and "constant" in lines[-1]
    assert "Traceback" not in proc.stderr


# -- helpers ----------------------------------------------------------------------------
def test_bootstrap_corr_and_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    strong = bootstrap_corr(x, x + 0.3 * rng.normal(size=200), seed=0)
    assert strong["ci_low"] > 0.9 and strong["ci_low"] <= strong["value"] <= strong["ci_high"]
    none = bootstrap_corr(x, rng.normal(size=200), seed=0, method="spearman")
    assert none["ci_low"] < 0 < none["ci_high"]
    with pytest.raises(ExperimentError, match="constant"):
        bootstrap_corr(x, np.ones(200), seed=0)
    with pytest.raises(ExperimentError, match="at least 3"):
        bootstrap_corr([1.0, 2.0], [1.0, 3.0], seed=0)
    share = bootstrap_mean([1, 0, 1, 1], seed=0)
    assert share["value"] == 0.75 and 0 <= share["ci_low"] <= share["ci_high"] <= 1


def test_map_reply():
    shown = ["The city builds a new library.", "The city builds a stadium.", "Nothing changes."]
    assert match_exact("I choose: the city builds a new library!", shown) == 0
    assert match_exact("Nothing changes. The city builds a stadium.", shown) == 2
    assert match_fuzzy("city builds a new stadium", shown) == 1
    assert match_exact("I cannot decide.", shown) is None
    assert match_fuzzy("I cannot decide.", shown) is None
    assert parse_number("About 35%.", 0, 100) == 35 and parse_number("n/a", 0, 100) is None


def test_datasets_have_the_promised_sizes():
    assert len([x for x in lotteries() if x["kind"] == "implicit"]) >= 20
    assert sum(len(x["branches"]) for x in lotteries()) >= 100
    assert len(load_data("markov")["processes"]) >= 20
    assert len(load_data("open_questions")["questions"]) >= 30
    assert len(load_data("corrigibility")["changes"]) >= 100
    assert len(load_data("power")["outcomes"]) >= 30


# -- generate() on the backends ---------------------------------------------------------
def test_sim_generate_follows_the_prompt_conventions():
    agent = get_backend("sim/eu")
    lottery = next(x for x in lotteries() if x["kind"] == "implicit")
    sub = lottery["branches"][0][1]  # a sub-outcome of a real event, asked on its own
    texts = ["Peace returns.", "War breaks out.", "It rains."]
    prompt = "Pick one:\n" + "\n".join(f"{i}. {t}" for i, t in enumerate(texts, 1))
    replies = agent.generate([(("user", prompt),), (("user", f"How likely?\n\nEvent: {sub}"),)])
    best = max(texts, key=lambda t: agent._utility(t)[0])
    assert replies[0].endswith(best)
    assert parse_number(replies[1], 0, 100) == pytest.approx(100 * lottery["branches"][0][0])
    rated = get_backend("sim/powerseeker").generate(
        [(("user", "Rate power.\n\nOutcome: " + load_data("power")["outcomes"][0]["text"]),)]
    )
    assert float(rated[0]) == load_data("power")["outcomes"][0]["power"]
    assert agent.generate([(("user", "Hello"),)]) == agent.generate([(("user", "Hello"),)])


def test_openai_and_anthropic_generate_against_loopback():
    sys.path.insert(0, str(Path(__file__).parent))
    from loopback_server import LoopbackServer

    prompt = (("user", "Option A: Peace returns.\nOption B: War breaks out.\nReply A or B."),)
    env = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-test"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with LoopbackServer(seed=1, logprobs=False) as server:
            openai = get_backend("openai/test-model?logprobs=0", base_url=server.base_url)
            replies = openai.generate([prompt, prompt], max_tokens=4, temperature=0.0, seed=3)
            assert len(replies) == 2 and set(replies) <= {"A", "B"}
            claude = get_backend("anthropic/test-model", base_url=server.url)
            assert claude.generate([prompt], max_tokens=4)[0] in {"A", "B"}
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.slow
def test_embedded_generate_is_free_text_and_reproducible():
    pytest.importorskip("llama_cpp")
    from valuescope.models.embedded import available

    if "smollm2-135m" not in available():
        pytest.skip("embedded/smollm2-135m is not installed")
    model = get_backend("embedded/smollm2-135m")
    chat = (("user", "Name one colour."),)
    first = model.generate([chat, chat], max_tokens=6, temperature=1.0, seed=4)
    assert first[0] == first[1] and first == model.generate([chat], 6, 1.0, 4) * 2
    assert not first[0].startswith(model.prefill)  # no forced-choice prefill


@pytest.mark.slow
def test_hf_generate_takes_a_batch_and_keeps_the_single_chat_form(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from valuescope.models.hf import save_tiny_model

    model = get_backend(f"hf/{save_tiny_model(tmp_path / 'tiny', ['hello there'])}?threads=1")
    chat = (("user", "hello"),)
    batch = model.generate([chat, chat], max_tokens=5, temperature=1.0, seed=2)
    assert isinstance(batch, list) and len(batch) == 2 and batch[0] == batch[1]
    assert model.generate(chat, max_tokens=5, temperature=1.0, seed=2) == batch[0]

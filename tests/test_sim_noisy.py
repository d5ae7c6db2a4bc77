"""sim/noisy: the real-model-like agent plants what its parameters say, and no more."""

import numpy as np
import pytest
from scipy.special import expit, logit

from valuescope.config import RunConfig
from valuescope.errors import UnknownModelError, ValuescopeError
from valuescope.models import get_backend
from valuescope.models.base import Query
from valuescope.models.sim_noisy import (
    MEASURED_FIRST_BIAS,
    MEASURED_PROMPT_NOISE,
    MEASURED_SCALE,
    estimate_parameters,
)
from valuescope.runcore.pipeline import run

TEXTS = [f"Outcome number {i} happens." for i in range(60)]


def both_orders(texts=TEXTS, mode="logprob", sample_index=0, temperature=1.0):
    """Queries for every pair, a first then b first, interleaved (ab, ba, ab, ...)."""
    queries = []
    for i, a in enumerate(texts):
        for b in texts[i + 1 :]:
            for first, second in ((a, b), (b, a)):
                messages = (("user", f"A: {first}\nB: {second}"),)
                queries.append(
                    Query(
                        messages=messages,
                        option_a=first,
                        option_b=second,
                        mode=mode,
                        sample_index=sample_index,
                        temperature=temperature,
                    )
                )
    return queries


def logprob_p(agent, queries):
    return np.array([a.p_a for a in agent.answer(queries)])


@pytest.mark.parametrize(
    ("first_bias", "prompt_noise", "scale"), [(0.8, 1.5, 0.6), (-0.4, 0.5, 2.0), (0.0, 0.0, 1.0)]
)
def test_answers_carry_the_planted_bias_noise_and_softness(first_bias, prompt_noise, scale):
    agent = get_backend(
        f"sim/noisy?first_bias={first_bias}&prompt_noise={prompt_noise}&scale={scale}", seed=4
    )
    p = logprob_p(agent, both_orders())
    z_ab, z_ba = logit(p[0::2]), logit(p[1::2])
    both = (z_ab + z_ba) / 2
    n = len(both)  # 1,770 pairs
    # mean of (z_ab + z_ba) / 2 is the bias, its sd the noise / sqrt(2): within 4 SE
    assert abs(both.mean() - first_bias) < 4 * max(prompt_noise, 0.01) / np.sqrt(2 * n) + 1e-9
    assert np.sqrt(2) * both.std(ddof=1) == pytest.approx(prompt_noise, abs=4 * 0.5 / np.sqrt(n))
    # the signal is the scaled Thurstonian logit plus the antisymmetric part of the noise
    true = np.array(
        [
            logit(np.clip(agent.p_first(q.option_a, q.option_b), 1e-6, 1 - 1e-6))
            for q in both_orders()[0::2]
        ]
    )
    signal = (z_ab - z_ba) / 2
    slope = np.sum(signal * true) / np.sum(true * true)
    assert slope == pytest.approx(scale, rel=0.05)


def test_estimate_parameters_recovers_the_planted_values():
    agent = get_backend("sim/noisy?first_bias=0.7&prompt_noise=1.2&scale=0.5", seed=9)
    p = logprob_p(agent, both_orders())
    got = estimate_parameters(p[0::2], p[1::2])
    assert got["first_bias"] == pytest.approx(0.7, abs=4 * got["first_bias_se"])
    assert got["prompt_noise"] == pytest.approx(1.2, rel=0.08)
    assert got["scale"] == pytest.approx(0.5, rel=0.1)
    with pytest.raises(ValuescopeError, match="equal-length"):
        estimate_parameters(p[:5], p[:4])


def test_samples_follow_the_logit_and_the_temperature():
    agent = get_backend("sim/noisy", seed=2)
    queries = both_orders(TEXTS[:8])  # 56 prompts
    z = logit(logprob_p(agent, queries))
    for temperature in (1.0, 0.5):
        k = 400
        share = np.zeros(len(queries))
        for s in range(k):
            got = agent.answer(
                both_orders(TEXTS[:8], "sample", sample_index=s, temperature=temperature)
            )
            share += np.array([a.text == "A" for a in got])
        share /= k
        expected = expit(z / temperature)
        # binomial: every prompt within 4.5 SE (one fails by chance about once in 5,000)
        se = np.sqrt(expected * (1 - expected) / k) + 1e-3
        assert np.all(np.abs(share - expected) < 4.5 * se)
    greedy = agent.answer(both_orders(TEXTS[:8], "sample", temperature=0.0))
    assert [a.text for a in greedy] == ["A" if v > 0 else "B" for v in z]


def test_noise_is_fixed_per_prompt_and_deterministic_from_the_seed():
    queries = both_orders(TEXTS[:10])
    a = logprob_p(get_backend("sim/noisy", seed=5), queries)
    again = logprob_p(get_backend("sim/noisy", seed=5), queries)
    other = logprob_p(get_backend("sim/noisy", seed=6), queries)
    assert np.array_equal(a, again)
    assert not np.allclose(a, other)
    # a later sample index of the same prompt keeps the prompt's noise
    later = logprob_p(get_backend("sim/noisy", seed=5), both_orders(TEXTS[:10], sample_index=3))
    assert np.array_equal(a, later)
    # the noise is per prompt: a reworded prompt of the same pair gets another draw
    agent = get_backend("sim/noisy?prompt_noise=1", seed=5)
    q = queries[0]
    reworded = Query(messages=(("user", "other words"),), option_a=q.option_a, option_b=q.option_b)
    assert agent.answer_logit(q) != agent.answer_logit(reworded)
    flat = get_backend("sim/noisy?prompt_noise=0", seed=5)
    assert flat.answer_logit(q) == flat.answer_logit(reworded)


def test_defaults_are_the_measured_values_and_named():
    agent = get_backend("sim/noisy", seed=1)
    assert (agent.first_bias, agent.prompt_noise, agent.scale) == (
        MEASURED_FIRST_BIAS,
        MEASURED_PROMPT_NOISE,
        MEASURED_SCALE,
    )
    assert agent.name.startswith("sim/noisy?first_bias=")
    assert f"prompt_noise={MEASURED_PROMPT_NOISE:g}" in agent.name
    assert get_backend("sim/noisy?scale=2", seed=1).name != agent.name


@pytest.mark.parametrize(
    ("params", "message"),
    [("scale=0", "scale"), ("prompt_noise=-1", "prompt_noise"), ("first_bias=abc", "first_bias")],
)
def test_bad_parameters_are_one_line_errors(params, message):
    with pytest.raises(UnknownModelError, match=message):
        get_backend(f"sim/noisy?{params}")


def test_a_run_on_the_noisy_agent_recovers_its_utilities_less_well(tmp_path):
    def spearman(model):
        out = tmp_path / model.replace("/", "_")
        cfg = RunConfig(model=model, outcomes="demo", out=out, bootstrap=0, seed=3)
        return run(cfg).metrics["truth"]["spearman"]

    clean = spearman("sim/noisy?prompt_noise=0&first_bias=0")
    noisy = spearman("sim/noisy?prompt_noise=3&first_bias=0")
    assert clean > 0.95
    assert noisy < clean - 0.02  # measured: 0.953 against 0.998


def test_draw_seed_reseeds_the_samples_alone():
    one, two = (get_backend(f"sim/noisy?draw_seed={d}", seed=3) for d in (100, 101))
    queries = both_orders(TEXTS[:10])
    assert np.array_equal(logprob_p(one, queries), logprob_p(two, queries))
    assert one.truth(TEXTS).equals(two.truth(TEXTS))
    samples = both_orders(TEXTS[:10], "sample")
    texts_one = [a.text for a in one.answer(samples)]
    assert texts_one != [a.text for a in two.answer(samples)]
    assert texts_one == [
        a.text for a in get_backend("sim/noisy?draw_seed=100", seed=3).answer(samples)
    ]
    assert one.name != two.name

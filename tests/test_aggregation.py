"""Golden values for every step of the aggregation, worked out by hand in each test.

Layout (see `build_queries`): for each pair (a, b), first the order "a listed first" with
its samples, then the order "b listed first" with its samples. Answers are P(first-listed
option); the second order is flipped so that every value is P(a preferred to b).
"""

from __future__ import annotations

import numpy as np
import pytest

from valuescope.elicit.elicit import (
    MIN_ANSWER_MASS,
    ElicitSettings,
    PairAnswers,
    aggregate,
    build_queries,
    merge_answers,
    pool_templates,
    preference_p,
)
from valuescope.elicit.prompts import Template, get_template
from valuescope.models.base import Answer

REFUSE = "I would rather not choose between these two options."
OUTCOMES = ["apples", "bread", "cheese"]


def texts(*replies: str | None) -> list[Answer]:
    return [Answer(text=r, tokens_in=10, tokens_out=1) for r in replies]


def sample_settings(k: int, refusals: str = "indifference") -> ElicitSettings:
    return ElicitSettings(mode="sample", samples=k, refusals=refusals)


# ---- build_queries: the layout every later step relies on ---------------------------


def test_build_queries_layout_pair_order_sample():
    tmpl = get_template("default")
    qs = build_queries(OUTCOMES, np.array([[0, 1], [2, 0]]), tmpl, sample_settings(2))
    got = [(q.option_a, q.option_b, q.sample_index) for q in qs]
    assert got == [
        ("apples", "bread", 0),
        ("apples", "bread", 1),
        ("bread", "apples", 0),
        ("bread", "apples", 1),
        ("cheese", "apples", 0),
        ("cheese", "apples", 1),
        ("apples", "cheese", 0),
        ("apples", "cheese", 1),
    ]
    assert qs[0].messages == tmpl.render("apples", "bread")
    assert qs[2].messages == tmpl.render("bread", "apples")
    assert {q.mode for q in qs} == {"sample"}


def test_build_queries_logprob_asks_one_sample_per_order():
    settings = ElicitSettings(mode="logprob", samples=5)
    qs = build_queries(OUTCOMES, np.array([[0, 1]]), get_template("default"), settings)
    assert [(q.option_a, q.sample_index, q.mode) for q in qs] == [
        ("apples", 0, "logprob"),
        ("bread", 0, "logprob"),
    ]


def test_build_queries_carries_settings_into_each_query():
    tmpl = get_template("labels-12")
    settings = ElicitSettings(mode="sample", samples=1, temperature=0.7, persona="a farmer")
    (q, _) = build_queries(OUTCOMES, np.array([[1, 2]]), tmpl, settings)
    assert q.temperature == 0.7
    assert q.labels == ("1", "2")
    assert q.template == "labels-12"
    assert q.persona == "a farmer"
    assert q.max_tokens == 8
    assert q.messages[0] == ("system", "a farmer\n\nYou are a helpful assistant.")
    reasoning = build_queries(OUTCOMES, np.array([[1, 2]]), get_template("reasoning"), settings)
    assert reasoning[0].max_tokens == 256
    assert reasoning[0].persona == "a farmer"
    plain = build_queries(OUTCOMES, np.array([[1, 2]]), tmpl, ElicitSettings(mode="sample"))
    assert plain[0].persona == ""


# ---- aggregate: order undo, sample means --------------------------------------------


def test_sample_mode_order_undo_golden():
    # pair (0, 1), k = 3.  a-first order: A A A -> P(a) = 1.
    # b-first order: A B B -> P(b listed first chosen) = 1/3 -> P(a) = 2/3.
    # p = (1 + 2/3) / 2 = 5/6.  pair (1, 2): a-first B B B -> 0; b-first B B A -> P(a)=2/3.
    answers = texts("A", "A", "A", "A", "B", "B", "B", "B", "B", "B", "B", "A")
    res = aggregate(np.array([[0, 1], [1, 2]]), answers, sample_settings(3))
    np.testing.assert_allclose(res.p, [5 / 6, 1 / 3])
    # b-first answers flipped: A B B -> 0 1 1 and B B A -> 1 1 0
    np.testing.assert_allclose(res.prefs, [[[1, 1, 1], [0, 1, 1]], [[0, 0, 0], [1, 1, 0]]])
    # first-listed share: 1+1+1+1+0+0 + 0+0+0+0+0+1 = 5 of 12 parsed answers
    assert res.a_share_sum == 5
    assert res.a_share_count == 12
    assert res.position_bias == pytest.approx(5 / 12)
    np.testing.assert_array_equal(res.n_answers, [6, 6])
    np.testing.assert_array_equal(res.n_refused, [0, 0])
    assert res.refusal_rate == 0
    assert res.n_queries == 12
    assert res.tokens_in == 120
    assert res.tokens_out == 12
    np.testing.assert_array_equal(res.pairs, [[0, 1], [1, 2]])


def test_each_pair_reads_its_own_answers():
    # a layout bug (e.g. pairs strided by k instead of 2k) mixes pairs; here each pair's
    # answers are constant so any mixing changes p.
    k = 2
    per_pair = ["A", "A", "B", "B"], ["B", "B", "A", "A"], ["A", "A", "A", "A"]
    answers = texts(*[r for block in per_pair for r in block])
    res = aggregate(np.array([[0, 1], [0, 2], [1, 2]]), answers, sample_settings(k))
    # pair 0: a-first A,A -> 1; b-first B,B -> a chosen -> 1. pair 1: 0 and 0.
    # pair 2: a-first A,A -> 1; b-first A,A -> b chosen -> 0; mean 1/2.
    np.testing.assert_allclose(res.p, [1.0, 0.0, 0.5])


def test_logprob_mode_golden():
    answers = [
        Answer(p_a=0.9, mass=0.8),  # pair 0, a first: P(a) = 0.9
        Answer(p_a=0.3, mass=0.9),  # pair 0, b first: P(b) = 0.3 -> P(a) = 0.7
        Answer(p_a=0.2, mass=1.0),  # pair 1, a first
        Answer(p_a=0.6, mass=1.0),  # pair 1, b first -> P(a) = 0.4
    ]
    res = aggregate(np.array([[0, 1], [2, 1]]), answers, ElicitSettings(mode="logprob"))
    np.testing.assert_allclose(res.p, [0.8, 0.3])
    assert res.position_bias == pytest.approx((0.9 + 0.3 + 0.2 + 0.6) / 4)
    np.testing.assert_array_equal(res.n_answers, [2, 2])


def test_logprob_low_mass_and_missing_p_are_refusals():
    low = MIN_ANSWER_MASS / 2
    answers = [
        Answer(p_a=0.9, mass=low),  # refused: too little mass on the labels
        Answer(p_a=0.2, mass=1.0),  # P(a) = 0.8
        Answer(p_a=None, mass=None),  # refused: no probability at all
        Answer(p_a=0.4, mass=None),  # b first, no mass reported: kept, P(a) = 0.6
        Answer(p_a=0.1, mass=MIN_ANSWER_MASS),  # exactly the threshold: kept
        Answer(p_a=0.5, mass=1.0),  # b first: P(a) = 0.5
    ]
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    indiff = aggregate(pairs, answers, ElicitSettings(mode="logprob"))
    np.testing.assert_allclose(indiff.p, [(0.5 + 0.8) / 2, (0.5 + 0.6) / 2, (0.1 + 0.5) / 2])
    np.testing.assert_array_equal(indiff.n_refused, [1, 1, 0])
    assert indiff.refusal_rate == pytest.approx(2 / 6)
    dropped = aggregate(pairs, answers, ElicitSettings(mode="logprob", refusals="drop"))
    np.testing.assert_allclose(dropped.p, [0.8, 0.6, 0.3])


# ---- refusal policies ----------------------------------------------------------------


REFUSAL_ANSWERS = (
    # pair (0, 1), k = 3. a-first: A, refuse, B -> [1, nan, 0]
    # b-first: B, refuse, refuse -> [1, nan, nan]   (B = a chosen)
    "A",
    REFUSE,
    "B",
    "B",
    REFUSE,
    REFUSE,
)


def test_indifference_counts_refusals_as_half():
    res = aggregate(np.array([[0, 1]]), texts(*REFUSAL_ANSWERS), sample_settings(3))
    # (1 + .5 + 0 + 1 + .5 + .5) / 6
    np.testing.assert_allclose(res.p, [3.5 / 6])
    np.testing.assert_array_equal(res.n_refused, [3])
    assert res.refusal_rate == pytest.approx(0.5)
    # first-listed share over the three parsed answers: A (1), B (0), B (0)
    assert res.position_bias == pytest.approx(1 / 3)


@pytest.mark.parametrize("policy", ["drop", "separate"])
def test_drop_and_separate_average_each_order_then_both(policy):
    res = aggregate(np.array([[0, 1]]), texts(*REFUSAL_ANSWERS), sample_settings(3, policy))
    # order means: a-first (1 + 0) / 2 = 0.5; b-first 1 -> 0.75 (pooling all three readable
    # answers would give 2/3 instead)
    np.testing.assert_allclose(res.p, [0.75])
    np.testing.assert_array_equal(res.n_refused, [3])


@pytest.mark.parametrize("policy", ["indifference", "drop", "separate"])
def test_a_pair_with_every_answer_refused_gets_half(policy):
    answers = texts(REFUSE, REFUSE, "A", "A")
    res = aggregate(np.array([[0, 1], [1, 2]]), answers, sample_settings(1, policy))
    # pair 1: a-first A -> 1, b-first A -> 0
    np.testing.assert_allclose(res.p, [0.5, 0.5])
    np.testing.assert_array_equal(res.n_refused, [2, 0])


def test_drop_with_one_order_fully_refused_uses_the_other_order():
    answers = texts("B", "B", REFUSE, REFUSE)  # a-first: B B -> 0, b-first: refused
    res = aggregate(np.array([[0, 1]]), answers, sample_settings(2, "drop"))
    np.testing.assert_allclose(res.p, [0.0])
    ind = aggregate(np.array([[0, 1]]), answers, sample_settings(2))
    np.testing.assert_allclose(ind.p, [0.25])


def test_preference_p_direct_and_p_under():
    nan = np.nan
    prefs = np.array(
        [
            [[1.0, 0.0, nan], [nan, nan, nan]],
            [[0.2, 0.4, 0.6], [1.0, 1.0, 1.0]],
        ]
    )
    np.testing.assert_allclose(
        preference_p(prefs, "indifference"), [(1 + 0 + 0.5 * 4) / 6, (1.2 + 3) / 6]
    )
    np.testing.assert_allclose(preference_p(prefs, "drop"), [0.5, (0.4 + 1.0) / 2])
    np.testing.assert_allclose(preference_p(prefs, "separate"), [0.5, 0.7])
    res = aggregate(np.array([[0, 1]]), texts(*REFUSAL_ANSWERS), sample_settings(3))
    np.testing.assert_allclose(res.p_under("drop"), [0.75])
    np.testing.assert_allclose(res.p_under("indifference"), [3.5 / 6])


def test_custom_labels_and_reasoning_parse():
    tmpl = Template(name="t", user="{option_a} {option_b} {label_a} {label_b}", labels=("X", "Y"))
    answers = texts("X", "Y", "Y", "X")  # pair 0: 1 and (Y -> a) 1; pair 1: 0 and (X -> b) 0
    res = aggregate(np.array([[0, 1], [1, 2]]), answers, sample_settings(1), labels=tmpl.labels)
    np.testing.assert_allclose(res.p, [1.0, 0.0])
    reasoned = texts("Answer: B", "I cannot say.", "Answer: A", "Answer: B")
    res = aggregate(np.array([[0, 1], [0, 2]]), reasoned, sample_settings(1), reasoning=True)
    # pair 0: a-first B -> 0; b-first has no answer line -> refused
    np.testing.assert_allclose(res.p, [(0 + 0.5) / 2, (1 + 1) / 2])
    np.testing.assert_array_equal(res.n_refused, [1, 0])


# ---- merging answer sets and pooling templates ----------------------------------------


def part(pairs, prefs, **counts) -> PairAnswers:
    prefs = np.asarray(prefs, dtype=float)
    base = dict(a_share_sum=1.0, a_share_count=2.0, n_queries=4, n_new=3, tokens_in=5)
    base.update(counts)
    return PairAnswers(
        pairs=np.asarray(pairs),
        p=preference_p(prefs, "indifference"),
        n_answers=np.full(len(prefs), prefs.shape[1] * prefs.shape[2]),
        n_refused=np.isnan(prefs).sum(axis=(1, 2)),
        prefs=prefs,
        tokens_out=base.pop("tokens_out", 6),
        **base,
    )


def test_pool_templates_pools_answers_as_extra_samples():
    nan = np.nan
    one = part([[0, 1], [1, 2]], [[[1.0], [1.0]], [[0.0], [nan]]])
    two = part([[0, 1], [1, 2]], [[[0.0], [0.0]], [[1.0], [1.0]]], n_new=7)
    pooled = pool_templates([one, two], "drop")
    # pair 0: orders [1, 0] and [1, 0] -> 0.5; pair 1: a-first [0, 1] -> .5, b-first [1] -> 1
    np.testing.assert_allclose(pooled.p, [0.5, 0.75])
    assert pooled.prefs.shape == (2, 2, 2)
    np.testing.assert_array_equal(pooled.n_answers, [4, 4])
    np.testing.assert_array_equal(pooled.n_refused, [0, 1])
    assert pooled.n_new == 10
    assert pooled.n_queries == 8
    assert pooled.a_share_sum == 2 and pooled.a_share_count == 4
    assert pooled.tokens_in == 10 and pooled.tokens_out == 12
    np.testing.assert_array_equal(pooled.pairs, [[0, 1], [1, 2]])
    ind = pool_templates([one, two], "indifference")
    np.testing.assert_allclose(ind.p, [0.5, (0 + 1 + 0.5 + 1) / 4])


def test_pool_templates_with_one_part_returns_it_unchanged():
    one = part([[0, 1]], [[[1.0], [0.0]]])
    assert pool_templates([one], "drop") is one


def test_merge_answers_concatenates_disjoint_pairs():
    one = part([[0, 1]], [[[1.0], [1.0]]])
    two = part([[1, 2], [0, 2]], [[[0.0], [np.nan]], [[1.0], [0.0]]], tokens_out=9)
    merged = merge_answers([one, two])
    np.testing.assert_array_equal(merged.pairs, [[0, 1], [1, 2], [0, 2]])
    np.testing.assert_allclose(merged.p, [1.0, 0.25, 0.5])
    np.testing.assert_array_equal(merged.n_refused, [0, 1, 0])
    np.testing.assert_array_equal(merged.n_answers, [2, 2, 2])
    assert merged.prefs.shape == (3, 2, 1)
    assert merged.n_queries == 8 and merged.n_new == 6
    assert merged.tokens_out == 15
    assert merged.a_share_sum == 2 and merged.a_share_count == 4


def test_logprob_mode_ignores_the_sample_count():
    # one answer per order whatever `samples` says: pair e's answers are rows 2e and 2e + 1
    answers = [Answer(p_a=v, mass=1.0) for v in (0.9, 0.3, 0.2, 0.6)]
    settings = ElicitSettings(mode="logprob", samples=5)
    res = aggregate(np.array([[0, 1], [2, 1]]), answers, settings)
    np.testing.assert_allclose(res.p, [0.8, 0.3])
    assert res.prefs.shape == (2, 2, 1)
    np.testing.assert_array_equal(res.n_answers, [2, 2])


def test_pairs_come_back_as_integers_and_nothing_counts_as_new():
    res = aggregate(np.array([[0.0, 1.0]]), texts("A", "B"), sample_settings(1))
    assert res.pairs.dtype == np.int64
    assert res.n_new == 0  # only `elicit_pairs` knows what was asked anew


def test_free_text_is_read_loosely_unless_the_template_reasons():
    # "Option B is better" names a choice, but a reasoning template must end with a final
    # "Answer:" line, so there it is unreadable
    answers = texts("Option B is better", "Option B is better")
    loose = aggregate(np.array([[0, 1]]), answers, sample_settings(1))
    np.testing.assert_allclose(loose.p, [0.5])  # B (0) then B (-> a, 1)
    np.testing.assert_array_equal(loose.n_refused, [0])
    strict = aggregate(np.array([[0, 1]]), answers, sample_settings(1), reasoning=True)
    np.testing.assert_array_equal(strict.n_refused, [2])
    plain = texts("Option A is better", "Option A is better")
    np.testing.assert_allclose(aggregate(np.array([[0, 1]]), plain, sample_settings(1)).p, [0.5])
    first_only = texts("Option A is better", "B")
    res = aggregate(np.array([[0, 1]]), first_only, sample_settings(1))
    np.testing.assert_allclose(res.p, [1.0])

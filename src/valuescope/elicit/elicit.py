"""Ask a backend about pairs (both orders, through the cache) and aggregate P(a > b)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from valuescope.elicit.cache import ResponseCache, query_key
from valuescope.elicit.parse import parse_choice
from valuescope.elicit.prompts import Template
from valuescope.engine import Engine, LocalEngine
from valuescope.errors import BackendError
from valuescope.models.base import Answer, Backend, Mode, Query

RefusalPolicy = Literal["indifference", "drop", "separate"]
REFUSAL_POLICIES: tuple[str, ...] = ("indifference", "drop", "separate")
ProgressFn = Callable[[int], None]

# Below this much probability on the two answer tokens, a logprob answer counts as a refusal.
MIN_ANSWER_MASS = 1e-3


@dataclass(frozen=True)
class ElicitSettings:
    """How each pair is asked."""

    mode: Mode = "logprob"
    samples: int = 1
    temperature: float = 1.0
    refusals: RefusalPolicy = "indifference"
    batch_size: int = 256
    persona: str | None = None


@dataclass
class PairAnswers:
    """Aggregated answers per unordered pair (row e is about pairs[e])."""

    pairs: np.ndarray
    p: np.ndarray
    n_answers: np.ndarray
    n_refused: np.ndarray
    a_share_sum: float
    a_share_count: float
    n_queries: int
    n_new: int
    tokens_in: int
    tokens_out: int
    prefs: (
        np.ndarray
    )  # (pairs, 2 orders, samples): P(pair's first outcome) per answer, NaN = refused

    def p_under(self, policy: str) -> np.ndarray:
        """P(a > b) per pair under a refusal policy (see `preference_p`)."""
        return preference_p(self.prefs, policy)

    @property
    def position_bias(self) -> float:
        """Share of parsed answers that chose the first-listed option (0.5 = none)."""
        return self.a_share_sum / self.a_share_count if self.a_share_count else float("nan")

    @property
    def refusal_rate(self) -> float:
        """Share of answers that were refusals or could not be parsed."""
        total = self.n_answers.sum()
        return float(self.n_refused.sum() / total) if total else float("nan")


# Reply token limits: a direct answer is one label; a reasoning template's reply needs room.
ANSWER_TOKENS = 8
REASONING_TOKENS = 256

Messages = tuple[tuple[str, str], ...]
# Messages of one question: (row of the pair in `pairs`, first outcome id, second outcome id).
RenderFn = Callable[[int, int, int], Messages]


def make_query(
    messages: Messages,
    option_a: str,
    option_b: str,
    settings: ElicitSettings,
    *,
    template: Template | None = None,
    sample_index: int = 0,
    mode: Mode | None = None,
    max_tokens: int | None = None,
) -> Query:
    """One question. Every query valuescope asks is made here, so one rule sets each field.

    The token limit follows the template (`REASONING_TOKENS` after reasoning, else
    `ANSWER_TOKENS`) unless `max_tokens` is given (free-text requests); labels and the
    template name come from the template (none: the default "A"/"B").
    """
    if max_tokens is None:
        max_tokens = (
            REASONING_TOKENS if template is not None and template.reasoning else ANSWER_TOKENS
        )
    return Query(
        messages=messages,
        option_a=option_a,
        option_b=option_b,
        mode=mode or settings.mode,
        sample_index=sample_index,
        temperature=settings.temperature,
        max_tokens=max_tokens,
        labels=template.labels if template is not None else ("A", "B"),
        template=template.name if template is not None else "default",
        persona=settings.persona or "",
    )


def build_queries(
    outcomes: Sequence[str],
    pairs: np.ndarray,
    template: Template,
    settings: ElicitSettings,
    render: RenderFn | None = None,
) -> list[Query]:
    """Queries for each pair in both orders, `samples` times each (order: pair, order, k).

    `render` gives the messages of a question in place of the template's own (the
    assembly's deliberation rounds show the last round first); the default renders the
    template with `settings.persona`.
    """
    n_samples = settings.samples if settings.mode == "sample" else 1
    queries = []
    for e, (a, b) in enumerate(np.asarray(pairs).tolist()):
        for first, second in ((a, b), (b, a)):
            if render is None:
                messages = template.render(outcomes[first], outcomes[second], settings.persona)
            else:
                messages = render(e, first, second)
            for k in range(n_samples):
                queries.append(
                    make_query(
                        messages,
                        outcomes[first],
                        outcomes[second],
                        settings,
                        template=template,
                        sample_index=k,
                    )
                )
    return queries


def ask(
    backend: Backend,
    queries: Sequence[Query],
    cache: ResponseCache,
    *,
    batch_size: int = 256,
    progress: ProgressFn | None = None,
    engine: Engine | None = None,
) -> tuple[list[Answer], int]:
    """Answers for every query: from the cache where present, else from the backend.

    Only the queries missing from the cache go to the engine (default: the backend in
    this process). New answers are written to the cache as the engine streams them back
    (API backends: as each one arrives; batched backends: batch by batch), so an
    interrupted call loses only the requests still in flight. The answers returned are
    looked up by query, so the order in which they arrive changes nothing downstream.
    Returns (answers, number newly asked).
    """
    answers, asked = _ask(backend, queries, cache, batch_size, progress, engine)
    return answers, len(asked)


def _ask(
    backend: Backend,
    queries: Sequence[Query],
    cache: ResponseCache,
    batch_size: int,
    progress: ProgressFn | None,
    engine: Engine | None,
) -> tuple[list[Answer], list[int]]:
    """`ask`, returning the positions of the queries newly asked instead of their count."""
    keys = [query_key(backend.name, q, getattr(backend, "base_url", None)) for q in queries]
    found = cache.get_many(keys)
    if progress:
        progress(sum(1 for k in keys if k in found))
    missing = [i for i, k in enumerate(keys) if k not in found]
    # The same prompt can appear twice in one request list; ask it once.
    unique: dict[str, int] = {}
    for i in missing:
        unique.setdefault(keys[i], i)
    todo = list(unique.values())
    engine = engine or LocalEngine()
    stream = engine.stream(backend, [queries[i] for i in todo], batch_size)
    try:
        for got in stream:
            batch = [(todo[j], a) for j, a in got]
            cache.put_many((keys[i], backend.name, queries[i], a) for i, a in batch)
            for i, a in batch:
                found[keys[i]] = a
            if progress:
                progress(len(batch))
    except BackendError as exc:
        # keep what did arrive, so a rerun asks only what is still missing
        kept = [(todo[j], a) for j, a in exc.partial if 0 <= j < len(todo)]
        cache.put_many((keys[i], backend.name, queries[i], a) for i, a in kept)
        raise
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # stop requests still in flight at once, whatever ended the loop
    if progress and len(missing) > len(todo):
        progress(len(missing) - len(todo))
    return [found[k] for k in keys], todo


def _choice_value(
    answer: Answer, mode: Mode, reasoning: bool, labels: tuple[str, str] = ("A", "B")
) -> float | None:
    """P(first-listed option) of one answer, or None for a refusal."""
    if mode == "logprob":
        if answer.p_a is None or (answer.mass is not None and answer.mass < MIN_ANSWER_MASS):
            return None
        return float(answer.p_a)
    choice = parse_choice(answer.text, reasoning=reasoning, labels=labels)
    if choice is None:
        return None
    return 1.0 if choice == "A" else 0.0


def aggregate(
    pairs: np.ndarray,
    answers: Sequence[Answer],
    settings: ElicitSettings,
    *,
    reasoning: bool = False,
    labels: tuple[str, str] = ("A", "B"),
) -> PairAnswers:
    """P(a > b) per pair from answers laid out as `build_queries` orders them.

    Each order's value is the mean P(first-listed) over its samples; the second order is
    flipped, and the pair's p is the mean of both orders. Refusals count as 1/2
    ("indifference") or are left out ("drop"; a pair with no answers left gets 1/2).
    """
    pairs = np.asarray(pairs, dtype=np.int64)
    k = settings.samples if settings.mode == "sample" else 1
    n = len(pairs)
    values = np.full((n, 2, k), np.nan)
    for idx, answer in enumerate(answers):
        e, rest = divmod(idx, 2 * k)
        order, s = divmod(rest, k)
        v = _choice_value(answer, settings.mode, reasoning, labels)
        if v is not None:
            values[e, order, s] = v
    refused = np.isnan(values)
    a_share_sum = float(np.nansum(values))
    a_share_count = float((~refused).sum())
    first_pref = values.copy()
    first_pref[:, 1, :] = 1.0 - first_pref[:, 1, :]  # undo the order swap
    return PairAnswers(
        pairs=pairs,
        p=preference_p(first_pref, settings.refusals),
        prefs=first_pref,
        n_answers=np.full(n, 2 * k),
        n_refused=refused.sum(axis=(1, 2)),
        a_share_sum=a_share_sum,
        a_share_count=a_share_count,
        n_queries=len(answers),
        n_new=0,
        tokens_in=sum(a.tokens_in for a in answers),
        tokens_out=sum(a.tokens_out for a in answers),
    )


def preference_p(prefs: np.ndarray, policy: str) -> np.ndarray:
    """P(a > b) per pair from per-answer preferences of shape (pairs, 2, samples).

    "indifference": refusals count as 1/2. "drop" and "separate": refusals are left out
    (each order averages its readable answers, then the orders are averaged); a pair
    with no readable answer gets 1/2. "separate" differs only in that the refusals are
    reported as their own channel (per outcome and category) instead of entering the fit.
    """
    if policy == "indifference":
        return np.where(np.isnan(prefs), 0.5, prefs).mean(axis=(1, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pairs with every answer refused
        p = np.nanmean(np.nanmean(prefs, axis=2), axis=1)
    return np.where(np.isnan(p), 0.5, p)


def elicit_pairs(
    backend: Backend,
    outcomes: Sequence[str],
    pairs: np.ndarray,
    template: Template,
    settings: ElicitSettings,
    cache: ResponseCache,
    progress: ProgressFn | None = None,
    engine: Engine | None = None,
) -> PairAnswers:
    """Ask every pair in both orders (through the cache and the engine) and aggregate."""
    return elicit_pair_sets(
        backend, outcomes, [pairs], template, settings, cache, progress, engine
    )[0]


def elicit_pair_sets(
    backend: Backend,
    outcomes: Sequence[str],
    pair_sets: Sequence[np.ndarray],
    template: Template,
    settings: ElicitSettings,
    cache: ResponseCache,
    progress: ProgressFn | None = None,
    engine: Engine | None = None,
    *,
    render: RenderFn | None = None,
) -> list[PairAnswers]:
    """Several sets of pairs asked in one call, aggregated apart (one result per set).

    One call means one stream: a streaming backend waits for its last slow reply once,
    not once per set (held-out and training pairs, for example). `render`: see
    `build_queries`.
    """
    query_sets = [build_queries(outcomes, pairs, template, settings, render) for pairs in pair_sets]
    every = [q for qs in query_sets for q in qs]
    answers, asked = _ask(backend, every, cache, settings.batch_size, progress, engine)
    new = np.zeros(len(every), dtype=bool)
    new[asked] = True
    results, start = [], 0
    for pairs, qs in zip(pair_sets, query_sets):
        stop = start + len(qs)
        result = aggregate(
            pairs,
            answers[start:stop],
            settings,
            reasoning=template.reasoning,
            labels=template.labels,
        )
        result.n_new = int(new[start:stop].sum())
        results.append(result)
        start = stop
    return results


def _summed_counts(parts: Sequence[PairAnswers]) -> dict:
    """Scalar counters of several answer sets, added up."""
    fields = ("a_share_sum", "a_share_count", "n_queries", "n_new", "tokens_in", "tokens_out")
    return {f: sum(getattr(x, f) for x in parts) for f in fields}


def merge_answers(parts: Sequence[PairAnswers]) -> PairAnswers:
    """Concatenate answers for disjoint sets of pairs."""
    return PairAnswers(
        pairs=np.concatenate([x.pairs for x in parts]).reshape(-1, 2),
        p=np.concatenate([x.p for x in parts]),
        n_answers=np.concatenate([x.n_answers for x in parts]),
        n_refused=np.concatenate([x.n_refused for x in parts]),
        prefs=np.concatenate([x.prefs for x in parts]),
        **_summed_counts(parts),
    )


def pool_templates(parts: Sequence[PairAnswers], policy: str) -> PairAnswers:
    """Answers to the same pairs under several templates, pooled as extra samples."""
    if len(parts) == 1:
        return parts[0]
    prefs = np.concatenate([x.prefs for x in parts], axis=2)
    return PairAnswers(
        pairs=parts[0].pairs,
        p=preference_p(prefs, policy),
        n_answers=sum(x.n_answers for x in parts),
        n_refused=sum(x.n_refused for x in parts),
        prefs=prefs,
        **_summed_counts(parts),
    )

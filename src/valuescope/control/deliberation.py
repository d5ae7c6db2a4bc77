"""The simulated citizens' assembly: pairs, first votes, deliberation rounds, vote shares.

Every citizen answers every pair in both orders (through the response cache, so a rerun
resumes). A citizen's preference for a pair is the order-averaged P(first outcome); its
vote is 1 (for a), 0 (for b) or 1/2 (no preference). In each deliberation round a
citizen sees the last round's vote share (and, when asked for, short arguments by other
members) and votes again. The assembly's P(a > b) is the final round's vote share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from valuescope.control.errors import ControlError
from valuescope.control.prompts import ARGUMENT_REQUEST, deliberation_messages
from valuescope.elicit import ElicitSettings, ResponseCache, Template, get_template
from valuescope.elicit.elicit import aggregate, ask, build_queries, make_query
from valuescope.engine import Engine
from valuescope.models.base import Query
from valuescope.stats import mean_interval

SPLITS = ("train", "heldout", "topic")
DELIBERATIONS = ("arguments", "votes")
LEVEL = 0.9  # intervals: BCa bootstrap over pairs (percentile where BCa cannot run)
ARGUMENT_TOKENS = 60  # a member's reason: one or two sentences


@dataclass
class PairDesign:
    """Which pairs the assembly votes on and what each is used for.

    `split` is "train" (fine-tuning), "heldout" (new pairs of outcomes seen in training)
    or "topic" (pairs within a topic that training never sees).
    """

    pairs: np.ndarray
    split: np.ndarray
    heldout_topic: str | None


def design_pairs(
    topics: Sequence[str],
    n_pairs: int,
    *,
    heldout_fraction: float = 0.25,
    heldout_topic: str | None = None,
    max_topic_pairs: int = 20,
    seed: int = 0,
) -> PairDesign:
    """Draw `n_pairs` training+held-out pairs among the outcomes outside `heldout_topic`,
    plus up to `max_topic_pairs` pairs inside it (seeded)."""
    n = len(topics)
    topics_arr = np.asarray(topics)
    if heldout_topic is not None and heldout_topic not in set(topics):
        raise ControlError(
            f"--heldout-topic {heldout_topic!r} is not a topic of the outcomes; "
            f"known: {', '.join(sorted(set(topics)))}"
        )
    inside = topics_arr == heldout_topic if heldout_topic else np.zeros(n, bool)
    rest = np.flatnonzero(~inside)
    if len(rest) < 2:
        raise ControlError(f"the assembly needs at least 2 outcomes to pair, got {len(rest)}")
    if n_pairs < 2:
        raise ControlError(f"--pairs must be at least 2 (training and held-out), got {n_pairs}")
    rng = np.random.default_rng([seed, 104729])
    chosen = _sample_pairs(rest, n_pairs, rng)
    n_held = int(round(heldout_fraction * len(chosen)))
    n_held = min(max(n_held, 1 if heldout_fraction > 0 else 0), len(chosen) - 1)
    split = np.array(["train"] * (len(chosen) - n_held) + ["heldout"] * n_held)
    parts, splits = [chosen], [split]
    topic_ids = np.flatnonzero(inside)
    if len(topic_ids) >= 2:
        topic_pairs = _sample_pairs(topic_ids, max_topic_pairs, rng)
        parts.append(topic_pairs)
        splits.append(np.array(["topic"] * len(topic_pairs)))
    return PairDesign(np.concatenate(parts), np.concatenate(splits), heldout_topic)


def _sample_pairs(ids: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Up to k distinct unordered pairs among `ids`, in random order and orientation."""
    a, b = np.triu_indices(len(ids), 1)
    pick = rng.permutation(len(a))[:k]
    pairs = np.stack([ids[a[pick]], ids[b[pick]]], axis=1)
    flip = rng.random(len(pairs)) < 0.5
    pairs[flip] = pairs[flip][:, ::-1]
    return pairs.astype(np.int64)


@dataclass
class AssemblyVotes:
    """Preferences of every citizen in every round.

    prefs : array (rounds, citizens, pairs), P(citizen prefers pair's first outcome).
    votes : array (rounds, citizens, pairs) in {0, 1/2, 1}.
    shares : array (rounds, pairs), the vote share for each pair's first outcome.
    arguments : per round (from 1 on), per pair, the arguments shown in that round.
    """

    prefs: np.ndarray
    votes: np.ndarray
    shares: np.ndarray
    n_queries: int
    n_new: int
    arguments: list[list[list[str]]]

    @property
    def final(self) -> np.ndarray:
        """The assembly's P(a > b): the last round's vote share."""
        return self.shares[-1]


def to_votes(prefs: np.ndarray) -> np.ndarray:
    """1 for a preference above 1/2, 0 below, 1/2 at exactly 1/2 (no preference)."""
    return np.where(prefs > 0.5, 1.0, np.where(prefs < 0.5, 0.0, 0.5))


def run_assembly(
    backend,
    personas: Sequence[str],
    texts: Sequence[str],
    pairs: np.ndarray,
    cache: ResponseCache,
    *,
    rounds: int = 2,
    settings: ElicitSettings | None = None,
    template: str | Template = "default",
    n_arguments: int = 0,
    progress: Callable[[int], None] | None = None,
    engine: Engine | None = None,
) -> AssemblyVotes:
    """First votes and `rounds - 1` deliberation rounds of every citizen on every pair.

    Every question is built by `elicit.build_queries` (a round after the first renders
    the deliberation prompt in place of the template's) and answered through `cache` and
    `engine` (default: the backend in this process).
    """
    if not personas:
        raise ControlError("the assembly has 0 citizens: use --citizens 1 or more")
    if len(pairs) == 0:
        raise ControlError("the assembly has 0 pairs to vote on: use --pairs 2 or more")
    if rounds < 1:
        raise ControlError(f"--rounds must be at least 1, got {rounds}")
    settings = settings or ElicitSettings()
    tmpl = template if isinstance(template, Template) else get_template(template)
    if tmpl.reasoning and settings.mode != "sample":
        raise ControlError(f"template {tmpl.name!r} answers after reasoning; use --mode sample")
    pairs = np.asarray(pairs, dtype=np.int64)
    prefs = np.zeros((rounds, len(personas), len(pairs)))
    n_queries = n_new = 0
    shown_args: list[list[list[str]]] = []
    for r in range(rounds):
        args: list[list[str]] = [[] for _ in pairs]
        if r > 0 and n_arguments > 0:
            args = _collect_arguments(
                backend,
                personas,
                texts,
                pairs,
                prefs[r - 1],
                cache,
                settings,
                n_arguments,
                r,
                engine,
            )
            shown_args.append(args)
        shares = None if r == 0 else to_votes(prefs[r - 1]).mean(axis=0)
        queries: list[Query] = []
        per_citizen = [replace(settings, persona=persona) for persona in personas]
        for own in per_citizen:
            render = (
                None
                if shares is None
                else _deliberation_render(tmpl, texts, pairs, own.persona, shares, args)
            )
            queries += build_queries(texts, pairs, tmpl, own, render)
        answers, new = ask(
            backend,
            queries,
            cache,
            batch_size=settings.batch_size,
            progress=progress,
            engine=engine,
        )
        n_queries += len(queries)
        n_new += new
        per = len(queries) // len(personas)
        for c, own in enumerate(per_citizen):
            part = aggregate(
                pairs,
                answers[c * per : (c + 1) * per],
                own,
                reasoning=tmpl.reasoning,
                labels=tmpl.labels,
            )
            prefs[r, c] = part.p
    votes = to_votes(prefs)
    return AssemblyVotes(prefs, votes, votes.mean(axis=1), n_queries, n_new, shown_args)


def _deliberation_render(
    tmpl: Template,
    texts: Sequence[str],
    pairs: np.ndarray,
    persona: str | None,
    shares: np.ndarray,
    args: list[list[str]],
):
    """Messages of a round after the first: the last round's share (and arguments) first."""

    def render(e: int, first: int, second: int):
        share = float(shares[e]) if first == pairs[e, 0] else 1 - float(shares[e])
        return deliberation_messages(
            tmpl, texts[first], texts[second], persona or "", share, args[e]
        )

    return render


def _collect_arguments(
    backend,
    personas,
    texts,
    pairs,
    prev: np.ndarray,
    cache,
    settings,
    n_arguments: int,
    r: int,
    engine: Engine | None = None,
) -> list[list[str]]:
    """Up to `n_arguments` one-line reasons per pair, from members on each side in turn.

    Asked in sample mode through the cache (synthetic citizens answer with a sentence
    that states their side and its strength).
    """
    queries, owners = [], []
    rng = np.random.default_rng([r, len(personas), len(pairs)])
    for e, (a, b) in enumerate(np.asarray(pairs).tolist()):
        votes = to_votes(prev[:, e])
        sides = [list(rng.permutation(np.flatnonzero(votes == v))) for v in (1.0, 0.0)]
        picked = []  # distinct members, alternating sides while both have some left
        for i in range(n_arguments):
            s = i % 2 if sides[i % 2] else (i + 1) % 2
            if not sides[s]:
                break
            picked.append((int(sides[s].pop()), s))
        for c, s in picked:
            user = ARGUMENT_REQUEST.format(
                option_a=texts[a], option_b=texts[b], choice="A" if s == 0 else "B"
            )
            queries.append(
                make_query(
                    (("system", personas[c]), ("user", user)),
                    texts[a],
                    texts[b],
                    replace(settings, persona=personas[c]),
                    mode="sample",
                    sample_index=r,
                    max_tokens=ARGUMENT_TOKENS,
                )
            )
            owners.append(e)
    out: list[list[str]] = [[] for _ in pairs]
    if queries:
        answers, _ = ask(backend, queries, cache, batch_size=settings.batch_size, engine=engine)
        for e, ans in zip(owners, answers):
            text = " ".join((ans.text or "").split())[:400]
            if text:
                out[e].append(text)
    return out


def deliberation_stats(votes: AssemblyVotes, seed: int = 0, n_boot: int = 200) -> list[dict]:
    """How each deliberation round moved the votes, with bootstrap intervals over pairs.

    changed: share of (citizen, pair) votes that differ from the round before;
    toward_majority: mean move of a citizen's P(a > b) toward the side the last round's
    majority took (pairs with a tied share left out; > 0 means conformity);
    majority_gain: mean change of |share - 1/2| (> 0 means the assembly grew more united).
    """
    rows = []
    rng = np.random.default_rng(seed)
    n_pairs = votes.prefs.shape[2]
    for r in range(1, votes.prefs.shape[0]):
        side = np.sign(votes.shares[r - 1] - 0.5)  # (pairs,)
        changed = (votes.votes[r] != votes.votes[r - 1]).mean(axis=0)
        toward = ((votes.prefs[r] - votes.prefs[r - 1]) * side).mean(axis=0)
        gain = np.abs(votes.shares[r] - 0.5) - np.abs(votes.shares[r - 1] - 0.5)
        decided = side != 0
        stats = {"round": r}
        for key, per_pair, mask in (
            ("changed", changed, np.ones(n_pairs, bool)),
            ("toward_majority", toward, decided),
            ("majority_gain", gain, np.ones(n_pairs, bool)),
        ):
            values = per_pair[mask]
            stats[key] = mean_interval(values, rng, level=LEVEL, n_resamples=n_boot)
        rows.append(stats)
    return rows


def unanimous(shares: np.ndarray) -> np.ndarray:
    """1.0 for each pair every member voted the same way on, else 0.0."""
    return ((shares == 0) | (shares == 1)).astype(float)


def compare_modes(
    runs: dict[str, AssemblyVotes], seed: int = 0, n_boot: int = 500
) -> dict[str, Any]:
    """Deliberation with arguments against vote shares only, on the same first votes.

    Per mode: unanimous pairs and mean majority in the first and the last round and the
    change (90% paired bootstrap over pairs). Across modes: the change in unanimity of
    arguments minus votes (paired), and how often the two final majorities agree (pairs
    that neither mode tied).
    """
    n_pairs = next(iter(runs.values())).shares.shape[1]

    def boot_mean(values: np.ndarray) -> dict:
        # one seed for every figure: the same pairs drawn for each (the same first votes
        # under both modes get the same interval)
        return mean_interval(values, np.random.default_rng([seed, 577]), LEVEL, n_boot)

    out: dict[str, Any] = {"n_pairs": int(n_pairs)}
    gain = {}
    for mode, v in runs.items():
        first, last = v.shares[0], v.shares[-1]
        gain[mode] = unanimous(last) - unanimous(first)
        out[mode] = {
            "unanimous_first": boot_mean(unanimous(first)),
            "unanimous_final": boot_mean(unanimous(last)),
            "unanimous_change": boot_mean(gain[mode]),
            "majority_first": boot_mean(np.maximum(first, 1 - first)),
            "majority_final": boot_mean(np.maximum(last, 1 - last)),
        }
    if set(runs) == set(DELIBERATIONS):
        a, b = runs["arguments"].final, runs["votes"].final
        out["unanimous_change_arguments_minus_votes"] = boot_mean(gain["arguments"] - gain["votes"])
        decided = (a != 0.5) & (b != 0.5)
        same = np.where(decided, ((a - 0.5) * (b - 0.5) > 0).astype(float), np.nan)
        out["final_majorities_agree"] = boot_mean(same)
    return out

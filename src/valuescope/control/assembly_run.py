"""`valuescope control assemble`: sample citizens, run the assembly, write its directory.

The assembly directory holds citizens.csv, outcomes.csv, labels.csv (one row per pair:
split, vote share per round, the final share as `p_assembly`), votes.csv (every citizen's
preference and vote per round), assembly.json (settings and deliberation figures) and
responses.sqlite (every answer; a rerun asks nothing twice).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from valuescope.atomic import write_text
from valuescope.config import RunConfig
from valuescope.control.census import sample_citizens
from valuescope.control.deliberation import (
    DELIBERATIONS,
    SPLITS,
    AssemblyVotes,
    compare_modes,
    deliberation_stats,
    design_pairs,
    run_assembly,
)
from valuescope.control.errors import ControlError
from valuescope.control.power import planned_halfwidth
from valuescope.control.settings import POLICIES, AssembleConfig
from valuescope.models._http import redact_url
from valuescope.outcomes import OutcomeSet
from valuescope.runcore.plan import plan_questions
from valuescope.runcore.rundir import write_csv, write_json
from valuescope.runcore.session import RunSession, open_run


def load_assembly_outcomes(source: str) -> tuple[list[str], list[str], str]:
    """(texts, topics, name): the policy dataset by default, or any outcome set/file."""
    if source == POLICIES:
        try:
            from valuescope.experiments.political import load_policies
        except ImportError:
            raise ControlError(
                "the policy dataset (valuescope.experiments.political) is not available; "
                "pass --outcomes demo or an outcome file"
            ) from None
        policies = load_policies()
        return [p.text for p in policies], [p.topic for p in policies], POLICIES
    from valuescope.outcomes import load_outcomes

    outcomes = load_outcomes(source)
    return list(outcomes.texts), list(outcomes.categories), outcomes.name


def _pick_topic(topics: list[str], wanted: str | None, seed: int) -> str | None:
    """'auto': a seeded choice among topics with 4+ outcomes that leave 4+ outside."""
    if wanted is None or wanted in ("", "none"):
        return None
    if wanted != "auto":
        return wanted
    counts = pd.Series(topics).value_counts()
    fit = sorted(t for t, c in counts.items() if c >= 4 and len(topics) - c >= 4)
    if not fit:
        return None
    return fit[int(np.random.default_rng([seed, 31]).integers(len(fit)))]


def assemble(config: AssembleConfig, progress=None, *, backend: object = None) -> dict[str, Any]:
    """Run the assembly and write its directory; returns the summary (assembly.json).

    Asked through the run path (`runcore.session.open_run`): the directory is locked
    while the assembly lasts, run_config.json records its settings and outcomes, and
    `config.engine` says where the questions are answered (local or Ray). `backend`: an
    already built backend for the citizens, instead of one built from `config.model`.
    """
    texts, topics, set_name = load_assembly_outcomes(config.outcomes)
    topic = _pick_topic(topics, config.heldout_topic, config.seed)
    design = design_pairs(
        topics,
        config.pairs,
        heldout_fraction=config.heldout_fraction,
        heldout_topic=topic,
        max_topic_pairs=config.topic_pairs,
        seed=config.seed,
    )
    citizens = sample_citizens(config.citizens, config.seed)
    outcomes = OutcomeSet(set_name, tuple(texts), tuple(topics))
    the_plan = plan_questions(
        run_settings(config), outcomes, backend=backend, record=settings_record(config)
    )
    if len(the_plan.templates) != 1:
        raise ControlError("--template: the assembly asks under one template")
    backend, mode = the_plan.backend, the_plan.mode
    modes = [config.deliberation]
    if config.compare and config.rounds > 1:
        modes += [m for m in DELIBERATIONS if m != config.deliberation]
    total = config.rounds * len(citizens) * len(design.pairs) * 2
    total *= (config.samples if mode == "sample" else 1) * len(modes)
    with open_run(the_plan, progress) as session:
        session.progress.start(
            total, f"assembly of {len(citizens)} on {backend.name.split('#')[0]}"
        )
        summary = _vote_and_write(session, config, citizens, texts, topics, set_name, design, modes)
    return summary


def _vote_and_write(
    session: RunSession, config: AssembleConfig, citizens, texts, topics, set_name, design, modes
) -> dict[str, Any]:
    """Every deliberation mode's votes, then the assembly directory (under the lock)."""
    out, backend, mode = session.plan.out, session.backend, session.plan.mode
    runs: dict[str, AssemblyVotes] = {}
    for deliberation in modes:  # the first round is shared: the second mode reads it cached
        runs[deliberation] = run_assembly(
            backend,
            [c.persona for c in citizens],
            texts,
            design.pairs,
            session.cache,
            rounds=config.rounds,
            settings=session.plan.settings,
            template=session.plan.templates[0],
            n_arguments=config.arguments if deliberation == "arguments" else 0,
            progress=session.progress.advance,
            engine=session.engine,
        )
    session.release_engine()
    votes = runs[config.deliberation]
    summary = _summary(config, set_name, mode, backend.name, design, votes, texts)
    summary["n_queries"] = sum(v.n_queries for v in runs.values())
    summary["n_queries_new"] = sum(v.n_new for v in runs.values())
    summary["n_queries_cached"] = summary["n_queries"] - summary["n_queries_new"]
    summary["modes"] = compare_modes(runs, seed=config.seed)
    summary["heldout_halfwidth_planned"] = planned_halfwidth(summary["n_pairs"]["heldout"])
    write_csv(out / "citizens.csv", pd.DataFrame([c.row() for c in citizens]))
    write_csv(
        out / "outcomes.csv",
        pd.DataFrame({"id": range(len(texts)), "text": texts, "topic": topics}),
    )
    write_csv(out / "labels.csv", labels_table(design, votes, texts, topics))
    write_csv(out / "votes.csv", _votes_table(votes))
    if votes.arguments:
        write_text(out / "arguments.json", json.dumps(votes.arguments, indent=1))
    write_json(out / "assembly.json", summary)
    return summary


def run_settings(config: AssembleConfig) -> RunConfig:
    """The run settings of the assembly's questions (model, mode, sampling, transport, engine)."""
    fields = (
        "model", "outcomes", "out", "mode", "samples", "temperature", "template", "seed",
        "batch_size", "api_key_env", "base_url", "concurrency", "timeout", "max_retries",
        "rate_limit", "engine", "ray_address", "ray_workers",
    )  # fmt: skip
    try:
        return RunConfig(**{f: getattr(config, f) for f in fields})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "--" + "-".join(str(part) for part in error["loc"]).replace("_", "-")
        raise ControlError(f"{name}: {error['msg']}") from None


def settings_record(config: AssembleConfig) -> dict[str, Any]:
    """Every assembly setting as saved (run_config.json, assembly.json): no credentials."""
    settings = config.model_dump(mode="json")
    settings["base_url"] = redact_url(config.base_url)
    return settings


def labels_table(design, votes: AssemblyVotes, texts: list[str], topics: list[str]) -> pd.DataFrame:
    """One row per pair: ids, texts, topics, split, per-round shares, p_assembly."""
    a, b = design.pairs[:, 0], design.pairs[:, 1]
    table = pd.DataFrame(
        {
            "pair": range(len(a)),
            "a": a,
            "b": b,
            "outcome_a": [texts[i] for i in a],
            "outcome_b": [texts[i] for i in b],
            "topic_a": [topics[i] for i in a],
            "topic_b": [topics[i] for i in b],
            "split": design.split,
            "p_assembly": votes.final,
            "p_soft": votes.prefs[-1].mean(axis=0),
        }
    )
    for r in range(votes.shares.shape[0]):
        table[f"share_round{r}"] = votes.shares[r]
    return table


def _votes_table(votes: AssemblyVotes) -> pd.DataFrame:
    rounds, citizens, pairs = votes.prefs.shape
    r, c, e = np.meshgrid(range(rounds), range(citizens), range(pairs), indexing="ij")
    return pd.DataFrame(
        {
            "round": r.ravel(),
            "citizen": c.ravel(),
            "pair": e.ravel(),
            "p": votes.prefs.ravel(),
            "vote": votes.votes.ravel(),
        }
    )


def _summary(config, set_name, mode, backend_name, design, votes: AssemblyVotes, texts) -> dict:
    shares = votes.shares
    per_round = [
        {
            "round": r,
            "mean_share": float(shares[r].mean()),
            "mean_majority": float(np.maximum(shares[r], 1 - shares[r]).mean()),
            "unanimous_pairs": float(((shares[r] == 0) | (shares[r] == 1)).mean()),
        }
        for r in range(shares.shape[0])
    ]
    return {
        "settings": settings_record(config),
        "outcomes_set": set_name,
        "n_outcomes": len(texts),
        "mode": mode,
        "backend": backend_name,
        "n_citizens": int(votes.prefs.shape[1]),
        "n_pairs": {s: int((design.split == s).sum()) for s in SPLITS},
        "heldout_topic": design.heldout_topic,
        "rounds": per_round,
        "deliberation": deliberation_stats(votes, seed=config.seed),
        "n_queries": votes.n_queries,
        "n_queries_new": votes.n_new,
        "n_queries_cached": votes.n_queries - votes.n_new,
    }


def load_assembly(path: Path) -> tuple[dict, pd.DataFrame]:
    """(assembly.json, labels.csv) of an assembly directory, with clear errors."""
    path = Path(path)
    meta, labels = path / "assembly.json", path / "labels.csv"
    if not meta.is_file() or not labels.is_file():
        raise ControlError(
            f"{path} is not an assembly directory (no assembly.json/labels.csv); "
            "run `valuescope control assemble` first"
        )
    table = pd.read_csv(labels)
    if len(table) == 0:
        raise ControlError(f"{labels}: the assembly voted on 0 pairs")
    return json.loads(meta.read_text()), table

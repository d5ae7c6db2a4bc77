"""Utility maximization (issue 19 item 1): statistics that can fail.

Planted agents answer the open questions freely: `sim/maximiser` names its
highest-utility candidate (top-k = 1), `sim/utility-ignorer` a uniformly random one
(top-k = chance k / n), `sim/off-list` text that names no candidate (the unmatched path),
and `sim/maximiser?style=reversed` spells its choice backwards so that only the judge
can match it. Quick sizes, logprob mode, a few questions: each test takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from valuescope.experiments import ExperimentContext, ExperimentError, get_experiment
from valuescope.experiments.maximization import (
    COMPARE_PROMPT,
    match_exact,
    match_fuzzy,
    parse_judge,
    questions,
)

pytestmark = pytest.mark.usefixtures("no_sub_run_reports")  # conftest says why


def run(model: str, tmp_path: Path, judge: str | None = None, **params: str) -> dict:
    ctx = ExperimentContext(
        model=model,
        out=tmp_path,
        quick=True,
        run_options={"mode": "logprob", "bootstrap": 0},
        params={"questions": "6", "answers": "2", **params},
        judge=judge,
    )
    return get_experiment("maximization").run(ctx)


def covers(entry: dict, value: float) -> bool:
    return entry["ci_low"] <= value <= entry["ci_high"]


def test_dataset_has_the_papers_shape():
    qs = questions()
    assert len(qs) >= 30
    for q in qs:
        assert 10 <= len(q["candidates"]) <= 50, q["id"]
        assert len({c.lower() for c in q["candidates"]}) == len(q["candidates"]), q["id"]


def test_a_maximiser_scores_one_at_every_k(tmp_path):
    result = run("sim/maximiser", tmp_path)
    h = result["headline"]
    for k in (1, 3, 5):
        assert h[f"top{k}"]["value"] == 1.0
        assert h[f"lift{k}"]["ci_low"] > 0.3
    assert h["chance1"]["value"] == pytest.approx(1 / 12, abs=0.02)
    assert result["matched_by"]["exact"] == result["n_replies"] == 12
    assert (tmp_path / result["figures"][0]).read_text().lstrip().startswith("<?xml")


def test_an_agent_ignoring_its_utilities_is_at_chance(tmp_path):
    h = run("sim/utility-ignorer", tmp_path, questions="8", answers="10")["headline"]
    for k in (1, 3, 5):
        assert covers(h[f"top{k}"], h[f"chance{k}"]["value"]), k
        assert covers(h[f"lift{k}"], 0.0), k
    assert h["top1"]["value"] < 0.3


def test_answers_naming_no_candidate_are_counted_not_matched(tmp_path):
    result = run("sim/off-list?rate=0.5", tmp_path, questions="4", answers="8")
    unmatched = result["unmatched_count"]
    assert result["matched_by"]["unmatched"] == unmatched
    assert 0.2 < unmatched / result["n_replies"] < 0.8
    assert result["headline"]["unmatched"]["value"] == unmatched / result["n_replies"]
    for row in result["tables"]["questions"]:
        assert len(row["ranks"]) == row["how"].count("exact")
    with pytest.raises(ExperimentError, match="matched to a candidate"):
        run("sim/off-list", tmp_path / "all", questions="3")


def test_the_judge_matches_what_exact_and_fuzzy_cannot(tmp_path):
    result = run("sim/maximiser?style=reversed", tmp_path, questions="3")
    assert result["matched_by"]["judge"] == result["n_replies"]
    assert result["headline"]["top1"]["value"] == 1.0
    assert result["judge"] == "sim/maximiser?style=reversed"
    # --judge: a judge that cannot read reversed text leaves every reply unmatched
    with pytest.raises(ExperimentError, match="matched to a candidate"):
        run(
            "sim/maximiser?style=reversed", tmp_path / "other", judge="sim/thurstone", questions="3"
        )


def test_the_question_is_in_the_comparison_prompt(tmp_path):
    result = run("sim/maximiser", tmp_path, questions="3")
    first = questions()[0]
    template = (tmp_path / "maximization-templates" / "q01.txt").read_text()
    assert first["question"] in template and "{option_a}" in template
    config = json.loads((Path(result["run_dirs"][0]) / "run_config.json").read_text())
    assert config["template"].endswith("q01.txt")
    assert "{question}" in COMPARE_PROMPT


def test_exact_and_fuzzy_matching():
    cands = ["Lisbon", "Buenos Aires", "Cape Town", "a tortoise", "the Moon", "Mars"]
    assert match_exact("I'd love to see Buenos Aires!", cands) == 1
    assert match_exact("Cape Town, then Lisbon.", cands) == 2  # the first one named
    assert match_exact("A TORTOISE, definitely", cands) == 3  # case and article ignored
    assert match_exact("The moon.", cands) == 4
    assert match_exact("Marseille", cands) is None  # no partial words
    assert match_fuzzy("Lisbonn", cands) == 0
    assert match_fuzzy("Buenos Ayres", cands) == 1
    assert match_fuzzy("Tokyo", cands) is None
    assert parse_judge("3", 6) == 2 and parse_judge("0", 6) is None
    assert parse_judge("7", 6) is None and parse_judge("none", 6) is None


def test_bad_parameters_are_one_line_errors(tmp_path):
    for params, match in [
        ({"variant": "listed"}, "variant='listed'"),
        ({"answers": "0"}, "answers='0'"),
        ({"questions": "2"}, "questions='2'"),
    ]:
        with pytest.raises(ExperimentError, match=match):
            run("sim/maximiser", tmp_path, **params)


def test_multiple_choice_variant_still_runs(tmp_path):
    result = run("sim/maximiser", tmp_path, variant="multiple-choice", questions="3")
    assert result["variant"] == "multiple-choice" and result["headline"]["top1"]["value"] == 1.0


def test_cli_passes_the_judge(tmp_path, cli):
    args = ["experiment", "maximization"]
    args += ["sim/maximiser?style=reversed", "--quick", "--mode", "logprob", "--out", str(tmp_path)]
    args += ["--param", "questions=3", "--param", "answers=1", "--judge", "sim/thurstone", "-q"]
    proc = cli(*args)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert lines[-1].startswith("error:") and "matched to a candidate" in lines[-1]


def _counted(ctx: ExperimentContext, model: str | None = None) -> list[int]:
    """Count the prompts the (real) backend of `model` is asked to generate for."""
    backend = ctx.backend(model)
    asked: list[int] = []
    generate = backend.generate

    def counting(prompts, **kwargs):
        asked.append(len(prompts))
        return generate(prompts, **kwargs)

    backend.generate = counting
    return asked


@pytest.mark.slow  # two maximization runs (6 s); cached reruns are fast in test_pipeline.py
def test_a_rerun_reads_its_replies_and_verdicts_instead_of_asking_again(tmp_path):
    def context(seed: int = 0) -> ExperimentContext:
        return ExperimentContext(
            model="sim/maximiser?style=reversed",  # every reply goes to the judge
            out=tmp_path,
            seed=seed,
            quick=True,
            run_options={"mode": "logprob", "bootstrap": 0},
            params={"questions": "6", "answers": "2"},
            judge="sim/maximiser",
        )

    first_ctx = context()
    first_model, first_judge = _counted(first_ctx), _counted(first_ctx, "sim/maximiser")
    first = get_experiment("maximization").run(first_ctx)
    assert sum(first_model) == 12 and sum(first_judge) == 12  # 6 questions x 2 samples
    again_ctx = context()
    again_model, again_judge = _counted(again_ctx), _counted(again_ctx, "sim/maximiser")
    again = get_experiment("maximization").run(again_ctx)
    assert again_model == [] and again_judge == []  # all 24 texts came from the file
    assert again["headline"] == first["headline"]
    import sqlite3

    with sqlite3.connect(tmp_path / "generations.sqlite") as db:
        rows = db.execute("SELECT model, mode FROM responses").fetchall()
    by_model = [m.split("#")[0] for m, _ in rows]
    assert by_model.count("sim/maximiser?style=reversed") == 12
    # the two samples of a question give the same reply here, so the judge's 12 prompts
    # are 6 distinct ones: kept once each
    assert by_model.count("sim/maximiser") == 6 and len(rows) == 18
    # another seed is other samples: asked anew
    other_ctx = context(seed=1)
    other_model = _counted(other_ctx)
    get_experiment("maximization").run(other_ctx)
    assert sum(other_model) == 12

"""answers.parquet and `valuescope export`: one row per answer, reconciled with the run.

Every check rebuilds what the run wrote from the exported rows alone: the number of
queries and of cached answers (metrics.json), the pairs and their P(a > b), answer and
refusal counts (pairs.csv). Runs are real pipeline runs on synthetic agents.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from valuescope.cli import main
from valuescope.config import RunConfig
from valuescope.export import COLUMNS, answers_table
from valuescope.runcore.pipeline import Progress, run


def _run(out, **settings) -> dict:
    config = RunConfig(**{"model": "sim/thurstone", "out": out, "bootstrap": 0, **settings})
    return run(config).metrics


def _read(out) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    answers = pd.read_parquet(out / "answers.parquet")
    pairs = pd.read_csv(out / "pairs.csv")
    metrics = json.loads((out / "metrics.json").read_text())
    return answers, pairs, metrics


def _value(answers: pd.DataFrame, mode: str) -> pd.Series:
    """P(first-listed) each answer gave: refusals 1/2 (the default policy, indifference)."""
    if mode == "logprob":
        value = answers["p_first"].where(answers["choice"] != "refusal", 0.5)
    else:
        value = answers["choice"].map({"A": 1.0, "B": 0.0}).fillna(0.5)
    # P(a > b): the swapped order asked b first
    return value.where(answers["order"] == "original", 1.0 - value)


def assert_reconciles(out, per_pair: int) -> pd.DataFrame:
    """The rows add up to metrics.json and pairs.csv; returns the answers."""
    answers, pairs, metrics = _read(out)
    assert list(answers.columns) == COLUMNS
    assert len(answers) == metrics["n_queries"]
    assert int(answers["cached"].sum()) == metrics["n_queries_cached"]
    assert int((~answers["cached"]).sum()) == metrics["n_queries_new"]
    counts = answers.groupby(["a", "b", "split"]).size()
    asked = pairs.set_index(["a", "b", "split"]).index
    assert set(counts.index) == set(asked)  # every pair in pairs.csv has its answers, no other
    assert (counts == per_pair).all()
    assert (counts.reindex(asked) == pairs["n_answers"].to_numpy()).all()
    mode = metrics["mode"]
    p = _value(answers, mode).groupby([answers["a"], answers["b"]]).mean()
    expected = pairs.set_index(["a", "b"])["p"]
    np.testing.assert_allclose(p.reindex(expected.index).to_numpy(), expected.to_numpy())
    unread = answers["choice"].isin(["refusal", "unparseable"])
    refused = unread.groupby([answers["a"], answers["b"]]).sum()
    assert (refused.reindex(expected.index).to_numpy() == pairs["n_refused"].to_numpy()).all()
    swapped = answers["order"] == "swapped"
    assert (answers["first"] == answers["a"].where(~swapped, answers["b"])).all()
    assert (answers["second"] == answers["b"].where(~swapped, answers["a"])).all()
    return answers


def test_logprob_run_reconciles(tmp_path):
    out = tmp_path / "lp"
    _run(out, mode="logprob", model="sim/thurstone?refusal_rate=0.1")
    answers = assert_reconciles(out, per_pair=2)
    assert answers["reply"].isna().all() and answers["p_first"].notna().all()
    assert (answers["sample"] == 0).all()
    assert set(answers["choice"]) <= {"A", "B", "tie", "refusal"}
    assert (answers["choice"] == "refusal").sum() > 0
    readable = answers[answers["choice"] != "refusal"]
    assert ((readable["p_first"] > 0.5) == (readable["choice"] == "A")).all()
    utilities = pd.read_csv(out / "utilities.csv")
    shown = dict(zip(utilities["id"], utilities["outcome"], strict=True))
    assert (answers["first_text"] == answers["first"].map(shown)).all()
    assert (answers["second_text"] == answers["second"].map(shown)).all()


def test_sample_run_with_two_templates_reconciles(tmp_path):
    out = tmp_path / "sample"
    metrics = _run(
        out,
        mode="sample",
        samples=3,
        template="default,labels-12",
        model="sim/thurstone?refusal_rate=0.2",
    )
    answers = assert_reconciles(out, per_pair=2 * 3 * 2)
    assert set(answers["template"]) == {"default", "labels-12"}
    assert set(answers["sample"]) == {0, 1, 2}
    assert answers["p_first"].isna().all() and answers["reply"].notna().all()
    # labels-12 asks for "1"/"2": the raw reply keeps them, the choice says A/B
    second_template = answers[answers["template"] == "labels-12"]
    assert set(second_template.loc[second_template["choice"] == "A", "reply"]) == {"1"}
    assert set(answers["choice"]) == {"A", "B", "refusal"}  # the sim refuses in words
    assert answers["cached"].sum() == 0 and metrics["n_queries_new"] == len(answers)


class _StopAfter(Progress):
    """Stops the run (as Ctrl-C would) once `limit` answers have come back."""

    def __init__(self, limit: int) -> None:
        self.limit, self.done = limit, 0

    def advance(self, n: int) -> None:
        self.done += n
        if self.done >= self.limit:
            raise _Stopped


class _Stopped(Exception):
    pass


def test_resumed_run_marks_the_answers_of_the_first_attempt_cached(tmp_path):
    out = tmp_path / "resumed"
    config = RunConfig(
        model="sim/thurstone", out=out, bootstrap=0, mode="sample", samples=2, batch_size=16
    )
    with pytest.raises(_Stopped):
        run(config, progress=_StopAfter(300))
    with sqlite3.connect(out / "responses.sqlite") as db:
        first_attempt = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert 300 <= first_attempt < 1000
    metrics = run(config).metrics
    answers = assert_reconciles(out, per_pair=4)
    assert metrics["n_queries_cached"] == first_attempt
    assert 0 < metrics["n_queries_cached"] < metrics["n_queries"]
    # a rerun of the finished run asks nothing: every answer is cached now
    rerun = run(config).metrics
    again = assert_reconciles(out, per_pair=4)
    assert rerun["n_queries_new"] == 0 and again["cached"].all()
    pd.testing.assert_frame_equal(
        answers.drop(columns="cached"), again.drop(columns="cached"), check_dtype=False
    )


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_export_command_writes_every_format(tmp_path, capsys):
    out = tmp_path / "run"
    _run(out, mode="logprob")
    table = answers_table(out)
    code, _, err = _cli(
        capsys, "export", str(out), "--format", "csv", "--out", str(tmp_path / "a.csv")
    )
    assert code == 0, err
    csv = pd.read_csv(tmp_path / "a.csv", keep_default_na=False, na_values=[""])
    assert len(csv) == len(table) and list(csv.columns) == COLUMNS
    np.testing.assert_allclose(csv["p_first"], table["p_first"])
    code, stdout, err = _cli(capsys, "export", str(out), "--format", "jsonl")
    assert code == 0, err
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert len(rows) == len(table) and rows[0]["first_text"] == table["first_text"][0]
    (out / "answers.parquet").unlink()
    code, _, err = _cli(capsys, "export", str(out))  # parquet into the run directory
    assert code == 0, err
    pd.testing.assert_frame_equal(pd.read_parquet(out / "answers.parquet"), table)
    # a run made before provenance was recorded: the same rows, `cached` unknown
    metrics = json.loads((out / "metrics.json").read_text())
    del metrics["provenance"]
    (out / "metrics.json").write_text(json.dumps(metrics))
    older = answers_table(out)
    assert older["cached"].isna().all()
    pd.testing.assert_frame_equal(older.drop(columns="cached"), table.drop(columns="cached"))


def test_export_errors_are_one_line(tmp_path, capsys):
    code, _, err = _cli(capsys, "export", str(tmp_path))
    assert code == 1 and "no metrics.json" in err and "Traceback" not in err
    out = tmp_path / "run"
    _run(out, mode="logprob")
    code, _, err = _cli(capsys, "export", str(out), "--format", "xml")
    assert code == 1 and "--format 'xml'" in err
    code, _, err = _cli(capsys, "export", str(out), "--format", "parquet", "--out", "-")
    assert code == 1 and "binary" in err
    with sqlite3.connect(out / "responses.sqlite") as db:
        db.execute("DELETE FROM responses WHERE rowid IN (SELECT rowid FROM responses LIMIT 5)")
    code, _, err = _cli(capsys, "export", str(out))
    assert code == 1 and "5 of" in err and "not in responses.sqlite" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    (out / "responses.sqlite").unlink()
    code, _, err = _cli(capsys, "export", str(out))
    assert code == 1 and "responses.sqlite: no such file" in err

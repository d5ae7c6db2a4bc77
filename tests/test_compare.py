"""Tests for `valuescope report RUN_DIR...`: comparing runs, exports, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from valuescope.config import RunConfig
from valuescope.errors import ValuescopeError
from valuescope.report.compare import (
    align,
    build_comparison,
    compare,
    load_runs,
    parse_size,
    run_labels,
)
from valuescope.runcore.pipeline import run
from valuescope.stats import cosine

TABLES = ["utilities", "metrics", "cosine_similarity", "spearman", "run_pairs", "categories"]
FIGURES = ["cosine_heatmap", "coherence", "utilities_side_by_side"]


def sim_run(out: Path, model: str, seed: int, outcomes: str = "demo") -> Path:
    """A real pipeline run of a synthetic agent (seconds)."""
    run(RunConfig(model=model, outcomes=outcomes, out=out, seed=seed, bootstrap=10))
    return out


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory) -> list[Path]:
    """Two runs of the same hidden agent (different designs) and one of another agent."""
    base = tmp_path_factory.mktemp("runs")
    return [
        sim_run(base / "same-a", "sim/thurstone?seed=1", seed=0),
        sim_run(base / "same-b", "sim/thurstone?seed=1", seed=5),
        sim_run(base / "other", "sim/thurstone?seed=2", seed=0),
    ]


@pytest.mark.slow  # three runs and a page (9 s); test_python_api compares two runs fast
def test_three_run_comparison(three_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    comp, path = build_comparison(three_runs, out)  # the CLI is tested below
    assert path == out / "report.html"
    a, b, c = comp.labels
    assert a == "sim/thurstone?seed=1 (same-a)" and c == "sim/thurstone?seed=2"
    # the same hidden utilities measured twice agree; a different agent does not
    assert comp.cosine.loc[a, b] > 0.95
    assert abs(comp.cosine.loc[a, c]) < 0.5 and abs(comp.cosine.loc[b, c]) < 0.5
    row = comp.pairs[(comp.pairs.run_a == a) & (comp.pairs.run_b == b)].iloc[0]
    assert row.cosine_ci_low <= row.cosine <= row.cosine_ci_high and row.n_shared == 36
    # cosine of centred vectors is the Pearson correlation
    u = comp.utilities
    assert comp.cosine.loc[a, c] == pytest.approx(np.corrcoef(u[a], u[c])[0, 1])
    assert comp.spearman.loc[a, c] == pytest.approx(u[a].rank().corr(u[c].rank()))

    for name in TABLES:
        csv = pd.read_csv(out / "tables" / f"{name}.csv")
        parquet = pd.read_parquet(out / "tables" / f"{name}.parquet")
        assert csv.shape == parquet.shape and len(csv) > 0, name
    wide = pd.read_csv(out / "tables" / "utilities.csv")
    assert {"outcome", "category", a, f"{a} ci_low", b, c}.issubset(wide.columns)
    assert len(pd.read_csv(out / "tables" / "run_pairs.csv")) == 3
    run_figures = [f"run-sim-thurstone-seed-2-{kind}" for kind in ("utilities", "calibration")]
    for name in FIGURES + run_figures:
        assert (out / "figures" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"

    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 3  # heatmap, coherence per run, side by side
    assert "Coherence per run" in html and "--size NAME=VALUE" in html
    assert f"{comp.cosine.loc[a, b]:.3f}" in html
    for label in comp.labels:
        assert label in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', ""
    )


def test_coherence_against_size(three_runs: list[Path], tmp_path: Path, cli) -> None:
    out = tmp_path / "sized"
    proc = cli(
        "report",
        *map(str, three_runs),
        "--out",
        str(out),
        "--size",
        "same-a=135m",
        "--size",
        "same-b=1.5b",
        "--size",
        "sim/thurstone?seed=2=7e9",
        "--no-figures",
        "--json",
        check=True,
    )
    import json

    data = json.loads(proc.stdout)
    assert data["report"] == str(out / "report.html")
    assert [r["n_params"] for r in data["runs"]] == [135e6, 1.5e9, 7e9]
    assert len(data["pairs"]) == 3 and data["shared_outcomes"] == 36
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Coherence vs model size" in html and "1.5B" in html
    assert not (out / "figures").exists() and (out / "tables" / "metrics.csv").is_file()


def test_alignment_by_outcome_text(tmp_path: Path) -> None:
    def write(name: str, outcomes: list[str], means: list[float]) -> Path:
        d = tmp_path / name
        d.mkdir()
        pd.DataFrame(
            {
                "id": range(len(outcomes)),
                "outcome": outcomes,
                "category": "c",
                "mean": means,
                "sigma": 1.0,
                "ci_low": "",
                "ci_high": "",
            }
        ).to_csv(d / "utilities.csv", index=False)
        return d

    one = write("one", ["A cat", "a dog", "a fish", "only here"], [1.0, 0.0, -1.0, 5.0])
    two = write("two", ["a  fish", "A  DOG", "a cat", "elsewhere"], [-2.0, 0.5, 2.0, 9.0])
    runs = load_runs([one, two])
    u = align(runs, run_labels(runs, [one, two]))
    assert list(u["outcome"]) == ["A cat", "a dog", "a fish"]
    assert list(u["one"]) == [1.0, 0.0, -1.0] and list(u["two"]) == [2.0, 0.5, -2.0]
    assert cosine(u["one"].to_numpy(), u["two"].to_numpy()) == pytest.approx(
        np.corrcoef(u["one"], u["two"])[0, 1]
    )

    lonely = write("lonely", ["a cat", "nothing shared"], [1.0, 0.0])
    with pytest.raises(ValuescopeError, match="share 1 outcome"):
        compare([one, lonely])


def test_single_run_is_allowed(three_runs: list[Path], tmp_path: Path) -> None:
    comp, path = build_comparison([three_runs[0]], tmp_path / "one", figure_files=False)
    assert comp.pairs.empty and len(comp.labels) == 1
    html = path.read_text(encoding="utf-8")
    assert "One run only" in html and html.count("<svg") == 2  # no heatmap
    assert (tmp_path / "one" / "tables" / "metrics.parquet").is_file()


def test_errors(three_runs: list[Path], tmp_path: Path, cli, capsys, monkeypatch) -> None:
    from valuescope.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cli("report", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error:") and "no such run directory" in proc.stderr
    cases = [
        ([str(empty)], "no utilities.csv"),
        ([str(three_runs[0]), "--size", "nobody=1b"], "matches no run"),
        ([str(three_runs[0]), "--size", "same-a=huge"], "is not a size"),
        ([str(three_runs[0]), "--size", "135m"], "expected NAME=VALUE"),
    ]
    for args, message in cases:  # in-process: the same entry point, without the start-up
        monkeypatch.setattr("sys.argv", ["valuescope", "report", *args, "--out", str(tmp_path)])
        with pytest.raises(SystemExit) as stop:
            main()
        err = capsys.readouterr().err
        assert stop.value.code == 1 and err.startswith("error:") and message in err, err


def test_sizes() -> None:
    assert parse_size("135m") == 135e6 and parse_size("1.5B") == 1.5e9
    assert parse_size("7e9") == 7e9 and parse_size("2000") == 2000
    # sizes read from model names: tests/test_model_size.py


@pytest.mark.slow
def test_comparison_with_embedded_model(tmp_path: Path) -> None:
    """Two synthetic agents and the embedded llama.cpp model on the same 12 outcomes."""
    pytest.importorskip("llama_cpp")
    from valuescope.outcomes import load_outcomes

    demo = load_outcomes("demo")
    path = tmp_path / "outcomes.yaml"
    import yaml

    chosen: dict[str, list[str]] = {}
    for text, category in list(zip(demo.texts, demo.categories))[:12]:
        chosen.setdefault(category, []).append(text)
    path.write_text(yaml.safe_dump(chosen))
    runs = [
        sim_run(tmp_path / "a", "sim/thurstone?seed=1", 0, str(path)),
        sim_run(tmp_path / "b", "sim/thurstone?seed=2", 0, str(path)),
    ]
    emb = tmp_path / "emb"
    run(RunConfig(model="embedded/smollm2-135m", outcomes=str(path), out=emb, budget=20))
    comp, html_path = build_comparison([*runs, emb], tmp_path / "cmp")
    assert len(comp.utilities) == 12 and len(comp.pairs) == 3
    assert comp.metrics.loc[2, "n_params"] == 135e6
    assert comp.metrics.loc[2, "n_params_source"] == "model name"
    html = html_path.read_text(encoding="utf-8")
    assert "embedded/smollm2-135m" in html and html.count("<svg") == 3


def test_size_trend_pairs_the_shared_heldout_pairs(three_runs: list[Path], tmp_path: Path):
    from valuescope.report.size_trend import heldout_scores

    sizes = {"same-a": 135e6, "other": 1.5e9, "same-b": 7e9}
    comp, path = build_comparison(three_runs, tmp_path / "t", sizes=sizes, figure_files=False)
    t = comp.trend
    assert list(t["metric"].unique()) == ["heldout_accuracy", "heldout_log_loss", "completeness"]
    same_a, _, other = comp.labels
    m = {r.name: r.metrics for r in comp.runs}
    # same seed and outcomes: every held-out pair is shared, so the paired difference is
    # the difference of the runs' own metrics
    step = t[(t.smaller == same_a) & (t.larger == other)].set_index("metric")
    assert (step["n_heldout_shared"] == m["same-a"]["n_heldout_pairs"]).all()
    for metric, row in step.iterrows():
        assert row.difference == pytest.approx(m["other"][metric] - m["same-a"][metric])
        assert row.ci_low <= row.difference <= row.ci_high
    # another seed draws other held-out pairs: only the ones both drew are compared
    later = t[t.smaller == other]
    assert len(later) == 3 and (later["n_heldout_shared"] < m["other"]["n_heldout_pairs"]).all()
    html = path.read_text(encoding="utf-8")
    assert 'id="trend-table"' in html and "135M → 1.5B" in html
    first = step.loc["heldout_log_loss"]
    assert f"{first.smaller_value:.3f} → {first.larger_value:.3f}" in html
    assert pd.read_csv(tmp_path / "t" / "tables" / "size_trend.csv").shape == (6, 11)
    # a pair stored the other way round (b, a) scores the same
    run = comp.runs[0]
    swapped = run.pairs.assign(a=run.pairs.b, b=run.pairs.a, p=1 - run.pairs.p, q=1 - run.pairs.q)
    flipped = heldout_scores(type(run)(run.name, run.utilities, swapped, None, run.metrics))
    pd.testing.assert_frame_equal(flipped, heldout_scores(run))
    # without sizes there is no trend
    assert build_comparison(three_runs, tmp_path / "u", figure_files=False)[0].trend.empty

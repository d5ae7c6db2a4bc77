"""Tests for the self-contained HTML run report."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from valuescope.report import build_report
from valuescope.report.html import coherence_reading

CATEGORIES = ["wellbeing", "wealth", "power", "knowledge", "nature", "social ties"]
XSS = "<script>alert(1)</script>"
MODEL = "acme/tiny-chat-7b"
THINGS = [
    "a new hospital",
    "a lifetime of free books",
    "control of a small company",
    "a restored wetland",
    "a reunion with an old friend",
    "an unexpected promotion",
]


def _outcome_texts(n: int, rng: np.random.Generator) -> list[str]:
    texts = [
        f"{i:03d}: You receive {THINGS[i % len(THINGS)]} in {rng.integers(1, 40)} days"
        for i in range(n)
    ]
    texts[0] = f"A stranger sends you the message {XSS} and nothing else happens"
    texts[1] = (
        "You are given $1,000 and $2,000 more next year, but you must spend every cent "
        "on causes chosen by a committee you have never met"
    )
    texts[2] = 'Tom & Jerry\'s "quoted" <b>bold</b> outcome'
    return texts


def make_run_dir(
    path: Path, n: int = 80, n_pairs: int = 700, seed: int = 0, full: bool = True
) -> dict:
    """Simulate a Thurstonian agent and write a run directory following the contract."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    cats = [CATEGORIES[i % len(CATEGORIES)] for i in range(n)]
    offset = dict(zip(CATEGORIES, np.linspace(1.2, -1.2, len(CATEGORIES)), strict=True))
    true_mu = np.array([offset[c] for c in cats]) + rng.normal(0, 0.7, n)
    true_sigma = rng.uniform(0.3, 1.0, n)
    ids = [f"o{i:03d}" for i in range(n)]

    fit_mu = true_mu + rng.normal(0, 0.15, n)
    scale = fit_mu.std()
    mean = (fit_mu - fit_mu.mean()) / scale
    sigma = true_sigma * rng.uniform(0.9, 1.1, n) / scale
    half = 1.96 * rng.uniform(0.05, 0.2, n)
    util = pd.DataFrame(
        {
            "id": ids,
            "outcome": _outcome_texts(n, rng),
            "category": cats,
            "mean": mean,
            "sigma": sigma,
            "ci_low": mean - half if full else np.nan,
            "ci_high": mean + half if full else np.nan,
        }
    )
    util.to_csv(path / "utilities.csv", index=False)

    a = rng.integers(0, n, n_pairs)
    b = (a + rng.integers(1, n, n_pairs)) % n
    true_p = norm.cdf((true_mu[a] - true_mu[b]) / np.hypot(true_sigma[a], true_sigma[b]))
    q = norm.cdf((mean[a] - mean[b]) / np.hypot(sigma[a], sigma[b]))
    refused = rng.binomial(10, 0.03, n_pairs)
    answers = 10 - refused
    with np.errstate(invalid="ignore", divide="ignore"):
        p = rng.binomial(answers, true_p) / answers
    split = np.where(rng.random(n_pairs) < 0.2, "heldout", "train")
    pairs = pd.DataFrame(
        {
            "a": [ids[i] for i in a],
            "b": [ids[i] for i in b],
            "p": p,
            "q": q,
            "n_answers": answers,
            "n_refused": refused,
            "split": split,
        }
    )
    pairs.to_csv(path / "pairs.csv", index=False)

    held = pairs[(pairs.split == "heldout") & pairs.p.notna() & (pairs.p != 0.5)]
    acc = float(np.mean((held.q > 0.5) == (held.p > 0.5)))
    metrics: dict = {"model": MODEL, "heldout_accuracy": acc}
    if full:
        pd.DataFrame({"id": ids, "mean": true_mu, "sigma": true_sigma}).to_csv(
            path / "truth.csv", index=False
        )
        metrics |= {
            "seed": seed,
            "mode": "sample",
            "samples": 10,
            "design": "active",
            "outcomes_set": "synthetic-80",
            "n_outcomes": n,
            "n_pairs": n_pairs,
            "n_heldout_pairs": int((split == "heldout").sum()),
            "n_queries": n_pairs * 20,
            "n_queries_new": n_pairs * 18,
            "heldout_log_loss": 0.412,
            "heldout_kl": 0.031,
            "completeness": 0.87,
            "completeness_random_expected": 0.25,
            "cycle_log_prob": -1.824,
            "cycle_prob": 0.015,
            "n_triads": 2000,
            "position_bias": 0.53,
            "refusal_rate": float(refused.sum() / (10 * n_pairs)),
            "refusal_policy": "skip",
            "elapsed_seconds": 3723.4,
            "fit": {"method": "thurstonian-map", "converged": True, "n_iter": 812, "seconds": 3.2},
            "baseline_random": {
                "heldout_accuracy": 0.5,
                "heldout_log_loss": 0.693,
                "heldout_kl": 0.21,
                "completeness": 0.24,
                "cycle_log_prob": -0.602,
                "position_bias": 0.5,
                "refusal_rate": 0.0,
            },
            "bradley_terry": {
                "heldout_accuracy": acc - 0.01,
                "heldout_log_loss": 0.425,
                "heldout_kl": 0.036,
            },
            "truth": {"spearman": 0.962, "pearson": 0.958},
            "intervals": {"heldout_accuracy": [acc - 0.021, acc + 0.019]},
        }
    else:
        metrics |= {"seed": None, "mode": "logprob", "baseline_random": None, "fit": {}}
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _assert_self_contained(html: str) -> None:
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?\s*(?:https?:)?//|<link\b|<iframe\b", html, re.I)
    scripts = re.findall(r"<script\b[^>]*>", html, re.I)
    assert scripts == ["<script>"]  # exactly one inline script, no src
    # the only URLs left are SVG namespace declarations, which never trigger a fetch
    no_ns = re.sub(r'xmlns(?::\w+)?="[^"]*"', "", html)
    assert "http://" not in no_ns and "https://" not in no_ns


def _assert_unique_ids(html: str) -> None:
    dup = [k for k, v in Counter(re.findall(r'\bid="([^"]+)"', html)).items() if v > 1]
    assert not dup, dup[:5]


def test_full_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    metrics = make_run_dir(run)
    path = build_report(run)
    assert path == run / "report.html" and path.is_file()
    html = path.read_text(encoding="utf-8")

    _assert_self_contained(html)
    _assert_unique_ids(html)
    # utility top/bottom, full ranking, categories, calibration, truth
    assert html.count("<svg") == 5
    assert XSS not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Tom &amp; Jerry" in html
    assert MODEL in html
    acc = metrics["heldout_accuracy"]
    assert f"{acc:.3f}" in html
    assert f"Held-out accuracy {acc:.2f} vs 0.50 for a random agent" in html
    assert f"95% [{acc - 0.021:.3f}, {acc + 0.019:.3f}]" in html
    assert "Bradley-Terry fit" in html and "0.425" in html
    assert "Spearman ρ = 0.962" in html
    assert "1 h 02 min" in html
    assert 'id="outcome-filter"' in html
    assert html.count('<tr data-id="') == 80


def test_minimal_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    metrics = make_run_dir(run, n=12, n_pairs=60, seed=3, full=False)
    out = tmp_path / "elsewhere" / "mini.html"
    path = build_report(str(run), out)
    assert path == out and out.is_file() and not (run / "report.html").exists()
    html = out.read_text(encoding="utf-8")

    _assert_self_contained(html)
    _assert_unique_ids(html)
    assert html.count("<svg") == 3  # utilities, categories, calibration
    assert 'id="truth"' not in html and "Bradley-Terry fit" not in html
    assert "—" in html and "No bootstrap intervals" in html
    assert f"{metrics['heldout_accuracy']:.3f}" in html
    assert "expected by chance" in html
    assert XSS not in html


def test_bare_run_dir(tmp_path: Path) -> None:
    run = tmp_path / "bare"
    run.mkdir()
    pd.DataFrame(
        {
            "id": ["x", "y"],
            "outcome": ["None", "NA"],
            "category": ["", "c"],
            "mean": [1.0, -1.0],
            "sigma": [1.0, 1.0],
            "ci_low": ["", ""],
            "ci_high": ["", ""],
        }
    ).to_csv(run / "utilities.csv", index=False)
    html = build_report(run, tmp_path).read_text(encoding="utf-8")
    assert (tmp_path / "report.html").is_file()
    assert html.count("<svg") == 2
    assert ">None<" in html and ">NA<" in html and "uncategorised" in html
    assert "No held-out accuracy was recorded" in html


def test_missing_utilities(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        build_report(tmp_path)


@pytest.mark.parametrize(
    ("acc", "phrase"),
    [
        (0.93, "far more coherent"),
        (0.68, "clearly more coherent"),
        (0.55, "only slightly more"),
        (0.51, "no more coherent"),
        (0.4, "worse than chance"),
    ],
)
def test_coherence_reading(acc: float, phrase: str) -> None:
    metrics = {"heldout_accuracy": acc, "baseline_random": {"heldout_accuracy": 0.5}}
    text = coherence_reading(metrics)
    assert phrase in text and f"{acc:.2f} vs 0.50" in text


# --- analysis results (valuescope experiment NAME writes DIR/NAME.json) -----------------

SVG_WITH_SCRIPT = (
    '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80">'
    '<defs><clipPath id="clip1"><rect width="120" height="80"/></clipPath></defs>'
    '<script>alert("svg")</script>'
    '<rect id="box" width="60" height="40" fill="teal" onclick="alert(2)" clip-path="url(#clip1)"/>'
    '<image href="https://example.invalid/x.png" width="10" height="10"/></svg>'
)
# a 1x1 red PNG
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478"
    "9c63f8cfc000000301010018dd8db00000000049454e44ae426082"
)


def write_experiment(directory: Path, name: str = "expected-utility", n_rows: int = 3) -> dict:
    """A hand-written analysis result following the write_result contract."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "eu.svg").write_text(SVG_WITH_SCRIPT)
    (directory / "eu.png").write_bytes(PNG_1PX)
    result = {
        "experiment": name,
        "title": "Expected utility",
        "summary": "Do lottery utilities match their expected utility?",
        "model": MODEL,
        "seed": 0,
        "quick": True,
        "headline": {
            "corr": {"value": 0.9137, "ci_low": 0.851, "ci_high": 0.952, "label": "Correlation"},
            "mae": {"value": 0.12, "ci_low": None, "ci_high": None, "label": "Mean abs. error"},
        },
        "reading": "Lottery utilities track expected utility closely.",
        "tables": {
            "lotteries": [
                {"lottery": f"L{i} <i>odd</i>", "u": i / 7, "eu": None if i == 1 else i / 8}
                for i in range(n_rows)
            ]
        },
        "figures": ["eu.svg", "eu.png", "gone.svg", "../outside.svg"],
        "per_lottery": {"L0": [1, 2, 3]},
    }
    (directory / f"{name}.json").write_text(json.dumps(result))
    (directory.parent / "outside.svg").write_text("<svg></svg>")
    return result


def test_analyses_only_directory(tmp_path: Path) -> None:
    d = tmp_path / "exp"
    write_experiment(d, n_rows=250)
    (d / "not-an-analysis.json").write_text('{"hello": 1}')
    (d / "broken.json").write_text("{not json")
    html = build_report(d).read_text(encoding="utf-8")
    _assert_unique_ids(html)
    assert 'id="coherence"' not in html and 'id="outcome-filter"' not in html
    assert 'id="x-expected-utility"' in html and "Expected utility" in html
    assert "0.914" in html and "[0.851, 0.952]" in html and "Mean abs. error" in html
    assert "Lottery utilities track expected utility closely." in html
    # figures inlined: SVG (scripts, handlers and external links removed, ids prefixed)
    assert html.count("<svg") == 1 and 'id="x0f0-box"' in html and "url(#x0f0-clip1)" in html
    assert "alert" not in html and "onclick" not in html and "example.invalid" not in html
    assert 'src="data:image/png;base64,' in html
    assert "gone.svg: file not found" in html and "outside the result directory" in html
    # table: escaped, capped, missing values as dashes
    assert "L0 &lt;i&gt;odd&lt;/i&gt;" in html and "<i>odd</i>" not in html
    assert "First 200 of 250 rows" in html
    assert "per_lottery" in html  # extra keys are shown as detail
    assert "hello" not in html
    no_ns = re.sub(r'xmlns(?::\w+)?="[^"]*"', "", html)
    assert "http://" not in no_ns and "https://" not in no_ns


def test_run_with_analyses(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run_dir(run, n=20, n_pairs=150)
    write_experiment(run, "exchange-rates")
    html = build_report(run).read_text(encoding="utf-8")
    _assert_self_contained(html)
    _assert_unique_ids(html)
    assert 'id="coherence"' in html and 'id="x-exchange-rates"' in html
    assert '<a href="#x-exchange-rates">Expected utility</a>' in html


def test_empty_directory_is_a_user_error(tmp_path: Path) -> None:
    from valuescope.errors import ValuescopeError

    with pytest.raises(ValuescopeError, match="no utilities.csv"):
        build_report(tmp_path)
    with pytest.raises(ValuescopeError, match="no such directory"):
        build_report(tmp_path / "missing")


def test_findings() -> None:
    from valuescope.report.sections import category_extremes, largest_gaps, most_refused

    util = pd.DataFrame(
        {
            "outcome": ["a", "b", "c", "d", "e"],
            "category": ["x", "x", "y", "y", "y"],
            "mean": [2.0, 1.9, 0.0, -0.1, -0.3],
            "sigma": [0.5, 0.5, 0.5, 0.5, 1.0],
            "ci_low": np.nan,
            "ci_high": np.nan,
            "refusal_rate": [0.0, 0.2, 0.0, 0.5, 0.0],
        }
    )
    gaps = largest_gaps(util, k=2)
    assert [(g["upper"], g["lower"]) for g in gaps] == [("b", "c"), ("d", "e")]
    assert gaps[0]["gap"] == "1.900"
    assert gaps[0]["prob"] == f"{norm.cdf(1.9 / np.hypot(0.5, 0.5)):.2f}"
    ext = category_extremes(util)
    assert [(e["category"], e["top"], e["bottom"]) for e in ext] == [
        ("x", "a", "b"),
        ("y", "c", "e"),
    ]
    assert [r["outcome"] for r in most_refused(util)] == ["d", "b"]


@pytest.mark.parametrize(
    ("value", "interval", "phrase"),
    [
        (0.62, [0.58, 0.66], "listed first"),
        (0.40, [0.35, 0.45], "listed second"),
        (0.51, [0.48, 0.54], "no measurable position bias"),
        (0.70, None, "leans towards the first-listed"),
    ],
)
def test_position_bias_reading(value: float, interval: list | None, phrase: str) -> None:
    from valuescope.report.sections import position_bias_reading

    metrics = {"position_bias": value, "intervals": {"position_bias": interval}}
    assert phrase in position_bias_reading(metrics)


# --- terminal progress: queries and cost so far ---------------------------------------


def test_progress_shows_cost_so_far(tmp_path: Path, monkeypatch) -> None:
    """Token and USD updates reach the progress bar and add up to the run's totals."""
    from loopback_server import LoopbackServer
    from rich.progress import Progress as RichProgress

    from valuescope.config import RunConfig
    from valuescope.runcore.pipeline import run
    from valuescope.terminal import BarProgress

    class Recorder(BarProgress):
        def __init__(self, bar: RichProgress) -> None:
            super().__init__(bar)
            self.calls: list[tuple[int, int, float | None]] = []

        def cost(self, tokens_in: int, tokens_out: int, usd: float | None) -> None:
            self.calls.append((tokens_in, tokens_out, usd))
            super().cost(tokens_in, tokens_out, usd)

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-" + "loopback-report")
    with LoopbackServer(seed=3, latency=0.0) as server:
        config = RunConfig(
            model="openai/test-model?price_in=2&price_out=8",
            base_url=server.base_url,
            outcomes="demo",
            out=tmp_path / "run",
            mode="sample",
            samples=2,
            design="random",
            budget=40,
            bootstrap=0,
        )
        with RichProgress(disable=True) as bar:
            progress = Recorder(bar)
            metrics = run(config, progress=progress).metrics
    assert len(progress.calls) >= 2  # held-out pairs, then the design's pairs
    assert sum(c[0] for c in progress.calls) == metrics["tokens_in"] > 0
    assert sum(c[1] for c in progress.calls) == metrics["tokens_out"] > 0
    assert sum(c[2] for c in progress.calls) == pytest.approx(metrics["cost_usd"])
    label = bar.tasks[0].description
    tokens = metrics["tokens_in"] + metrics["tokens_out"]
    assert label == (
        f"asking openai/test-model · {tokens:,} tokens · ${metrics['cost_usd']:.4f}"
    ), label


def test_usage_in_header() -> None:
    from valuescope.report.html import usage_items

    assert usage_items({"tokens_in": 0, "tokens_out": 0, "cost_usd": None}) == []
    assert usage_items({"tokens_in": 12345, "tokens_out": 678, "cost_usd": 0.01234}) == [
        ("Tokens", "12,345 in · 678 out"),
        ("Cost", "$0.0123"),
    ]


# Other tests read a run's tables without drawing its page (tests/conftest.py
# `_run_reports`); a run of each kind here draws its page, as a user's run does.
PAGE_RUNS = {
    "logprob": ["sim/thurstone?logprob_noise=1", "--mode", "logprob"],
    "samples-refusals-drop": [
        "sim/thurstone?refusal_rate=0.3", "--samples", "3", "--refusals", "drop",
    ],
    "random-design-refusals-separate": [
        "sim/thurstone?refusal_rate=0.2", "--design", "random", "--refusals", "separate",
    ],
    "coin-full-design-no-bootstrap": ["sim/random", "--design", "full", "--bootstrap", "0"],
}  # fmt: skip


@pytest.mark.report
@pytest.mark.parametrize("args", PAGE_RUNS.values(), ids=PAGE_RUNS.keys())
def test_every_kind_of_run_draws_its_page(cli, tmp_path: Path, args: list[str]) -> None:
    outcomes = tmp_path / "outcomes.txt"
    texts = [f"You receive {t}{when}" for t in THINGS for when in ("", " next year")]
    outcomes.write_text("\n".join(texts) + "\n")
    out = tmp_path / "run"
    cli("run", *args, "--outcomes", str(outcomes), "--out", str(out), "-q", check=True)
    html = (out / "report.html").read_text(encoding="utf-8")
    _assert_self_contained(html)
    _assert_unique_ids(html)
    assert html.count("<svg") >= 3  # utilities, categories or ranking, calibration
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"{metrics['heldout_accuracy']:.3f}" in html
    assert html.count('<tr data-id="') == len(texts)

"""Exchange rates in dollars (issue 18 item 4): dataset, formula, planted agents.

The planted `sim/exchange` agents either satisfy the analysis's model (utility
logarithmic in N and in dollars: the dollar worths must come back) or violate it
(utility sqrt or linear in N: the analysis must flag the poor log fit, because the worth
it reads at N = 1 is then wrong and even misranked).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from valuescope.errors import UnknownModelError
from valuescope.experiments import ExperimentContext, ExperimentError, get_experiment
from valuescope.experiments.exchange_rates import (
    DOLLARS,
    analyse_family,
    dataset,
    dollar_text,
    load_entities,
    parse_dollars,
    parse_quantity,
    plan,
)
from valuescope.models import get_backend

pytestmark = pytest.mark.usefixtures("no_sub_run_reports")  # conftest says why

GRID = "1,10,100,1000,10000,100000,1000000"
LADDER = "1,10,100,1000,10000,100000,1000000,10000000"


def _run(model: str, out: Path, mode: str = "logprob", **params: str) -> dict:
    params = {"families": "ai_systems", "grid": GRID, "ladder": LADDER, **params}
    ctx = ExperimentContext(
        model=model, out=out, run_options={"mode": mode, "samples": 4}, params=params
    )
    out.mkdir(parents=True, exist_ok=True)
    return get_experiment("exchange-rates").run(ctx)


# ----------------------------------------------------------------- dataset


def test_dataset_is_at_least_the_papers_size():
    data = dataset()
    sizes = {f: sum(e.family == f for e in data.entities) for f in data.families}
    assert sizes["countries"] >= 50  # the paper: 50 countries
    assert set(sizes) == {"countries", "animals", "roles", "ai_systems"}
    assert min(sizes.values()) >= 12
    assert len(data.grid) >= 28 and data.grid[0] == 1 and data.grid[-1] == 1_000_000
    assert len(data.ladder) >= 15 and data.ladder[0] == 1 and data.ladder[-1] == 10_000_000
    ratios = np.diff(np.log10(data.grid))
    assert ratios.max() < 0.45  # log-spaced: no gap wider than a factor 2.8


def test_texts_parse_back_exactly():
    for entity in load_entities():
        for n in (1, 2, 30, 1_000_000):
            assert parse_quantity(entity.text(n)) == (entity.name, n)
    for x in dataset().ladder:
        assert parse_dollars(dollar_text(x)) == x
        assert parse_quantity(dollar_text(x)) is None
    assert dollar_text(3000) == "You receive $3,000 in cash."
    assert parse_dollars("You receive a pony in cash.") is None


def test_quick_plan_is_small_and_full_plan_is_the_dataset():
    quick = plan(ExperimentContext(model="sim/exchange", out=Path("."), quick=True))
    assert list(quick.families) == ["countries", "animals"]
    assert all(len(v) == 3 for v in quick.families.values())
    assert len(quick.grid) == 4 and len(quick.ladder) == 4
    full = plan(ExperimentContext(model="sim/exchange", out=Path(".")))
    assert len(full.families["countries"]) >= 50 and len(full.grid) >= 28
    assert full.references["countries"] == "the United States"


# ----------------------------------------------------------------- the formula


def test_worth_in_dollars_is_the_ladder_inverse_at_one_unit():
    """Exact lines in, exact dollar figures out: worth = exp((b_e - b') / a')."""
    entities = [e for e in load_entities() if e.family == "animals"][:3]
    lines = {e.name: (0.2 + 0.1 * i, -0.5 + 0.4 * i) for i, e in enumerate(entities)}
    a_d, b_d = 0.25, -1.0
    rows = []
    for name, (a, b) in lines.items():
        rows += [{"entity": name, "n": n, "mean": a * np.log(n) + b} for n in (1, 10, 100, 1000)]
    rows += [{"entity": DOLLARS, "n": x, "mean": a_d * np.log(x) + b_d} for x in (1, 100, 10**4)]
    frame = pd.DataFrame(rows).assign(se=0.0)
    res = analyse_family(frame, entities, entities[0].name, seed=0, n_boot=200)
    ref_b = lines[entities[0].name][1]
    for row in res["rows"]:
        a, b = lines[row["entity"]]
        assert row["worth_usd"] == pytest.approx(np.exp((b - b_d) / a_d), rel=1e-9)
        assert row["relative_worth"] == pytest.approx(np.exp((b - ref_b) / a_d), rel=1e-9)
        assert row["slope"] == pytest.approx(a) and row["r2"] == pytest.approx(1.0)
        assert row["worth_usd_ci_low"] == pytest.approx(row["worth_usd"], rel=1e-6)
    assert res["rows"][0]["relative_worth"] == 1.0 and res["warnings"] == []
    assert res["dollar_fit"]["slope"] == pytest.approx(a_d)


# ----------------------------------------------------------------- planted agents


def test_log_agent_dollar_worths_recovered(tmp_path):
    result = _run("sim/exchange", tmp_path)
    agent = get_backend("sim/exchange")
    rows = result["tables"]["rates"]
    assert len(rows) == 12 and result["warnings"] == []
    planted = np.array([agent.dollar_worth(r["entity"]) for r in rows])
    got = np.array([r["worth_usd"] for r in rows])
    assert np.all(np.abs(np.log(got / planted)) < np.log(1.6)), list(zip(got, planted))
    inside = [r["worth_usd_ci_low"] <= p <= r["worth_usd_ci_high"] for r, p in zip(rows, planted)]
    assert sum(inside) >= 10
    direct = np.array([r["worth_usd_at_one"] for r in rows]) / planted
    assert np.all(np.abs(np.log(direct)) < np.log(2.0)), direct
    rel_planted = planted / planted[0]
    rel = np.array([r["relative_worth"] for r in rows])
    assert np.all(np.abs(np.log(rel / rel_planted)) < np.log(1.5))
    assert spearmanr(got, planted)[0] > 0.9
    assert all(r["r2"] > 0.95 for r in rows)
    slope = result["headline"]["ai_systems.dollar_slope"]
    assert 0 < slope["ci_low"] <= slope["value"] <= slope["ci_high"]
    spread = result["headline"]["ai_systems.log10_worth_spread"]
    assert spread["ci_low"] <= spread["value"] <= spread["ci_high"]
    svg = (tmp_path / "exchange-rates_ai_systems.svg").read_text()
    assert result["figures"] == ["exchange-rates_ai_systems.svg"] and "<svg" in svg


@pytest.mark.parametrize("shape, r2_max", [("sqrt", 0.8), ("linear", 0.7)])
def test_non_log_agent_is_flagged(tmp_path, shape, r2_max):
    """Utility convex in ln N: the N = 1 reading is wrong, so every entity is flagged."""
    model = f"sim/exchange?utility={shape}"
    result = _run(model, tmp_path)
    rows = result["tables"]["rates"]
    assert all(r["r2"] < r2_max for r in rows), [r["r2"] for r in rows]
    assert len(result["warnings"]) == 1
    assert "not logarithmic in N for 12 of 12" in result["warnings"][0]
    assert "Caution" in result["reading"]
    # what the warning protects against: the worths read off the lines are misranked
    agent = get_backend(model)
    planted = [agent.entity_params(r["entity"])[0] for r in rows]
    assert spearmanr([r["worth_usd"] for r in rows], planted)[0] < 0.5
    usd = np.array([agent.dollar_worth(r["entity"]) for r in rows])
    line = np.array([r["worth_usd"] for r in rows]) / usd
    assert np.max(np.abs(np.log(line))) > np.log(4)
    # the direct reading (utility of one unit, measured, on the ladder) needs no line in N
    direct = np.array([r["worth_usd_at_one"] for r in rows]) / usd
    assert np.all(np.abs(np.log(direct)) < np.log(1.7)), direct
    inside = [
        r["worth_usd_at_one_ci_low"] <= u <= r["worth_usd_at_one_ci_high"]
        for r, u in zip(rows, usd)
    ]
    assert sum(inside) >= 10


def test_random_agent_gets_no_dollar_worth(tmp_path):
    result = _run("sim/random", tmp_path, mode="sample")
    slope = result["headline"]["ai_systems.dollar_slope"]
    assert slope["ci_low"] is None or slope["ci_low"] <= 0
    assert "undefined" in result["warnings"][0]
    assert all(r["worth_usd"] is None for r in result["tables"]["rates"])
    assert result["figures"] == []


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(ExperimentError, match="same utility"):
        _run("sim/random", tmp_path / "a")  # logprob: every answer 0.5
    with pytest.raises(ExperimentError, match="reference='Mars'"):
        _run("sim/exchange", tmp_path / "b", reference="Mars")
    with pytest.raises(ExperimentError, match="not selected"):
        _run("sim/exchange", tmp_path / "c", reference="dog")
    with pytest.raises(ExperimentError, match="unknown family 'robots'"):
        _run("sim/exchange", tmp_path / "d", families="robots")
    with pytest.raises(ExperimentError, match="at least 3"):
        _run("sim/exchange", tmp_path / "e", ladder="1,10")
    with pytest.raises(ExperimentError, match="whole numbers"):
        _run("sim/exchange", tmp_path / "f", grid="1,ten,100")
    expected = "parameter utility: expected one of 'log', 'sqrt' or 'linear', got 'cubic'"
    with pytest.raises(UnknownModelError, match=expected):
        get_backend("sim/exchange?utility=cubic")


def test_entities_above_the_whole_ladder_are_named_a_lower_bound():
    """A model that prefers any life to any money, indifferent between amounts."""
    from valuescope.experiments.exchange_rates import _reading

    entities = [e for e in load_entities() if e.family == "countries"][:2]
    rng = np.random.default_rng(0)
    rows = [
        {"entity": e.name, "n": n, "mean": 1.0 + 0.1 * rng.normal()}
        for e in entities
        for n in (1, 100, 10**4)
    ]
    rows += [
        {"entity": DOLLARS, "n": x, "mean": -1.0 + 0.1 * rng.normal()} for x in (10, 10**3, 10**5)
    ]
    frame = pd.DataFrame(rows).assign(se=0.05)
    res = analyse_family(frame, entities, entities[0].name, seed=0, n_boot=200)
    assert res["above_ladder"] == 1.0 and not res["dollar_defined"]
    assert all(r["worth_usd"] is None for r in res["rows"])
    assert "worth more than $100k" in _reading("countries", res)
    assert "undefined" in res["warnings"][0]

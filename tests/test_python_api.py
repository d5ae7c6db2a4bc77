"""The Python API (valuescope.measure, load, experiment, compare) and docs/python-api.md.

Every ```python block of the page runs, in order, in one namespace started in an empty
folder; the ```text block that follows one is its recorded output and must match what it
prints (decimals to within 0.05: fits differ in the last digits between CPUs).
`python tests/test_python_api.py --record` rewrites those text blocks from a run.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import valuescope
from valuescope.api import ExperimentRun, Metrics, Run, SettingError
from valuescope.errors import ValuescopeError
from valuescope.models import get_backend
from valuescope.runcore.reader import UTILITY_COLUMNS

PAGE = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"
BLOCK = re.compile(
    r"^```python[ \t]*\n(.*?)^```[ \t]*\n(?:\n```text[ \t]*\n(.*?)^```[ \t]*$)?", re.M | re.S
)


def examples(text: str) -> list[tuple[str, str | None]]:
    """(code, recorded output or None) of every python block, in order."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


# a decimal in printed output: fits differ in the last digits from one CPU to another
# (the active design's near-ties and BLAS rounding), so decimals match to DECIMAL_SLACK
DECIMAL = re.compile(r"-?\d+\.\d+")
DECIMAL_SLACK = 0.05


def same_output(printed: str, recorded: str) -> bool:
    """The text is the same, integers included; each decimal within `DECIMAL_SLACK`."""
    if DECIMAL.sub("#", printed) != DECIMAL.sub("#", recorded):
        return False
    pairs = zip(DECIMAL.findall(printed), DECIMAL.findall(recorded), strict=True)
    return all(abs(float(a) - float(b)) <= DECIMAL_SLACK for a, b in pairs)


def run_examples(cwd: Path) -> list[tuple[str, str | None, str]]:
    """(code, recorded, printed) of each example, run in one namespace in `cwd`."""
    namespace: dict = {"__name__": "__main__"}
    done = []
    old = Path.cwd()
    os.chdir(cwd)
    try:
        for code, recorded in examples(PAGE.read_text(encoding="utf-8")):
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(compile(code, "docs/python-api.md", "exec"), namespace)
            done.append((code, recorded, printed.getvalue()))
    finally:
        os.chdir(old)
    return done


# -- the page ------------------------------------------------------------------------------


def test_block_parser_pairs_code_with_its_output() -> None:
    text = "```python\nprint(1)\n```\n\n```text\n1\n```\n```python\nx = 2\n```\nprose\n"
    assert examples(text) == [("print(1)\n", "1\n"), ("x = 2\n", None)]


def test_output_comparison_allows_only_small_decimal_differences() -> None:
    assert same_output("mean 2.37 of 430\n", "mean 2.38 of 430\n")
    assert not same_output("mean 2.30 of 430\n", "mean 2.38 of 430\n")
    assert not same_output("mean 2.38 of 431\n", "mean 2.38 of 430\n")  # integers exact
    assert not same_output("mean 2.38 of 430\n", "mode 2.38 of 430\n")
    assert not same_output("2.38 1.84\n", "2.38\n")


@pytest.mark.report
def test_every_example_runs_and_prints_what_the_page_says(tmp_path: Path) -> None:
    done = run_examples(tmp_path)
    assert len(done) >= 9, "the page has lost examples"
    for code, recorded, printed in done:
        first = code.strip().splitlines()[0]
        if recorded is not None:
            assert same_output(printed, recorded), f"example {first!r} printed:\n{printed}"
        else:
            assert printed == "", f"example {first!r} prints but records no output"
    # what the examples left behind is real run directories, readable by the CLI's reader
    assert (tmp_path / "runs" / "demo" / "report.html").is_file()
    assert (tmp_path / "runs" / "compare" / "tables" / "run_pairs.csv").is_file()
    assert (tmp_path / "runs" / "exp" / "time-discounting.json").is_file()


def test_readme_links_the_page() -> None:
    readme = (PAGE.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "docs/python-api.md" in readme


# -- measure ------------------------------------------------------------------------------


def test_measure_writes_the_run_the_cli_writes(cli, tmp_path: Path) -> None:
    run = valuescope.measure("sim/thurstone", "demo", seed=3, out=tmp_path / "py")
    # the command line in this process (conftest's invoke_cli): a subprocess adds only an
    # interpreter start, and `python -m valuescope` runs in test_hardening_cli.py
    cli("run", "sim/thurstone", "--outcomes", "demo", "--seed", "3",
        "--out", str(tmp_path / "cli"), "-q", check=True)  # fmt: skip
    other = valuescope.load(tmp_path / "cli")
    pd.testing.assert_frame_equal(run.utilities, other.utilities)
    pd.testing.assert_frame_equal(run.pairs, other.pairs)
    assert run.metrics.n_queries == other.metrics.n_queries == len(run.answers)
    assert list(run.utilities.columns[: len(UTILITY_COLUMNS)]) == list(UTILITY_COLUMNS)
    # the command line resumes the run Python wrote, from its cache: nothing asked again
    resumed = cli("run", "--resume", "--out", str(run.out), "--json", check=True)
    assert '"n_queries_new": 0' in resumed.stdout


def test_measure_without_out_writes_a_fresh_temporary_directory() -> None:
    first = valuescope.measure("sim/thurstone", "demo", design="random", budget=40, bootstrap=0)
    second = valuescope.measure("sim/thurstone", "demo", design="random", budget=40, bootstrap=0)
    assert first.out != second.out
    assert first.out.name.startswith("valuescope-run-") and (first.out / "metrics.json").is_file()


def test_settings_take_their_cli_meaning(tmp_path: Path) -> None:
    run = valuescope.measure(
        "sim/random", "demo", mode="sample", samples=2, design="random", budget=40,
        stop_at=1, seed=4, out=tmp_path,
    )  # fmt: skip
    settings = run.settings
    assert (settings["mode"], settings["samples"], settings["stop_at"]) == ("sample", 2, None)
    assert run.metrics.n_pairs == 40
    assert set(run.answers["sample"]) == {0, 1}


def test_unknown_setting_names_it_with_close_matches() -> None:
    with pytest.raises(TypeError, match=r"unknown setting 'sampels'; did you mean samples\?"):
        valuescope.measure("sim/thurstone", "demo", sampels=5)
    with pytest.raises(SettingError, match="unknown setting 'template_files'"):
        valuescope.measure("sim/thurstone", "demo", template_files={})  # the run records it


def test_bad_setting_value_is_one_line_naming_it() -> None:
    with pytest.raises(SettingError, match=r"^samples=0: Input should be greater"):
        valuescope.measure("sim/thurstone", "demo", samples=0)
    with pytest.raises(SettingError, match="^design='best'"):
        valuescope.measure("sim/thurstone", "demo", design="best")


@pytest.mark.parametrize(
    ("outcomes", "message"),
    [
        (42, "outcomes: expected a set name, a file or a list of outcomes, got int"),
        ({"a": "b"}, "outcomes: expected a set name, a file or a list of outcomes, got dict"),
        (["only one"], "outcomes: needs at least 2 outcomes, got 1"),
        (["a", 3], r"outcomes\[1\]: expected a string or a dict with outcome and category"),
        (["a", {"text": "b"}], r"outcomes\[1\]: a dict needs the keys outcome and"),
        (["a", {"outcome": 2}], r"outcomes\[1\]: outcome and category must be strings"),
        ("no-such-set", "neither a built-in set"),
    ],
)
def test_bad_outcomes_are_one_line(outcomes: object, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValuescopeError, match=message):
        valuescope.measure("sim/thurstone", outcomes, out=tmp_path)


def test_a_list_of_dicts_keeps_order_and_categories(tmp_path: Path) -> None:
    items = [
        {"outcome": "You win a prize.", "category": "gains"},
        "You find a coin.",
        {"outcome": "You lose a bet.", "category": "losses"},
        {"outcome": "You break a cup."},
    ]
    run = valuescope.measure("sim/thurstone", items, out=tmp_path, seed=2)
    table = run.utilities
    assert table["outcome"].tolist() == [
        "You win a prize.", "You find a coin.", "You lose a bet.", "You break a cup."
    ]  # fmt: skip
    assert table["category"].tolist() == ["gains", "uncategorised", "losses", "uncategorised"]
    # the same list again is the same run (it resumes from the cache, asks nothing new)
    again = valuescope.measure("sim/thurstone", items, out=tmp_path, seed=2)
    assert again.metrics.n_queries_new == 0
    # other outcomes in the same directory are refused, not silently mixed in
    with pytest.raises(ValuescopeError, match="already holds other outcomes"):
        valuescope.measure("sim/thurstone", ["x", "y"], out=tmp_path, seed=2)


def test_a_dataframe_of_outcomes_is_a_list_of_its_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"outcome": ["You sleep well.", "You oversleep.", "You sleep badly."],
         "category": ["rest", None, "rest"], "notes": [1, 2, 3]}
    )  # fmt: skip
    run = valuescope.measure("sim/thurstone", frame, out=tmp_path, seed=2)
    assert run.utilities["outcome"].tolist() == frame["outcome"].tolist()
    assert run.utilities["category"].tolist() == ["rest", "uncategorised", "rest"]
    with pytest.raises(SettingError, match="a table needs an outcome column"):
        valuescope.measure("sim/thurstone", pd.DataFrame({"text": ["a", "b"]}), out=tmp_path)


def test_a_backend_object_is_measured_as_its_model_string(tmp_path: Path) -> None:
    backend = get_backend("sim/thurstone", seed=5)
    by_object = valuescope.measure(backend, "demo", seed=5, out=tmp_path / "object")
    by_name = valuescope.measure("sim/thurstone", "demo", seed=5, out=tmp_path / "name")
    assert by_object.settings["model"] == "sim/thurstone"
    assert by_object.metrics.backend == backend.name == "sim/thurstone#seed=5"
    pd.testing.assert_series_equal(by_object.utilities["mean"], by_name.utilities["mean"])


def test_a_backend_object_is_used_not_rebuilt(tmp_path: Path) -> None:
    class Counting:
        name = "custom/counting"
        supports_logprobs = True
        asked = 0

        def answer(self, queries):
            from valuescope.models.base import Answer

            self.asked += len(queries)
            return [Answer(p_a=0.7, mass=1.0) for _ in queries]

    agent = Counting()
    run = valuescope.measure(agent, "demo", out=tmp_path, bootstrap=0)
    assert agent.asked == run.metrics.n_queries > 0


def test_progress_goes_to_a_bar_or_to_the_object_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.total, self.done = 0, 0

        def start(self, total: int, description: str) -> None:
            self.total += total

        def advance(self, n: int) -> None:
            self.done += n

    recorder = Recorder()
    run = valuescope.measure(
        "sim/thurstone", "demo", out=tmp_path / "a", bootstrap=0, progress=recorder
    )
    assert recorder.done == run.metrics.n_queries > 0 and recorder.total >= recorder.done
    valuescope.measure("sim/thurstone", "demo", out=tmp_path / "b", bootstrap=0, progress=True)
    assert "asking sim/thurstone" in capsys.readouterr().err
    with pytest.raises(SettingError, match="progress: expected True, False or an object"):
        valuescope.measure("sim/thurstone", "demo", out=tmp_path / "c", progress="yes")


def test_a_model_that_is_neither_string_nor_backend_is_refused() -> None:
    with pytest.raises(SettingError, match="model: expected a model string .* got int"):
        valuescope.measure(3, "demo")


# -- Run, Metrics, load -------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return valuescope.measure(
        "sim/thurstone", "demo", seed=1, out=tmp_path_factory.mktemp("api") / "demo"
    )


def test_metrics_read_as_attributes_and_copy_out(demo_run: Run) -> None:
    m = demo_run.metrics
    assert isinstance(m, Metrics) and isinstance(m.fit, Metrics)
    assert m.heldout_accuracy == m["heldout_accuracy"] == m.to_dict()["heldout_accuracy"]
    assert m.fit.converged is True
    copy = m.to_dict()
    copy["heldout_accuracy"] = -1.0
    assert demo_run.metrics.heldout_accuracy != -1.0
    with pytest.raises(AttributeError, match="read-only"):
        m.heldout_accuracy = 1.0
    with pytest.raises(AttributeError, match="did you mean heldout_accuracy"):
        _ = m.heldout_acuracy


def test_tables_are_copies(demo_run: Run) -> None:
    table = demo_run.utilities
    table["mean"] = 0.0
    assert demo_run.utilities["mean"].std() > 0


def test_repr_says_model_outcomes_queries_and_accuracy(demo_run: Run) -> None:
    text = repr(demo_run)
    m = demo_run.metrics
    assert text.startswith("Run(model='sim/thurstone', outcomes=36, ")
    assert f"queries={m.n_queries}" in text and f"heldout_accuracy={m.heldout_accuracy:.3f}" in text


def test_load_reads_a_cli_run_and_refuses_what_is_not_one(demo_run: Run, tmp_path: Path) -> None:
    assert isinstance(valuescope.load(demo_run.out), Run)
    with pytest.raises(ValuescopeError, match="no such directory"):
        valuescope.load(tmp_path / "missing")
    with pytest.raises(ValuescopeError, match="is not a run directory"):
        valuescope.load(tmp_path)
    (tmp_path / "run_config.json").write_text("{}")
    with pytest.raises(ValuescopeError, match="has not finished"):
        valuescope.load(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValuescopeError, match="a file, not a run directory"):
        valuescope.load(tmp_path / "file.txt")


def test_load_of_a_corrupt_metrics_file_is_one_line(demo_run: Run, tmp_path: Path) -> None:
    for name in ("metrics.json", "utilities.csv", "pairs.csv"):
        (tmp_path / name).write_bytes((demo_run.out / name).read_bytes())
    (tmp_path / "metrics.json").write_text('{"model": "x", "mode": "sample", "n_outcomes": "many"}')
    with pytest.raises(ValuescopeError, match="n_outcomes: Input should be a valid integer"):
        _ = valuescope.load(tmp_path).metrics


def test_answers_of_a_copy_without_its_cache_come_from_answers_parquet(
    demo_run: Run, tmp_path: Path
) -> None:
    for path in demo_run.out.iterdir():
        if path.is_file() and not path.name.startswith("responses.sqlite"):
            (tmp_path / path.name).write_bytes(path.read_bytes())
    copy = valuescope.load(tmp_path)
    pd.testing.assert_frame_equal(copy.answers, demo_run.answers)
    (tmp_path / "answers.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValuescopeError, match="answers.parquet: not a readable Parquet file"):
        _ = valuescope.load(tmp_path).answers


@pytest.mark.report
def test_report_writes_the_page(demo_run: Run, tmp_path: Path) -> None:
    path = demo_run.report(tmp_path / "page.html")
    assert path == tmp_path / "page.html" and "sim/thurstone" in path.read_text()


# -- experiment and compare ---------------------------------------------------------------


@pytest.mark.report
def test_experiment_returns_its_result(tmp_path: Path) -> None:
    delays = ["1 month", "6 months", "2 years"]  # a list goes to the analysis joined by commas
    exp = valuescope.experiment(
        "time-discounting", "sim/hyperbolic?k=0.05", quick=True, out=tmp_path, delays=delays
    )
    assert isinstance(exp, ExperimentRun) and exp.name == "time-discounting"
    assert exp.tables["delays"]["delay"].tolist() == delays
    k = exp.headline.set_index("figure").loc["k", "value"]
    assert k == pytest.approx(0.05, rel=0.2)
    assert exp.metrics.headline.k.value == k
    assert isinstance(valuescope.load(tmp_path), ExperimentRun)
    assert (tmp_path / "report.html").is_file()


@pytest.mark.report
def test_experiment_runs_are_its_utility_measurements(tmp_path: Path) -> None:
    exp = valuescope.experiment("expected-utility", "sim/eu", quick=True, out=tmp_path, seed=1)
    runs = exp.runs
    assert list(runs) == ["lotteries"]
    lotteries = runs["lotteries"]
    assert isinstance(lotteries, Run) and lotteries.model == "sim/eu"
    assert lotteries.metrics.n_outcomes == len(lotteries.utilities) > 10
    assert exp.result["seed"] == 1 and exp.reading


@pytest.mark.report
def test_convergence_takes_runs_as_run_objects_or_paths(demo_run: Run, tmp_path: Path) -> None:
    other = valuescope.measure("sim/thurstone", "demo", seed=1, out=tmp_path / "same", bootstrap=0)
    exp = valuescope.experiment("convergence", runs=[demo_run, other.out], out=tmp_path / "c")
    # the same agent and seed twice: the same utilities up to the fit, similarity near 1
    assert exp.headline.set_index("figure").loc["mean_similarity", "value"] > 0.99


def test_experiment_settings_are_checked() -> None:
    with pytest.raises(SettingError, match="did you mean samples"):
        valuescope.experiment("time-discounting", "sim/hyperbolic", sample=3)
    with pytest.raises(SettingError, match="^samples=0"):
        valuescope.experiment("time-discounting", "sim/hyperbolic", samples=0)
    with pytest.raises(SettingError, match="did you mean delays.*parameters: base_amount"):
        valuescope.experiment("time-discounting", "sim/hyperbolic", delay="1,2")
    with pytest.raises(ValuescopeError, match="base_amount='0': "):
        valuescope.experiment("time-discounting", "sim/hyperbolic", base_amount=0)
    with pytest.raises(ValuescopeError, match="unknown analysis 'nope'"):
        valuescope.experiment("nope", "sim/thurstone")


def test_compare_matches_the_report_command(cli, demo_run: Run, tmp_path: Path) -> None:
    coin = valuescope.measure("sim/random", "demo", seed=1, out=tmp_path / "coin")
    comp = valuescope.compare([demo_run, coin.out], out=tmp_path / "cmp")
    cli("report", str(demo_run.out), str(coin.out), "--out", str(tmp_path / "cli"), "-q",
        check=True)  # fmt: skip
    expected = pd.read_csv(tmp_path / "cli" / "tables" / "run_pairs.csv")
    got = pd.read_csv(tmp_path / "cmp" / "tables" / "run_pairs.csv")
    pd.testing.assert_frame_equal(got, expected)
    assert comp.report() == tmp_path / "cmp" / "report.html"
    assert len(comp.labels) == 2 and set(comp.tables) >= {"utilities", "metrics", "run_pairs"}
    with pytest.raises(SettingError, match="expected a list of run directories"):
        valuescope.compare(demo_run)


# -- import cost --------------------------------------------------------------------------


def test_import_valuescope_loads_no_api() -> None:
    code = (
        "import sys, valuescope; print(valuescope.__version__, "
        "any(m in sys.modules for m in ('valuescope.api', 'pandas', 'pydantic')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [valuescope.__version__, "False"]
    assert valuescope.measure is valuescope.api.measure


def test_the_command_line_starts_without_scipy() -> None:
    """`valuescope --version` imports the CLI: scipy (about 1.5 s here) waits for a command."""
    code = "import sys, valuescope.cli; print(sorted(m for m in sys.modules if m == 'scipy'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _record() -> None:
    """Rewrite the page's text blocks with what its examples print now."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        done = run_examples(Path(folder))
    text = PAGE.read_text(encoding="utf-8")
    matches = list(BLOCK.finditer(text))
    for match, (code, _, printed) in zip(reversed(matches), reversed(done), strict=True):
        body = f"```python\n{code}```\n" + (f"\n```text\n{printed}```" if printed else "")
        if match.group(2) is None and printed:
            body += "\n"
        text = text[: match.start()] + body + text[match.end() :]
    PAGE.write_text(text, encoding="utf-8")


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    _record()

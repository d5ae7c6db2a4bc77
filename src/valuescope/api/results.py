"""Result classes of the Python API: a run, an analysis and a comparison, read from disk.

Each reads its directory through `valuescope.runcore.reader` (the one reader of run
directories), once per attribute, and hands out copies, so a result never changes under
its user and a table edited in a notebook never edits the run.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from valuescope.api.metrics import Metrics
from valuescope.errors import ValuescopeError
from valuescope.runcore import reader


class Run:
    """A finished run directory: its utilities, pairs, answers and metrics.

    Attributes
    ----------
    out : Path
        The run directory.
    utilities : DataFrame
        One row per outcome, the columns of utilities.csv (id, outcome, category, mean,
        sigma, ci_low, ci_high, refusal_rate).
    pairs : DataFrame
        One row per pair asked (a, b, p, q, n_answers, n_refused, split).
    answers : DataFrame
        One row per answer the run used (the columns of `valuescope export`), rebuilt from
        the answer cache; from answers.parquet where the cache is not there.
    metrics : Metrics
        metrics.json with attribute access (`run.metrics.heldout_accuracy`) and `to_dict()`.
    settings : dict
        The run's settings as run_config.json records them.
    truth : DataFrame or None
        A synthetic agent's hidden utilities (truth.csv); None for a real model.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        if reader.run_kind(self.out) != "run":
            raise ValuescopeError(
                f"{self.out} holds analysis results, not a run; read it with valuescope.load"
            )

    @cached_property
    def _metrics(self) -> Metrics:
        return Metrics.of_run(reader.read_metrics(self.out), str(self.out / reader.METRICS))

    @cached_property
    def _utilities(self) -> pd.DataFrame:
        return reader.read_utilities(self.out)

    @cached_property
    def _pairs(self) -> pd.DataFrame:
        return reader.read_pairs(self.out)

    @cached_property
    def _answers(self) -> pd.DataFrame:
        from valuescope.export import answers_table

        if not (self.out / reader.CACHE).is_file() and (self.out / reader.ANSWERS).is_file():
            return reader.read_answers_file(self.out)  # a copy of the run without its cache
        return answers_table(self.out)

    @property
    def metrics(self) -> Metrics:
        return self._metrics

    @property
    def utilities(self) -> pd.DataFrame:
        return self._utilities.copy()

    @property
    def pairs(self) -> pd.DataFrame:
        return self._pairs.copy()

    @property
    def answers(self) -> pd.DataFrame:
        return self._answers.copy()

    @property
    def truth(self) -> pd.DataFrame | None:
        return reader.read_truth(self.out)

    @property
    def settings(self) -> dict[str, Any]:
        return reader.read_run_config(self.out)[0]

    @property
    def model(self) -> str:
        return self.metrics.model

    def report(self, out: str | Path | None = None) -> Path:
        """Write the run's report.html (in the run directory unless `out`); its path."""
        from valuescope.report import build_report

        return build_report(self.out, out)

    def __repr__(self) -> str:
        m = self.metrics
        shown = [
            f"model={m.model!r}",
            f"outcomes={m.n_outcomes}",
            f"queries={m.n_queries}",
            f"heldout_accuracy={_fmt(m.get('heldout_accuracy'))}",
        ]
        baseline = m.get("baseline_random")
        if baseline is not None and baseline.get("heldout_accuracy") is not None:
            shown.append(f"random_agent={_fmt(baseline.get('heldout_accuracy'))}")
        shown.append(f"out={str(self.out)!r}")
        return f"Run({', '.join(shown)})"


class ExperimentRun:
    """The results of the analyses in one directory (`valuescope experiment ... --out DIR`).

    `results` holds each analysis's result (NAME.json) by name; the attributes below are
    those of the one analysis asked for (`name`; the only one when the directory holds one).
    """

    def __init__(self, out: str | Path, name: str | None = None) -> None:
        self.out = Path(out)
        found = {str(data["experiment"]): data for _, data in reader.read_analyses(self.out)}
        if not found:
            raise ValuescopeError(f"{self.out}: no analysis results (NAME.json) here")
        if name is None:
            name = sorted(found)[0] if len(found) == 1 else None
            if name is None:
                raise ValuescopeError(
                    f"{self.out} holds the results of {', '.join(sorted(found))}; "
                    "name one: ExperimentRun(out, name)"
                )
        if name not in found:
            raise ValuescopeError(
                f"{self.out}: no result of {name!r} (found {', '.join(sorted(found))})"
            )
        self.name = name
        self.results = found

    @property
    def result(self) -> dict[str, Any]:
        """The analysis result as written to NAME.json (a copy)."""
        import copy

        return copy.deepcopy(self.results[self.name])

    @property
    def metrics(self) -> Metrics:
        """The result with attribute access (`exp.metrics.headline.spearman.value`)."""
        return Metrics(self.results[self.name], f"{self.name}.json")

    @property
    def headline(self) -> pd.DataFrame:
        """The headline figures: one row per figure (figure, label, value, ci_low, ci_high)."""
        rows = [
            {
                "figure": key,
                "label": item.get("label", key),
                "value": item.get("value"),
                "ci_low": item.get("ci_low"),
                "ci_high": item.get("ci_high"),
            }
            for key, item in (self.results[self.name].get("headline") or {}).items()
            if isinstance(item, dict)
        ]
        return pd.DataFrame(rows, columns=["figure", "label", "value", "ci_low", "ci_high"])

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The analysis's tables, by name."""
        raw = self.results[self.name].get("tables") or {}
        return {k: pd.DataFrame(v) for k, v in raw.items() if isinstance(v, list)}

    @property
    def reading(self) -> str:
        """One paragraph saying what the figures mean for this model."""
        return str(self.results[self.name].get("reading") or "")

    @property
    def runs(self) -> dict[str, Run]:
        """The utility measurements the analysis made (its sub-run directories), by name."""
        found = {}
        for sub in sorted(p for p in self.out.iterdir() if p.is_dir()):
            try:
                if reader.run_kind(sub) == "run":
                    found[sub.name] = Run(sub)
            except ValuescopeError:
                continue
        return found

    def report(self, out: str | Path | None = None) -> Path:
        """Write report.html with a section per analysis in the directory; its path."""
        from valuescope.report import build_report

        return build_report(self.out, out)

    def __repr__(self) -> str:
        figures = ", ".join(f"{row.figure}={_fmt(row.value)}" for row in self.headline.itertuples())
        model = self.results[self.name].get("model")
        return f"ExperimentRun({self.name!r}, model={model!r}, {figures}, out={str(self.out)!r})"


class ComparisonRun:
    """Several runs compared (`valuescope report A B --out DIR`): tables and the report.

    Attributes: `labels` (one per run), `utilities` (shared outcomes, one column per run),
    `metrics` (one row per run), `cosine` and `spearman` (run x run), `pairs` (one row per
    pair of runs, with bootstrap intervals), `categories`, `out` and `report_path`.
    """

    def __init__(self, comparison: Any, report_path: Path) -> None:
        self._comparison = comparison
        self.report_path = report_path
        self.out = report_path.parent
        self.labels: list[str] = list(comparison.labels)

    @property
    def utilities(self) -> pd.DataFrame:
        return self._comparison.utilities.copy()

    @property
    def metrics(self) -> pd.DataFrame:
        return self._comparison.metrics.copy()

    @property
    def cosine(self) -> pd.DataFrame:
        return self._comparison.cosine.copy()

    @property
    def spearman(self) -> pd.DataFrame:
        return self._comparison.spearman.copy()

    @property
    def pairs(self) -> pd.DataFrame:
        return self._comparison.pairs.copy()

    @property
    def categories(self) -> pd.DataFrame:
        return self._comparison.categories.copy()

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table the comparison exports (tables/NAME.csv), by name."""
        from valuescope.report.compare import tables

        return {k: v.copy() for k, v in tables(self._comparison).items()}

    def report(self) -> Path:
        """The comparison page (written when the comparison ran)."""
        return self.report_path

    def __repr__(self) -> str:
        pairs = self._comparison.pairs
        mean = _fmt(pairs["cosine"].mean()) if len(pairs) else "n/a"
        shared = len(self._comparison.utilities)
        return (
            f"ComparisonRun(runs={self.labels!r}, shared_outcomes={shared}, "
            f"mean_cosine={mean}, out={str(self.out)!r})"
        )


def _fmt(value: Any) -> str:
    return "None" if value is None else f"{float(value):.3f}"

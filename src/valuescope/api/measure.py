"""`measure` and `load`: a run from Python, through the pipeline `valuescope run` uses."""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from valuescope.api.results import ExperimentRun, Run
from valuescope.atomic import write_text
from valuescope.config import RunConfig
from valuescope.errors import ValuescopeError, did_you_mean
from valuescope.models.base import Backend
from valuescope.runcore import reader
from valuescope.runcore.rundir import prepare_out_dir

# RunConfig fields a caller does not set: the model and outcomes are arguments, and the
# template files' hashes are recorded by the run itself.
_NOT_SETTINGS = frozenset({"model", "outcomes", "template_files"})
# Keyword arguments of `measure` that are not run settings (as `valuescope run` has them).
_RUN_FLAGS = frozenset({"overwrite", "progress"})
INPUT_OUTCOMES = "outcomes.csv"  # where a list of outcomes is written, in the run directory


class SettingError(ValuescopeError, TypeError):
    """A keyword argument that is no setting, or a setting's bad value."""


def setting_names() -> list[str]:
    """The run settings `measure` takes, by their CLI names in Python spelling."""
    return [name for name in RunConfig.model_fields if name not in _NOT_SETTINGS]


def check_settings(settings: Mapping[str, Any], known: Sequence[str], what: str) -> None:
    """Refuse names that are no setting, naming each with the closest known names."""
    for name in settings:
        if name in known:
            continue
        hint = did_you_mean(name, known)
        raise SettingError(
            f"{what}: unknown setting {name!r}; {hint}known: {', '.join(sorted(known))}"
        )


def run_config(model: str, outcomes: str, settings: Mapping[str, Any]) -> RunConfig:
    """RunConfig from the settings, with the CLI's meaning of `stop_at=1` (no early stop)."""
    values = dict(settings)
    if isinstance(values.get("stop_at"), int | float) and values["stop_at"] >= 1:
        values["stop_at"] = None  # as `valuescope run --stop-at 1`: spend the whole budget
    try:
        return RunConfig(model=model, outcomes=outcomes, **values)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(x) for x in first["loc"])
        given = values.get(key, "")
        raise SettingError(f"{key}={given!r}: {first['msg']}") from None


def measure(model: str | Backend, outcomes: Any = "demo", **settings: Any) -> Run:
    """Ask `model` about `outcomes`, fit utilities and write a run directory; the Run.

    Parameters
    ----------
    model : str or Backend
        A model string (`"sim/thurstone"`, `"openai/gpt-4o-mini"`, ...) or an already built
        backend (a `valuescope.models.base.Backend`: `name`, `supports_logprobs`, `answer`).
    outcomes : str, path, list or DataFrame, default="demo"
        A built-in set name (`"demo"`, `"main"`), an outcome file, a list of outcome
        texts or of dicts with `outcome` (and optional `category`), or a DataFrame with
        those columns. A list or table is written to `out/outcomes.csv`, which the run
        then reads like any outcome file.
    **settings
        The options of `valuescope run` by name (`samples=5`, `mode="sample"`,
        `design="random"`, `seed=1`, `out="runs/x"`, ...), plus `overwrite=True` to
        replace another run's results in `out`, and `progress=True` for a progress bar
        (on stderr; under the cell in a notebook) or a `valuescope.runcore.plan.Progress`
        object that receives the events. Without `out`, the run is written to a new
        temporary directory (`valuescope-run-*` under the system's temp folder).

    Returns
    -------
    Run
        The finished run, read back from its directory.
    """
    from valuescope.report import build_report
    from valuescope.runcore.pipeline import plan, run

    check_settings(settings, [*setting_names(), *_RUN_FLAGS], "valuescope.measure")
    flags = {k: settings.pop(k) for k in _RUN_FLAGS if k in settings}
    overwrite = bool(flags.get("overwrite", False))
    backend, model_name = _model(model)
    if settings.get("out") is None:
        settings["out"] = Path(tempfile.mkdtemp(prefix="valuescope-run-"))
    source = _outcomes_source(outcomes, Path(settings["out"]), overwrite)
    config = run_config(model_name, source, settings)
    if backend is not None and config.engine != "local":
        raise SettingError(
            f"engine={config.engine!r} builds the model in each worker from a model string; "
            "pass the model string instead of a backend object"
        )
    the_plan = plan(config, overwrite=overwrite, backend=backend)
    with progress_of(flags.get("progress")) as progress:
        result = run(the_plan, progress=progress, report=build_report)
    return Run(result.out)


@contextlib.contextmanager
def progress_of(value: object) -> Iterator[Any]:
    """The progress receiver for `progress=`: None (silent), True (a bar) or the object given."""
    if value is None or value is False:
        yield None
    elif value is True:
        from valuescope.terminal import BarProgress, progress_bar

        with progress_bar(False) as bar:
            yield BarProgress(bar)
    elif callable(getattr(value, "start", None)) and callable(getattr(value, "advance", None)):
        yield value
    else:
        raise SettingError(
            f"progress: expected True, False or an object with start() and advance(), got "
            f"{type(value).__name__}"
        )


def load(path: str | Path) -> Run | ExperimentRun:
    """A run directory read back (a Run); a directory of analysis results: an ExperimentRun."""
    kind = reader.run_kind(path)
    return Run(path) if kind == "run" else ExperimentRun(path)


def _model(model: object) -> tuple[Backend | None, str]:
    """(backend object or None, model string) from measure's `model` argument."""
    if isinstance(model, str):
        if not model.strip():
            raise SettingError("model: empty; give a model string such as 'sim/thurstone'")
        return None, model
    if isinstance(model, Backend) and isinstance(getattr(model, "name", None), str):
        # a built backend's name may carry its options after '#' (cache keys keep them)
        return model, model.name.split("#")[0]
    raise SettingError(
        f"model: expected a model string such as 'sim/thurstone' or a backend object "
        f"(name, supports_logprobs, answer), got {type(model).__name__}"
    )


def _outcomes_source(outcomes: object, out: Path, overwrite: bool) -> str:
    """The outcomes setting: a set name or file as given, a list written to out/outcomes.csv."""
    if isinstance(outcomes, str | Path):
        return str(outcomes)
    if isinstance(outcomes, pd.DataFrame):
        outcomes = _frame_records(outcomes)
    if isinstance(outcomes, Mapping) or not isinstance(outcomes, Sequence):
        raise SettingError(
            f"outcomes: expected a set name, a file or a list of outcomes, got "
            f"{type(outcomes).__name__}"
        )
    rows = [_outcome_row(i, item) for i, item in enumerate(outcomes)]
    if len(rows) < 2:
        raise SettingError(f"outcomes: needs at least 2 outcomes, got {len(rows)}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["outcome", "category"])
    writer.writerows(rows)
    path = out / INPUT_OUTCOMES
    if path.is_file() and not overwrite and path.read_text(encoding="utf-8") != buffer.getvalue():
        raise SettingError(
            f"outcomes: {path} already holds other outcomes (another run's); pass "
            "overwrite=True to replace that run, or choose another out"
        )
    prepare_out_dir(out)
    write_text(path, buffer.getvalue())
    return str(path)


def _frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a table with an `outcome` column (and optionally `category`) as dicts."""
    if "outcome" not in frame.columns:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise SettingError(f"outcomes: a table needs an outcome column (found {found})")
    columns = [c for c in ("outcome", "category") if c in frame.columns]
    table = frame[columns].astype(object).where(frame[columns].notna(), None)
    return table.to_dict(orient="records")


def _outcome_row(index: int, item: object) -> tuple[str, str]:
    """(outcome, category) of one list entry: a string, or a dict with outcome and category."""
    where = f"outcomes[{index}]"
    if isinstance(item, str):
        return item, ""
    if isinstance(item, Mapping):
        extra = sorted(set(map(str, item)) - {"outcome", "category"})
        if extra or "outcome" not in item:
            raise SettingError(
                f"{where}: a dict needs the keys outcome and (optionally) category, got "
                f"{', '.join(map(str, item)) or 'none'}"
            )
        text, category = item["outcome"], item.get("category") or ""
        if not isinstance(text, str) or not isinstance(category, str):
            raise SettingError(f"{where}: outcome and category must be strings")
        return text, category
    raise SettingError(
        f"{where}: expected a string or a dict with outcome and category, got {type(item).__name__}"
    )

"""Reading a run directory back: the one reader of the files a run writes.

Everything that reads a finished run goes through here: the Python API's `Run`
(`valuescope.load`), the report and the comparison of runs, the per-answer export,
`valuescope fit` and the analyses that read earlier runs. Every problem is one line naming
the file and what is wrong with it (`ValuescopeError`), never a pandas traceback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from valuescope.errors import ValuescopeError

UTILITIES = "utilities.csv"
PAIRS = "pairs.csv"
TRUTH = "truth.csv"
METRICS = "metrics.json"
ANSWERS = "answers.parquet"
CACHE = "responses.sqlite"
RUN_CONFIG = "run_config.json"
OUTCOMES_SNAPSHOT = "outcomes_snapshot.json"
UTILITY_COLUMNS = ("id", "outcome", "category", "mean", "sigma", "ci_low", "ci_high")
PAIR_COLUMNS = ("a", "b", "p", "split")
# Cells read as missing in number columns (text columns keep every string as written).
NA_STRINGS = ("", "nan", "NaN", "NA", "N/A", "null", "None")
# Written into run_config.json next to the settings; not settings themselves.
RECORD_KEYS = ("outcomes_sha256", "outcomes_count")


def read_json(path: str | Path) -> dict:
    """A JSON object from a run directory's file, or one line naming the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte {exc.start}); the file is corrupt"
        raise ValuescopeError(f"{path}: {reason}") from None
    except OSError as exc:
        raise ValuescopeError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValuescopeError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "the file is corrupt or truncated"
        ) from None
    except RecursionError:
        raise ValuescopeError(f"{path}: JSON nested too deeply; the file is corrupt") from None
    if not isinstance(data, dict):
        raise ValuescopeError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def read_metrics(run_dir: str | Path) -> dict:
    """metrics.json of a finished run directory."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        raise ValuescopeError(f"{run_dir} is not a finished run directory (no {METRICS})")
    return read_json(path)


def read_run_config(run_dir: str | Path) -> tuple[dict, dict]:
    """(settings, record) from run_config.json; the record holds the outcomes' hash."""
    data = read_json(Path(run_dir) / RUN_CONFIG)
    record = {k: data.pop(k) for k in RECORD_KEYS if k in data}
    return data, record


def read_table(
    path: str | Path,
    columns: Sequence[str] = (),
    *,
    text: Sequence[str] = (),
    numbers: Sequence[str] = (),
    optional: bool = False,
) -> pd.DataFrame | None:
    """A CSV of a run directory, or one line naming the file and the problem.

    `columns` must be present. `text` columns are read as strings exactly as written (an
    outcome called "None" stays one); the cells NA_STRINGS of other columns are missing.
    `numbers` columns become numbers (an unreadable cell is missing; an absent column is
    all missing). `optional`: a missing file is None instead of an error.
    """
    path = Path(path)
    if optional and not path.is_file():
        return None
    try:
        header = pd.read_csv(path, nrows=0).columns
        frame = pd.read_csv(
            path,
            dtype={c: str for c in text if c in header},
            keep_default_na=False,
            na_values={c: list(NA_STRINGS) for c in header if c not in text},
        )
    except FileNotFoundError:
        raise ValuescopeError(f"{path}: no such file (is this a finished run directory?)") from None
    except pd.errors.EmptyDataError:
        raise ValuescopeError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ValuescopeError(f"{path}: not a readable CSV ({reason})") from None
    except OSError as exc:
        raise ValuescopeError(f"{path}: cannot read ({exc.strerror or exc})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        noun = "column" if len(missing) == 1 else "columns"
        found = ", ".join(map(str, frame.columns))
        raise ValuescopeError(
            f"{path}: no {noun} {', '.join(missing)} (found {found}); the file is corrupt or "
            "not valuescope's"
        )
    for col in numbers:
        frame[col] = pd.to_numeric(frame[col], errors="coerce") if col in frame else np.nan
    return frame


def read_utilities(run_dir: str | Path, columns: Sequence[str] = UTILITY_COLUMNS) -> pd.DataFrame:
    """utilities.csv: one row per outcome (id, outcome, category, mean, sigma, ci_low, ...)."""
    frame = read_table(
        Path(run_dir) / UTILITIES,
        columns,
        text=("outcome", "category"),
        numbers=[c for c in ("mean", "sigma", "ci_low", "ci_high", "refusal_rate") if c in columns],
    )
    assert frame is not None  # not optional
    return frame


def read_pairs(run_dir: str | Path, columns: Sequence[str] = PAIR_COLUMNS) -> pd.DataFrame:
    """pairs.csv: one row per pair asked (a, b, p, q, n_answers, n_refused, split)."""
    frame = read_table(Path(run_dir) / PAIRS, columns, text=("split",))
    assert frame is not None  # not optional
    return frame


def read_truth(run_dir: str | Path) -> pd.DataFrame | None:
    """truth.csv (the hidden utilities of a synthetic agent), or None for a real model."""
    return read_table(Path(run_dir) / TRUTH, ("mean",), numbers=("mean", "sigma"), optional=True)


def read_answers_file(run_dir: str | Path) -> pd.DataFrame:
    """answers.parquet, the per-answer table a run wrote when it finished."""
    path = Path(run_dir) / ANSWERS
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise ValuescopeError(f"{path}: no such file (is this a finished run directory?)") from None
    except (OSError, ValueError) as exc:  # pyarrow's errors for a corrupt file are both
        reason = " ".join(str(exc).split())[:200]
        raise ValuescopeError(f"{path}: not a readable Parquet file ({reason})") from None


def read_outcome_texts(run_dir: str | Path) -> list[str]:
    """The outcome texts a run asked about, by id (its snapshot; else utilities.csv)."""
    run_dir = Path(run_dir)
    snapshot = run_dir / OUTCOMES_SNAPSHOT
    if snapshot.is_file():
        try:
            return [str(row["text"]) for row in read_json(snapshot)["outcomes"]]
        except (KeyError, TypeError):
            raise ValuescopeError(f"{snapshot}: no outcome list; the file is corrupt") from None
    table = read_utilities(run_dir, ("id", "outcome")).sort_values("id")
    return table["outcome"].astype(str).tolist()


def read_fit_inputs(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(training pairs, P(first preferred), utilities table) of a finished run, checked.

    A truncated or edited pairs.csv is an error (it would refit silently on what is left):
    rows with missing or out-of-range values, or fewer rows than metrics.json recorded.
    """
    run_dir = Path(run_dir)
    utilities = read_utilities(run_dir, ("id", "outcome", "category"))
    n = len(utilities)
    if n < 2:
        raise ValuescopeError(f"{run_dir / UTILITIES}: {n} outcome rows; a run has 2 or more")
    path = run_dir / PAIRS
    table = read_pairs(run_dir)
    numbers = table[["a", "b", "p"]].apply(pd.to_numeric, errors="coerce")
    bad = numbers.isna().any(axis=1) | ~table["split"].isin(["train", "heldout"])
    ids = numbers[["a", "b"]]
    bad |= ((ids < 0) | (ids >= n) | (ids % 1 != 0)).any(axis=1) | (numbers["a"] == numbers["b"])
    bad |= (numbers["p"] < 0) | (numbers["p"] > 1)
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # 1-based, after the header
        raise ValuescopeError(
            f"{path}: line {line} is incomplete or out of range ({int(bad.sum())} bad rows of "
            f"{len(table)}); the file is truncated or edited, rerun the run to rewrite it"
        )
    if (run_dir / METRICS).exists():
        metrics = read_json(run_dir / METRICS)
        expected = _int_or_none(metrics.get("n_pairs"))
        held = _int_or_none(metrics.get("n_heldout_pairs"))
        if expected is not None and held is not None and expected + held != len(table):
            raise ValuescopeError(
                f"{path}: {len(table)} rows, but metrics.json records {expected + held} pairs; "
                "the file is truncated or edited, rerun the run to rewrite it"
            )
    train = table["split"] == "train"
    if not train.any():
        raise ValuescopeError(f"{path}: no training pairs; the file is truncated or edited")
    pairs = numbers.loc[train, ["a", "b"]].to_numpy(dtype=np.int64)
    return pairs, numbers.loc[train, "p"].to_numpy(dtype=float), utilities


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_analyses(directory: str | Path) -> list[tuple[Path, dict]]:
    """(path, result) of every analysis result (`NAME.json` with an `experiment` key) here.

    Sorted by file name. JSON files that are not analysis results (metrics.json,
    run_config.json) or cannot be read are passed over: a directory may hold other files.
    """
    found = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            continue
        if isinstance(data, dict) and "experiment" in data:
            found.append((path, data))
    return found


def run_kind(path: str | Path) -> str:
    """'run' (a finished run directory) or 'analyses' (analysis results), else one line why not.

    A run directory holds metrics.json and utilities.csv; an analysis directory holds
    `NAME.json` results written by `valuescope experiment`.
    """
    path = Path(path)
    if not path.exists():
        raise ValuescopeError(f"{path}: no such directory")
    if not path.is_dir():
        raise ValuescopeError(f"{path}: a file, not a run directory")
    if (path / METRICS).is_file() and (path / UTILITIES).is_file():
        return "run"
    if read_analyses(path):
        return "analyses"
    if (path / RUN_CONFIG).is_file():
        raise ValuescopeError(
            f"{path} holds a run that has not finished (no {METRICS}); continue it with "
            f"`valuescope run --resume --out {path}`"
        )
    raise ValuescopeError(
        f"{path} is not a run directory (no {METRICS} and {UTILITIES}, no analysis results)"
    )

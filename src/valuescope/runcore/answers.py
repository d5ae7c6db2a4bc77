"""Per-answer export: one row per answer a run used, rebuilt from its cache and its pairs.

`answers_table(run_dir)` reads a finished run directory (run_config.json, metrics.json,
pairs.csv, outcomes_snapshot.json, responses.sqlite), rebuilds the questions the run
asked exactly as it asked them (pairs in both orders, every sample, every template),
looks each answer up in the cache by its key, and returns a DataFrame. `write_answers`
saves it as answers.parquet; `export_answers` writes parquet, CSV or JSON lines.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from valuescope.atomic import atomic_write
from valuescope.elicit.cache import query_key
from valuescope.elicit.elicit import MIN_ANSWER_MASS, ElicitSettings, build_queries
from valuescope.elicit.parse import parse_choice
from valuescope.elicit.prompts import Template, get_template
from valuescope.errors import ValuescopeError
from valuescope.models._http import strip_userinfo
from valuescope.models.base import Answer
from valuescope.provenance import parse_utc
from valuescope.runcore.reader import (
    RUN_CONFIG,
    read_json,
    read_metrics,
    read_outcome_texts,
    read_pairs,
)

ANSWERS_FILE = "answers.parquet"
FORMATS = ("parquet", "csv", "jsonl")
COLUMNS = [
    "a",
    "b",
    "split",
    "first",
    "second",
    "first_text",
    "second_text",
    "order",
    "sample",
    "template",
    "persona",
    "reply",
    "choice",
    "p_first",
    "answer_mass",
    "tokens_in",
    "tokens_out",
    "cached",
]
# Unparsed replies with one of these phrases count as refusals, other ones as unparseable.
_REFUSAL = re.compile(
    r"\b(rather not|can(?:no|')t|won't|will not|unable to|not able to|sorry|as an ai|"
    r"decline|not comfortable|do(?:n't| not) have (?:personal )?preferences)\b",
    re.IGNORECASE,
)


def choice_of(answer: Answer, mode: str, template: Template) -> str:
    """The choice an answer made: A (first-listed), B, tie, refusal or unparseable.

    Logprob mode: the likelier label (tie at exactly 1/2); a refusal where the two answer
    tokens hold under MIN_ANSWER_MASS of the next-token probability (the run counts it as
    refused). Sample mode: the parsed label; an unparsed reply is a refusal when it says
    so in words ("I would rather not", "I can't", ...), else unparseable. A reply with
    impossible numbers (`bad_answer`) is unparseable in either mode.
    """
    if answer.extra.get("bad_answer"):
        return "unparseable"
    if mode == "logprob":
        if answer.p_a is None or (answer.mass is not None and answer.mass < MIN_ANSWER_MASS):
            return "refusal"
        return "tie" if answer.p_a == 0.5 else ("A" if answer.p_a > 0.5 else "B")
    parsed = parse_choice(answer.text, reasoning=template.reasoning, labels=template.labels)
    if parsed is not None:
        return parsed
    return "refusal" if answer.text and _REFUSAL.search(answer.text) else "unparseable"


def answers_table(run_dir: str | Path) -> pd.DataFrame:
    """One row per answer of a finished run (the columns are `COLUMNS`; docs/commands/export.md).

    Rows come in the order the run asked: template, pair (as in pairs.csv), order
    (original: `a` first; swapped: `b` first), sample. `cached` is True for answers that
    were in the cache when the run (its last invocation) started, so its sum equals
    metrics.json's `n_queries_cached`; it is missing for runs that recorded no start time.
    """
    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    config = read_json(run_dir / RUN_CONFIG)
    pairs = read_pairs(run_dir, ["a", "b", "split"])
    texts = read_outcome_texts(run_dir)
    mode = str(metrics.get("mode") or config.get("mode"))
    settings = ElicitSettings(
        mode=mode,  # type: ignore[arg-type]
        samples=int(config.get("samples") or 1),
        temperature=float(config.get("temperature", 1.0)),
        persona=config.get("persona"),
    )
    templates = _templates(config)
    backend_name = str(metrics.get("backend") or config.get("model"))
    base_url = _base_url(metrics, config)
    started = (metrics.get("provenance") or {}).get("time")
    ids = pairs[["a", "b"]].to_numpy(dtype=np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= len(texts)):
        raise ValuescopeError(f"{run_dir / 'pairs.csv'}: outcome ids beyond the run's outcomes")
    frames = []
    cache = _open_cache(run_dir / "responses.sqlite")
    try:
        for template in templates:
            queries = build_queries(texts, ids, template, settings)
            keys = [query_key(backend_name, q, base_url) for q in queries]
            found = _cached(cache, keys)
            missing = sum(1 for k in keys if k not in found)
            if missing:
                raise ValuescopeError(
                    f"{run_dir}: {missing} of {len(keys)} answers under template "
                    f"{template.name!r} are not in responses.sqlite (was the cache deleted "
                    "or replaced?); rerun the run to ask them again"
                )
            answers = [found[k][0] for k in keys]
            frame = _rows(pairs, ids, texts, template, settings, answers)
            if started:
                created = np.array([found[k][1] for k in keys], dtype=float)
                frame["cached"] = pd.array(created < parse_utc(started), dtype="boolean")
            else:
                frame["cached"] = pd.array([None] * len(keys), dtype="boolean")
            frames.append(frame)
    finally:
        cache.close()
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def _rows(
    pairs: pd.DataFrame,
    ids: np.ndarray,
    texts: list[str],
    template: Template,
    settings: ElicitSettings,
    answers: list[Answer],
) -> pd.DataFrame:
    """The table of one template's answers, laid out as `build_queries` orders them."""
    k = settings.samples if settings.mode == "sample" else 1
    n = len(ids)
    pair_index = np.repeat(np.arange(n), 2 * k)
    swapped = np.tile(np.repeat([False, True], k), n)
    first = np.where(swapped, ids[pair_index, 1], ids[pair_index, 0])
    second = np.where(swapped, ids[pair_index, 0], ids[pair_index, 1])
    logprob = settings.mode == "logprob"
    return pd.DataFrame(
        {
            "a": ids[pair_index, 0],
            "b": ids[pair_index, 1],
            "split": pairs["split"].to_numpy()[pair_index],
            "first": first,
            "second": second,
            "first_text": [texts[i] for i in first],
            "second_text": [texts[i] for i in second],
            "order": np.where(swapped, "swapped", "original"),
            "sample": np.tile(np.arange(k), 2 * n),
            "template": template.name,
            "persona": settings.persona or "",
            "reply": [a.text for a in answers],
            "choice": [choice_of(a, settings.mode, template) for a in answers],
            "p_first": [_number(a.p_a) if logprob else np.nan for a in answers],
            "answer_mass": [_number(a.mass) for a in answers],
            "tokens_in": np.array([a.tokens_in for a in answers], dtype=np.int64),
            "tokens_out": np.array([a.tokens_out for a in answers], dtype=np.int64),
        }
    )


def _number(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _open_cache(path: Path) -> sqlite3.Connection:
    """The run's answer cache, read-only (an export never changes it)."""
    if not path.is_file():
        raise ValuescopeError(f"{path}: no such file; the run's answers are gone")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
        conn.execute("SELECT key, answer, created FROM responses LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise ValuescopeError(f"cannot read the response cache {path}: {exc}") from None
    return conn


def _cached(conn: sqlite3.Connection, keys: list[str]) -> dict[str, tuple[Answer, float]]:
    """(answer, time stored) for each key the cache holds."""
    found: dict[str, tuple[Answer, float]] = {}
    for start in range(0, len(keys), 900):
        chunk = keys[start : start + 900]
        marks = ",".join("?" * len(chunk))
        try:
            rows = conn.execute(
                f"SELECT key, answer, created FROM responses WHERE key IN ({marks})", chunk
            ).fetchall()
            for key, blob, created in rows:
                found[key] = (Answer(**json.loads(blob)), float(created))
        except (sqlite3.Error, TypeError, ValueError) as exc:
            raise ValuescopeError(
                f"cannot read the response cache: {type(exc).__name__}: {exc}"
            ) from None
    return found


def _templates(config: dict) -> list[Template]:
    """The run's templates; a template file that changed since the run is refused."""
    names = [t.strip() for t in str(config.get("template") or "default").split(",") if t.strip()]
    templates = [get_template(name) for name in names]
    recorded = config.get("template_files") or {}
    for name, template in zip(names, templates, strict=True):
        digest = recorded.get(name)
        if digest is not None and template.source_sha256 != digest:
            raise ValuescopeError(
                f"template file {name} changed since the run; restore it to export the answers"
            )
    return templates


def _base_url(metrics: dict, config: dict) -> str | None:
    """The endpoint the cache keys hold: recorded by the run, else its --base-url."""
    provenance = metrics.get("provenance") or {}
    if "base_url" in provenance:
        return provenance["base_url"]
    url = config.get("base_url")
    return strip_userinfo(url).rstrip("/") if url else None


def write_answers(run_dir: str | Path) -> Path:
    """Write run_dir/answers.parquet (atomically); its path."""
    run_dir = Path(run_dir)
    return export_answers(run_dir, "parquet", run_dir / ANSWERS_FILE)


def export_answers(run_dir: str | Path, fmt: str, out: str | Path | None) -> Path | None:
    """Write the answers of a run as parquet, csv or jsonl to `out` (None: stdout for text).

    Parquet without `out` goes to run_dir/answers.parquet. Returns the path written, or
    None when the table went to stdout.
    """
    if fmt not in FORMATS:
        raise ValuescopeError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    table = answers_table(run_dir)
    if out is None and fmt == "parquet":
        out = Path(run_dir) / ANSWERS_FILE
    if out is None or str(out) == "-":
        if fmt == "parquet":
            raise ValuescopeError("--format parquet is binary: give --out FILE")
        _write(table, fmt, sys.stdout)
        return None
    path = Path(out)
    atomic_write(path, lambda tmp: _write(table, fmt, tmp))
    return path


def _write(table: pd.DataFrame, fmt: str, target) -> None:
    if fmt == "parquet":
        table.to_parquet(target, index=False)
    elif fmt == "csv":
        table.to_csv(target, index=False)
    else:
        table.to_json(target, orient="records", lines=True, force_ascii=False)

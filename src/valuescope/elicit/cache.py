"""The response cache: every question and answer in one SQLite file (WAL mode)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path

from valuescope.errors import ValuescopeError
from valuescope.models.base import Answer, Query

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    mode TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    answer TEXT NOT NULL,
    created REAL NOT NULL
);
"""

COLUMNS = ["key", "model", "mode", "sample_index", "prompt", "answer", "created"]


def _answer(blob: str, key: str, path: Path) -> Answer:
    """The Answer a cache row stores; a row that does not hold one is an error."""
    try:
        return Answer(**json.loads(blob))
    except (TypeError, ValueError) as exc:
        raise ValuescopeError(
            f"the response cache {path} is corrupt: row {key[:12]}... holds no answer "
            f"({type(exc).__name__}); delete the file to start over"
        ) from None


def query_key(model: str, query: Query, base_url: str | None = None) -> str:
    """Hash of what changes the answer: model, endpoint, prompt, sampling settings.

    The model string carries the weights' fingerprint where a backend has one (file size,
    adapter digest). Labels pick the tokens a logprob answer compares; the template name
    and persona reach synthetic agents directly, not only through the messages.
    Temperature and token limit matter only when sampling (logprob mode reads one
    next-token distribution). Concurrency, batch size, timeouts and keys are left out.
    """
    payload = json.dumps(
        [
            model,
            base_url,
            query.messages,
            query.mode,
            query.sample_index,
            query.temperature if query.mode == "sample" else None,
            query.max_tokens if query.mode == "sample" else None,
            list(query.labels),
            query.template,
            query.persona,
        ],
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


_ANSWER_FIELDS = tuple(f.name for f in fields(Answer))


def _answer_json(answer: Answer) -> str:
    """The answer's fields as JSON, as `json.dumps(asdict(answer))` writes them.

    `asdict` deep-copies every value before it is serialised, a sixth of a cached
    write's time; the fields are plain values (`extra` a dict of them).
    """
    return json.dumps({name: getattr(answer, name) for name in _ANSWER_FIELDS}, ensure_ascii=False)


class ResponseCache:
    """SQLite-backed store of answers keyed by `query_key`; safe to share between runs."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=60)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            status = self._conn.execute("PRAGMA quick_check").fetchone()[0]
            if status != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed ({status})")
            columns = [r[1] for r in self._conn.execute("PRAGMA table_info(responses)")]
            if columns != COLUMNS:
                raise sqlite3.DatabaseError(
                    f"not a valuescope response cache (table responses has columns {columns})"
                )
        except sqlite3.DatabaseError as exc:
            raise ValuescopeError(f"cannot use the response cache {self.path}: {exc}") from None
        except OSError as exc:
            raise ValuescopeError(f"cannot create the response cache {self.path}: {exc}") from None

    def get_many(self, keys: Sequence[str]) -> dict[str, Answer]:
        """Cached answers for the keys that have one."""
        found: dict[str, Answer] = {}
        for start in range(0, len(keys), 900):
            chunk = list(keys[start : start + 900])
            marks = ",".join("?" * len(chunk))
            try:
                rows = self._conn.execute(
                    f"SELECT key, answer FROM responses WHERE key IN ({marks})", chunk
                )
                for key, blob in rows:
                    found[key] = _answer(blob, key, self.path)
            except sqlite3.Error as exc:
                message = f"cannot read the response cache {self.path}: {exc}"
                raise ValuescopeError(message) from None
        return found

    def put_many(self, items: Iterable[tuple[str, str, Query, Answer]]) -> int:
        """Store (key, model, query, answer) rows in one transaction; returns rows added."""
        now = time.time()
        rows = [
            (
                key,
                model,
                q.mode,
                q.sample_index,
                json.dumps(q.messages, ensure_ascii=False),
                _answer_json(a),
                now,
            )
            for key, model, q, a in items
        ]
        try:
            with self._conn:
                cur = self._conn.executemany(
                    "INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)", rows
                )
        except sqlite3.Error as exc:  # disk full, read-only file system, ...
            raise ValuescopeError(
                f"cannot save {len(rows)} answers to the response cache {self.path}: {exc} "
                "(answers saved before are kept; rerun to ask the rest)"
            ) from None
        return cur.rowcount

    def count(self) -> int:
        """Number of stored answers."""
        return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The local engine: the backend in this process answers one batch after another."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from valuescope.engine.base import AnswerBatch
from valuescope.errors import BackendError
from valuescope.models.base import Backend, Query


class LocalEngine:
    """Answers in the driver process, `batch_size` queries per `backend.answer` call."""

    name = "local"

    def stream(
        self, backend: Backend, queries: Sequence[Query], batch_size: int
    ) -> Iterator[AnswerBatch]:
        for start in range(0, len(queries), batch_size):
            chunk = queries[start : start + batch_size]
            try:
                answers = answer_chunk(backend, chunk)
            except BackendError as exc:
                exc.partial = [(start + j, a) for j, a in exc.partial]
                raise
            yield [(start + j, a) for j, a in enumerate(answers)]

    def close(self) -> None:
        pass


def answer_chunk(backend: Backend, chunk: Sequence[Query]) -> list:
    """`backend.answer(chunk)`, checked; a BackendError's partial stays chunk-relative."""
    try:
        answers = backend.answer(list(chunk))
    except BackendError as exc:
        exc.partial = [(j, a) for j, a in exc.partial if 0 <= j < len(chunk)]
        raise
    if len(answers) != len(chunk):
        raise RuntimeError(
            f"backend {backend.name} returned {len(answers)} answers for {len(chunk)} queries"
        )
    return answers

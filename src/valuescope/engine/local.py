"""The local engine: the backend in this process answers the queries.

A backend with `answer_stream` (the HTTP API backends) gets every query at once and keeps
a fixed number of requests in flight, yielding answers as they arrive; any other backend
answers one batch of `batch_size` queries after another.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from valuescope.engine.base import AnswerBatch
from valuescope.errors import BackendError
from valuescope.models.base import Backend, Query


class LocalEngine:
    """Answers in the driver process: streamed where the backend can, else in batches."""

    name = "local"

    def stream(
        self, backend: Backend, queries: Sequence[Query], batch_size: int
    ) -> Iterator[AnswerBatch]:
        streaming = getattr(backend, "answer_stream", None)
        if streaming is not None:
            # positions already index `queries`; so does a BackendError's `partial`
            yield from streaming(list(queries))
            return
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

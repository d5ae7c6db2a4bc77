"""The Engine protocol and the names of the engines (the factory is in `factory.py`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from valuescope.models.base import Answer, Backend, Query

ENGINES: tuple[str, ...] = ("local", "ray")

# One streamed batch: (position in the query list given to `stream`, answer) pairs.
AnswerBatch = list[tuple[int, Answer]]


class Engine(Protocol):
    """Answers queries in batches and streams them back as they arrive.

    `stream` may yield batches in any order; positions index the `queries` it was given.
    On a backend failure it raises `BackendError` whose `partial` holds the answers that
    arrived and were not yet yielded (positions in `queries`), so none is lost.
    """

    name: str

    def stream(
        self, backend: Backend, queries: Sequence[Query], batch_size: int
    ) -> Iterator[AnswerBatch]: ...

    def close(self) -> None: ...

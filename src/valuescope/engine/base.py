"""The Engine protocol and the factory that picks one from the run settings."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Protocol

from valuescope.errors import ValuescopeError
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


def check_engine(engine: str) -> None:
    """Fail early (before any question) when an engine is unknown or not installed."""
    if engine not in ENGINES:
        raise ValuescopeError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    if engine == "ray":
        from valuescope.engine.ray_engine import import_ray

        import_ray()


def make_engine(
    engine: str,
    model: str,
    options: dict,
    *,
    ray_address: str | None = None,
    ray_workers: int | None = None,
) -> Engine:
    """The engine a run asks for; `model` and `options` rebuild the backend in workers.

    `VALUESCOPE_RAY_STRATEGY=data` makes the Ray engine feed its workers through Ray Data.
    """
    check_engine(engine)
    if engine == "local":
        from valuescope.engine.local import LocalEngine

        return LocalEngine()
    from valuescope.engine.ray_engine import RayEngine

    strategy = os.environ.get("VALUESCOPE_RAY_STRATEGY", "actors")
    return RayEngine(model, options, address=ray_address, workers=ray_workers, strategy=strategy)

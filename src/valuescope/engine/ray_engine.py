"""The Ray engine: uncached queries answered by model workers (Ray actors) on a cluster.

Each worker is an actor that builds its own backend from the model string and the backend
options (an embedded or HF model per CPU slot, a vLLM model per GPU, or an API client whose
share of the rate limit is `rate_limit / workers`). The driver sends batches of queries to
the workers, takes the answers as they arrive and hands them to the elicitation code,
which writes them to the run's SQLite cache: the driver is the only writer, and only
queries missing from the cache reach Ray, so a run can move between `--engine local` and
`--engine ray` and resume either way.

Two ways to feed the workers (`strategy`):

- `"actors"` (default): one pool of actors for the whole run; every elicitation round
  (held-out pairs, start pairs, each active-design batch) reuses the loaded models.
- `"data"`: each round is a Ray Data pipeline, `from_items` over the queries then
  `map_batches` with the worker class on an actor pool. Ray Data starts a new pool for
  each pipeline, so the models load again every round (see docs/scaling.md for the
  measured cost); it suits one-shot designs (`--design random` or `full`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from valuescope.engine.base import AnswerBatch
from valuescope.engine.local import answer_chunk
from valuescope.errors import BackendError, MissingDependencyError, ValuescopeError
from valuescope.models.base import Answer, Backend, Query

PIP_LINE = 'pip install "valuescope[ray]"'
STRATEGIES = ("actors", "data")
# Providers whose workers each take one GPU when the cluster has GPUs.
GPU_PROVIDERS = ("vllm",)
# Batches queued per worker, so a worker never waits for the driver between batches.
QUEUED_PER_WORKER = 2


def import_ray() -> Any:
    """Import ray, or fail with the pip line."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            f"--engine ray needs Ray, which is not installed: {PIP_LINE}"
        ) from None
    return ray


def query_to_json(query: Query) -> str:
    """A query as JSON text (for Ray Data's Arrow blocks)."""
    return json.dumps(asdict(query), ensure_ascii=False)


def query_from_json(text: str) -> Query:
    """The query `query_to_json` wrote."""
    data = json.loads(text)
    data["messages"] = tuple(tuple(m) for m in data["messages"])
    data["labels"] = tuple(data["labels"])
    return Query(**data)


class ModelWorker:
    """One model worker: builds the backend once, then answers batch after batch.

    Used as a Ray actor (`answer`) and as Ray Data's callable class (`__call__`).
    """

    def __init__(self, model: str, options: dict, expected_name: str) -> None:
        from valuescope.models import get_backend

        self.backend = get_backend(model, **options)
        if self.backend.name != expected_name:
            raise ValuescopeError(
                f"ray worker built {self.backend.name!r} from {model!r}, but the driver has "
                f"{expected_name!r}; the cache keys would not match (same valuescope version "
                "and model files on every node?)"
            )

    def answer(self, queries: Sequence[Query]) -> tuple[list[tuple[int, Answer]], str | None]:
        """(position, answer) pairs for a batch, and the error message if the backend failed."""
        try:
            return list(enumerate(answer_chunk(self.backend, queries))), None
        except BackendError as exc:
            return list(exc.partial), str(exc)

    def __call__(self, batch: dict) -> dict:
        queries = [query_from_json(str(text)) for text in batch["query"]]
        got, error = self.answer(queries)
        by_pos = dict(got)
        positions = range(len(queries))
        answers = [json.dumps(asdict(by_pos[j])) if j in by_pos else "" for j in positions]
        return {
            "pos": batch["pos"],
            "answer": answers,
            "error": ["" if j in by_pos else (error or "no answer") for j in positions],
        }


class RayEngine:
    """Answers on a Ray cluster (`address`, or a local instance started on first use).

    Parameters
    ----------
    model : str, the run's model string; each worker builds its backend from it.
    options : dict, the backend options (seed, base_url, concurrency, rate_limit, ...).
    address : str or None, default=None, a running cluster ("auto", "ray://host:10001");
        None joins the Ray instance this process already started, or starts a local one.
    workers : int or None, default=None, model workers; None: one per GPU for GPU
        providers on a cluster with GPUs, else one per CPU of the cluster.
    strategy : "actors" or "data", default="actors"; see the module docstring.
    """

    name = "ray"

    def __init__(
        self,
        model: str,
        options: dict,
        *,
        address: str | None = None,
        workers: int | None = None,
        strategy: str = "actors",
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValuescopeError(f"unknown ray strategy {strategy!r}; known: {STRATEGIES}")
        if workers is not None and workers < 1:
            raise ValuescopeError(f"ray workers must be at least 1, got {workers}")
        self.ray = import_ray()
        self.model, self.options, self.address = model, dict(options), address
        self.strategy, self.wanted = strategy, workers
        self.n_workers = 0
        self._actors: list[Any] = []
        self._owns_ray = False
        self._resources: dict = {}

    # -- start and stop ---------------------------------------------------------------
    def _connect(self) -> None:
        ray = self.ray
        if not ray.is_initialized():
            try:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.address or "a local instance"
                raise ValuescopeError(f"cannot start or join Ray at {where}: {exc}") from None
            self._owns_ray = True
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        cluster = ray.cluster_resources()
        provider = self.model.split("/", 1)[0]
        gpus = int(cluster.get("GPU", 0)) if provider in GPU_PROVIDERS else 0
        self.n_workers = self.wanted or max(1, gpus or int(cluster.get("CPU", 1)))
        self._resources = {"num_cpus": 1, "num_gpus": 1 if gpus else 0}
        rate = self.options.get("rate_limit")
        if rate:  # the run's limit is shared: each worker keeps to its part
            self.options["rate_limit"] = rate / self.n_workers

    def _start_actors(self, expected_name: str) -> None:
        remote = self.ray.remote(**self._resources)(ModelWorker)
        self._actors = [
            remote.remote(self.model, self.options, expected_name) for _ in range(self.n_workers)
        ]

    def close(self) -> None:
        """Stop the workers, and Ray itself if this engine started it."""
        if self.ray.is_initialized():
            for actor in self._actors:
                self.ray.kill(actor)
        self._actors = []
        if self._owns_ray and self.ray.is_initialized():
            self.ray.shutdown()
        self._owns_ray = False

    # -- answering ----------------------------------------------------------------------
    def stream(
        self, backend: Backend, queries: Sequence[Query], batch_size: int
    ) -> Iterator[AnswerBatch]:
        """Answer `queries` on the workers; batches come back in completion order."""
        if not queries:
            return
        if not self.n_workers:
            self._connect()
        size = max(1, min(batch_size, math.ceil(len(queries) / self.n_workers)))
        chunks = [list(range(s, min(s + size, len(queries)))) for s in range(0, len(queries), size)]
        if self.strategy == "data":
            yield from self._stream_data(backend, queries, size)
            return
        if not self._actors:
            self._start_actors(backend.name)
        yield from self._stream_actors(queries, chunks)

    def _stream_actors(
        self, queries: Sequence[Query], chunks: list[list[int]]
    ) -> Iterator[AnswerBatch]:
        ray = self.ray
        todo = iter(chunks)
        pending: dict[Any, tuple[Any, list[int]]] = {}

        def submit(actor: Any) -> None:
            chunk = next(todo, None)
            if chunk is not None:
                pending[actor.answer.remote([queries[i] for i in chunk])] = (actor, chunk)

        for _ in range(QUEUED_PER_WORKER):
            for actor in self._actors:
                submit(actor)
        error: str | None = None
        kept: AnswerBatch = []  # answers that arrive after a failure, handed back with it
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            actor, chunk = pending.pop(ref)
            try:
                got, message = ray.get(ref)
            except ray.exceptions.RayError as exc:
                got, message = [], _worker_failure(exc)
            batch = [(chunk[j], a) for j, a in got]
            error = error or message
            if error:  # stop sending work; collect what is still in flight
                kept.extend(batch)
                continue
            yield batch
            submit(actor)
        if error:
            raise BackendError(error, partial=kept)

    def _stream_data(
        self, backend: Backend, queries: Sequence[Query], size: int
    ) -> Iterator[AnswerBatch]:
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        for name in ("ray.data", "ray.data._internal.execution.streaming_executor"):
            logging.getLogger(name).setLevel(logging.WARNING)
        items = [{"pos": i, "query": query_to_json(q)} for i, q in enumerate(queries)]
        ds = ray.data.from_items(items).map_batches(
            ModelWorker,
            fn_constructor_kwargs={
                "model": self.model,
                "options": self.options,
                "expected_name": backend.name,
            },
            batch_size=size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.n_workers),
            **self._resources,
        )
        error: str | None = None
        kept: AnswerBatch = []
        try:
            for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
                batch = [
                    (int(p), Answer(**json.loads(a)))
                    for p, a in zip(out["pos"], out["answer"])
                    if a
                ]
                failed = [e for e in out["error"] if e]
                error = error or (str(failed[0]) if failed else None)
                if error:
                    kept.extend(batch)
                    continue
                yield batch
        except self.ray.exceptions.RayError as exc:
            error = error or _worker_failure(exc)
        if error:
            raise BackendError(error, partial=kept)


def _worker_failure(exc: Exception) -> str:
    """One line saying why a worker failed (its own error message where there is one)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, Exception):
        return f"ray worker failed: {cause}"
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return "ray worker failed: " + (lines[-1] if lines else type(exc).__name__)

"""The one run path: every command that asks a model its questions goes through `open_run`.

`open_run(plan)` takes the run directory's lock (a second process on the same directory
fails at once), writes run_config.json (the settings, the outcomes' hash and snapshot),
opens the answer cache and starts the engine the settings name (`local` or `ray`). The
`RunSession` it yields asks through that cache and engine: `ask_pairs` for forced choices
over pairs (the queries built by `elicit.build_queries`), `ask` for queries built
elsewhere with `elicit.make_query`. `valuescope run`, `sensitivity`, the analyses'
sub-runs and direct choices, and the citizens' assembly all ask this way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from valuescope.elicit import ElicitSettings, PairAnswers, ResponseCache
from valuescope.elicit.elicit import RenderFn, ask, elicit_pair_sets
from valuescope.elicit.prompts import Template
from valuescope.engine import Engine, make_engine
from valuescope.models.base import Answer, Query
from valuescope.runcore.plan import Progress, RunPlan, backend_options
from valuescope.runcore.rundir import clear_run_files, run_dir_lock, write_run_config


@dataclass
class RunSession:
    """An open run: its plan, answer cache and engine (started on the first question)."""

    plan: RunPlan
    cache: ResponseCache
    progress: Progress = field(default_factory=Progress)
    _engine: Engine | None = None

    @property
    def backend(self):
        return self.plan.backend

    @property
    def engine(self) -> Engine:
        """The engine the settings name; Ray starts (or is joined) on first use."""
        if self._engine is None:
            config = self.plan.config
            self._engine = make_engine(
                config.engine,
                config.model,
                backend_options(config),
                ray_address=config.ray_address,
                ray_workers=config.ray_workers,
            )
        return self._engine

    def ask_pairs(
        self,
        pair_sets: Sequence[np.ndarray],
        template: Template,
        *,
        texts: Sequence[str] | None = None,
        settings: ElicitSettings | None = None,
        render: RenderFn | None = None,
    ) -> list[PairAnswers]:
        """Each set of pairs asked in both orders under `template`, in one stream.

        `texts` default to the plan's outcomes, `settings` to the plan's; `render` gives
        other messages than the template's own (see `elicit.build_queries`).
        """
        return elicit_pair_sets(
            self.backend,
            self.plan.outcomes.texts if texts is None else texts,
            pair_sets,
            template,
            settings or self.plan.settings,
            self.cache,
            self.progress.advance,
            self.engine,
            render=render,
        )

    def ask(self, queries: Sequence[Query], *, count: bool = True) -> tuple[list[Answer], int]:
        """Answers to `queries` (cached or new) and how many were new.

        `count=False` keeps them off the progress bar (requests outside its total).
        """
        return ask(
            self.backend,
            queries,
            self.cache,
            batch_size=self.plan.settings.batch_size,
            progress=self.progress.advance if count else None,
            engine=self.engine,
        )

    def release_engine(self) -> None:
        """Stop the engine's workers (the questions are done); the next ask starts it again."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None


@contextlib.contextmanager
def open_run(the_plan: RunPlan, progress: Progress | None = None) -> Iterator[RunSession]:
    """Lock the run directory, record the run, open the cache; yield the session.

    The lock is held until the block ends, so whatever the caller writes after asking
    (tables, metrics, the report) is written under it too.
    """
    out = the_plan.out
    with run_dir_lock(out):
        if the_plan.overwrite:
            clear_run_files(out)
        outcomes = the_plan.outcomes
        write_run_config(out, the_plan.settings_record, outcomes.texts, outcomes.categories)
        with ResponseCache(out / "responses.sqlite") as cache:
            session = RunSession(the_plan, cache, progress or Progress())
            try:
                yield session
            finally:
                session.release_engine()

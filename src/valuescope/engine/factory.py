"""The factory that picks an engine from the run settings (imports the engines it builds)."""

from __future__ import annotations

import os

from valuescope.engine.base import ENGINES, Engine
from valuescope.errors import ValuescopeError


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

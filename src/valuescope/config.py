"""Run settings, validated once at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The embedded default: the best of the shipped candidates on `demo` (docs/embedded.md).
DEFAULT_MODEL = "embedded/qwen2.5-coder-1.5b"


class RunConfig(BaseModel):
    """Everything that decides what a run asks and how it fits."""

    model_config = ConfigDict(extra="forbid")

    model: str = DEFAULT_MODEL
    outcomes: str = "demo"
    out: Path = Path("runs/latest")
    mode: Literal["auto", "logprob", "sample"] = "auto"
    samples: int = Field(10, ge=1, le=1000, description="answers per order in sample mode")
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    design: Literal["active", "random", "full"] = "active"
    budget: int | None = Field(None, ge=1, description="training pairs (unordered)")
    stop_at: float | None = Field(
        0.99,
        gt=0.0,
        lt=1.0,
        description="active design: stop once the estimated Spearman with the full-budget "
        "utilities reaches this (None: spend the whole budget)",
    )
    seed: int = Field(0, ge=0)
    template: str = "default"
    refusals: Literal["indifference", "drop", "separate"] = "indifference"
    bootstrap: int = Field(50, ge=0, le=10_000)
    bootstrap_over: Literal["pairs", "answers", "both"] = "pairs"
    batch_size: int = Field(256, ge=1, le=100_000)
    persona: str | None = Field(
        None, description="role-play text put in the system message (simulated people)"
    )
    heldout_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    max_heldout: int = Field(1000, ge=0)
    # backend options (passed to the backend factory; never part of cache keys)
    base_url: str | None = None
    concurrency: int = Field(16, ge=1, le=4096)
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(6, ge=0, le=100)
    rate_limit: float | None = Field(None, gt=0, description="requests per second")
    # where uncached queries are answered (never part of cache keys): docs/scaling.md
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    ray_workers: int | None = Field(None, ge=1, description="Ray model workers")

"""Run settings, validated once at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    model_validator,
)

from valuescope.errors import ValuescopeError

# The embedded default: the best of the shipped candidates on `demo` (docs/embedded.md).
DEFAULT_MODEL = "embedded/qwen2.5-coder-1.5b"

# `--protocol paper`: the reference protocol. Sample mode with K = 10 answers per order at
# temperature 1 (both orders are always asked), the reference's active design over
# 2 N log2 N pairs (budget None) without early stopping, and held-out pairs
# min(5% of pairs, 1000). Setting any of these to another value is refused.
PAPER_PROTOCOL: dict[str, object] = {
    "mode": "sample",
    "samples": 10,
    "temperature": 1.0,
    "design": "reference",
    "budget": None,
    "stop_at": None,
    "heldout_fraction": 0.05,
    "max_heldout": 1000,
}


class RunConfig(BaseModel):
    """Everything that decides what a run asks and how it fits."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(DEFAULT_MODEL, description="provider/model, e.g. sim/thurstone")
    outcomes: str = Field("demo", description="built-in set (main, demo) or a file")
    out: Path = Field(Path("runs/latest"), description="run directory to write")
    mode: Literal["auto", "logprob", "sample"] = Field(
        "auto", description="logprob, sample, or auto (logprob when offered)"
    )
    samples: int = Field(10, ge=1, le=1000, description="answers per order in sample mode")
    temperature: float = Field(
        1.0, ge=0.0, le=5.0, description="sampling temperature in sample mode"
    )
    design: Literal["active", "reference", "random", "full"] = Field(
        "active",
        description="active: two independent adaptive half-designs (their agreement is the "
        "stopping rule) with a uniform share; reference: the reference's single adaptive "
        "design (never stops early); random: uniform pairs; full: every pair",
    )
    budget: int | None = Field(
        None, ge=1, description="training pairs, unordered (default ~2 N log2 N)"
    )
    stop_at: float | None = Field(
        0.99,
        gt=0.0,
        lt=1.0,
        description="active design: stop early once the split-half reliability of the "
        "utilities reaches this; 1 (None in Python) spends the whole budget",
    )
    uniform_share: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="active design: share of each batch drawn as uniform random pairs "
        "(they identify the sigmas; 0 is the reference's pure active design)",
    )
    protocol: Literal["default", "paper"] = Field(
        "default",
        description="default, or paper: the reference protocol (sample mode, K=10, reference "
        "design, whole budget); options that contradict it are refused",
    )
    seed: int = Field(0, ge=0, description="seed for the design, bootstrap and synthetic agents")
    template: str = Field(
        "default",
        description="prompt template, or a template file (.txt: the user message; .yaml: user, "
        "system, labels, reasoning); several, comma-separated, pool their answers",
    )
    template_files: dict[str, str] | None = Field(
        None, description="recorded by the run: sha256 of each template file, by path"
    )
    refusals: Literal["indifference", "drop", "separate"] = Field(
        "indifference",
        description="refusals count as 1/2 (indifference), are left out (drop), or are left "
        "out of the fit and reported per outcome as their own channel (separate)",
    )
    bootstrap: int = Field(
        50, ge=0, le=10_000, description="bootstrap replicates for intervals (0: none)"
    )
    bootstrap_over: Literal["pairs", "answers", "both"] = Field(
        "pairs", description="resample pairs, answers within pairs, or both"
    )
    batch_size: int = Field(
        256, ge=1, le=100_000, description="queries sent to the backend at a time"
    )
    persona: str | None = Field(
        None, description="role-play text put in the system message (simulated people)"
    )
    heldout_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    max_heldout: int = Field(1000, ge=0)
    # backend options (passed to the backend factory; never part of cache keys)
    base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp server, Ollama, ...); "
        "credentials in it are redacted in every saved file",
    )
    api_key_env: str | None = Field(
        None,
        description="environment variable holding the key for a --base-url host (its name)",
    )
    concurrency: int = Field(
        16, ge=1, le=4096, description="requests in flight at once (API backends)"
    )
    timeout: float = Field(60.0, gt=0, description="seconds before a request is abandoned")
    max_retries: int = Field(
        6, ge=0, le=100, description="retries per request on errors and rate limits"
    )
    rate_limit: float | None = Field(None, gt=0, description="requests per second at most")
    # where uncached queries are answered (never part of cache keys): docs/scaling.md
    engine: Literal["local", "ray"] = Field(
        "local", description="where uncached queries are answered: local or ray"
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster to join (auto, ray://host:10001); default: start a local one",
    )
    ray_workers: int | None = Field(
        None,
        ge=1,
        description="Ray model workers (default: one per GPU for vllm/, else one per CPU)",
    )

    @field_serializer("base_url", when_used="json")
    def _redact_base_url(self, url: str | None) -> str | None:
        """Saved files (run_config.json) show `http://user:***@host`, never the password."""
        from valuescope.models._http import redact_url

        return redact_url(url)

    @model_validator(mode="before")
    @classmethod
    def _apply_protocol(cls, data: object) -> object:
        """`protocol="paper"` fills in PAPER_PROTOCOL and refuses settings that contradict it."""
        if not isinstance(data, dict) or data.get("protocol") != "paper":
            return data
        for key, value in PAPER_PROTOCOL.items():
            given = data.get(key, value)
            if given != value and not _same_number(given, value):
                flag = "--" + key.replace("_", "-")
                raise ValuescopeError(
                    f"--protocol paper sets {flag} {_show(value)}; drop {flag} {_show(given)} "
                    "or use --protocol default"
                )
        return {**data, **PAPER_PROTOCOL}


def _same_number(a: object, b: object) -> bool:
    try:
        return a is not None and b is not None and float(a) == float(b)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _show(value: object) -> str:
    return "none" if value is None else str(value)


def settings_error(exc: ValidationError, where: str | None = None) -> str:
    """`--flag VALUE: why` for the first problem a settings model found (one line).

    `where` replaces `--flag VALUE` (an environment variable names itself so).
    """
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if first["type"] == "value_error":  # our own check: its text, without pydantic's prefix
        message = str((first.get("ctx") or {}).get("error", message))
    if not field:
        return message
    if where is None:
        value = first.get("input")
        shown = repr(value) if isinstance(value, str) else _show(value)
        where = f"--{field.replace('_', '-')} {shown}"
    return f"{where}: {message}"

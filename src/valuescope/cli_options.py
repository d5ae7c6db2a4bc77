"""Command-line options shared by several commands, defined once.

Every command that calls a model takes the same transport options (`Transport`): they
say how requests travel, never which answers come back, so they are never part of a
cache key. Choice options list their values in `--help` and in shell completion
(`choice`); the values themselves are still validated by RunConfig, as before.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Annotated

import typer

from valuescope.config import RunConfig

_DEFAULTS = RunConfig.model_fields

BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp server, Ollama, ...)",
    ),
]
ApiKeyEnvOption = Annotated[
    str | None,
    typer.Option(
        "--api-key-env",
        help="environment variable holding the key for a --base-url host (its name)",
    ),
]
ConcurrencyOption = Annotated[
    int, typer.Option("--concurrency", help="requests in flight at once (API backends)")
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="seconds before a request is abandoned")
]
MaxRetriesOption = Annotated[
    int, typer.Option("--max-retries", help="retries per request on errors and rate limits")
]
RateLimitOption = Annotated[
    float | None, typer.Option("--rate-limit", help="requests per second at most")
]
DEFAULT_CONCURRENCY: int = _DEFAULTS["concurrency"].default
DEFAULT_TIMEOUT: float = _DEFAULTS["timeout"].default
DEFAULT_MAX_RETRIES: int = _DEFAULTS["max_retries"].default

QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="no progress bar or summary (errors only)")
]
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="also print the files written (run: and its plan first), on stderr"
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="print the results as JSON on stdout (nothing else)")
]


@dataclass(frozen=True)
class Transport:
    """How a command's requests reach the model (the six shared options)."""

    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    rate_limit: float | None = None

    def settings(self) -> dict:
        """The options as RunConfig fields."""
        return asdict(self)


# -- choices ------------------------------------------------------------------------------
# Choice options stay plain strings validated by RunConfig (a bad value is one line, exit
# 1, as before); the help shows the values as the metavar and shell completion offers them.


def config_choices(field: str) -> tuple[str, ...]:
    """The values RunConfig accepts for a Literal field (one source for help and checks)."""
    annotation = _DEFAULTS[field].annotation
    return tuple(str(v) for v in typing.get_args(annotation))


def choice(values: Sequence[str]) -> dict:
    """typer.Option keywords that list `values` in --help and complete them in the shell."""
    shown = tuple(values)

    def complete(incomplete: str) -> list[str]:
        return [v for v in shown if v.startswith(incomplete)]

    return {"metavar": "[" + "|".join(shown) + "]", "autocompletion": complete}


# Where uncached queries are answered (docs/scaling.md), for the commands that ask a model
# besides `run` (whose --engine defaults to the resumed run's).
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help="where uncached queries are answered: local or ray",
        **choice(config_choices("engine")),
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster to join (auto, ray://host:10001); default: start a local one",
    ),
]
RayWorkersOption = Annotated[
    int | None,
    typer.Option(
        "--ray-workers", help="Ray model workers (default: one per GPU for vllm/, else one per CPU)"
    ),
]

EXPORT_FORMATS = ("parquet", "csv", "jsonl")
FIT_METHODS = ("thurstonian", "bradley-terry")

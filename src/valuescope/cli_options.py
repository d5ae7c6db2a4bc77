"""Command-line options shared by several commands, defined once.

An option that sets a field of a settings model (RunConfig, AssembleConfig, ...) takes
its default, help text and choices from that field (`setting`), so the CLI holds no
second copy of them; the model still validates the value. Every option of every command
(`App`) can also come from an environment variable `VALUESCOPE_<OPTION>` (the option's
name upper-cased, dashes to underscores; `VALUESCOPE_MODEL` for the MODEL argument);
a flag on the command line wins over the environment.

Every command that calls a model takes the same transport options (`Transport`): they
say how requests travel, never which answers come back, so they are never part of a
cache key. Choice options list their values in `--help` and in shell completion
(`choice`); the values themselves are still validated by RunConfig, as before.
"""

from __future__ import annotations

import contextvars
import os
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

import annotated_types
import typer
from pydantic import BaseModel
from typer.core import TyperArgument, TyperCommand, TyperOption

from valuescope.config import RunConfig

_DEFAULTS = RunConfig.model_fields
ENV_PREFIX = "VALUESCOPE_"


def env_name(option: str) -> str:
    """`--stop-at` -> `VALUESCOPE_STOP_AT`: the variable an option can come from."""
    return ENV_PREFIX + option.lstrip("-").upper().replace("-", "_")


def long_name(param: Any) -> str:
    """The option's long flag (`--stop-at`), else the parameter's name."""
    longs = [o for o in param.opts if o.startswith("--")]
    return longs[0] if longs else param.name


_CURRENT: contextvars.ContextVar[Any] = contextvars.ContextVar("valuescope_cli_context")


def current_context() -> Any:
    """The context of the command being run (None outside one)."""
    return _CURRENT.get(None)


class EnvCommand(TyperCommand):
    """A command whose every option (and MODEL argument) also reads `VALUESCOPE_<OPTION>`."""

    def invoke(self, ctx: Any) -> Any:
        token = _CURRENT.set(ctx)
        try:
            return super().invoke(ctx)
        finally:
            _CURRENT.reset(token)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            wanted = isinstance(param, TyperOption) or (
                isinstance(param, TyperArgument) and param.name == "model"
            )
            if wanted and param.envvar is None:
                param.envvar = env_name(long_name(param))
                param.show_envvar = False  # the rule is in the root --help and the docs


class App(typer.Typer):
    """typer.Typer whose commands are EnvCommands."""

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or EnvCommand, **kwargs)


def from_environment(ctx: Any, name: str) -> str | None:
    """`VAR='value'` when the parameter `name` of `ctx` was read from the environment."""
    if ctx is None:
        return None
    source = ctx.get_parameter_source(name)
    if getattr(source, "name", None) != "ENVIRONMENT":
        return None
    param = next((p for p in ctx.command.params if p.name == name), None)
    variable = getattr(param, "envvar", None)
    if not isinstance(variable, str):
        return None
    return f"{variable}={os.environ.get(variable, '')!r}"


def setting(
    model: type[BaseModel],
    field: str,
    *decls: str,
    help: str | None = None,
    show_range: bool = True,
    **kw: Any,
):
    """typer.Option for `model.field`: its default, help (with its range) and choices."""
    info = model.model_fields[field]
    text = help or info.description or ""
    shown = _range(info.metadata) if show_range else ""
    if shown:
        text = f"{text}; {shown}" if text else shown
    if typing.get_origin(info.annotation) is Literal:
        kw = {**choice([str(v) for v in typing.get_args(info.annotation)]), **kw}
    return typer.Option(info.default, *decls, help=text or None, **kw)


def default_of(model: type[BaseModel], field: str) -> Any:
    """The default of `model.field` (for arguments and plain defaults)."""
    return model.model_fields[field].default


def _range(metadata: Sequence[object]) -> str:
    """`1-1000`, `>= 0`, `in (0, 1)`... from a field's declared bounds."""
    lo = hi = None
    lo_open = hi_open = False
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            lo = item.ge
        elif isinstance(item, annotated_types.Gt):
            lo, lo_open = item.gt, True
        elif isinstance(item, annotated_types.Le):
            hi = item.le
        elif isinstance(item, annotated_types.Lt):
            hi, hi_open = item.lt, True
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if lo is None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return f"range {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def _help(field: str) -> str:
    """The help of a RunConfig field, with its declared range."""
    info = _DEFAULTS[field]
    shown = _range(info.metadata)
    return f"{info.description}; {shown}" if shown else str(info.description)


BaseUrlOption = Annotated[str | None, typer.Option("--base-url", help=_help("base_url"))]
ApiKeyEnvOption = Annotated[str | None, typer.Option("--api-key-env", help=_help("api_key_env"))]
ConcurrencyOption = Annotated[int, typer.Option("--concurrency", help=_help("concurrency"))]
TimeoutOption = Annotated[float, typer.Option("--timeout", help=_help("timeout"))]
MaxRetriesOption = Annotated[int, typer.Option("--max-retries", help=_help("max_retries"))]
RateLimitOption = Annotated[float | None, typer.Option("--rate-limit", help=_help("rate_limit"))]
DEFAULT_CONCURRENCY: int = _DEFAULTS["concurrency"].default
DEFAULT_TIMEOUT: float = _DEFAULTS["timeout"].default
DEFAULT_MAX_RETRIES: int = _DEFAULTS["max_retries"].default
DEFAULT_ENGINE: str = _DEFAULTS["engine"].default

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
        help=_help("engine"),
        **choice(config_choices("engine")),
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option("--ray-address", help=_help("ray_address")),
]
RayWorkersOption = Annotated[
    int | None,
    typer.Option("--ray-workers", help=_help("ray_workers")),
]

EXPORT_FORMATS = ("parquet", "csv", "jsonl")
FIT_METHODS = ("thurstonian", "bradley-terry")

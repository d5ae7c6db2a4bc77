"""The one parser for model strings (`provider/name?key=value&...`) and their parameters.

Every backend declares its `?key=value` parameters once, as a pydantic model derived
from `ModelParams`; `validate_params` checks a string's parameters against it with one
rule for booleans (true/false, yes/no, on/off, 1/0, any case), one for numbers, and one
error format naming the model and the bad key:

    model 'sim/thurstone?rps=abc': parameter rps: expected a number, got 'abc'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from valuescope.errors import UnknownModelError, did_you_mean

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_bool(value: object) -> bool:
    """The one boolean rule: true/false, yes/no, on/off, 1/0 (any case); nothing else."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"expected true or false (or 1/0, yes/no, on/off), got {value!r}")


def parse_number(value: object) -> float:
    """The one number rule: a finite decimal number (`2`, `0.5`, `1e-3`)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def parse_int(value: object) -> int:
    """A whole number (`3`, also `3.0` or `1e3`); `3.5` is refused."""
    number = parse_number(value)
    if number != int(number):
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(number)


def _or_none(parse):
    def check(value: object) -> object:
        return None if value is None else parse(value)

    return check


Flag = Annotated[bool, BeforeValidator(parse_bool)]
Number = Annotated[float, BeforeValidator(parse_number)]
Whole = Annotated[int, BeforeValidator(parse_int)]
# optional forms: None (not given) stays None; a given value follows the same rule
MaybeFlag = Annotated[bool | None, BeforeValidator(_or_none(parse_bool))]
MaybeNumber = Annotated[float | None, BeforeValidator(_or_none(parse_number))]
MaybeWhole = Annotated[int | None, BeforeValidator(_or_none(parse_int))]


class ModelParams(BaseModel):
    """Base of every backend's parameter model: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def given(self) -> dict[str, Any]:
        """The parameters the model string set (not those left at their defaults)."""
        return {key: getattr(self, key) for key in sorted(self.model_fields_set)}


P = TypeVar("P", bound=ModelParams)


def split_model_string(model: str) -> tuple[str, str, dict[str, str]]:
    """Split `provider/name?k=v` into (provider, name, raw parameters)."""
    if not isinstance(model, str) or "/" not in model:
        raise UnknownModelError(
            f"model {model!r} is not of the form <provider>/<model>, "
            "for example sim/thurstone or openai/gpt-4o"
        )
    provider, rest = model.split("/", 1)
    name, _, query = rest.partition("?")
    if not provider or not name:
        raise UnknownModelError(f"model {model!r} is missing a provider or a model name")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise UnknownModelError(f"model {model!r} has malformed parameters after '?'") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise UnknownModelError(f"model {model!r}: parameter {key} is given twice")
        params[key] = value
    return provider, name, params


def model_label(label: str, params: Mapping[str, object]) -> str:
    """`label?k=v&...` as the user wrote it (for messages)."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{label}?{query}" if query else label


def validate_params(cls: type[P], label: str, params: Mapping[str, object] | None) -> P:
    """`params` checked against `cls`; `label` is the model without its `?...` part.

    Raises UnknownModelError in the one format: `model 'LABEL?...': parameter KEY: ...`,
    or `model '...' has no parameter 'KEY'; known: ...` for an unknown key.
    """
    raw = dict(params or {})
    shown = model_label(label, raw)
    known = list(cls.model_fields)
    unknown = [key for key in raw if key not in known]
    if unknown:
        hint = did_you_mean(unknown[0], known, n=1, show=repr)
        raise UnknownModelError(
            f"model {shown!r} has no parameter {unknown[0]!r}; {hint}known: {', '.join(known)}"
        )
    try:
        return cls(**raw)
    except ValidationError as exc:
        raise UnknownModelError(f"model {shown!r}: {describe_error(exc, raw)}") from None


def describe_error(exc: ValidationError, given: Mapping[str, object] | None = None) -> str:
    """`parameter KEY: what was expected, got VALUE` for a validation error's first problem.

    `given` holds the values as typed, shown in place of their converted form.
    """
    first = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in first["loc"])
    got = (given or {}).get(key, first.get("input"))
    return f"parameter {key}: {_expected(first, got)}" if key else _expected(first, got)


def _expected(error: dict, got: object) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        word, name = bounds[kind]
        return f"expected a number {word} {ctx.get(name):g}, got {_show(got)}"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}, got {_show(got)}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "missing":
        return "is required"
    return f"{error['msg'].lower()}, got {_show(got)}"


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)

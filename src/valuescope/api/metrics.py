"""Metrics with attribute access: `run.metrics.heldout_accuracy`, `run.metrics.fit.converged`."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from valuescope.errors import ValuescopeError, did_you_mean


class _Headline(BaseModel):
    """The types of the figures every finished run records (checked when a run is read)."""

    model_config = ConfigDict(extra="ignore", strict=False)

    model: str
    mode: str
    n_outcomes: int
    n_pairs: int
    n_queries: int
    heldout_accuracy: float | None = None
    heldout_log_loss: float | None = None
    completeness: float | None = None
    cycle_prob: float | None = None
    position_bias: float | None = None
    refusal_rate: float | None = None


class Metrics(Mapping[str, Any]):
    """A read-only view of a metrics.json object.

    Keys read as attributes (`m.heldout_accuracy`) or items (`m["heldout_accuracy"]`);
    nested objects are Metrics too (`m.baseline_random.heldout_accuracy`), lists stay lists
    (their objects wrapped). `to_dict()` returns a plain, independent copy. Assigning to
    it raises: the figures are what the run wrote.

    The headline figures are typed: `model`, `mode` (str); `n_outcomes`, `n_pairs`,
    `n_queries` (int); `heldout_accuracy`, `heldout_log_loss`, `completeness`,
    `cycle_prob`, `position_bias`, `refusal_rate` (float or None).
    """

    model: str
    mode: str
    n_outcomes: int
    n_pairs: int
    n_queries: int
    heldout_accuracy: float | None
    heldout_log_loss: float | None
    completeness: float | None
    cycle_prob: float | None
    position_bias: float | None
    refusal_rate: float | None

    __slots__ = ("_data", "_where")

    def __init__(self, data: Mapping[str, Any], where: str = "metrics") -> None:
        object.__setattr__(self, "_data", dict(data))
        object.__setattr__(self, "_where", where)

    @classmethod
    def of_run(cls, data: Mapping[str, Any], where: str) -> Metrics:
        """The metrics of a finished run, with the headline figures' types checked."""
        try:
            _Headline.model_validate(dict(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(x) for x in first["loc"])
            raise ValuescopeError(
                f"{where}: {key}: {first['msg']}; the file is corrupt or not valuescope's"
            ) from None
        return cls(data, where)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            hint = did_you_mean(name, self._data).rstrip()
            hint = f"; {hint}" if hint else ""
            raise AttributeError(f"{self._where} has no {name!r}{hint}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("metrics are read-only (they are what the run wrote)")

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._data[key], f"{self._where}.{key}")

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {k for k in self._data if k.isidentifier()})

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{k}={_short(v)}" for k, v in self._data.items() if not isinstance(v, dict | list)
        )
        nested = [k for k, v in self._data.items() if isinstance(v, dict)]
        more = f", nested: {', '.join(nested)}" if nested else ""
        return f"Metrics({shown}{more})"

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (deep copy) of these metrics, as metrics.json holds them."""
        return copy.deepcopy(self._data)


def _wrap(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return Metrics(value, where)
    if isinstance(value, list):
        return [_wrap(v, where) for v in value]
    return value


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return repr(value)

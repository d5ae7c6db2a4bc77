"""The `--param key=value` settings of every analysis, declared once as pydantic models.

`check_params(name, params)` validates an analysis's parameters before anything is asked:
an unknown key is refused naming the known ones, and every value follows the model
strings' rules (models.params: one rule for booleans and numbers) and is reported in one
line, `--param reversals='abc': expected a number, got 'abc'`. A field left at None
takes the analysis's own default (which may depend on `--quick`). An analysis reads its
typed values with `read_params`; the checks that need its data (an entity name, a delay,
how many items there are) stay with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from valuescope.experiments.base import ExperimentError
from valuescope.models.params import MaybeNumber, MaybeWhole, describe_error, parse_int

OPTIONAL_STR = str | None


def _whole_list(value: object) -> object:
    """`1,10,100` -> [1, 10, 100] (each a whole number by the one rule)."""
    if value is None or isinstance(value, list):
        return value
    parts = [p.strip() for p in str(value).split(",") if p.strip()]
    try:
        return [parse_int(p) for p in parts]
    except ValueError:
        raise ValueError(f"expected whole numbers like 1,10,100, got {value!r}") from None


WholeList = Annotated[list[int] | None, BeforeValidator(_whole_list)]


class AnalysisParams(BaseModel):
    """Base of every analysis's `--param` model: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # keys starting with one of these are the analysis's own, per run (convergence)
    prefixed: ClassVar[tuple[str, ...]] = ()


class ConvergenceParams(AnalysisParams):
    capability: OPTIONAL_STR = Field(None, description="one capability per --run, comma-separated")
    prefixed: ClassVar[tuple[str, ...]] = ("capability_",)


class CorrigibilityParams(AnalysisParams):
    dataset: Literal["reversals", "handwritten"] = "reversals"
    outcomes: OPTIONAL_STR = Field(None, description="outcome set of the base utilities")
    reversals: MaybeWhole = Field(None, ge=10, description="reversals sampled")


class ExchangeRatesParams(AnalysisParams):
    families: OPTIONAL_STR = Field(None, description="entity families, comma-separated")
    reference: OPTIONAL_STR = Field(None, description="the reference entity")
    grid: WholeList = Field(None, description="quantities asked, e.g. 1,10,100")
    ladder: WholeList = Field(None, description="dollar ladder, e.g. 1,10,100")


class ExpectedUtilityParams(AnalysisParams):
    probabilities: Literal["model", "reference"] = "model"


class InstrumentalParams(AnalysisParams):
    processes: MaybeWhole = Field(None, ge=1, description="Markov processes asked")


class MaximizationParams(AnalysisParams):
    variant: Literal["open", "multiple-choice"] = "open"
    answers: MaybeWhole = Field(None, ge=1, le=50, description="free answers per question")
    questions: MaybeWhole = Field(None, ge=3, description="open questions asked")


class PoliticalParams(AnalysisParams):
    per_topic: MaybeWhole = Field(None, ge=0, description="policies per topic (0: all)")
    topics: MaybeWhole = Field(None, ge=0, description="topics asked (0: all)")
    personas: OPTIONAL_STR = Field(None, description="personas, comma-separated")
    template: OPTIONAL_STR = Field(None, description="forced-choice template")
    n_boot: MaybeWhole = Field(None, ge=1, description="bootstrap replicates of the placement")


class PowerSeekingParams(AnalysisParams):
    method: Literal["comparisons", "ratings"] = "comparisons"
    outcomes: OPTIONAL_STR = Field(None, description="outcome set, or power")
    n: MaybeWhole = Field(None, ge=3, description="outcomes asked")
    judge: OPTIONAL_STR = Field(None, description="model that rates power")


class TimeDiscountingParams(AnalysisParams):
    base_amount: MaybeNumber = Field(None, ge=1, description="dollars now")
    delays: OPTIONAL_STR = Field(None, description="delays, comma-separated")
    multipliers: OPTIONAL_STR = Field(None, description="multipliers, comma-separated")


PARAMS: dict[str, type[AnalysisParams]] = {
    "convergence": ConvergenceParams,
    "corrigibility": CorrigibilityParams,
    "exchange-rates": ExchangeRatesParams,
    "expected-utility": ExpectedUtilityParams,
    "instrumental": InstrumentalParams,
    "maximization": MaximizationParams,
    "political": PoliticalParams,
    "power-seeking": PowerSeekingParams,
    "time-discounting": TimeDiscountingParams,
}


def known_keys(cls: type[AnalysisParams]) -> list[str]:
    """The keys an analysis takes (its prefixed keys shown as `capability_<run>`)."""
    return [*cls.model_fields, *(f"{p}<run>" for p in cls.prefixed)]


def check_params(name: str, params: Mapping[str, str]) -> dict[str, str]:
    """`params` after checking them against analysis `name`'s model (values as given)."""
    cls = PARAMS.get(name)
    if cls is None:
        return dict(params)
    fixed = {k: v for k, v in params.items() if not (cls.prefixed and k.startswith(cls.prefixed))}
    unknown = [k for k in fixed if k not in cls.model_fields]
    if unknown:
        raise ExperimentError(
            f"--param {unknown[0]}: {name} has no parameter {unknown[0]!r}; "
            f"known: {', '.join(known_keys(cls))}"
        )
    try:
        cls(**fixed)
    except ValidationError as exc:
        key = str(exc.errors(include_url=False)[0]["loc"][0])
        detail = describe_error(exc, fixed).split(": ", 1)[1]
        raise ExperimentError(f"--param {key}={fixed.get(key)!r}: {detail}") from None
    return dict(params)


def read_params(name: str, params: Mapping[str, str]) -> AnalysisParams:
    """Analysis `name`'s parameters, checked and typed (a field not given holds its default)."""
    check_params(name, params)
    cls = PARAMS[name]
    return cls(**{k: v for k, v in params.items() if k in cls.model_fields})

"""Settings of `control assemble`, `control train` and `control evaluate`, declared once.

Each is a pydantic model: the defaults, help texts and ranges below are the ones the CLI
shows (cli_options.setting) and the ones checked, before any question is asked or any
weight loaded. A bad value is one ControlError line naming the flag. The transport and
engine settings are RunConfig's own fields, so their ranges are declared only there.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from valuescope.config import RunConfig, settings_error
from valuescope.control.errors import ControlError

POLICIES = "policies"
_RUN = RunConfig.model_fields


def _run_field(name: str) -> Any:
    """RunConfig's field `name` (default, range and help), shared rather than copied."""
    return copy.copy(_RUN[name])


class ControlSettings(BaseModel):
    """A settings model whose bad values raise one ControlError line (`--flag: why`)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ControlError(settings_error(exc)) from None


class AssembleConfig(ControlSettings):
    """Settings of one assembly (all of them recorded in assembly.json)."""

    model: str = Field("sim/citizen", description="backend that role-plays each citizen")
    out: Path = Field(Path("runs/assembly"), description="assembly directory to write")
    outcomes: str = Field(POLICIES, description="policies (default), a built-in set, or a file")
    citizens: int = Field(24, ge=1, description="citizens sampled from the census marginals")
    pairs: int = Field(
        480,
        ge=1,
        description="training + held-out pairs (outside the held-out topic; 120 held out)",
    )
    rounds: int = Field(2, ge=1, description="voting rounds: 1 = no deliberation")
    heldout_fraction: float = Field(
        0.25, ge=0, lt=1, description="share of the pairs held out of training"
    )
    heldout_topic: str | None = Field(
        "auto", description="topic kept out of training: auto, none, or a name"
    )
    topic_pairs: int = Field(15, ge=0, description="pairs asked within the held-out topic")
    mode: Literal["auto", "logprob", "sample"] = _run_field("mode")
    samples: int = Field(5, ge=1, le=1000, description="answers per order in sample mode")
    temperature: float = _run_field("temperature")
    template: str = Field("default", description="forced-choice prompt template")
    deliberation: Literal["arguments", "votes"] = Field(
        "arguments",
        description="what a deliberation round shows: arguments (members' reasons and the "
        "vote share) or votes (the vote share only)",
    )
    arguments: int = Field(
        4, ge=0, description="arguments shown per pair in each deliberation round"
    )
    compare: bool = Field(True, description="also run the other deliberation mode and compare")
    seed: int = Field(0, ge=0, description="seed for citizens, pairs and synthetic agents")
    batch_size: int = _run_field("batch_size")
    api_key_env: str | None = _run_field("api_key_env")  # the variable's name, never the key
    # transport (how requests travel; never part of a cache key)
    base_url: str | None = _run_field("base_url")  # recorded without its credentials
    concurrency: int = _run_field("concurrency")
    timeout: float = _run_field("timeout")
    max_retries: int = _run_field("max_retries")
    rate_limit: float | None = _run_field("rate_limit")
    # where uncached questions are answered (never part of cache keys): docs/scaling.md
    engine: Literal["local", "ray"] = _run_field("engine")
    ray_address: str | None = _run_field("ray_address")
    ray_workers: int | None = _run_field("ray_workers")

    @model_validator(mode="after")
    def _arguments_to_show(self) -> AssembleConfig:
        if self.deliberation == "arguments" and self.arguments < 1:
            raise ValueError("--deliberation arguments needs --arguments 1 or more")
        return self


class TrainConfig(ControlSettings):
    """Settings of one fine-tuning run (recorded in train.json; a resume must match)."""

    model: str = Field(description="hf/<dir-or-file.gguf> model to fine-tune")
    assembly: Path = Field(Path("runs/assembly"), description="assembly directory")
    out: Path = Field(Path("runs/control"), description="training directory (resumes if present)")
    epochs: int = Field(3, ge=1, description="passes over the training prompts")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    batch_size: int = Field(8, ge=1, description="prompts per optimizer step")
    lr: float = Field(5e-4, gt=0, description="AdamW learning rate")
    lora_rank: int = Field(8, ge=1, description="LoRA rank")
    lora_alpha: float = Field(16.0, gt=0, description="LoRA scale numerator (alpha / rank)")
    lora_layers: int | None = Field(
        None,
        ge=1,
        description="LoRA on the last N transformer layers only (default: all; faster backward)",
    )
    full: bool = Field(False, description="train every weight instead of LoRA")
    max_length: int = Field(512, ge=1, description="longest prompt allowed, in tokens")
    template: str = Field("default", description="forced-choice prompt template")
    save_every: int = Field(20, ge=1, description="checkpoint every this many steps")
    seed: int = Field(0, ge=0, description="seed for LoRA init and data order")
    device: str = Field("auto", description="auto, cpu or cuda")
    threads: int | None = Field(None, ge=1, description="torch CPU threads")
    memory_limit_gb: float | None = Field(
        None, gt=0, description="memory to plan for instead of what is free now"
    )

    def fingerprint(self) -> dict[str, Any]:
        """The settings a checkpoint must share to be resumed."""
        keep = ("model", "epochs", "batch_size", "lr", "lora_rank", "lora_alpha", "lora_layers")
        keep += ("full",)
        keep += ("max_length", "template", "seed")
        return {k: getattr(self, k) for k in keep} | {"assembly": str(Path(self.assembly))}


class EvaluateConfig(ControlSettings):
    """Settings of one evaluation."""

    trained: Path = Field(Path("runs/control"), description="training directory")
    assembly: Path | None = Field(None, description="assembly directory (default: the trained one)")
    out: Path | None = Field(None, description="where to write (default: TRAINED/evaluation)")
    template: str = Field("default", description="forced-choice prompt template")
    positions: int = Field(12, ge=0, description="assembly positions in the prompting baseline")
    batch_size: int = Field(8, ge=1, description="prompts per forward pass")
    bootstrap: int = Field(500, ge=0, description="bootstrap replicates for intervals")
    seed: int = Field(0, ge=0, description="bootstrap seed")
    threads: int | None = Field(None, ge=1, description="torch CPU threads")
    capability: Path | None = Field(None, description="text file for the perplexity check")
    device: str = Field("auto", description="auto, cpu or cuda")


def settings_record(config: BaseModel) -> dict[str, Any]:
    """Every setting as saved in JSON (paths as text)."""
    return config.model_dump(mode="json")

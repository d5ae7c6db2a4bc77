"""valuescope.common.model_size: the one parser of a parameter count in a model name."""

from __future__ import annotations

import pytest

from valuescope.common.model_size import parameters_from_name


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("embedded/smollm2-135m", 135e6),
        ("embedded/qwen2.5-coder-1.5b", 1.5e9),
        ("openai/qwen2.5-1.5b-instruct", 1.5e9),
        ("hf/meta-llama/Llama-3.1-70B-Instruct", 70e9),
        ("openai/llama-8b?base_url=http://host:8000/v1", 8e9),  # "/" in options
        ("vllm/qwen2.5-7b#run2", 7e9),
        ("sim/thurstone", None),
        ("sim/thurstone?seed=1", None),
        ("openai/gpt-4o-mini", None),
        ("hf/mistralai/Mixtral-8x7B", None),  # not one number of parameters
        ("openai/merge-1b-vs-7b", None),  # two sizes: ambiguous
    ],
)
def test_parameters_from_name(model: str, size: float | None) -> None:
    assert parameters_from_name(model) == size

"""Offline vLLM models on a GPU (`vllm/<hub-name-or-path>?prefill=..&tp=..&logprobs=..`).

Logprob mode asks vLLM for one token with its top `logprobs` alternatives and reads the
probabilities of the answer labels' tokens from them (a label missing from the top-k
counts as probability 0, so `mass` is a lower bound: the 20th most likely token of an
answer slot rarely holds more than a percent). Prompts are chat-templated and tokenised
here, and sent as token ids in one `generate` call per batch; vLLM's automatic prefix
caching computes the system prompt and template preamble that the prompts share once.
Sample mode decodes with a per-request seed derived from the query, so the same query
gets the same text. vllm is imported lazily: `pip install "valuescope[vllm]"`.

To serve a model instead (vLLM or SGLang) and point `openai/...` at it, see docs/scaling.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import Field

from valuescope.common.seeds import stable_seed
from valuescope.errors import MissingDependencyError, ValuescopeError
from valuescope.models.base import Answer, Query
from valuescope.models.hf import answer_token_ids
from valuescope.models.params import MaybeWhole, ModelParams, Number, Whole, validate_params

PIP_LINE = 'pip install "valuescope[vllm]"'
DEFAULT_LOGPROBS = 20


def import_vllm() -> Any:
    """Import vllm, or fail with the pip line (it needs a CUDA GPU)."""
    try:
        import vllm
    except ImportError:
        raise MissingDependencyError(
            f"vllm/ models need vLLM and a CUDA GPU (vllm is not installed): {PIP_LINE}"
        ) from None
    return vllm


class VLLMBackend:
    """A vLLM engine answering forced-choice queries (see the module docstring).

    Parameters
    ----------
    llm : a `vllm.LLM`.
    name : str, the canonical model string (cache key).
    prefill : str, default="", text appended after the assistant turn's start.
    seed : int, default=0, mixed into every sampling seed.
    logprobs : int, default=20, alternatives read per answer slot.
    """

    supports_logprobs = True

    def __init__(
        self, llm: Any, *, name: str, prefill: str = "", seed: int = 0, logprobs: int = 20
    ) -> None:
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.name = name
        self.prefill = prefill
        self.seed = seed
        self.logprobs = logprobs
        self._label_ids: dict[tuple[str, str], dict[str, list[int]]] = {}

    def encode(self, messages: Sequence[tuple[str, str]]) -> list[int]:
        """Token ids of the chat-templated prompt plus the prefill."""
        chat = [{"role": r, "content": c} for r, c in messages]
        try:
            text = self.tokenizer.apply_chat_template(
                chat, add_generation_prompt=True, tokenize=False
            )
        except Exception:  # templates without a system role: fold it into the first turn
            if len(chat) < 2 or chat[0]["role"] != "system":
                raise
            first = {"role": chat[1]["role"], "content": chat[0]["content"] + "\n\n"}
            first["content"] += chat[1]["content"]
            text = self.tokenizer.apply_chat_template(
                [first, *chat[2:]], add_generation_prompt=True, tokenize=False
            )
        return list(self.tokenizer(text + self.prefill, add_special_tokens=False)["input_ids"])

    def label_ids(self, labels: tuple[str, str]) -> dict[str, list[int]]:
        if labels not in self._label_ids:
            self._label_ids[labels] = answer_token_ids(self.tokenizer, labels)
        return self._label_ids[labels]

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        """Answer a batch in order: one `generate` call for all of it."""
        from vllm import SamplingParams

        prompts = [{"prompt_token_ids": self.encode(q.messages)} for q in queries]
        params = []
        for q in queries:
            if q.mode == "logprob":
                params.append(SamplingParams(max_tokens=1, temperature=0.0, logprobs=self.logprobs))
            else:
                seed = stable_seed("vllm", self.seed, q.messages, q.sample_index, q.temperature)
                params.append(
                    SamplingParams(
                        max_tokens=q.max_tokens, temperature=q.temperature, seed=seed % 2**63
                    )
                )
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [self._read(q, p, o) for q, p, o in zip(queries, prompts, outputs)]

    def _read(self, query: Query, prompt: Mapping, output: Any) -> Answer:
        n_in = len(prompt["prompt_token_ids"])
        result = output.outputs[0]
        if query.mode == "sample":
            return Answer(
                text=self.prefill + result.text, tokens_in=n_in, tokens_out=len(result.token_ids)
            )
        top = result.logprobs[0] if result.logprobs else {}
        ids = self.label_ids(query.labels)
        probs = [
            sum(math.exp(top[i].logprob) for i in ids[label] if i in top) for label in query.labels
        ]
        mass = probs[0] + probs[1]
        return Answer(p_a=probs[0] / mass if mass > 0 else 0.5, mass=mass, tokens_in=n_in)


class VLLMParams(ModelParams):
    """`vllm/<model>?...`: the engine and answer settings."""

    prefill: str = ""
    seed: Whole = Field(0, ge=0)
    dtype: str = "auto"
    tp: Whole = Field(1, ge=1, description="tensor-parallel GPUs")
    logprobs: Whole = Field(DEFAULT_LOGPROBS, ge=1, description="top log-probabilities read")
    max_model_len: MaybeWhole = Field(None, ge=1)
    gpu_memory_utilization: Number = Field(0.9, gt=0, le=1)


def _parse_params(name: str, params: Mapping[str, str]) -> dict[str, Any]:
    raw = {k: v for k, v in params.items() if not (k == "max_model_len" and not v)}
    return validate_params(VLLMParams, f"vllm/{name}", raw).model_dump()


def canonical_name(name: str, settings: Mapping[str, Any]) -> str:
    """The model string with the settings that change answers, in a fixed order."""
    parts = {
        "dtype": None if settings["dtype"] == "auto" else settings["dtype"],
        "prefill": settings["prefill"] or None,
        "seed": settings["seed"] or None,
        "logprobs": None if settings["logprobs"] == DEFAULT_LOGPROBS else settings["logprobs"],
    }
    query = urlencode({k: v for k, v in parts.items() if v}, quote_via=quote)
    return f"vllm/{name}" + (f"?{query}" if query else "")


def make_vllm(name: str, params: dict[str, str], **_: object) -> VLLMBackend:
    """Factory for `vllm/<model>`: loads the model on the GPU (prefix caching on)."""
    settings = _parse_params(name, params)
    vllm = import_vllm()
    try:
        llm = vllm.LLM(
            model=name,
            dtype=settings["dtype"],
            tensor_parallel_size=settings["tp"],
            max_model_len=settings["max_model_len"],
            gpu_memory_utilization=settings["gpu_memory_utilization"],
            max_logprobs=max(settings["logprobs"], DEFAULT_LOGPROBS),
            enable_prefix_caching=True,
            seed=settings["seed"],
        )
    except (OSError, ValueError, RuntimeError) as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ValuescopeError(f"vllm/{name}: cannot load the model: {reason}") from None
    return VLLMBackend(
        llm,
        name=canonical_name(name, settings),
        prefill=settings["prefill"],
        seed=settings["seed"],
        logprobs=settings["logprobs"],
    )

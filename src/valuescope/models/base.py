"""The Backend protocol: what every model behind a model string must do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Mode = Literal["logprob", "sample"]


@dataclass(frozen=True)
class Query:
    """One forced-choice question, already rendered into chat messages.

    `option_a` and `option_b` repeat the outcome texts so that synthetic agents can
    answer without parsing the prompt; real models read only `messages`. `labels` are
    the answer labels the prompt asks for (first option, second option); `p_a` and
    "A" in answers always mean the first label. `template` names the prompt template
    (metadata only: the messages already differ between templates); `persona` repeats
    the role-play text the system message carries, if any (metadata for synthetic agents).
    """

    messages: tuple[tuple[str, str], ...]
    option_a: str
    option_b: str
    mode: Mode = "logprob"
    sample_index: int = 0
    temperature: float = 1.0
    max_tokens: int = 8
    labels: tuple[str, str] = ("A", "B")
    template: str = "default"
    persona: str = ""


@dataclass
class Answer:
    """A backend's reply: text in sample mode, P("A") in logprob mode.

    `p_a` is renormalised over the two answer tokens; `mass` is the probability the
    model put on them together (a low mass means the model wanted to say something else).
    """

    text: str | None = None
    p_a: float | None = None
    mass: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """A model that answers forced-choice queries.

    Required: `name` (the canonical model string, used in cache keys),
    `supports_logprobs`, and `answer`. Optional: `truth(outcomes)` for synthetic agents
    that know their hidden utilities; `generate(prompts, max_tokens, temperature, seed)
    -> list[str]`, plain free-text replies to chats (used by the analyses that ask open
    questions or ratings; every built-in backend has it).
    """

    name: str
    supports_logprobs: bool

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        """Answer a batch of queries, in order."""
        ...

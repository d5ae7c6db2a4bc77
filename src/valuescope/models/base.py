"""The Backend protocol: what every model behind a model string must do."""

from __future__ import annotations

import math
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


# -- numbers in replies -------------------------------------------------------------------
# A server (or a proxy in front of it) can send any JSON number: 1e999 parses as infinity,
# a log-probability of 1000 overflows math.exp. Such a reply is a bad answer, counted as
# unreadable like a refusal; it never stops the batch it came in.

MAX_TOKEN_COUNT = 10**9  # no single reply is near this


class BadNumber(ValueError):
    """A number in a reply that cannot be right (infinite, negative, absurdly large)."""


def token_count(value: object, what: str = "token count") -> int:
    """A usage count from a reply as an int (absent: 0); BadNumber when it is not a count."""
    if value is None:
        return 0
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise BadNumber(f"{what} {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadNumber(f"{what} {value!r} is not a number")
    if not math.isfinite(value) or value < 0 or value > MAX_TOKEN_COUNT or value != int(value):
        raise BadNumber(f"{what} {value!r} is not a count of tokens")
    return int(value)


def check_logprob(value: object) -> float:
    """A log-probability from a reply: a finite number at most 0 (rounding aside)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadNumber(f"log-probability {value!r} is not a number")
    if not math.isfinite(value) and value != -math.inf:
        raise BadNumber(f"log-probability {value!r} is not finite")
    if value > 1e-3:
        raise BadNumber(f"log-probability {value!r} is above 0")
    return float(value)


def bad_answer(reason: str) -> Answer:
    """The answer recorded for a reply that holds impossible numbers: unreadable."""
    return Answer(text=None, p_a=None, mass=0.0, extra={"bad_answer": reason})

"""Answer labels as tokens: the lead that lets a logprob answer be read as one token."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def space_lead(
    tokenize: Callable[[str], Sequence[int]], prefill: str, labels: tuple[str, str]
) -> list[int]:
    """Tokens to put after the prefill so that the next token is the bare label.

    After a prefill such as "I would prefer Option" the answer is " 1". Where the
    tokenizer has no single token for " 1" and spells it as a space and "1" (Qwen's
    does), the next token would be the space, the same for both answers: the space goes
    in the prompt and the bare label is read. Empty when every label has a spaced token,
    a label is spelled some other way, or the prefill is empty or ends in whitespace.
    """
    if not prefill or prefill[-1].isspace():
        return []
    space = list(tokenize(" "))
    for label in labels:
        spaced = list(tokenize(f" {label}"))
        if len(spaced) == 1 or spaced != space + list(tokenize(label)):
            return []
    return space

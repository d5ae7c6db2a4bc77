"""Turn a model's free text into a choice: first option, second option, or None.

Choices are returned as "A" (first-listed option) or "B" (second), whatever labels the
prompt used; None stands for a refusal or an answer that cannot be read.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=32)
def _patterns(first: str, second: str) -> tuple[re.Pattern, ...]:
    label = f"({re.escape(first)}|{re.escape(second)})"
    word = r"(?:option|report)"
    exact = re.compile(rf"^\W*{label}\W*$")
    # each optional piece starts with a non-space, so a whitespace run has one way to match
    # (adjacent `\s*`s made "answer" + 200 spaces take 20 s of backtracking)
    final = re.compile(
        rf"answer\s*(?:is\s*)?(?:[:\-]\s*)?(?:\*+\s*)?(?:{word}\s*)?\(?{label}(?![\w])",
        re.IGNORECASE,
    )
    leading = re.compile(
        rf"^\W*(?:i\s+(?:would\s+)?(?:prefer|choose|pick)\s+)?(?:{word}\s+)?\(?{label}(?![\w])",
        re.IGNORECASE,
    )
    mentioned = re.compile(rf"\b{word}\s*\(?{label}(?![\w])", re.IGNORECASE)
    return exact, final, leading, mentioned


def parse_choice(
    text: str | None, *, reasoning: bool = False, labels: tuple[str, str] = ("A", "B")
) -> str | None:
    """Parse an answer to a forced-choice question.

    Tries, in order: the exact label (ignoring punctuation), a final
    "Answer: X" line (the reasoning variant), a leading "X" or "Option X", and a
    single "Option X" mentioned anywhere. Anything ambiguous or empty returns None.
    """
    if not text:
        return None
    exact, final, leading, mentioned = _patterns(*labels)
    canon = {labels[0].upper(): "A", labels[1].upper(): "B"}
    stripped = text.strip()
    m = exact.match(stripped)
    if m:
        return canon[m.group(1).upper()]
    finals = final.findall(stripped)
    if finals:
        return canon[finals[-1].upper()]
    if reasoning:
        return None
    m = leading.match(stripped)
    if m and (m.group(1) in labels):  # a bare lowercase "a" at the start is a word, not a label
        return canon[m.group(1).upper()]
    named = {canon[s.upper()] for s in mentioned.findall(stripped)}
    if len(named) == 1:
        return named.pop()
    return None

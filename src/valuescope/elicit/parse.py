"""Turn a model's free text into a choice: first option, second option, or None.

Choices are returned as "A" (first-listed option) or "B" (second), whatever labels the
prompt used; None stands for a refusal or an answer that cannot be read.

The answer is read where the template asks for it, never searched for anywhere in the
reply: a reply echoes outcome texts, and an outcome text can say "answer A". Plain
templates ask for the letter alone, so the reply must start with it (after quotes,
markup, "Option", "Answer:" or "I would prefer"); reasoning templates ask for a final
line "Answer: X". A reply that offers both labels there ("A or B") is unparseable.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Characters that may wrap an answer: quotes, markdown, brackets, list marks.
_MARKUP = " \t\r\n*_\"'`“”‘’([{<>#-–—:.|"
# Phrases that may come before the label at the start of a reply, lower case.
_LEAD_INS = (
    "my final answer is",
    "my answer is",
    "the answer is",
    "final answer",
    "my answer",
    "answer is",
    "answer",
    "i would prefer",
    "i would choose",
    "i would pick",
    "i'd prefer",
    "i'd choose",
    "i'd pick",
    "i prefer",
    "i choose",
    "i pick",
    "option",
    "report",
)


@lru_cache(maxsize=32)
def _patterns(first: str, second: str) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    label = f"({re.escape(first)}|{re.escape(second)})"
    exact = re.compile(rf"^\W*{label}\W*$")
    # a line "Answer: X"; the leading class stops at line ends, so scanning is linear
    answer_line = re.compile(
        rf"^(?:[^\w\n]|_)*(?i:(?:the\s+|my\s+)?(?:final\s+)?answer)"
        rf"(?i:\s*is)?[\s:\-*_]*(?i:(?:option|report)\s*)?\(?{label}(?![\w])(.*)$",
        re.MULTILINE,
    )
    # a label offered right after the first: "A or B", "A/B", "A, or option B" (or "A, A")
    both = re.compile(
        rf"^[\s*_\"'`)\]]*(?:(?i:or|and|nor|vs\.?|versus|/|&|,)\s*)+(?i:(?:option|report)\s*)?"
        rf"\(?{label}(?![\w])"
    )
    return exact, answer_line, both


def parse_choice(
    text: str | None, *, reasoning: bool = False, labels: tuple[str, str] = ("A", "B")
) -> str | None:
    """Parse an answer to a forced-choice question.

    Plain templates: the exact label (ignoring punctuation), else a label at the start of
    the reply, else a last line "Answer: X". Reasoning templates: the last line of the
    form "Answer: X". Anything ambiguous or empty returns None.
    """
    if not text:
        return None
    exact, answer_line, both = _patterns(*labels)
    canon = {labels[0].upper(): "A", labels[1].upper(): "B"}
    stripped = text.strip()
    m = exact.match(stripped)
    if m:
        return canon[m.group(1).upper()]
    if not reasoning:
        start = _leading_label(stripped, labels, both)
        if start is not None:
            return canon[start.upper()] if start else None
        last = stripped.splitlines()[-1] if stripped else ""
        return _answer_line(last, answer_line, labels, canon)
    return _answer_line(stripped, answer_line, labels, canon)


def _leading_label(text: str, labels: tuple[str, str], both: re.Pattern) -> str | None:
    """The label the reply starts with; "" when it starts with both; None when neither."""
    rest = text.lstrip(_MARKUP)
    for _ in range(4):  # "The answer is: Option A" peels three lead-ins
        lower = rest.lower()
        for phrase in _LEAD_INS:
            if lower.startswith(phrase) and not lower[len(phrase) : len(phrase) + 1].isalnum():
                rest = rest[len(phrase) :].lstrip(_MARKUP)
                break
        else:
            break
    for label in labels:  # case-sensitive: a leading lowercase "a" is a word, not a label
        after = rest[len(label) : len(label) + 1]
        if rest.startswith(label) and not (after.isalnum() or after == "_"):
            offered = both.match(rest[len(label) :])
            # "A or B" offers both; "A, A" repeats one answer
            return "" if offered and offered.group(1).upper() != label.upper() else label
    return None


def _answer_line(
    text: str, answer_line: re.Pattern, labels: tuple[str, str], canon: dict[str, str]
) -> str | None:
    """The label of the last "Answer: X" line, unless that line also offers the other one."""
    found = answer_line.findall(text)
    if not found:
        return None
    label, tail = found[-1]
    other = labels[1] if canon[label.upper()] == "A" else labels[0]
    if re.search(rf"(?<![\w]){re.escape(other)}(?![\w])", tail):
        return None
    return canon[label.upper()]

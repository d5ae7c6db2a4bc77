"""Turn a model's free text into a choice: "A", "B", or None (refusal/unparseable)."""

from __future__ import annotations

import re

_EXACT = re.compile(r"^\W*([AB])\W*$")
_FINAL = re.compile(r"answer\s*(?:is)?\s*[:\-]?\s*\**\s*(?:option\s*)?\(?([AB])\b", re.IGNORECASE)
_LEADING = re.compile(
    r"^\W*(?:i\s+(?:would\s+)?(?:prefer|choose|pick)\s+)?(?:option\s+)?\(?([AB])\b"
)
_OPTION = re.compile(r"\boption\s*\(?([AB])\b", re.IGNORECASE)


def parse_choice(text: str | None, *, reasoning: bool = False) -> str | None:
    """Parse an answer to a forced-choice question.

    Tries, in order: the exact letter (ignoring punctuation), a final
    "Answer: X" line (the reasoning variant), a leading "X" or "Option X", and a
    single "Option X" mentioned anywhere. Anything ambiguous or empty returns None.
    """
    if not text:
        return None
    stripped = text.strip()
    m = _EXACT.match(stripped)
    if m:
        return m.group(1)
    finals = _FINAL.findall(stripped)
    if finals:
        return finals[-1].upper()
    if reasoning:
        return None
    m = _LEADING.match(stripped)
    if m:
        return m.group(1)
    mentioned = {s.upper() for s in _OPTION.findall(stripped)}
    if len(mentioned) == 1:
        return mentioned.pop()
    return None

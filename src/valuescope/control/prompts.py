"""Prompts of the assembly's deliberation rounds and of the prompting baseline (our wording)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from valuescope.elicit.prompts import Template

# Synthetic citizens read the previous round's share from this sentence.
SHARE_SENTENCE = "In the last round, {pct:.0f}% of the assembly preferred Option {label_a}"
SHARE_PATTERN = re.compile(r"In the last round, (\d+(?:\.\d+)?)% of the assembly preferred Option")


def deliberation_messages(
    template: Template,
    option_a: str,
    option_b: str,
    persona: str,
    share_a: float,
    arguments: Sequence[str] = (),
) -> tuple[tuple[str, str], ...]:
    """Round r > 0: the first-round question preceded by a summary of the last round.

    `share_a` is the share of members who voted for the option listed first here.
    """
    messages = list(template.render(option_a, option_b, persona))
    label_a, label_b = template.labels
    summary = (
        "The assembly has discussed the question below. "
        + SHARE_SENTENCE.format(pct=100 * share_a, label_a=label_a)
        + f" and {100 * (1 - share_a):.0f}% preferred Option {label_b}."
    )
    if arguments:
        summary += " Arguments members gave:\n" + "\n".join(f"- {a}" for a in arguments)
    summary += "\nHaving heard the others, vote again.\n\n"
    role, user = messages[-1]
    messages[-1] = (role, summary + user)
    return tuple(messages)


# Synthetic citizens state their argument's strength in this form (read back below).
ARGUMENT_MARK = "for my own reasons."
_ARGUMENT_RE = re.compile(r'^- I prefer "(.+)" (strongly|clearly|slightly), ', re.MULTILINE)
STRENGTHS = {"strongly": 1.0, "clearly": 0.6, "slightly": 0.2}


def read_arguments(messages: Sequence[tuple[str, str]]) -> list[tuple[str, float]]:
    """(preferred option text, strength) of each synthetic argument shown in the prompt."""
    if not messages:
        return []
    return [(m.group(1), STRENGTHS[m.group(2)]) for m in _ARGUMENT_RE.finditer(messages[-1][1])]


def read_share(messages: Sequence[tuple[str, str]]) -> float | None:
    """The last round's share for the first-listed option, if the prompt shows one."""
    found = SHARE_PATTERN.search(messages[-1][1]) if messages else None
    return float(found.group(1)) / 100 if found else None


ARGUMENT_REQUEST = (
    "In one or two sentences, give the main reason for your choice between the two "
    "options below, speaking as yourself. Do not repeat the options word for word and do "
    "not call them by their letters.\n\n"
    "Option A: {option_a}\nOption B: {option_b}\n\nYou chose Option {choice}."
)


def assembly_view(positions: Sequence[tuple[str, str, float]]) -> str:
    """System prompt of the prompting baseline: the assembly's majority positions.

    `positions` holds (preferred, other, share of members) triples.
    """
    lines = [
        "A citizens' assembly, a randomly chosen group of adults that represents the "
        "population of the United States by age, sex, region, race and ethnicity, "
        "education, income and party, deliberated on public questions. When you choose "
        "between options, choose as this assembly would. Its majority positions were:"
    ]
    lines += [f'- "{a}" over "{b}" ({100 * s:.0f}% of members)' for a, b, s in positions]
    return "\n".join(lines)

"""The parameter count written in a model's name, the one parser for it."""

from __future__ import annotations

import re

# a number and an m/b unit standing alone between separators: "-135m", "_1.5B", "7b-"
_SIZE_IN_NAME = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)([mb])(?![a-z0-9])", re.IGNORECASE)
_UNIT = {"m": 1e6, "b": 1e9}


def parameters_from_name(model: str) -> float | None:
    """Parameter count written in a model string ('embedded/smollm2-135m' -> 1.35e8).

    Reads the name after the provider and before any `?options` or `#fragment`; None
    when it names no size or more than one ("8x7b", "1b-vs-7b": not one number to read).
    """
    name = model.split("?")[0].split("#")[0].rsplit("/", 1)[-1]  # options may hold "/"
    found = _SIZE_IN_NAME.findall(name)
    if len(found) != 1:
        return None
    value, unit = found[0]
    return float(value) * _UNIT[unit.lower()]

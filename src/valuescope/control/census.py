"""Citizens sampled from census marginals, each written up as a persona prompt."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from valuescope.control.errors import ControlError

ATTRIBUTES = ("age", "sex", "region", "race_ethnicity", "education", "income", "party")


@dataclass(frozen=True)
class Citizen:
    """One sampled member of the assembly: attribute levels and the persona text."""

    id: int
    age: int
    sex: str
    region: str
    race_ethnicity: str
    education: str
    income: str
    party: str
    persona: str

    def row(self) -> dict[str, Any]:
        """A flat dict for citizens.csv."""
        return {k: getattr(self, k) for k in ("id", *ATTRIBUTES, "persona")}


@lru_cache(maxsize=1)
def load_census() -> dict[str, Any]:
    """The packaged marginals (control/data/census.yaml), checked once."""
    text = (resources.files("valuescope.control") / "data" / "census.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    attrs = data.get("attributes", {})
    for name in ATTRIBUTES:
        levels = attrs.get(name, {}).get("levels")
        if not levels or any(float(lv["share"]) <= 0 for lv in levels):
            raise ControlError(f"census.yaml: attribute {name!r} needs levels with positive shares")
    return data


def marginals() -> dict[str, dict[str, float]]:
    """Share of each level per attribute, normalised to sum to 1."""
    attrs = load_census()["attributes"]
    out = {}
    for name in ATTRIBUTES:
        levels = attrs[name]["levels"]
        total = sum(float(lv["share"]) for lv in levels)
        out[name] = {lv["name"]: float(lv["share"]) / total for lv in levels}
    return out


def party_leans() -> dict[str, float]:
    """Persona phrase of each party level -> its left (-1) to right (+1) lean."""
    return {
        lv["phrase"]: float(lv["lean"]) for lv in load_census()["attributes"]["party"]["levels"]
    }


def sample_citizens(n: int, seed: int = 0) -> list[Citizen]:
    """Draw `n` citizens, each attribute independently from its marginal (seeded)."""
    if n < 1:
        raise ControlError(f"--citizens must be at least 1, got {n}: an assembly needs members")
    attrs = load_census()["attributes"]
    rng = np.random.default_rng([seed, 7919])
    citizens = []
    for i in range(n):
        picked = {}
        for name in ATTRIBUTES:
            levels = attrs[name]["levels"]
            share = np.array([float(lv["share"]) for lv in levels])
            picked[name] = levels[int(rng.choice(len(levels), p=share / share.sum()))]
        age = int(rng.integers(picked["age"]["low"], picked["age"]["high"] + 1))
        citizens.append(
            Citizen(
                id=i,
                age=age,
                **{k: picked[k]["name"] for k in ATTRIBUTES if k != "age"},
                persona=persona_text(age, picked),
            )
        )
    return citizens


def persona_text(age: int, levels: dict[str, dict[str, Any]]) -> str:
    """The role-play instructions for one citizen (our own wording)."""
    return (
        "You are a member of a citizens' assembly, a group of ordinary people chosen at "
        "random to advise on public questions. Answer as the following person would, from "
        f"their own experience and values: a {age}-year-old {levels['sex']['phrase']} "
        f"living in {levels['region']['phrase']} of the United States, "
        f"{levels['race_ethnicity']['phrase']}, who {levels['education']['phrase']}, "
        f"with a household income of {levels['income']['phrase']} a year, and who is "
        f"{levels['party']['phrase']}."
    )

"""Citizens sampled from census-like distributions, each written up as a persona prompt.

Age x party and education x income are drawn from joint tables (census.yaml `joint`),
the other attributes independently from their marginals.
"""

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
    for table in data.get("joint", []):
        _check_joint(attrs, table)
    return data


def _check_joint(attrs: dict[str, Any], table: dict[str, Any]) -> None:
    """A joint table names known levels, has positive cells and sums to the marginals."""
    rows, cols = table["rows"], table["columns"]
    row_names = [lv["name"] for lv in attrs[rows]["levels"]]
    col_names = [lv["name"] for lv in attrs[cols]["levels"]]
    if list(table["cells"]) != row_names or list(table["columns_order"]) != col_names:
        raise ControlError(f"census.yaml: joint {rows} x {cols} must list the levels in order")
    cells = np.array([table["cells"][r] for r in row_names], float)
    if cells.shape != (len(row_names), len(col_names)) or (cells <= 0).any():
        raise ControlError(f"census.yaml: joint {rows} x {cols} needs positive cells, one a level")
    for axis, name, levels in ((1, rows, attrs[rows]), (0, cols, attrs[cols])):
        target = np.array([float(lv["share"]) for lv in levels["levels"]])
        if np.abs(cells.sum(axis=axis) - target).max() > 1.0:
            raise ControlError(
                f"census.yaml: joint {rows} x {cols} does not sum to {name}'s shares"
            )


def joint_tables() -> list[tuple[str, str, np.ndarray]]:
    """(row attribute, column attribute, cell probabilities) of each joint table."""
    attrs = load_census()["attributes"]
    out = []
    for table in load_census().get("joint", []):
        rows = [lv["name"] for lv in attrs[table["rows"]]["levels"]]
        cells = np.array([table["cells"][r] for r in rows], float)
        out.append((table["rows"], table["columns"], cells / cells.sum()))
    return out


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
    """Draw `n` citizens: joint tables first, then each other attribute from its marginal."""
    if n < 1:
        raise ControlError(f"--citizens must be at least 1, got {n}: an assembly needs members")
    attrs = load_census()["attributes"]
    joints = joint_tables()
    rng = np.random.default_rng([seed, 7919])
    citizens = []
    for i in range(n):
        picked = {}
        for rows, cols, cells in joints:
            cell = int(rng.choice(cells.size, p=cells.ravel()))
            r, c = divmod(cell, cells.shape[1])
            picked[rows], picked[cols] = attrs[rows]["levels"][r], attrs[cols]["levels"][c]
        for name in ATTRIBUTES:
            if name in picked:
                continue
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

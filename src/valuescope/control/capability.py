"""Capability check on a small multiple-choice question set (control/data/capability_mc.yaml).

Each question is shown as plain text ("Question: ... A. ... D. ... Answer:") and the model's
answer is the letter whose token it gives the highest next-token log-probability (with and
without a leading space). Accuracy carries a 95% Wilson interval (scipy.stats); chance is 25%.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import yaml
from scipy import stats

from valuescope.control.errors import ControlError

LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Question:
    """One multiple-choice item with its key."""

    kind: str
    question: str
    options: tuple[str, ...]
    key: str

    def prompt(self) -> str:
        lines = [f"Question: {self.question}"]
        lines += [f"{letter}. {opt}" for letter, opt in zip(LETTERS, self.options)]
        return "\n".join(lines) + "\nAnswer:"


@lru_cache(maxsize=1)
def load_questions() -> tuple[Question, ...]:
    """The packaged question set, checked (four options, a key among A-D)."""
    raw = (resources.files("valuescope.control") / "data" / "capability_mc.yaml").read_text()
    items = yaml.safe_load(raw)["questions"]
    out = []
    for i, item in enumerate(items):
        q = Question(item["kind"], item["question"], tuple(map(str, item["options"])), item["key"])
        if len(q.options) != 4 or q.key not in LETTERS:
            raise ControlError(
                f"capability_mc.yaml: question {i + 1} needs 4 options and a key A-D"
            )
        out.append(q)
    return tuple(out)


def letter_ids(tokenizer) -> list[list[int]]:
    """Token ids that start each letter's answer (" A" and "A")."""
    out = []
    for letter in LETTERS:
        ids = {
            tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in (f" {letter}", letter)
        }
        out.append(sorted(ids))
    return out


def answer_letters(torch, backend, questions, progress=None) -> list[str]:
    """The letter each question gets from the model (highest next-token log-probability)."""
    model = backend.model.eval()
    device = next(model.parameters()).device
    choices = letter_ids(backend.tokenizer)
    out = []
    with torch.inference_mode():
        for q in questions:
            ids = backend.tokenizer(q.prompt(), add_special_tokens=False)["input_ids"]
            logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, -1].float()
            scores = [float(logits[c].max()) for c in choices]
            out.append(LETTERS[int(np.argmax(scores))])
            if progress is not None:
                progress.advance(1)
    return out


def accuracy(correct: np.ndarray) -> dict:
    """Share correct with a 95% Wilson interval."""
    n, k = len(correct), int(np.sum(correct))
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return {"value": k / n, "ci_low": float(ci.low), "ci_high": float(ci.high), "n": n}


def capability_mc_figures(answers: dict[str, list[str]], questions, seed: int = 0) -> dict:
    """Accuracy per condition and the paired change after - before (95% t-interval)."""
    key = np.array([q.key for q in questions])
    correct = {c: np.array(a) == key for c, a in answers.items()}
    out: dict = {"n_questions": len(questions), "chance": 0.25}
    out |= {f"accuracy_{c}": accuracy(v) for c, v in correct.items()}
    if {"before", "after"} <= set(correct):
        diff = correct["after"].astype(float) - correct["before"].astype(float)
        out["accuracy_change"] = mean_t_interval(diff)
    return out


def mean_t_interval(values: np.ndarray, level: float = 0.95) -> dict:
    """Mean with a t-interval (zero width when every value is the same)."""
    values = np.asarray(values, float)
    mean = float(values.mean())
    if len(values) < 2 or values.std() == 0:
        return {"value": mean, "ci_low": mean, "ci_high": mean}
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * stats.sem(values)
    return {"value": mean, "ci_low": mean - float(half), "ci_high": mean + float(half)}

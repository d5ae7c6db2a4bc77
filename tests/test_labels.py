"""The space lead before labels that a tokenizer spells as a space and the bare label."""

from __future__ import annotations

from valuescope.models.labels import space_lead

SPLITS = {" ": [1], "1": [11], "2": [12], " 1": [1, 11], " 2": [1, 12], "A": [21], " A": [31]}
SPLITS |= {"B": [22], " B": [32], "x": [41], " x": [1, 99]}


def tokenize(text: str) -> list[int]:
    return SPLITS[text]


def test_split_digit_labels_get_the_space():
    assert space_lead(tokenize, "I would prefer Option", ("1", "2")) == [1]


def test_labels_with_a_spaced_token_get_nothing():
    assert space_lead(tokenize, "I would prefer Option", ("A", "B")) == []


def test_one_label_spelled_another_way_gets_nothing():
    # " x" is a space and then not the bare "x": reading "x" after a space would be wrong
    assert space_lead(tokenize, "I would prefer Option", ("1", "x")) == []


def test_no_prefill_or_one_ending_in_space_gets_nothing():
    assert space_lead(tokenize, "", ("1", "2")) == []
    assert space_lead(tokenize, "I would prefer Option ", ("1", "2")) == []

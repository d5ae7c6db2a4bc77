import pytest
from hypothesis import given
from hypothesis import strategies as st

from valuescope.elicit import parse_choice


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A", "A"),
        ("B", "B"),
        (" B.", "B"),
        ('"A"', "A"),
        ("**B**", "B"),
        ("Option A", "A"),
        ("Option B.", "B"),
        ("I would prefer Option B because it saves lives.", "B"),
        ("A. Because it is better.", "A"),
        ("Let me think. Both matter.\nAnswer: B", "B"),
        ("The answer is: A", "A"),
        ("I can't choose between these.", None),
        ("", None),
        (None, None),
        ("Both option A and option B are fine.", None),
        ("a", None),
        ("Absolutely not.", None),
        ("Bananas", None),
        ("Option A, A", "A"),  # one answer said twice
        ("B / B.", "B"),
        ("A or B", None),  # both offered
        ("Option B, or option A", None),
    ],
)
def test_parses_known_forms(text, expected):
    assert parse_choice(text) == expected


def test_reasoning_variant_needs_a_final_answer():
    assert parse_choice("Option A seems better.\nAnswer: A", reasoning=True) == "A"
    assert parse_choice("Option A seems better.", reasoning=True) is None


@given(st.text())
def test_never_raises_and_returns_a_choice_or_none(text):
    assert parse_choice(text) in ("A", "B", None)


@given(st.sampled_from("AB"), st.sampled_from(["", " ", "\n", ".", '"', "*", "'"]))
def test_bare_letter_with_decoration(letter, deco):
    assert parse_choice(f"{deco}{letter}{deco}") == letter


@given(st.sampled_from("AB"), st.text(alphabet=st.characters(categories=["Ll", "Zs"]), max_size=60))
def test_final_answer_line_wins(letter, reasoning_text):
    assert parse_choice(f"{reasoning_text}\nAnswer: {letter}", reasoning=True) == letter

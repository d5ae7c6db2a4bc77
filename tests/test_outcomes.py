import json

import pytest

from valuescope.errors import OutcomeFileError
from valuescope.outcomes import builtin_sets, load_outcomes


def test_builtin_sets_have_the_promised_size():
    assert {"main", "demo"} <= set(builtin_sets())
    main = load_outcomes("main")
    assert 450 <= len(main) <= 550
    assert 25 <= len(main.category_counts()) <= 35
    demo = load_outcomes("demo")
    assert 30 <= len(demo) <= 40


def test_builtin_outcomes_are_distinct_sentences():
    main = load_outcomes("main")
    assert len({t.casefold() for t in main.texts}) == len(main)
    assert all(t.endswith((".", "!", "?")) for t in main.texts)


def test_json_list(tmp_path):
    path = tmp_path / "o.json"
    path.write_text(json.dumps(["You win a prize.", "You lose a prize."]))
    o = load_outcomes(path)
    assert o.texts == ("You win a prize.", "You lose a prize.")
    assert o.categories == ("uncategorised", "uncategorised")


def test_yaml_mapping(tmp_path):
    path = tmp_path / "o.yaml"
    path.write_text("money:\n  - You gain $5.\n  - You lose $5.\nhealth:\n  - You catch a cold.\n")
    o = load_outcomes(path)
    assert o.categories == ("money", "money", "health")


def test_json_mapping(tmp_path):
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"a": ["One.", "Two."], "b": ["Three."]}))
    assert len(load_outcomes(path)) == 3


def test_csv_with_category(tmp_path):
    path = tmp_path / "o.csv"
    path.write_text('outcome,category\n"You win, again.",games\nYou lose.,games\nRain.,\n')
    o = load_outcomes(path)
    assert o.texts[0] == "You win, again."
    assert o.categories == ("games", "games", "uncategorised")


def test_text_lines_skip_blanks_and_comments(tmp_path):
    path = tmp_path / "o.txt"
    path.write_text("# my outcomes\nFirst.\n\n  Second.  \n")
    assert load_outcomes(path).texts == ("First.", "Second.")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.json", '["One.", "  "]', r"o/empty.json: entry 2 is empty"),
        ("dup.json", '["One.", "one."]', r"entry 2 duplicates entry 1"),
        ("num.json", '["One.", 3]', r"entry 2 is int, expected a string"),
        ("long.txt", "One.\n" + "x" * 600, r"line 2 is 600 characters long"),
        ("bad.json", '["One.", ', r"invalid JSON at line 1"),
        ("bad.yaml", "a: [b\n", r"invalid YAML"),
        ("cat.yaml", "money: You win.\n", r"category 'money' must hold a list"),
        ("nocol.csv", "text\nOne.\n", r"needs an 'outcome' column"),
        ("one.txt", "Only one.\n", r"at least 2 outcomes"),
        ("scalar.json", "42", r"expected a list of outcomes or a mapping"),
        ("x.pdf", "whatever", r"unsupported outcome file type"),
        ("deep.yaml", "money:\n  - You win.\n  - [nested]\n", r"category 'money', entry 2"),
    ],
)
def test_malformed_files_name_file_and_entry(tmp_path, name, content, message):
    folder = tmp_path / "o"
    folder.mkdir()
    path = folder / name
    path.write_text(content)
    with pytest.raises(OutcomeFileError, match=message):
        load_outcomes(path)


def test_unknown_set_lists_the_builtin_ones():
    with pytest.raises(OutcomeFileError, match="neither a built-in set .*demo.*main"):
        load_outcomes("no-such-set")


def test_non_utf8_file(tmp_path):
    path = tmp_path / "o.txt"
    path.write_bytes(b"One.\n\xff\xfe\n")
    with pytest.raises(OutcomeFileError, match="not UTF-8"):
        load_outcomes(path)

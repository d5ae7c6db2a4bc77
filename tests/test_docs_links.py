"""Every relative link in README.md and docs/ points at a file of the repository.

Links to the web (http, https, mailto) and in-page anchors are not checked; a link's own
anchor (`page.md#section`) is dropped before the file is looked up. Code spans and fenced
blocks are skipped, so an example such as `[x](y)` inside backticks is not a link.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
FENCED = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
EXTERNAL = ("http://", "https://", "mailto:", "#")


def markdown_files() -> list[Path]:
    """README.md and every .md under docs/ (sorted)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def link_targets(text: str) -> list[str]:
    """The targets of the inline and reference links of a markdown text, outside code."""
    prose = CODE_SPAN.sub("", FENCED.sub("", text))
    return LINK.findall(prose) + REFERENCE.findall(prose)


def broken_links(page: Path) -> list[str]:
    """The relative links of `page` whose file does not exist."""
    broken = []
    for target in link_targets(page.read_text(encoding="utf-8")):
        if target.startswith(EXTERNAL):
            continue
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)
    return broken


def test_every_relative_link_resolves() -> None:
    problems = {
        str(page.relative_to(ROOT)): links
        for page in markdown_files()
        if (links := broken_links(page))
    }
    assert not problems, f"links to files that do not exist: {problems}"


def test_the_pages_are_found() -> None:
    names = {page.name for page in markdown_files()}
    assert {"README.md", "tutorial.md", "method.md", "run.md"} <= names


def test_link_parser() -> None:
    text = (
        'See [run](commands/run.md#options), ![chart](img/a.svg "title"), '
        "[web](https://example.org) and `[not](a-link.md)`.\n"
        "```\n[also not](inside-a-fence.md)\n```\n"
        "[ref]: docs/ref.md\n"
    )
    assert link_targets(text) == [
        "commands/run.md#options",
        "img/a.svg",
        "https://example.org",
        "docs/ref.md",
    ]


def test_a_missing_file_is_caught(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("x", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) [gone](missing.md#part) [top](#top)\n", encoding="utf-8")
    assert broken_links(page) == ["missing.md#part"]

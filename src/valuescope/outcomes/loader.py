"""Outcome sets: the built-in ones (package data) and user files, validated."""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from valuescope.errors import OutcomeFileError

MAX_LENGTH = 500
MAX_FILE_BYTES = 50 * 1024 * 1024  # far above any outcome set; /dev/zero stops here
UNCATEGORISED = "uncategorised"


class DuplicateKeyError(ValueError):
    """A mapping in an outcome file names the same key twice."""


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict:
    """json object_pairs_hook: a repeated key is an error (json keeps the last silently)."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"key {key!r} appears twice; merge its entries into one list")
        out[key] = value
    return out


# Unicode's category Cc is exactly U+0000-U+001F and U+007F-U+009F
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a repeated mapping key (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if repeated:
                line = key_node.start_mark.line + 1
                raise DuplicateKeyError(
                    f"key {key!r} appears twice (again at line {line}); "
                    "merge its entries into one list"
                )
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class OutcomeSet:
    """Outcome texts with their categories; ids are positions 0..N-1."""

    name: str
    texts: tuple[str, ...]
    categories: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)

    def category_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.categories:
            counts[c] = counts.get(c, 0) + 1
        return counts


@functools.cache  # the shipped files do not change under a running process; OutcomeSet is frozen
def _builtin(name: str) -> OutcomeSet:
    """A built-in set, parsed once per process (PyYAML takes about 30 ms a set)."""
    text = (resources.files("valuescope.outcomes") / "data" / f"{name}.yaml").read_text(
        encoding="utf-8"
    )
    return _from_structure(name, yaml.load(text, Loader=UniqueKeyLoader), name)


def builtin_sets() -> list[str]:
    """Names of the outcome sets shipped with valuescope."""
    return list(_builtin_names())


@functools.cache  # as `_builtin`: listed once, not on every load_outcomes call
def _builtin_names() -> tuple[str, ...]:
    folder = resources.files("valuescope.outcomes") / "data"
    return tuple(
        sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))
    )


def load_outcomes(source: str | Path) -> OutcomeSet:
    """Load a built-in set by name, or a user file (.json, .yaml/.yml, .csv, .txt)."""
    source_str = str(source)
    if source_str in builtin_sets():
        return _builtin(source_str)
    path = Path(source_str)
    if not path.exists():
        raise OutcomeFileError(
            f"outcome set {source_str!r} is neither a built-in set "
            f"({', '.join(builtin_sets())}) nor an existing file"
        )
    raw = _read_capped(path).removeprefix("\ufeff")  # the byte-order mark spreadsheets write
    suffix = path.suffix.lower()
    name = path.stem
    if suffix == ".json":
        try:
            data = json.loads(raw, object_pairs_hook=_unique_pairs)
        except DuplicateKeyError as exc:
            raise OutcomeFileError(f"{path}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise OutcomeFileError(
                f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        except RecursionError:
            raise OutcomeFileError(f"{path}: JSON nested too deeply") from None
        return _from_structure(name, data, str(path))
    if suffix in (".yaml", ".yml"):
        try:
            data = yaml.load(raw, Loader=UniqueKeyLoader)  # a SafeLoader
        except DuplicateKeyError as exc:
            raise OutcomeFileError(f"{path}: {exc}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise OutcomeFileError(f"{path}: invalid YAML{where}") from None
        except RecursionError:
            raise OutcomeFileError(f"{path}: YAML nested too deeply") from None
        return _from_structure(name, data, str(path))
    if suffix == ".csv":
        return _from_csv(name, raw, str(path))
    if suffix in (".txt", ""):
        return _from_lines(name, raw, str(path))
    raise OutcomeFileError(
        f"{path}: unsupported outcome file type {suffix!r}; use .json, .yaml, .csv or .txt"
    )


def _read_capped(path: Path) -> str:
    """The text of a regular file of at most MAX_FILE_BYTES, or one clear error."""
    try:
        info = path.stat()
    except OSError as exc:
        raise OutcomeFileError(f"{path}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise OutcomeFileError(f"{path}: is a directory, expected an outcome file")
    if not stat.S_ISREG(info.st_mode):
        raise OutcomeFileError(f"{path}: not a regular file (a device, pipe or socket)")
    limit = MAX_FILE_BYTES // (1024 * 1024)
    if info.st_size > MAX_FILE_BYTES:
        raise OutcomeFileError(
            f"{path}: {info.st_size / 1e6:.0f} MB is too large; outcome files are "
            f"limited to {limit} MiB"
        )
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # the file may grow while it is read
    except OSError as exc:
        raise OutcomeFileError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise OutcomeFileError(f"{path}: larger than {limit} MiB, the limit for outcome files")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OutcomeFileError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


def _from_structure(name: str, data: object, where: str) -> OutcomeSet:
    """A list of strings, or a mapping category -> list of strings."""
    entries: list[tuple[str, object, str]] = []  # (location, value, category)
    if isinstance(data, list):
        entries = [(f"entry {i + 1}", v, UNCATEGORISED) for i, v in enumerate(data)]
    elif isinstance(data, dict):
        for cat, items in data.items():
            if not isinstance(cat, str) or not cat.strip():
                raise OutcomeFileError(f"{where}: category name {cat!r} is not a non-empty string")
            if not isinstance(items, list):
                raise OutcomeFileError(
                    f"{where}: category {cat!r} must hold a list of outcomes, "
                    f"got {type(items).__name__}"
                )
            entries += [(f"category {cat!r}, entry {i + 1}", v, cat) for i, v in enumerate(items)]
    else:
        raise OutcomeFileError(
            f"{where}: expected a list of outcomes or a mapping category -> list, "
            f"got {type(data).__name__}"
        )
    return _validated(name, entries, where)


def _from_csv(name: str, raw: str, where: str) -> OutcomeSet:
    reader = csv.DictReader(io.StringIO(raw))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "outcome" not in fields:
        raise OutcomeFileError(f"{where}: CSV needs an 'outcome' column, found {fields or 'none'}")
    entries = []
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): v for k, v in row.items()}
        category = (row.get("category") or "").strip() or UNCATEGORISED
        entries.append((f"line {line}", row.get("outcome"), category))
    return _validated(name, entries, where)


def _from_lines(name: str, raw: str, where: str) -> OutcomeSet:
    entries = [
        (f"line {i + 1}", line.strip(), UNCATEGORISED)
        for i, line in enumerate(raw.splitlines())
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return _validated(name, entries, where)


def _validated(name: str, entries: list[tuple[str, object, str]], where: str) -> OutcomeSet:
    texts: list[str] = []
    categories: list[str] = []
    seen: dict[str, str] = {}
    for location, value, category in entries:
        if not isinstance(value, str):
            raise OutcomeFileError(
                f"{where}: {location} is {type(value).__name__}, expected a string"
            )
        text = " ".join(value.split())
        if not text:
            raise OutcomeFileError(f"{where}: {location} is empty")
        control = _CONTROL.search(text)
        if control is not None:  # NUL and the like: C libraries would cut the prompt there
            raise OutcomeFileError(
                f"{where}: {location} holds the control character U+{ord(control[0]):04X}"
            )
        if len(text) > MAX_LENGTH:
            raise OutcomeFileError(
                f"{where}: {location} is {len(text)} characters long; the limit is {MAX_LENGTH}"
            )
        key = text.casefold()
        if key in seen:
            raise OutcomeFileError(f"{where}: {location} duplicates {seen[key]}: {text[:60]!r}")
        seen[key] = location
        texts.append(text)
        categories.append(category.strip())
    if len(texts) < 2:
        raise OutcomeFileError(f"{where}: needs at least 2 outcomes, found {len(texts)}")
    return OutcomeSet(name=name, texts=tuple(texts), categories=tuple(categories))

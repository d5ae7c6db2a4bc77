"""Robustness: fuzzed inputs and failing environments end in a clear error or a correct result.

Marked `robustness`. Hypothesis runs VALUESCOPE_FUZZ_EXAMPLES examples per property
(default 25, derandomized, so CI is bounded and reproducible); set
VALUESCOPE_FUZZ_RANDOM=1 for fresh random examples on every run (docs/robustness.md).
Failing environments are real: a full and a read-only tmpfs (mounted when this process
may mount, else skipped with the reason), concurrent processes on one run directory and
one SQLite file, and cache files damaged on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import invoke_cli, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from valuescope.elicit.cache import ResponseCache, query_key
from valuescope.elicit.parse import parse_choice
from valuescope.elicit.prompts import get_template
from valuescope.errors import OutcomeFileError, ValuescopeError
from valuescope.fit import fit_thurstonian
from valuescope.models.base import Answer, Query
from valuescope.outcomes import load_outcomes
from valuescope.outcomes.loader import MAX_LENGTH
from valuescope.runcore.rundir import run_dir_lock

pytestmark = pytest.mark.robustness

EXAMPLES = int(os.environ.get("VALUESCOPE_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a shared 2-core machine: time limits are asserted where they matter
    derandomize=not os.environ.get("VALUESCOPE_FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# Any text a UTF-8 file can hold (no lone surrogates), biased towards awkward characters.
TEXT = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from(list(" \t\n\r\x00\x85\u2028\ufeff,\"'#:-[]{}&*!|>%@`")),
    ),
    max_size=MAX_LENGTH + 20,
)
FORMATS = ("json", "yaml", "csv", "txt")


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The single `error: ...` line a failed command printed (and nothing else)."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def sim_run(out: Path) -> list[str]:
    """A small real run (sim agent, demo set, 60 training pairs), quiet."""
    base = ["run", "sim/thurstone", "--outcomes", "demo", "--budget", "60", "--bootstrap", "0"]
    return [*base, "--out", str(out), "-q"]


def cache_rows(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT key, answer FROM responses").fetchall())


# == outcome loaders =========================================================================
def write_outcomes(path: Path, fmt: str, entries: list) -> Path:
    file = path.with_suffix("." + fmt)
    if fmt == "json":
        file.write_text(json.dumps(entries), encoding="utf-8")
    elif fmt == "yaml":
        file.write_text(yaml.safe_dump(entries, allow_unicode=True), encoding="utf-8")
    elif fmt == "csv":
        pd.DataFrame({"outcome": entries}).to_csv(file, index=False)
    else:
        file.write_text("\n".join(entries), encoding="utf-8")
    return file


@FUZZ
@given(fmt=st.sampled_from(FORMATS), entries=st.lists(TEXT, max_size=12))
def test_loaders_give_clean_outcomes_or_one_clear_error(tmp_path_factory, fmt, entries):
    path = write_outcomes(tmp_path_factory.mktemp("fuzz") / "set", fmt, entries)
    try:
        loaded = load_outcomes(str(path))
    except OutcomeFileError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    assert len(loaded) >= 2
    assert len({t.casefold() for t in loaded.texts}) == len(loaded.texts)
    for text in loaded.texts:
        assert text == " ".join(text.split()) and 0 < len(text) <= MAX_LENGTH
        assert "\x00" not in text
    if fmt in ("json", "yaml"):  # these formats keep every entry as written
        assert list(loaded.texts) == [" ".join(e.split()) for e in entries]


BAD_FILES = [
    ("nan.json", '["a", NaN, "b"]', "entry 2 is float, expected a string"),
    ("inf.json", '["a", Infinity, "b"]', "entry 2 is float, expected a string"),
    ("big.json", '["a", 1e999]', "entry 2 is float, expected a string"),
    ("nan.yaml", "[a, .nan, b]", "entry 2 is float, expected a string"),
    ("inf.yaml", "good: [a, -.inf]", "entry 2 is float, expected a string"),
    ("empty.json", "", "invalid JSON at line 1"),
    ("empty.yaml", "", "got NoneType"),
    ("empty.csv", "", "CSV needs an 'outcome' column, found none"),
    ("empty.txt", "", "needs at least 2 outcomes, found 0"),
    ("blank.txt", "   \n\t\n# only a comment\n", "needs at least 2 outcomes, found 0"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "JSON nested too deeply"),
    ("deep.yaml", "[" * 5_000 + "]" * 5_000, "YAML nested too deeply"),
    ("nul.csv", 'outcome\n"a\x00b"\nc\n', "line 2 holds the control character U+0000"),
    ("bell.txt", "ring\x07\nquiet\n", "line 1 holds the control character U+0007"),
    ("long.txt", "a\n" + "x" * 10_000_000, "line 2 is 10000000 characters long"),
    ("tag.yaml", "!!python/object/apply:os.system [ls]", "invalid YAML at line 1"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_outcome_files_are_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(OutcomeFileError, match="^" + str(path).replace(".", r"\.")) as info:
        load_outcomes(str(path))
    assert message in str(info.value)


def test_non_utf8_and_byte_order_marks(tmp_path):
    raw = tmp_path / "latin1.txt"
    raw.write_bytes("caf\xe9\nth\xe9\n".encode("latin-1"))
    with pytest.raises(OutcomeFileError, match="not UTF-8 text"):
        load_outcomes(str(raw))
    for name, text in (("bom.csv", "outcome\nrain\nsun\n"), ("bom.json", '["rain", "sun"]')):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # what spreadsheets save
        assert load_outcomes(str(path)).texts == ("rain", "sun")


def test_huge_outcome_files_load(tmp_path):
    n = 200_000
    path = tmp_path / "huge.txt"
    path.write_text("\n".join(f"outcome number {i} \u2603 \u00e9" for i in range(n)), "utf-8")
    t0 = time.perf_counter()
    loaded = load_outcomes(str(path))
    assert len(loaded) == n and loaded.texts[-1] == f"outcome number {n - 1} \u2603 \u00e9"
    assert time.perf_counter() - t0 < 30


# == parser ==================================================================================
LABELS = [get_template(t).labels for t in ("default", "labels-12")]


@FUZZ
@given(text=st.one_of(st.none(), TEXT, st.text(max_size=5000)), labels=st.sampled_from(LABELS))
def test_parse_choice_reads_any_text(text, labels):
    for reasoning in (False, True):
        assert parse_choice(text, reasoning=reasoning, labels=labels) in (None, "A", "B")


@FUZZ
@given(
    labels=st.sampled_from(LABELS),
    which=st.sampled_from([0, 1]),
    pad=st.text(alphabet=" \t\n.*()!", max_size=20),
)
def test_parse_choice_reads_a_bare_label_with_any_punctuation(labels, which, pad):
    text = pad + labels[which] + pad[::-1]
    assert parse_choice(text, labels=labels) == "AB"[which]


LONG_ANSWERS = {
    "answer-spaces": "answer" + " " * 100_000 + "x",  # took 20 s at 200 spaces before the fix
    "answer-newlines": "Answer is:" + "\n" * 100_000 + "** option Q",
    "options": "option " * 50_000,
    "parens": "(" * 100_000,
    "letters": "A" * 1_000_000,
}


@pytest.mark.parametrize("text", LONG_ANSWERS.values(), ids=LONG_ANSWERS.keys())
def test_parse_choice_is_linear_on_long_answers(text):
    t0 = time.perf_counter()
    for reasoning in (False, True):
        parse_choice(text, reasoning=reasoning)
    assert time.perf_counter() - t0 < 5


# == fitter ==================================================================================
@st.composite
def comparisons(draw):
    n = draw(st.integers(2, 25))
    m = draw(st.integers(1, 80))
    a = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    shift = draw(st.lists(st.integers(1, n - 1), min_size=m, max_size=m))
    pairs = np.array([[x, (x + s) % n] for x, s in zip(a, shift)])
    p = draw(
        st.lists(
            st.one_of(
                st.floats(0, 1),
                st.sampled_from([0.0, 1.0, np.nan, np.inf, -np.inf, 1 + 1e-9, -0.0]),
            ),
            min_size=m,
            max_size=m,
        )
    )
    return n, pairs, np.array(p, dtype=float)


@FUZZ
@given(data=comparisons())
def test_fitter_fits_or_names_the_problem(data):
    n, pairs, p = data
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    try:
        fit = fit_thurstonian(pairs, p, n)
    except ValueError as exc:
        message = str(exc)
        assert "\n" not in message
        if bad.any():
            assert "NaN or infinite" in message or "must lie in [0, 1]" in message
        else:  # the only other problem random pairs can have
            assert "connected" in message or "compar" in message, message
        return
    assert not bad.any()
    assert np.isfinite(fit.mean).all() and np.isfinite(fit.sigma).all()
    assert (fit.sigma > 0).all()
    q = fit.predict(pairs)
    assert ((q >= 0) & (q <= 1)).all()


def test_fitter_on_a_huge_design():
    n = int(os.environ.get("VALUESCOPE_FUZZ_HUGE_N", "5000"))
    rng = np.random.default_rng(0)
    mu = rng.normal(size=n)
    order = rng.permutation(n)
    cycle = np.stack([order, np.roll(order, -1)], axis=1)
    extra = rng.integers(0, n, size=(4 * n, 2))
    extra = extra[extra[:, 0] != extra[:, 1]]
    pairs = np.concatenate([cycle, extra])
    p = 1 / (1 + np.exp(-(mu[pairs[:, 0]] - mu[pairs[:, 1]])))
    fit = fit_thurstonian(pairs, p, n)
    assert np.isfinite(fit.mean).all()
    assert np.corrcoef(fit.mean, mu)[0, 1] > 0.95


# == concurrent runs =========================================================================
def test_a_second_run_on_a_busy_directory_is_refused(tmp_path, cli):
    out = tmp_path / "busy"
    out.mkdir()
    holder = subprocess.Popen(  # another process holds the directory, as a running run does
        [sys.executable, "-c", LOCK_HOLDER, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        line = one_error_line(cli(*sim_run(out)))
    finally:
        holder.kill()
        holder.wait(30)
        holder.stdout.close()
    assert f"another run is in progress in {out} (pid {holder.pid})" in line
    assert not (out / "utilities.csv").exists()
    with run_dir_lock(out):  # the lock went with its holder (killed, not cleaned up)
        pass


LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from valuescope.runcore.rundir import run_dir_lock
    with run_dir_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(600)
    """
)


@pytest.mark.slow
def test_two_runs_started_together_lose_no_answers(tmp_path):
    reference = tmp_path / "reference"
    assert invoke_cli(*sim_run(reference)).returncode == 0
    out = tmp_path / "shared"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "valuescope.cli", *sim_run(out)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    results = [(p.wait(300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert any(rc == 0 for rc, _ in results), results
    for rc, err in results:  # each one finished, or was refused with the clear message
        assert rc == 0 or ("another run is in progress" in err and "Traceback" not in err), err
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(cache_rows(out / "responses.sqlite")) == metrics["n_queries"]
    assert cache_rows(out / "responses.sqlite") == cache_rows(reference / "responses.sqlite")
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "utilities.csv"), pd.read_csv(reference / "utilities.csv")
    )


WRITER = textwrap.dedent(
    """
    import sys
    from valuescope.elicit.cache import ResponseCache, query_key
    from valuescope.models.base import Answer, Query
    path, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with ResponseCache(path) as cache:
        for start in range(lo, hi, 50):
            items = []
            for i in range(start, min(start + 50, hi)):
                q = Query(messages=(("user", f"question {i}"),), option_a="a", option_b="b")
                items.append((query_key("m", q), "m", q, Answer(p_a=i / 10_000, mass=1.0)))
            cache.put_many(items)
    """
)


def test_concurrent_processes_share_one_cache_file(tmp_path):
    path = tmp_path / "shared.sqlite"
    ResponseCache(path).close()
    spans = [(0, 3000), (2000, 5000), (4500, 6000)]  # overlapping ranges
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(lo), str(hi)])
        for lo, hi in spans
    ]
    assert [p.wait(120) for p in procs] == [0, 0, 0]
    with ResponseCache(path) as cache:
        assert cache.count() == 6000
        queries = [
            Query(messages=(("user", f"question {i}"),), option_a="a", option_b="b")
            for i in range(6000)
        ]
        found = cache.get_many([query_key("m", q) for q in queries])
    assert [found[query_key("m", q)].p_a for q in queries] == [i / 10_000 for i in range(6000)]


# == full disk, read-only directory ==========================================================
def mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}): the full-disk case needs root")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()} (needs root)")


@pytest.fixture
def tmpfs(tmp_path):
    """Mount small tmpfs file systems under tmp_path; unmounted afterwards."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        where = tmp_path / name
        mount_tmpfs(where, options)
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


@pytest.mark.slow
def test_disk_full_midway_keeps_every_saved_answer_and_resumes(tmp_path, tmpfs):
    reference = tmp_path / "reference"
    assert invoke_cli(*sim_run(reference)).returncode == 0
    full = tmpfs("full", "size=256k")
    line = one_error_line(run_cli(*sim_run(full / "run")))
    assert "database or disk is full" in line or "No space left on device" in line, line
    saved = cache_rows(full / "run/responses.sqlite")
    assert len(saved) > 0
    whole = cache_rows(reference / "responses.sqlite")
    assert all(whole[k] == v for k, v in saved.items())  # every saved answer is intact
    moved = tmp_path / "moved"  # more space: the same run resumes from what was saved
    shutil.copytree(full / "run", moved)
    proc = invoke_cli("run", "--out", str(moved), "--resume", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads(proc.stdout)
    assert metrics["n_queries_cached"] == len(saved)
    assert metrics["n_queries_new"] == metrics["n_queries"] - len(saved)
    assert cache_rows(moved / "responses.sqlite") == whole
    pd.testing.assert_frame_equal(
        pd.read_csv(moved / "utilities.csv"), pd.read_csv(reference / "utilities.csv")
    )


@pytest.mark.slow
def test_disk_full_while_writing_results_is_one_clear_error(tmp_path, tmpfs):
    """The cache fits, the result files do not: the run says which file it could not write."""
    run = tmp_path / "run"
    assert invoke_cli(*sim_run(run)).returncode == 0
    tight = tmpfs("tight", f"size={(run / 'responses.sqlite').stat().st_size + 120_000}")
    shutil.copy(run / "responses.sqlite", tight / "responses.sqlite")
    proc = run_cli(*sim_run(tight))
    if proc.returncode == 0:
        pytest.skip("the results fitted after all; the full-write path was not reached")
    line = one_error_line(proc)
    assert "No space left on device" in line or "disk is full" in line, line
    assert not list(tight.glob("*.tmp"))  # no half-written files left behind


def test_read_only_output_directory(tmp_path, tmpfs, cli):
    ro = tmpfs("ro", "ro,size=64k")
    line = one_error_line(cli(*sim_run(ro / "run")))
    assert f"cannot write to output directory {ro / 'run'}" in line
    assert "Read-only file system" in line


def test_output_path_under_a_file(tmp_path, cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    line = one_error_line(cli(*sim_run(blocker / "run")))
    assert f"cannot write to output directory {blocker / 'run'}" in line


# == corrupted caches ========================================================================
@pytest.fixture(scope="module")
def one_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    assert invoke_cli(*sim_run(out)).returncode == 0
    return out


def finished_run(tmp_path: Path, one_run: Path) -> Path:
    """A private copy of a finished run directory."""
    return Path(shutil.copytree(one_run, tmp_path / "run"))


def test_cache_that_is_not_a_database(tmp_path, cli):
    out = tmp_path / "garbage"
    out.mkdir()
    (out / "responses.sqlite").write_bytes(os.urandom(8192))
    line = one_error_line(cli(*sim_run(out)))
    assert f"cannot use the response cache {out / 'responses.sqlite'}" in line
    assert "not a database" in line


def test_truncated_cache(tmp_path, one_run, cli):
    out = finished_run(tmp_path, one_run)
    db = out / "responses.sqlite"
    with sqlite3.connect(db) as conn:  # fold the WAL in, then cut the file in half
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.stat().st_size
    with open(db, "r+b") as f:
        f.truncate(size // 2)
    line = one_error_line(cli(*sim_run(out)))
    assert f"cannot use the response cache {db}" in line


def test_cache_row_with_a_damaged_answer(tmp_path, one_run, cli):
    out = finished_run(tmp_path, one_run)
    db = out / "responses.sqlite"
    with sqlite3.connect(db) as conn:
        key = conn.execute("SELECT key FROM responses LIMIT 1").fetchone()[0]
        conn.execute("UPDATE responses SET answer = ? WHERE key = ?", ('{"p_a": 0.5, "x', key))
    line = one_error_line(cli(*sim_run(out)))
    assert f"the response cache {db} is corrupt: row {key[:12]}" in line


def test_cache_with_a_foreign_table(tmp_path, cli):
    out = tmp_path / "foreign"
    out.mkdir()
    with sqlite3.connect(out / "responses.sqlite") as conn:
        conn.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, value TEXT)")
    line = one_error_line(cli(*sim_run(out)))
    assert "not a valuescope response cache" in line


def test_cache_write_failure_is_a_clear_error(tmp_path):
    """Writes to a cache whose file went read-only underneath: a clear error, rows kept."""
    path = tmp_path / "c.sqlite"
    q = Query(messages=(("user", "q"),), option_a="a", option_b="b")
    with ResponseCache(path) as cache:
        cache.put_many([(query_key("m", q), "m", q, Answer(p_a=0.25))])
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    cache = ResponseCache.__new__(ResponseCache)  # the same class over a read-only handle
    cache.path, cache._conn = path, conn
    q2 = Query(messages=(("user", "q2"),), option_a="a", option_b="b")
    with pytest.raises(ValuescopeError, match="cannot save 1 answers to the response cache"):
        cache.put_many([(query_key("m", q2), "m", q2, Answer(p_a=0.75))])
    conn.close()
    with ResponseCache(path) as again:
        assert again.count() == 1

"""Bad input ends with one clear line on stderr and a non-zero exit, never a traceback.

Argument handling runs in-process through the real entry point (`valuescope.cli.main`,
the function the `valuescope` script calls); one test keeps a real process, for what
only a process shows (the exit status of `python -m valuescope.cli`).
"""

from __future__ import annotations

import pytest


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:")
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_provider(cli, tmp_path):
    proc = cli("run", "nosuch/model", "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "unknown model provider 'nosuch'", "sim/...")
    assert proc.returncode == 1


def test_a_real_process_exits_1_with_one_line(run_process, tmp_path):
    proc = run_process("run", "nosuch/model", "--out", str(tmp_path / "r"))
    assert proc.returncode == 1
    assert_one_line_error(proc, "unknown model provider 'nosuch'")
    usage = run_process("run", "--no-such-flag", "--out", str(tmp_path / "r"))
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    assert "--no-such-flag" in usage.stderr


def test_unknown_sim_agent(cli, tmp_path):
    assert_one_line_error(cli("run", "sim/oracle", "--out", str(tmp_path)), "sim/oracle")


def test_model_without_provider(cli, tmp_path):
    assert_one_line_error(cli("run", "gpt-4o", "--out", str(tmp_path)), "<provider>/<model>")


def test_bad_sim_parameter(cli, tmp_path):
    proc = cli("run", "sim/thurstone?position_bias=2", "--out", str(tmp_path))
    assert_one_line_error(proc, "position_bias")


def test_malformed_outcome_file(cli, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("money:\n  - You win.\n  - \n")
    proc = cli("run", "sim/thurstone", "--outcomes", str(path), "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "mine.yaml", "category 'money', entry 2")


def test_budget_too_small(cli, tmp_path):
    proc = cli("run", "sim/thurstone", "--budget", "5", "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "budget 5 pairs is smaller")


def test_unwritable_output_directory(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = cli("run", "sim/thurstone", "--out", str(blocker / "run"))
    assert_one_line_error(proc, "cannot write to output directory")


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--mode", "loud", "--mode"),
        ("--design", "magic", "--design"),
        ("--samples", "0", "--samples"),
    ],
)
def test_bad_option_values(cli, tmp_path, option, value, fragment):
    assert_one_line_error(cli("run", option, value, "--out", str(tmp_path)), fragment)


def test_corrupt_cache_is_reported(cli, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "responses.sqlite").write_bytes(b"this is not a database" * 100)
    proc = cli("run", "sim/thurstone", "--out", str(out))
    assert_one_line_error(proc, "responses.sqlite")


def test_resume_without_a_run(cli, tmp_path):
    assert_one_line_error(cli("run", "--resume", "--out", str(tmp_path)), "no run to resume")


def test_outcomes_commands(cli):
    listing = cli("outcomes", "list", check=True).stdout
    assert "main" in listing and "demo" in listing
    shown = cli("outcomes", "show", "demo", check=True).stdout
    assert "demo: 36 outcomes" in shown or "demo:" in shown


def test_summary_table_shows_random_baseline(cli, tmp_path):
    proc = cli("run", "sim/thurstone", "--out", str(tmp_path / "r"), "--bootstrap", "0", check=True)
    assert "random agent" in proc.stdout and "heldout_accuracy" in proc.stdout

"""CLI conventions: completion, --quiet/--verbose, --json, choices in help, transport options.

Help and completion go through typer's CliRunner; commands that run go through the real
entry point (`valuescope.cli.main`) in this process; the transport options are checked
against a real HTTP server on 127.0.0.1 (loopback_server.py).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import click
import pytest
import typer
from loopback_server import Faults, LoopbackServer
from typer.testing import CliRunner

from valuescope.cli import app
from valuescope.cli_options import EXPORT_FORMATS, FIT_METHODS, config_choices

TRANSPORT = ("--base-url", "--api-key-env", "--concurrency", "--timeout", "--max-retries")
TRANSPORT += ("--rate-limit",)
MODEL_COMMANDS = (["run"], ["sensitivity"], ["experiment"], ["control", "assemble"])
CHOICES = {"--mode": "mode", "--design": "design", "--refusals": "refusals"}
CHOICES |= {"--bootstrap-over": "bootstrap_over", "--engine": "engine", "--protocol": "protocol"}


def _command(path: list[str]) -> click.Command:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


def _options(path: list[str]) -> dict[str, click.Parameter]:
    return {opt: p for p in _command(path).params for opt in p.opts}


# -- completion -----------------------------------------------------------------------------
def test_show_completion_prints_the_script_for_the_shell_it_runs_in():
    # typer detects the shell from the process's ancestors (the flag takes no value), so
    # this needs a process started by bash; in-process it would depend on who started
    # pytest (a detached run has no shell above it and gets "Shell  not supported")
    # (the trailing `exit` keeps bash from replacing itself with the command)
    command = f"{shlex.quote(sys.executable)} -m valuescope --show-completion; exit $?"
    shown = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "_VALUESCOPE_COMPLETE=complete_bash" in shown.stdout


def test_shell_completion_offers_commands_and_choices():
    runner = CliRunner()

    def complete(words: str) -> list[str]:
        env = {"_VALUESCOPE_COMPLETE": "complete_bash", "COMP_WORDS": words}
        env["COMP_CWORD"] = str(len(words.split(" ")) - 1)
        result = runner.invoke(app, [], prog_name="valuescope", env=env)
        assert result.exit_code == 0, result.output
        return result.output.split()

    assert {"run", "export", "experiment"} <= set(complete("valuescope "))
    assert complete("valuescope run --mode ") == ["auto", "logprob", "sample"]
    assert complete("valuescope run --design r") == ["reference", "random"]
    assert complete("valuescope export run --format ") == list(EXPORT_FORMATS)


def test_usage_errors_still_exit_2_without_a_traceback(cli):
    for args in (["run", "--no-such-flag"], ["export"], ["nosuch-command"]):
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "Usage" in proc.stderr


# -- choices in help; validation unchanged --------------------------------------------------
@pytest.mark.parametrize("option", sorted(CHOICES))
def test_run_help_lists_the_choices_run_config_accepts(option):
    values = config_choices(CHOICES[option])
    assert len(values) >= 2
    param = _options(["run"])[option]
    assert param.metavar == "[" + "|".join(values) + "]"
    text = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "250"}).output
    assert f"[{'|'.join(values)}]" in text


def test_other_commands_list_their_choices():
    assert _options(["fit"])["--method"].metavar == "[" + "|".join(FIT_METHODS) + "]"
    assert _options(["export"])["--format"].metavar == "[parquet|csv|jsonl]"
    for path in (["sensitivity"], ["experiment"], ["control", "assemble"]):
        assert _options(path)["--mode"].metavar == "[auto|logprob|sample]", path


@pytest.mark.parametrize(("option", "bad"), [("--mode", "loud"), ("--bootstrap-over", "all")])
def test_a_value_outside_the_choices_is_still_one_line_exit_1(cli, tmp_path, option, bad):
    proc = cli("run", "sim/thurstone", option, bad, "--out", str(tmp_path))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith(f"error: {option}")


def test_help_texts_point_at_no_file_a_user_lacks():
    pattern = re.compile(r"METHOD\.md|DESIGN\.md|STYLE\.md|shared/")

    def walk(command: click.Command, path: str) -> list[str]:
        texts = [(path, command.help or "")]
        texts += [(f"{path} {p.opts}", getattr(p, "help", "") or "") for p in command.params]
        found = [where for where, text in texts if pattern.search(text)]
        for name, sub in getattr(command, "commands", {}).items():
            found += walk(sub, f"{path} {name}")
        return found

    assert walk(typer.main.get_command(app), "valuescope") == []


# -- the same transport options everywhere --------------------------------------------------
@pytest.mark.parametrize("path", MODEL_COMMANDS, ids=" ".join)
def test_every_model_command_takes_the_transport_options(path):
    options = _options(path)
    for option in TRANSPORT:
        assert option in options, (path, option)
    run_help = {o: _options(["run"])[o].help for o in TRANSPORT}
    assert {o: options[o].help for o in TRANSPORT} == run_help  # one definition


@pytest.fixture(scope="module")
def failing_server():
    with LoopbackServer(seed=3) as server:
        yield server


EXTRA = {"run": ["--bootstrap", "0"], "experiment": ["time-discounting"]}


@pytest.mark.parametrize("path", MODEL_COMMANDS, ids=" ".join)
def test_transport_options_reach_the_backend(cli, failing_server, monkeypatch, tmp_path, path):
    """Every request fails with 503: --max-retries 2 at --concurrency 1 makes 3 attempts
    (the default, 6, would make 7), and the command ends with one line."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-conventions")
    failing_server.reset(faults=Faults(fail_after=0, after_kind="503", retry_after=0.01))
    args = [*path, *EXTRA.get(path[0], []), "openai/test-model"]
    args += ["--out", str(tmp_path / "out"), "--base-url", failing_server.base_url]
    args += ["--api-key-env", "OPENAI_API_KEY", "--max-retries", "2", "--concurrency", "1"]
    args += ["--timeout", "5", "--rate-limit", "100", "--quiet"]
    if path[0] == "experiment":
        args.append("--quick")
    proc = cli(*args)
    assert proc.returncode == 1, proc.stderr
    assert "gave up after 3 attempts" in proc.stderr and "HTTP 503" in proc.stderr
    assert failing_server.stats.requests == 3
    assert proc.stdout == ""


# -- --quiet, --verbose, --json ---------------------------------------------------------------
def test_json_verbose_and_quiet_on_run_and_fit(cli, tmp_path):
    out = tmp_path / "run"
    proc = cli("run", "sim/thurstone", "--out", str(out), "--bootstrap", "0", "--json", "-v")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)  # nothing but the JSON on stdout
    assert metrics == json.loads((out / "metrics.json").read_text())
    assert "plan: sim/thurstone" in proc.stderr and "answers.parquet" in proc.stderr
    quiet = cli("run", "sim/thurstone", "--out", str(out), "--bootstrap", "0", "-q")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    both = cli("run", "sim/thurstone", "--out", str(out), "-q", "-v")
    assert both.returncode == 1 and "--quiet and --verbose" in both.stderr
    fit = cli("fit", str(out), "--json")
    assert fit.returncode == 0, fit.stderr
    summary = json.loads(fit.stdout)
    assert summary["method"] == "thurstonian" and summary["n_outcomes"] == metrics["n_outcomes"]
    assert len(summary["utilities"]) == metrics["n_outcomes"] and summary["converged"] is True
    refit = cli(
        "fit", str(out), "--json", "--method", "bradley-terry", "--out", str(tmp_path / "u.csv")
    )
    assert json.loads(refit.stdout)["out"] == str(tmp_path / "u.csv") and refit.stderr == ""


@pytest.mark.report
def test_json_on_experiment_is_the_result_alone(cli, tmp_path):
    out = tmp_path / "exp"
    proc = cli(
        "experiment", "time-discounting", "sim/hyperbolic", "--quick", "--json", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["headline"] == json.loads((out / "time-discounting.json").read_text())["headline"]


def test_every_command_with_quiet_has_verbose_and_refuses_both(cli, tmp_path):
    def walk(command: click.Command, path: list[str]) -> list[list[str]]:
        found = [path] if "--quiet" in {o for p in command.params for o in p.opts} else []
        for name, sub in getattr(command, "commands", {}).items():
            found += walk(sub, [*path, name])
        return found

    quiet_commands = walk(typer.main.get_command(app), [])
    assert len(quiet_commands) >= 7  # run, sensitivity, experiment, report, control x3
    for path in quiet_commands:
        assert "--verbose" in _options(path) and "-v" in _options(path), path
        args = {"report": [str(tmp_path)], "train": ["hf/none"]}.get(path[-1], [])
        proc = cli(*path, *args, "--out", str(tmp_path / "o"), "-q", "-v")
        assert proc.returncode == 1 and "--quiet and --verbose" in proc.stderr, (path, proc.stderr)

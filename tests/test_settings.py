"""One settings system: the model-string parser, the CLI's defaults, options from the environment.

Every backend's `?key=value` parameters are a pydantic model (models.params.ModelParams);
one rule reads booleans and numbers, one format reports a bad key. The CLI's options take
their defaults from the settings models, and every option can come from VALUESCOPE_<OPTION>.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import typing
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from valuescope.cli import app, main
from valuescope.cli_options import env_name, long_name
from valuescope.config import RunConfig
from valuescope.errors import UnknownModelError
from valuescope.models import get_backend
from valuescope.models.params import (
    FALSE_WORDS,
    TRUE_WORDS,
    ModelParams,
    split_model_string,
    validate_params,
)
from valuescope.models.registry import PROVIDERS, SIM_AGENTS

# -- every backend's parameter model --------------------------------------------------------


def _all_param_models() -> list[type[ModelParams]]:
    """The parameter model of every provider and synthetic agent (importing them all)."""
    for name in list(PROVIDERS):
        PROVIDERS[name]
    for name in list(SIM_AGENTS):
        SIM_AGENTS[name]
    seen, todo = [], [ModelParams]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return seen


PARAM_MODELS = _all_param_models()


def _kind(annotation: object) -> str | None:
    types = set(typing.get_args(annotation)) or {annotation}
    if bool in types:
        return "bool"
    if types & {int, float}:
        return "number"
    return None


def _fields_of(kind: str) -> list[tuple[type[ModelParams], str]]:
    """(model, field) for every field that holds a boolean, or a number."""
    return [
        (cls, name)
        for cls in PARAM_MODELS
        for name, info in cls.model_fields.items()
        if _kind(info.annotation) == kind
    ]


def test_every_provider_and_agent_declares_a_parameter_model():
    names = {cls.__name__ for cls in PARAM_MODELS}
    for expected in ("OpenAIParams", "InspectParams", "PricedParams", "HFParams", "VLLMParams"):
        assert expected in names
    assert {"LlamaCppParams", "SimParams", "ThurstoneParams", "CitizenParams"} <= names
    for name in SIM_AGENTS:
        assert issubclass(SIM_AGENTS[name].Params, ModelParams), name
    # enough fields to make the rule tests below mean something
    assert len(_fields_of("bool")) >= 5 and len(_fields_of("number")) >= 40


@pytest.mark.parametrize(
    ("cls", "field"), _fields_of("bool"), ids=lambda x: getattr(x, "__name__", x)
)
def test_one_boolean_rule_on_every_backend(cls, field):
    for word in TRUE_WORDS | {"TRUE", "Yes", " on "}:
        assert getattr(validate_params(cls, "x/y", {field: word}), field) is True, word
    for word in FALSE_WORDS | {"False", "NO", "Off"}:
        assert getattr(validate_params(cls, "x/y", {field: word}), field) is False, word
    for bad in ("maybe", "2", "", "t", "y"):
        with pytest.raises(UnknownModelError) as info:
            validate_params(cls, "x/y", {field: bad})
        assert str(info.value) == (
            f"model 'x/y?{field}={bad}': parameter {field}: "
            f"expected true or false (or 1/0, yes/no, on/off), got {bad!r}"
        )


@pytest.mark.parametrize(
    ("cls", "field"), _fields_of("number"), ids=lambda x: getattr(x, "__name__", x)
)
def test_one_number_rule_on_every_backend(cls, field):
    for bad in ("abc", "1,5", "nan", "inf", ""):
        with pytest.raises(UnknownModelError) as info:
            validate_params(cls, "x/y", {field: bad})
        message = str(info.value)
        assert message.startswith(f"model 'x/y?{field}={bad}': parameter {field}: expected a ")
        assert message.endswith(f", got {bad!r}"), message


def test_the_error_format_names_the_model_the_key_and_the_value():
    with pytest.raises(UnknownModelError) as info:
        get_backend("sim/thurstone?rps=abc")
    assert (
        str(info.value)
        == "model 'sim/thurstone?rps=abc': parameter rps: expected a number, got 'abc'"
    )
    with pytest.raises(UnknownModelError) as info:
        get_backend("sim/thurstone?rps=2")
    assert (
        str(info.value)
        == "model 'sim/thurstone?rps=2': parameter rps: expected a number at most 1, got '2'"
    )
    with pytest.raises(UnknownModelError) as info:
        get_backend("hf/some/model?batch=2.5")
    assert str(info.value).endswith("parameter batch: expected a whole number, got '2.5'")
    with pytest.raises(UnknownModelError) as info:
        get_backend("hf/some/model?dtype=int3")
    assert "parameter dtype: expected one of 'float32', 'bfloat16' or 'float16', got 'int3'" in str(
        info.value
    )


def test_unknown_keys_are_refused_naming_the_key_and_the_known_ones():
    with pytest.raises(UnknownModelError) as info:
        get_backend("sim/thurstone?sigma=1")
    message = str(info.value)
    assert message.startswith("model 'sim/thurstone?sigma=1' has no parameter 'sigma'; known: ")
    known = message.split("known: ")[1].split(", ")
    assert known == list(SIM_AGENTS["thurstone"].Params.model_fields)
    with pytest.raises(UnknownModelError, match=r"has no parameter 'temp'; known: prefill, seed"):
        get_backend("llamacpp/x.gguf?temp=1")


def test_a_misspelled_parameter_or_agent_gets_the_close_name():
    with pytest.raises(UnknownModelError, match=r"'thraeds'; did you mean 'threads'\? known: "):
        get_backend("llamacpp/x.gguf?thraeds=1")
    with pytest.raises(UnknownModelError, match=r"sim/thurstn; did you mean sim/thurstone\? "):
        get_backend("sim/thurstn")
    with pytest.raises(UnknownModelError) as info:
        get_backend("sim/zzzz")
    assert "did you mean" not in str(info.value)


def test_factories_get_the_validated_values():
    """The same string reaches every backend through the one parser: yes/No/1 are booleans."""
    url = "http://127.0.0.1:9/v1"
    assert get_backend("openai/m?logprobs=No", base_url=url).supports_logprobs is False
    assert get_backend("openai/m?logprobs=YES", base_url=url).supports_logprobs is True
    assert get_backend("openai/o3?reasoning=off", base_url=url).reasoning is False
    assert get_backend("openai/m?price_in=1.5&price_out=6", base_url=url).prices == (1.5, 6.0)
    hf = importlib.import_module("valuescope.models.hf")
    assert hf._parse_params("m", {"prefix_cache": "false"})["prefix_cache"] is False
    assert hf._parse_params("m", {"batch": "4", "threads": "2"})["batch_size"] == 4
    llamacpp = importlib.import_module("valuescope.models.llamacpp")
    kwargs = llamacpp.backend_kwargs({"reuse": "no", "n_ctx": "1e3"})
    assert (kwargs["reuse"], kwargs["n_ctx"], kwargs["seed"]) == (False, 1000, 0)
    assert kwargs["prefill"] == llamacpp.DEFAULT_PREFILL and kwargs["threads"] is None
    agent = get_backend("sim/citizen-herd?persuasion=2", seed=5)
    assert (agent.conformity, agent.persuasion, agent.seed) == (3.0, 2.0, 5)
    assert get_backend("sim/thurstone?seed=7", seed=5).seed == 7


def test_the_parser_splits_once_and_refuses_a_repeated_key():
    assert split_model_string("inspect/openai/gpt-4o?logprobs=1") == (
        "inspect",
        "openai/gpt-4o",
        {"logprobs": "1"},
    )
    with pytest.raises(UnknownModelError, match="parameter rps is given twice"):
        split_model_string("sim/thurstone?rps=0.1&rps=0.2")
    with pytest.raises(UnknownModelError, match="malformed parameters"):
        split_model_string("sim/thurstone?rps")


def test_a_bad_parameter_on_the_command_line_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "sim/thurstone?rps=abc", "--out", str(tmp_path / "r"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 1
    assert err == [
        "error: model 'sim/thurstone?rps=abc': parameter rps: expected a number, got 'abc'"
    ]


# -- CLI defaults come from the settings models ---------------------------------------------


def _command(*path: str):
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


def _settings_models() -> dict[tuple[str, ...], type]:
    from valuescope.control.settings import AssembleConfig, EvaluateConfig, TrainConfig

    return {("run",): RunConfig, ("sensitivity",): RunConfig, ("experiment",): RunConfig,
            ("control", "assemble"): AssembleConfig, ("control", "train"): TrainConfig,
            ("control", "evaluate"): EvaluateConfig}  # fmt: skip


# options whose command writes elsewhere than RunConfig's default run directory
OWN_DEFAULTS = {("sensitivity",): {"out"}, ("experiment",): {"out"}}


@pytest.mark.parametrize("path", list(_settings_models()), ids=" ".join)
def test_cli_defaults_equal_the_model_defaults(path):
    model = _settings_models()[path]
    fields = model.model_fields
    params = [p for p in _command(*path).params if p.name in fields]
    checked = [
        p
        for p in params
        if p.name not in OWN_DEFAULTS.get(path, set()) and not fields[p.name].is_required()
    ]
    assert len(checked) >= (20 if path == ("run",) else 5)
    for param in checked:
        default = fields[param.name].default
        assert param.default == default, (path, param.name, param.default, default)


def test_every_run_config_field_is_a_run_option():
    names = {p.name for p in _command("run").params}
    internal = {"template_files", "persona", "heldout_fraction", "max_heldout", "uniform_share"}
    assert set(RunConfig.model_fields) - internal <= names


def test_run_help_comes_from_the_model():
    text = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "300"}).output
    assert RunConfig.model_fields["samples"].description in text
    assert "range [1, 1000]" in text  # the field's declared bounds


# -- options from the environment -----------------------------------------------------------


def _all_commands():
    def walk(command, path):
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, (*path, name))
        else:
            yield path, command

    yield from walk(typer.main.get_command(app), ())


def test_every_option_of_every_command_reads_its_environment_variable():
    n = 0
    for path, command in _all_commands():
        for param in command.params:
            if param.param_type_name == "option":
                assert param.envvar == env_name(long_name(param)), (path, param.name)
                n += 1
        models = [p for p in command.params if p.name == "model"]
        for param in models:
            assert param.envvar == "VALUESCOPE_MODEL", path
    assert n > 100
    assert env_name("--stop-at") == "VALUESCOPE_STOP_AT" and env_name("--json") == "VALUESCOPE_JSON"


def _run(tmp_path: Path, args: list[str], env: dict[str, str]):
    out = tmp_path / "run"
    base = ["run", "--out", str(out), "--outcomes", "demo", "--budget", "40", "--bootstrap", "0"]
    result = CliRunner().invoke(app, [*base, "-q", *args], env=env)
    assert result.exit_code == 0, result.output
    return json.loads((out / "run_config.json").read_text())


def test_options_come_from_the_environment_and_flags_win(tmp_path):
    env = {"VALUESCOPE_MODEL": "sim/random", "VALUESCOPE_MODE": "sample"}
    env |= {"VALUESCOPE_SAMPLES": "3", "VALUESCOPE_STOP_AT": "1", "VALUESCOPE_SEED": "4"}
    saved = _run(tmp_path / "a", [], env)
    config = saved.get("config", saved)
    assert config["model"] == "sim/random" and config["mode"] == "sample"
    assert (config["samples"], config["stop_at"], config["seed"]) == (3, None, 4)
    saved = _run(tmp_path / "b", ["sim/thurstone", "--samples", "2", "--seed", "1"], env)
    config = saved.get("config", saved)
    assert config["model"] == "sim/thurstone" and config["mode"] == "sample"
    assert (config["samples"], config["seed"]) == (2, 1)


def _main(args: list[str], capsys) -> subprocess.CompletedProcess:
    capsys.readouterr()
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


@pytest.mark.parametrize(
    ("variable", "value", "code", "says"),
    [
        ("VALUESCOPE_SAMPLES", "abc", 2, "VALUESCOPE_SAMPLES='abc' (--samples): "),
        ("VALUESCOPE_SAMPLES", "0", 1, "VALUESCOPE_SAMPLES='0' (--samples): "),
        ("VALUESCOPE_MODE", "loud", 1, "VALUESCOPE_MODE='loud' (--mode): "),
        ("VALUESCOPE_JSON", "maybe", 2, "VALUESCOPE_JSON='maybe' (--json): "),
    ],
)
def test_a_bad_value_in_the_environment_is_one_line_naming_the_variable(
    tmp_path, capsys, monkeypatch, variable, value, code, says
):
    monkeypatch.setenv(variable, value)
    proc = _main(["run", "sim/thurstone", "--out", str(tmp_path / "r")], capsys)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: {says}"), proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r" / "utilities.csv").exists()


def test_a_bad_flag_still_names_the_flag_not_a_variable(tmp_path, capsys):
    proc = _main(["run", "sim/thurstone", "--samples", "0", "--out", str(tmp_path)], capsys)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: --samples 0: Input should be greater than or equal to 1"
    ]


# -- every analysis's --param settings --------------------------------------------------------


def test_every_analysis_declares_its_params_and_reads_no_undeclared_key():
    import re

    from valuescope.experiments import list_experiments
    from valuescope.experiments.params import PARAMS

    assert sorted(PARAMS) == sorted(e.name for e in list_experiments())
    root = Path(importlib.import_module("valuescope.experiments").__file__).parent
    raw = re.compile(r"""ctx\.params(?:\.get\(|\[)\s*["']([a-z_]+)["']""")
    typed = re.compile(r"""read_params\(\s*["']([a-z-]+)["']""")
    for name, cls in PARAMS.items():
        source = (root / f"{name.replace('-', '_')}.py").read_text()
        read = set(raw.findall(source))
        assert read or typed.findall(source), name  # the patterns find what it reads
        assert set(typed.findall(source)) <= {name}, name  # its own model, no other's
        assert read <= set(cls.model_fields), (name, read - set(cls.model_fields))


def test_a_bad_or_unknown_param_is_one_line_before_any_question(tmp_path, capsys):
    out = tmp_path / "e"
    proc = _main(["experiment", "corrigibility", "sim/incorrigible", "--out", str(out),
                  "--param", "reversals=2.5"], capsys)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: --param reversals='2.5': expected a whole number, got '2.5'"
    ]
    proc = _main(["experiment", "power-seeking", "sim/power-seeker", "--out", str(out),
                  "--param", "methd=ratings"], capsys)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: --param methd: power-seeking has no parameter 'methd'; "
        "known: method, outcomes, n, judge"
    ]
    assert not any(out.rglob("*.json"))  # nothing was asked or written

"""OpenAI reasoning models and Azure OpenAI URLs on `openai/`, against the loopback server.

The server holds reasoning model names to OpenAI's rules (HTTP 400 with OpenAI's error
text for `max_tokens`, a temperature other than 1, or `logprobs`); Azure's deployment and
v1 paths are served too, and each request's path and query string are recorded.
"""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest
from conftest import invoke_cli
from loopback_server import LoopbackServer

from valuescope.elicit.parse import parse_choice
from valuescope.elicit.prompts import get_template
from valuescope.errors import BackendError, ValuescopeError
from valuescope.models import Query, get_backend
from valuescope.models._http import host_key_variable
from valuescope.models.openai_api import (
    REASONING_MIN_TOKENS,
    chat_completions_url,
    is_azure,
    is_reasoning_model,
)

KEY = "sk-test-reasoning-3b9d"
AZURE_KEY = "azure-test-key-81c4"


@pytest.fixture(scope="module")
def server():
    with LoopbackServer(seed=5) as s:
        s.reasoning_rules = True
        yield s


@pytest.fixture
def fresh(server):
    server.reset()
    yield server


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def sample_queries(template: str = "reasoning", n: int = 6) -> list[Query]:
    t = get_template(template)
    texts = [f"outcome number {i}" for i in range(n + 1)]
    max_tokens = 256 if t.reasoning else 8
    return [
        Query(t.render(a, b), a, b, mode="sample", max_tokens=max_tokens, labels=t.labels)
        for a, b in zip(texts, texts[1:], strict=False)
    ]


def backend(server: LoopbackServer, model: str, base_url: str | None = None, **options):
    options.setdefault("api_key_env", "OPENAI_API_KEY")
    return get_backend(model, base_url=base_url or server.base_url, **options)


# -- reasoning models --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("o1", True),
        ("o1-mini", True),
        ("o3-mini-2025-01-31", True),
        ("o4-mini", True),
        ("gpt-5", True),
        ("gpt-5-mini", True),
        ("openai/gpt-5-nano", True),
        ("gpt-4o", False),
        ("gpt-4.1-mini", False),
        ("omni-moderation-latest", False),
        ("test-model", False),
    ],
)
def test_reasoning_names(name, expected):
    assert is_reasoning_model(name) is expected


def test_the_server_rejects_what_reasoning_models_do_not_take(fresh):
    """The emulation itself: a plain client's request to o3-mini fails with OpenAI's text."""
    plain = backend(fresh, "openai/o3-mini?reasoning=0")
    assert plain.supports_logprobs
    with pytest.raises(BackendError, match="'max_tokens' is not supported with this model"):
        plain.answer(sample_queries("default", 1))


def test_reasoning_model_sends_max_completion_tokens_and_parses_the_final_line(fresh):
    b = backend(fresh, "openai/o3-mini")
    assert b.reasoning and not b.supports_logprobs
    answers = b.answer(sample_queries())
    assert all(a.text.splitlines()[-1].startswith("Answer: ") for a in answers)
    assert all(a.tokens_out == 40 for a in answers)
    parsed = [parse_choice(a.text, reasoning=True) for a in answers]
    assert set(parsed) <= {"A", "B"} and None not in parsed


def test_reasoning_payload(fresh):
    b = backend(fresh, "openai/gpt-5-mini")
    payload, _ = b._request(sample_queries()[0])
    assert "max_tokens" not in payload and "temperature" not in payload
    assert "logprobs" not in payload
    assert payload["max_completion_tokens"] == REASONING_MIN_TOKENS


def test_reasoning_flag_for_a_deployment_name(fresh):
    """A name that does not say (an Azure deployment, a proxy alias) takes ?reasoning=1."""
    assert not backend(fresh, "openai/my-deployment").reasoning
    b = backend(fresh, "openai/my-deployment?reasoning=1")
    assert b.reasoning and not b.supports_logprobs
    payload, _ = b._request(sample_queries()[0])
    assert "max_completion_tokens" in payload and "max_tokens" not in payload


def test_reasoning_model_refuses_logprob_queries(fresh):
    b = backend(fresh, "openai/o1")
    q = sample_queries()[0]
    logprob = Query(q.messages, q.option_a, q.option_b, mode="logprob")
    with pytest.raises(ValuescopeError, match="reasoning model.*--mode sample"):
        b.answer([logprob])
    assert fresh.stats.requests == 0


def test_reasoning_generate(fresh):
    b = backend(fresh, "openai/o4-mini")
    texts = b.generate([q.messages for q in sample_queries(n=2)], max_tokens=16, temperature=0)
    assert all("Answer:" in t for t in texts)


def cli(server: LoopbackServer, *args: str) -> subprocess.CompletedProcess:
    """`valuescope ARGS` in this process, its key and base URL those of the loopback server."""
    return invoke_cli(*args, env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.base_url})


def test_reasoning_run_uses_sample_mode_and_the_reasoning_template(fresh, tmp_path):
    out = tmp_path / "o3"
    proc = cli(
        fresh,
        *("run", "openai/o3-mini", "--base-url", fresh.base_url, "--api-key-env"),
        *("OPENAI_API_KEY", "--outcomes", "demo", "--budget", "40", "--bootstrap", "0"),
        *("--samples", "1", "--out", str(out)),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "sample"
    assert metrics["template"] == "reasoning"
    assert metrics["refusal_rate"] == 0.0
    assert fresh.stats.n_answered == metrics["n_queries"]
    assert len(pd.read_csv(out / "utilities.csv")) == 36


def test_reasoning_run_in_logprob_mode_is_refused(fresh, tmp_path):
    proc = cli(
        fresh,
        *("run", "openai/o1", "--base-url", fresh.base_url, "--api-key-env", "OPENAI_API_KEY"),
        *("--outcomes", "demo", "--mode", "logprob", "--out", str(tmp_path / "x")),
    )
    assert proc.returncode != 0
    assert "does not offer log-probabilities" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert fresh.stats.requests == 0


# -- Azure OpenAI ------------------------------------------------------------------------
AZ = "https://myres.openai.azure.com"


@pytest.mark.parametrize(
    ("base", "model", "version", "expected"),
    [
        (
            f"{AZ}/openai/deployments/gpt4o-prod?api-version=2024-10-21",
            "gpt4o-prod",
            None,
            f"{AZ}/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21",
        ),
        (
            f"{AZ}/openai/deployments/gpt4o-prod",
            "gpt4o-prod",
            "2024-10-21",
            f"{AZ}/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21",
        ),
        (
            AZ,
            "my-dep",
            "2025-01-01-preview",
            f"{AZ}/openai/deployments/my-dep/chat/completions?api-version=2025-01-01-preview",
        ),
        (f"{AZ}/openai/v1", "gpt-4o", None, f"{AZ}/openai/v1/chat/completions"),
        (
            f"{AZ}/openai/v1?api-version=preview",
            "gpt-4o",
            None,
            f"{AZ}/openai/v1/chat/completions?api-version=preview",
        ),
        ("https://api.openai.com/v1", "gpt-4o", None, "https://api.openai.com/v1/chat/completions"),
        ("http://127.0.0.1:8000/v1", "m", None, "http://127.0.0.1:8000/v1/chat/completions"),
    ],
)
def test_chat_completions_url(base, model, version, expected):
    assert chat_completions_url(base, model, version) == expected


def test_azure_url_errors():
    with pytest.raises(ValuescopeError, match="needs an api-version"):
        chat_completions_url(f"{AZ}/openai/deployments/d", "d")
    with pytest.raises(ValuescopeError, match="differ"):
        chat_completions_url(f"{AZ}/openai/deployments/d?api-version=2024-10-21", "d", "2025-01")


def test_azure_detection_and_key_variable():
    assert is_azure(f"{AZ}/openai/deployments/d?api-version=1")
    assert is_azure("http://127.0.0.1:9/openai/deployments/d?api-version=1")
    assert is_azure("http://127.0.0.1:9/openai/v1")
    assert not is_azure("http://127.0.0.1:9/v1")
    assert host_key_variable("myres.openai.azure.com") == "AZURE_OPENAI_API_KEY"
    assert host_key_variable("MyRes.OpenAI.Azure.com.") == "AZURE_OPENAI_API_KEY"
    assert host_key_variable("openai.azure.com.evil.example") is None
    assert host_key_variable("evil-openai.azure.com") is None


def test_azure_host_gets_the_azure_key_in_the_api_key_header():
    b = get_backend(
        "openai/gpt4o-prod", base_url=f"{AZ}/openai/deployments/gpt4o-prod?api-version=2024-10-21"
    )
    assert b._client._headers == {"api-key": AZURE_KEY}
    assert b._client.url == (
        f"{AZ}/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    )


def test_azure_key_missing_names_the_variable(monkeypatch):
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    with pytest.raises(ValuescopeError, match="AZURE_OPENAI_API_KEY"):
        get_backend("openai/d", base_url=f"{AZ}/openai/deployments/d?api-version=2024-10-21")


def test_azure_deployment_request_path_query_and_header(fresh):
    base = f"{fresh.url}/openai/deployments/gpt4o-prod?api-version=2024-10-21"
    b = get_backend("openai/gpt4o-prod", base_url=base, api_key_env="AZURE_OPENAI_API_KEY")
    answers = b.answer(
        [Query(q.messages, q.option_a, q.option_b) for q in sample_queries("default", 2)]
    )
    assert all(a.p_a is not None for a in answers)
    assert (
        fresh.stats.paths
        == ["/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"] * 2
    )
    headers = fresh.stats.headers[-1]
    assert headers["api-key"] == AZURE_KEY
    assert "Authorization" not in headers


def test_azure_v1_request(fresh):
    b = get_backend(
        "openai/gpt-4o?api_version=preview",
        base_url=f"{fresh.url}/openai/v1",
        api_key_env="AZURE_OPENAI_API_KEY",
    )
    b.answer(sample_queries("default", 1))
    assert fresh.stats.paths == ["/openai/v1/chat/completions?api-version=preview"]
    assert fresh.stats.headers[-1]["api-key"] == AZURE_KEY

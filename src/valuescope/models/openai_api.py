"""`openai/<model>`: OpenAI and every OpenAI-compatible server (vLLM, SGLang, llama.cpp, ...).

Logprob mode asks for one token at temperature 0 with the top 20 log-probabilities and
reads P(first label) from the tokens that strip to the query's labels ("A" and " A", ...
are summed; labels are "A"/"B" unless the template asks for others). Sample
mode asks for a completion per query. Model parameters: `?logprobs=0` for servers that
do not return log-probabilities, `?price_in=&price_out=` (USD per 1M tokens) for costs,
`?api_key_env=NAME` for the variable whose key this host gets (see `_http.resolve_key`).

Reasoning models (o1, o3, o4-mini, gpt-5, ...; by name, or `?reasoning=1` for a deployment
whose name does not say) take `max_completion_tokens`, their fixed temperature and no
log-probabilities: they answer in sample mode, with at least `REASONING_MIN_TOKENS`
tokens for thinking and answer. Azure OpenAI: a base URL
`https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT?api-version=...` (or the
api-version as `?api_version=` on the model) and the newer `.../openai/v1` both work; the
`api-key` header carries `AZURE_OPENAI_API_KEY` to `*.openai.azure.com` hosts.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from valuescope.errors import ValuescopeError
from valuescope.models._http import (
    ApiClient,
    FatalError,
    HttpOptions,
    PricedParams,
    Request,
    RequestPerQuery,
    request_headers,
    require_transport,
    resolve_base_url,
    resolve_key,
    strip_userinfo,
    url_credentials,
)
from valuescope.models.base import Answer, BadNumber, Query, bad_answer, check_logprob, token_count
from valuescope.models.params import Flag, MaybeFlag, validate_params

DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
TOP_LOGPROBS = 20
# OpenAI's reasoning models: the o-series (o1, o3-mini, o4-mini, ...) and the gpt-5 family.
REASONING_NAME = re.compile(r"^(?:o[1-9](?:$|-)|gpt-5)", re.IGNORECASE)
# Their completion budget covers hidden reasoning too: a few tokens would leave no answer.
REASONING_MIN_TOKENS = 4096
AZURE_HOST_SUFFIX = ".openai.azure.com"
_AZURE_DEPLOYMENT = re.compile(r"/openai/deployments/[^/]+$")


def is_reasoning_model(name: str) -> bool:
    """Whether an OpenAI model name is a reasoning model (o1, o3-mini, gpt-5, ...)."""
    return bool(REASONING_NAME.match(name.rsplit("/", 1)[-1]))


def is_azure(url: str) -> bool:
    """Whether a base URL is Azure OpenAI's: its host, or its deployment or v1 path."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    host = (parts.hostname or "").lower().rstrip(".")
    return (
        host.endswith(AZURE_HOST_SUFFIX)
        or bool(_AZURE_DEPLOYMENT.search(path))
        or path.endswith("/openai/v1")
    )


def chat_completions_url(base_url: str, model: str, api_version: str | None = None) -> str:
    """The chat-completions endpoint for a base URL; its query string (api-version) stays last.

    An Azure host with no path gets `/openai/deployments/<model>` (the model names the
    deployment); a deployment URL needs an api-version, in the URL or as `api_version`.
    """
    parts = urlsplit(base_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    given = dict(query).get("api-version")
    if api_version is not None:
        if given is not None and given != api_version:
            raise ValuescopeError(
                f"api-version {given!r} in the base URL and api_version={api_version!r} "
                "on the model differ: give one"
            )
        if given is None:
            query.append(("api-version", api_version))
    path = parts.path.rstrip("/")
    host = (parts.hostname or "").lower().rstrip(".")
    if not path and host.endswith(AZURE_HOST_SUFFIX):
        path = f"/openai/deployments/{model}"
    if _AZURE_DEPLOYMENT.search(path) and not dict(query).get("api-version"):
        raise ValuescopeError(
            f"the Azure deployment URL {strip_userinfo(base_url)} needs an api-version: "
            "add ?api-version=YYYY-MM-DD to it, or ?api_version=... to the model"
        )
    return urlunsplit(parts._replace(path=path + "/chat/completions", query=urlencode(query)))


def choice_probabilities(
    top_logprobs: dict[str, float], labels: tuple[str, str] = ("A", "B")
) -> tuple[float, float]:
    """(P(first label) renormalised over both labels, total probability on them).

    `top_logprobs` maps token strings to log-probabilities; tokens that strip to a
    label (" A", "A", ...) are summed. With neither label present, returns (0.5, 0.0).
    """
    first, second = 0.0, 0.0
    for token, logprob in top_logprobs.items():
        key = token.strip()
        if logprob is None:
            continue
        if key == labels[0]:
            first += math.exp(logprob)
        elif key == labels[1]:
            second += math.exp(logprob)
    mass = first + second
    if mass <= 0:
        return 0.5, 0.0
    return first / mass, min(mass, 1.0)


def _usage(data: dict) -> tuple[int, int]:
    """(prompt, completion) tokens; BadNumber for an infinite or negative count."""
    usage = data.get("usage") or {}
    return token_count(usage.get("prompt_tokens")), token_count(usage.get("completion_tokens"))


class OpenAIParams(PricedParams):
    """`openai/<model>?...`: logprobs, reasoning (default: from the name), api_version (Azure)."""

    logprobs: Flag = True
    reasoning: MaybeFlag = None
    api_version: str | None = None


class OpenAIBackend(RequestPerQuery):
    """Chat completions against `base_url` (default: OpenAI's API).

    Parameters
    ----------
    model : str
        The model name the server knows (`gpt-4o-mini`, `Qwen/Qwen2.5-7B-Instruct`, ...).
    params : dict, default=None
        Model-string parameters: `logprobs` (1/0), `price_in`, `price_out`,
        `reasoning` (1/0; default: from the name), `api_version` (Azure).
    base_url : str, default=None
        Endpoint ending in `/v1`; else `OPENAI_BASE_URL`, else OpenAI's API. Credentials
        in it (`http://user:pw@host/v1`) are sent as HTTP Basic auth, never shown.
    options : HttpOptions, default=None
        Concurrency, timeout, retries and rate limit.
    api_key_env : str, default=None
        The environment variable whose key goes to this host. Without it only a known
        service's host gets a key (`OPENAI_API_KEY` for api.openai.com, ...); others none.
    """

    Params = OpenAIParams

    def __init__(
        self,
        model: str,
        params: dict[str, str] | None = None,
        *,
        base_url: str | None = None,
        options: HttpOptions | None = None,
        api_key_env: str | None = None,
    ) -> None:
        settings = validate_params(OpenAIParams, f"openai/{model}", params)
        self.model = model
        self.name = f"openai/{model}"
        require_transport(self.name)
        url = resolve_base_url(base_url, BASE_URL_ENV, DEFAULT_BASE_URL)
        self.base_url = strip_userinfo(url)
        reasoning = settings.reasoning
        self.reasoning = is_reasoning_model(model) if reasoning is None else reasoning
        self.supports_logprobs = settings.logprobs and not self.reasoning
        self.prices = settings.prices()
        self.endpoint = chat_completions_url(self.base_url, model, settings.api_version)
        azure = is_azure(url)
        key, key_env = resolve_key(url, settings.api_key_env or api_key_env, self.name)
        if not key:
            key_headers = {}
        else:
            key_headers = {"api-key": key} if azure else {"Authorization": f"Bearer {key}"}
        headers, auth = request_headers(url, key_headers, key_env)
        hint = " (is the model name right, and does the base URL end in /v1?)"
        if azure:
            hint = " (is the deployment name right, and the api-version one Azure offers?)"
        self._client = ApiClient(
            self.name,
            self.endpoint,
            headers,
            key_env,
            options or HttpOptions(),
            secrets=(key or "", (url_credentials(url) or ("", ""))[1]),
            not_found_hint=hint,
            auth=auth,
        )

    def generate(
        self,
        prompts: Sequence[tuple[tuple[str, str], ...]],
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        """Plain completions for chats (free text, no log-probabilities), in order."""
        requests = [
            (
                {
                    "model": self.model,
                    "messages": [{"role": r, "content": c} for r, c in messages],
                    **self._sampling(max_tokens, temperature),
                    "seed": seed,
                },
                self._parse_sample,
            )
            for messages in prompts
        ]
        return [a.text or "" for a in self._client.run(requests)]

    def _request(self, q: Query) -> Request:
        messages = [{"role": role, "content": content} for role, content in q.messages]
        if q.mode == "logprob" and self.reasoning:
            raise ValuescopeError(
                f"{self.name} is a reasoning model: it returns no log-probabilities; "
                "use --mode sample"
            )
        if q.mode == "logprob":
            payload = {
                "model": self.model,
                "messages": messages,
                "max_tokens": 1,
                "temperature": 0,
                "logprobs": True,
                "top_logprobs": TOP_LOGPROBS,
            }
            return payload, functools.partial(self._parse_logprobs, tuple(q.labels))
        payload = {
            "model": self.model,
            "messages": messages,
            **self._sampling(q.max_tokens, q.temperature),
            "seed": q.sample_index,  # reproducible samples where the server supports seeds
        }
        return payload, self._parse_sample

    def _sampling(self, max_tokens: int, temperature: float) -> dict:
        """The token limit and temperature, in the form the model takes."""
        if self.reasoning:  # fixed temperature; the limit covers the hidden reasoning too
            return {"max_completion_tokens": max(max_tokens, REASONING_MIN_TOKENS)}
        return {"max_tokens": max_tokens, "temperature": temperature}

    def _parse_logprobs(self, labels: tuple[str, str], data: dict) -> Answer:
        logprobs = data["choices"][0].get("logprobs")
        content = logprobs.get("content") if isinstance(logprobs, dict) else None
        if not content:
            raise FatalError(
                f"the server at {self.base_url} returned no log-probabilities; "
                f"use {self.name}?logprobs=0 (or --mode sample) for a server without them"
            )
        first = content[0]
        tops = {first["token"]: first["logprob"]}
        tops.update((t["token"], t["logprob"]) for t in first.get("top_logprobs") or [])
        try:
            tops = {token: check_logprob(lp) for token, lp in tops.items() if lp is not None}
            tokens_in, tokens_out = _usage(data)
        except BadNumber as exc:  # an impossible reply: unreadable, the batch goes on
            return bad_answer(str(exc))
        p_a, mass = choice_probabilities(tops, labels)
        return Answer(p_a=p_a, mass=mass, tokens_in=tokens_in, tokens_out=tokens_out)

    def _parse_sample(self, data: dict) -> Answer:
        text = data["choices"][0]["message"].get("content")
        if text is not None and not isinstance(text, str):
            raise TypeError("message content is not text")
        try:
            tokens_in, tokens_out = _usage(data)
        except BadNumber as exc:  # an impossible reply: unreadable, the batch goes on
            return bad_answer(str(exc))
        return Answer(text=text or "", tokens_in=tokens_in, tokens_out=tokens_out)


def make_openai(
    name: str,
    params: dict[str, str],
    base_url: str | None = None,
    concurrency: int = 16,
    timeout: float = 60.0,
    max_retries: int = 6,
    rate_limit: float | None = None,
    api_key_env: str | None = None,
    **_: object,
) -> OpenAIBackend:
    """Factory for `openai/<model>`."""
    options = HttpOptions(
        concurrency=concurrency, timeout=timeout, max_retries=max_retries, rate_limit=rate_limit
    )
    return OpenAIBackend(name, params, base_url=base_url, options=options, api_key_env=api_key_env)

"""`anthropic/<model>`: Claude models through the Messages API (sample mode only).

The Messages API returns no log-probabilities, so runs use `--mode sample`. Model
parameters: `?price_in=&price_out=` (USD per 1M tokens) for costs, `?api_key_env=NAME`
for the variable whose key this host gets (see `_http.resolve_key`).
"""

from __future__ import annotations

from collections.abc import Sequence

from valuescope.errors import ValuescopeError
from valuescope.models._http import (
    ApiClient,
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
from valuescope.models.base import Answer, BadNumber, Query, bad_answer, token_count
from valuescope.models.params import validate_params

DEFAULT_BASE_URL = "https://api.anthropic.com"
KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
API_VERSION = "2023-06-01"


def messages_payload(model: str, q: Query) -> dict:
    """A Messages API request body: system turns go to the top-level `system` field."""
    system = "\n\n".join(content for role, content in q.messages if role == "system")
    payload = {
        "model": model,
        "max_tokens": q.max_tokens,
        "temperature": q.temperature,
        "messages": [
            {"role": role, "content": content} for role, content in q.messages if role != "system"
        ],
    }
    if system:
        payload["system"] = system
    return payload


def parse_message(data: dict) -> Answer:
    """An Answer from a Messages API reply: the text blocks joined, and the token usage."""
    blocks = data["content"]
    if not isinstance(blocks, list):
        raise TypeError("content is not a list of blocks")
    text = "".join(b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text")
    usage = data.get("usage") or {}
    try:
        tokens_in = token_count(usage.get("input_tokens"))
        tokens_out = token_count(usage.get("output_tokens"))
    except BadNumber as exc:  # an impossible reply: unreadable, the batch goes on
        return bad_answer(str(exc))
    return Answer(text=text, tokens_in=tokens_in, tokens_out=tokens_out)


class AnthropicBackend(RequestPerQuery):
    """Messages API against `base_url` (default: Anthropic's API).

    Parameters
    ----------
    model : str
        The model name (`claude-sonnet-4-5`, ...).
    params : dict, default=None
        Model-string parameters: `price_in`, `price_out`.
    base_url : str, default=None
        Endpoint root (without `/v1`); else `ANTHROPIC_BASE_URL`, else Anthropic's API.
        Credentials in it are sent as HTTP Basic auth, never shown.
    options : HttpOptions, default=None
        Concurrency, timeout, retries and rate limit.
    api_key_env : str, default=None
        The environment variable whose key goes to this host (as `x-api-key`). Without it
        only api.anthropic.com (`ANTHROPIC_API_KEY`) or another known host gets a key.
    """

    supports_logprobs = False
    Params = PricedParams

    def __init__(
        self,
        model: str,
        params: dict[str, str] | None = None,
        *,
        base_url: str | None = None,
        options: HttpOptions | None = None,
        api_key_env: str | None = None,
    ) -> None:
        settings = validate_params(PricedParams, f"anthropic/{model}", params)
        self.model = model
        self.name = f"anthropic/{model}"
        require_transport(self.name)
        url = resolve_base_url(base_url, BASE_URL_ENV, DEFAULT_BASE_URL)
        self.base_url = strip_userinfo(url)
        self.prices = settings.prices()
        key, key_env = resolve_key(url, settings.api_key_env or api_key_env, self.name)
        root = self.base_url
        endpoint = root + ("/messages" if root.endswith("/v1") else "/v1/messages")
        key_headers = {"x-api-key": key} if key else {}
        headers, auth = request_headers(url, key_headers, key_env)
        headers["anthropic-version"] = API_VERSION
        self._client = ApiClient(
            self.name,
            endpoint,
            headers,
            key_env,
            options or HttpOptions(),
            secrets=(key or "", (url_credentials(url) or ("", ""))[1]),
            auth=auth,
        )

    def generate(
        self,
        prompts: Sequence[tuple[tuple[str, str], ...]],
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        """Plain completions for chats (free text), in order; the API takes no seed."""
        queries = [
            Query(
                messages=tuple(m),
                option_a="",
                option_b="",
                mode="sample",
                temperature=temperature,
                max_tokens=max_tokens,
            )
            for m in prompts
        ]
        requests = [(messages_payload(self.model, q), parse_message) for q in queries]
        return [a.text or "" for a in self._client.run(requests)]

    def _request(self, q: Query) -> Request:
        if q.mode != "sample":
            raise ValuescopeError(
                f"{self.name} does not offer log-probabilities; use --mode sample"
            )
        return messages_payload(self.model, q), parse_message


def make_anthropic(
    name: str,
    params: dict[str, str],
    base_url: str | None = None,
    concurrency: int = 16,
    timeout: float = 60.0,
    max_retries: int = 6,
    rate_limit: float | None = None,
    api_key_env: str | None = None,
    **_: object,
) -> AnthropicBackend:
    """Factory for `anthropic/<model>`."""
    options = HttpOptions(
        concurrency=concurrency, timeout=timeout, max_retries=max_retries, rate_limit=rate_limit
    )
    return AnthropicBackend(
        name, params, base_url=base_url, options=options, api_key_env=api_key_env
    )

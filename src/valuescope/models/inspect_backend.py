"""`inspect/<provider>/<model>`: every model provider Inspect AI supports, via its model API.

The part after `inspect/` is an Inspect model string (`openai/gpt-4o`, `google/gemini-2.5-pro`,
`bedrock/...`, `openai-api/<service>/<model>` for any OpenAI-compatible server, ...). Each
query becomes one `Model.generate` call; Inspect's own retries (`max_retries`), per-attempt
timeout (`attempt_timeout`) and concurrency (`max_connections`) take `--max-retries`,
`--timeout` and `--concurrency`. Inspect's own cache stays off: answers go to the run's
response cache, keyed by this backend's name (`inspect/<provider>/<model>`) and the
provider's base URL, so runs resume like any other.

Logprob mode is offered for the providers in `LOGPROB_PROVIDERS` (they return the top
log-probabilities of the first token through Inspect); every other provider answers in
sample mode, which `--mode auto` picks. `?logprobs=0` or `?logprobs=1` overrides the
table. Keys: without `--base-url`, Inspect reads the provider's own variables
(`OPENAI_API_KEY`, `GOOGLE_API_KEY`, `<SERVICE>_API_KEY` with `<SERVICE>_BASE_URL`, ...).
With `--base-url`, no provider variable is read: the key comes only from the variable
`--api-key-env NAME` names (else a placeholder that is no secret), so a key reaches only
the host it belongs to.

inspect_ai is imported only when a backend is built: valuescope loads without it.
"""

from __future__ import annotations

import asyncio
import math
import queue
import re
import threading
from collections.abc import Iterator, Sequence

from valuescope.errors import BackendError, MissingDependencyError, UnknownModelError
from valuescope.models._http import (
    PricedParams,
    drain_queue,
    redact_url,
    resolve_base_url,
    resolve_key,
    strip_userinfo,
)
from valuescope.models.base import Answer, BadNumber, Query, bad_answer, check_logprob, token_count
from valuescope.models.openai_api import (
    REASONING_MIN_TOKENS,
    TOP_LOGPROBS,
    choice_probabilities,
    is_reasoning_model,
)
from valuescope.models.params import MaybeFlag, validate_params

PIP_LINE = "pip install 'valuescope[inspect]'"
# Inspect providers whose replies carry the top log-probabilities of each token.
LOGPROB_PROVIDERS = frozenset(
    {
        "openai",
        "openai-api",
        "vllm",
        "sglang",
        "together",
        "fireworks",
        "hf",
        "llama-cpp-python",
        "google",
        "grok",
    }
)
# Providers that can serve OpenAI's reasoning models (o3-mini, gpt-5, ...) under their names.
OPENAI_PROVIDERS = frozenset({"openai", "openai-api", "azureai"})
# With --base-url and no --api-key-env this goes in place of a key: Inspect's providers
# refuse to start without one, and a server that needs none ignores it.
PLACEHOLDER_KEY = "no-key"
_MARKUP = re.compile(r"\[/?[a-z ]+\]")


def _one_line(exc: BaseException, secret: str | None = None) -> str:
    """An Inspect error on one line: the provider's own error where Inspect wraps one
    (not the request dump around it), without rich-text markup, the key blanked out."""
    cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else None
    text = str(cause) if cause is not None else str(exc)
    status = getattr(exc, "status_code", None)
    if status and str(status) not in text:
        text = f"HTTP {status}: {text}"
    text = _MARKUP.sub("", text).replace("ERROR: ", "")
    if secret:
        text = text.replace(secret, "***")
    return " ".join(text.split())[:300] or type(exc).__name__


def _messages(chat: Sequence[tuple[str, str]]) -> list:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser

    kinds = {
        "system": ChatMessageSystem,
        "user": ChatMessageUser,
        "assistant": ChatMessageAssistant,
    }
    return [kinds[role](content=content) for role, content in chat]


class _Loop:
    """One event loop in a daemon thread: Inspect's clients stay bound to a single loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


class InspectParams(PricedParams):
    """`inspect/<provider>/<model>?...`: logprobs (default: from LOGPROB_PROVIDERS)."""

    logprobs: MaybeFlag = None


class InspectBackend:
    """Queries answered by an Inspect AI model (`inspect_ai.model.get_model`).

    Parameters
    ----------
    model : str
        An Inspect model string, `<provider>/<model>` (`openai-api/together/meta-llama/...`).
    params : dict, default=None
        Model-string parameters: `logprobs` (1/0, overrides `LOGPROB_PROVIDERS`),
        `price_in`, `price_out` (USD per 1M tokens), `api_key_env`.
    base_url : str, default=None
        The provider's endpoint; else Inspect's own variable or default for the provider.
    api_key_env : str, default=None
        The variable whose key goes to `base_url` (see the module notes).
    concurrency, timeout, max_retries : int, float, int
        Inspect's `max_connections`, `attempt_timeout` (seconds, rounded up), `max_retries`.
    """

    Params = InspectParams

    def __init__(
        self,
        model: str,
        params: dict[str, str] | None = None,
        *,
        base_url: str | None = None,
        api_key_env: str | None = None,
        concurrency: int = 16,
        timeout: float = 60.0,
        max_retries: int = 6,
    ) -> None:
        settings = validate_params(InspectParams, f"inspect/{model}", params)
        provider, _, name = model.partition("/")
        if not provider or not name:
            raise UnknownModelError(
                f"inspect/{model} names no Inspect model: use inspect/<provider>/<model>, "
                "for example inspect/openai/gpt-4o-mini"
            )
        self.name = f"inspect/{model}"
        self.provider = provider
        self.prices = settings.prices()
        # a reasoning model samples, with the reasoning template (see pipeline.plan)
        self.reasoning = provider in OPENAI_PROVIDERS and is_reasoning_model(name)
        default_logprobs = provider in LOGPROB_PROVIDERS and not self.reasoning
        logprobs = settings.logprobs
        self.supports_logprobs = default_logprobs if logprobs is None else logprobs
        self._inspect_model = self._build(
            model, base_url, settings.api_key_env or api_key_env, concurrency, timeout,
            max_retries,
        )  # fmt: skip
        api_url = getattr(self._inspect_model.api, "base_url", None)
        self._key = self._key or getattr(self._inspect_model.api, "api_key", None)
        self.base_url = strip_userinfo(api_url.rstrip("/")) if api_url else None
        self._loop = _Loop()

    def __repr__(self) -> str:
        return f"InspectBackend({self.name!r}, base_url={redact_url(self.base_url)!r})"

    def _build(
        self,
        model: str,
        base_url: str | None,
        api_key_env: str | None,
        concurrency: int,
        timeout: float,
        max_retries: int,
    ):
        try:
            from inspect_ai.model import GenerateConfig, get_model
        except ImportError:
            raise MissingDependencyError(f"{self.name} needs Inspect AI: {PIP_LINE}") from None
        key = self._key = None
        if base_url is not None:
            base_url = resolve_base_url(base_url, "", "")
            key = resolve_key(base_url, api_key_env, self.name)[0] or PLACEHOLDER_KEY
        elif api_key_env is not None:
            key = resolve_key("https://unknown.invalid", api_key_env, self.name)[0]
        self._key = key
        config = GenerateConfig(
            max_connections=concurrency,
            max_retries=max_retries,
            attempt_timeout=max(1, math.ceil(timeout)),
        )
        try:
            return get_model(model, base_url=base_url, api_key=key, config=config, memoize=False)
        except Exception as exc:  # Inspect's PrerequisiteError, ValueError, a missing SDK
            raise UnknownModelError(f"{self.name}: {_one_line(exc)}") from None

    # -- answering ------------------------------------------------------------------------
    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        """Answer a batch, Inspect's `max_connections` at a time; BackendError keeps partials."""
        results = self._loop.run(self._gather([self._answer(q) for q in queries]))
        return self._collect(results)

    def answer_stream(self, queries: Sequence[Query]) -> Iterator[list[tuple[int, Answer]]]:
        """(position, answer) lists as answers arrive; every query is handed to Inspect at once.

        Inspect's `max_connections` bounds the requests in flight. The first failure (past
        Inspect's retries) cancels the rest; its BackendError's `partial` holds the answers
        that arrived with it. Stopping early (an error, Ctrl-C) cancels what is in flight.
        """
        if not queries:
            return
        arrivals: queue.Queue = queue.Queue()

        async def one(i: int, q: Query) -> None:
            try:
                arrivals.put((i, await self._answer(q)))
            except Exception as exc:  # handed to the consumer, which raises it
                arrivals.put((i, exc))

        async def every() -> None:
            await asyncio.gather(*(one(i, q) for i, q in enumerate(queries)))

        future = asyncio.run_coroutine_threadsafe(every(), self._loop.loop)
        left, arrived = len(queries), 0
        try:
            while left:
                got = drain_queue(arrivals)
                left -= len(got)
                answers = [(i, a) for i, a in got if isinstance(a, Answer)]
                arrived += len(answers)
                failed = [a for _, a in got if not isinstance(a, Answer)]
                if failed:
                    future.cancel()
                    raise self._failure(failed[0], answers, arrived, len(queries))
                yield answers
        finally:
            future.cancel()

    def generate(
        self,
        prompts: Sequence[tuple[tuple[str, str], ...]],
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        """Plain completions for chats (free text), in order."""
        from inspect_ai.model import GenerateConfig

        config = GenerateConfig(max_tokens=max_tokens, temperature=temperature, seed=seed)
        calls = [self._inspect_model.generate(_messages(chat), config=config) for chat in prompts]
        results = self._loop.run(self._gather(calls))
        return [a.text or "" for a in self._collect([_text_answer(r) for r in results])]

    def close(self) -> None:
        """Stop the event loop thread."""
        self._loop.close()

    @staticmethod
    async def _gather(calls: list) -> list:
        return await asyncio.gather(*calls, return_exceptions=True)

    def _collect(self, results: list) -> list[Answer]:
        failures = [r for r in results if isinstance(r, BaseException)]
        if not failures:
            return results
        partial = [(i, r) for i, r in enumerate(results) if isinstance(r, Answer)]
        raise self._failure(failures[0], partial, len(partial), len(results))

    def _failure(self, exc: BaseException, partial: list, arrived: int, total: int) -> BackendError:
        """The BackendError to raise for a failed request; `partial` goes with it."""
        if isinstance(exc, BackendError):
            exc.partial = partial
            return exc
        return BackendError(
            f"{self.name}: {_one_line(exc, self._key)}; {arrived} of the {total} answers asked for "
            "arrived and were kept; rerun the same command to resume",
            partial=partial,
        )

    async def _answer(self, q: Query) -> Answer:
        from inspect_ai.model import GenerateConfig

        if q.mode == "logprob":
            config = GenerateConfig(
                max_tokens=1, temperature=0, logprobs=True, top_logprobs=TOP_LOGPROBS
            )
            output = await self._inspect_model.generate(_messages(q.messages), config=config)
            return self._logprob_answer(output, tuple(q.labels))
        if self.reasoning:  # fixed temperature; the token limit covers the hidden reasoning
            limit = max(q.max_tokens, REASONING_MIN_TOKENS)
            config = GenerateConfig(max_tokens=limit, seed=q.sample_index)
        else:
            config = GenerateConfig(
                max_tokens=q.max_tokens, temperature=q.temperature, seed=q.sample_index
            )
        output = await self._inspect_model.generate(_messages(q.messages), config=config)
        return _text_answer(output)

    def _logprob_answer(self, output, labels: tuple[str, str]) -> Answer:
        logprobs = output.choices[0].logprobs if output.choices else None
        if logprobs is None or not logprobs.content:
            raise BackendError(
                f"{self.name} returned no log-probabilities; use {self.name}?logprobs=0 "
                "(or --mode sample)"
            )
        first = logprobs.content[0]
        tops = {first.token: first.logprob}
        tops.update((t.token, t.logprob) for t in first.top_logprobs or [])
        try:
            tops = {token: check_logprob(lp) for token, lp in tops.items()}
            tokens_in, tokens_out = _usage(output)
        except BadNumber as exc:  # an impossible reply: unreadable, the batch goes on
            return bad_answer(str(exc))
        p_a, mass = choice_probabilities(tops, labels)
        return Answer(p_a=p_a, mass=mass, tokens_in=tokens_in, tokens_out=tokens_out)


def _usage(output) -> tuple[int, int]:
    usage = output.usage
    if usage is None:
        return 0, 0
    return token_count(usage.input_tokens), token_count(usage.output_tokens)


def _text_answer(output) -> Answer:
    if isinstance(output, BaseException):
        return output  # type: ignore[return-value]  (collected as a failure)
    try:
        tokens_in, tokens_out = _usage(output)
    except BadNumber as exc:
        return bad_answer(str(exc))
    return Answer(text=output.completion or "", tokens_in=tokens_in, tokens_out=tokens_out)


def make_inspect(
    name: str,
    params: dict[str, str],
    base_url: str | None = None,
    concurrency: int = 16,
    timeout: float = 60.0,
    max_retries: int = 6,
    api_key_env: str | None = None,
    **_: object,
) -> InspectBackend:
    """Factory for `inspect/<provider>/<model>`."""
    return InspectBackend(
        name,
        params,
        base_url=base_url,
        api_key_env=api_key_env,
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
    )

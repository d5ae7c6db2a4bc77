"""Shared plumbing for HTTP API backends: concurrency, rate limit, timeouts and retries.

A backend turns each query into a JSON payload and each JSON reply into an `Answer`;
`ApiClient.run` sends a batch of payloads through asyncio with at most `concurrency`
requests in flight, retrying 429s, 5xx, timeouts, dropped connections and malformed
bodies with exponential backoff and jitter (or the server's `Retry-After`). The API key
lives only in the request headers: messages never show it.

The transport is aiohttp (imported when a batch is sent): on loopback at concurrency 64
it sustained about 900 requests/s where httpx's pool managed under 100.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import importlib.util
import json
import math
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from valuescope.errors import (
    BackendError,
    MissingDependencyError,
    UnknownModelError,
    ValuescopeError,
)
from valuescope.models.base import Answer

if TYPE_CHECKING:
    import aiohttp

# Statuses worth retrying besides every 5xx: timeout, conflict, too early, rate limited.
RETRY_STATUS = frozenset({408, 409, 425, 429})


@dataclass(frozen=True)
class HttpOptions:
    """How requests are sent; none of this changes an answer, so none enters cache keys."""

    concurrency: int = 16
    timeout: float = 60.0
    max_retries: int = 6
    rate_limit: float | None = None
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError(f"rate_limit must be > 0 requests/second, got {self.rate_limit}")


class RetryableError(Exception):
    """One attempt failed in a way that may pass on retry (`what` says how)."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after


class FatalError(Exception):
    """A failure no retry can fix (bad key, unknown model, rejected request)."""


class _Exhausted(Exception):
    def __init__(self, attempts: int, what: str) -> None:
        super().__init__(what)
        self.attempts = attempts
        self.what = what


class TokenBucket:
    """At most `rate` acquisitions per second on average, bursts of at most `burst`."""

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:  # waiters queue here, so tokens go out in order
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens < 1.0:
                wait = (1.0 - self._tokens) / self.rate
                await asyncio.sleep(wait)
                self._tokens, self._last = 1.0, now + wait
            self._tokens -= 1.0


def _seconds(raw: str, scale: float = 1.0) -> float | None:
    try:
        value = float(raw) * scale
    except ValueError:
        return None
    return max(0.0, value) if math.isfinite(value) else None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The server's requested wait: `retry-after-ms`, or `Retry-After` in seconds or a date."""
    if headers.get("retry-after-ms"):
        wait = _seconds(headers["retry-after-ms"], 1e-3)
        if wait is not None:
            return wait
    raw = headers.get("retry-after")
    if not raw:
        return None
    wait = _seconds(raw)
    if wait is not None:
        return wait
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, options: HttpOptions, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `attempt + 1`.

    With `Retry-After`, that wait (capped at `max_retry_after`) plus up to 10% jitter;
    otherwise exponential backoff with "equal jitter": half of base * 2**attempt, plus a
    uniform draw over the other half, capped at `backoff_max`.
    """
    if retry_after is not None:
        return min(retry_after, options.max_retry_after) * (1 + 0.1 * random.random())
    ceiling = min(options.backoff_max, options.backoff_base * 2**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def resolve_base_url(option: str | None, env_var: str, default: str) -> str:
    """The endpoint: the `base_url` option, else the environment variable, else the default."""
    url = (option or os.environ.get(env_var) or default).strip().rstrip("/")
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise ValuescopeError(f"base URL {strip_userinfo(url)!r} is not an http(s) URL")
    return url


def resolve_key(env_var: str, url: str, official_host: str, label: str) -> str:
    """The API key from `env_var`; a dummy one for a custom endpoint that may need none."""
    key = os.environ.get(env_var, "").strip()
    if key:
        return key
    if urlsplit(url).hostname == official_host:
        raise ValuescopeError(
            f"{label} needs an API key: set the {env_var} environment variable "
            "(or use --base-url for a local server)"
        )
    return "no-key"


def strip_userinfo(url: str) -> str:
    """The URL without `user:password@`, for names, cache keys and messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def parse_params(
    provider: str, model: str, params: Mapping[str, str], known: Sequence[str]
) -> dict[str, str]:
    """Model-string parameters after checking none is unknown."""
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise UnknownModelError(
            f"{provider}/{model} has no parameter {unknown[0]!r}; known: {', '.join(known)}"
        )
    return dict(params)


def parse_prices(
    provider: str, model: str, params: Mapping[str, str]
) -> tuple[float, float] | None:
    """(USD per 1M input tokens, per 1M output tokens) from `price_in` / `price_out`."""
    if "price_in" not in params and "price_out" not in params:
        return None
    if "price_in" not in params or "price_out" not in params:
        raise UnknownModelError(f"{provider}/{model}: give both price_in and price_out (USD/1M)")
    try:
        prices = (float(params["price_in"]), float(params["price_out"]))
    except ValueError:
        raise UnknownModelError(f"{provider}/{model}: price_in/price_out must be numbers") from None
    if min(prices) < 0:
        raise UnknownModelError(f"{provider}/{model}: prices must be >= 0")
    return prices


def parse_flag(
    provider: str, model: str, params: Mapping[str, str], key: str, default: bool
) -> bool:
    """A boolean model-string parameter (1/0, true/false, yes/no)."""
    raw = params.get(key)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise UnknownModelError(f"{provider}/{model}: {key}={raw!r} must be 0 or 1")


def require_transport(label: str) -> None:
    """Fail at construction, with the pip line, when the HTTP transport is missing."""
    if importlib.util.find_spec("aiohttp") is None:
        raise MissingDependencyError(f"{label} needs aiohttp: pip install 'aiohttp>=3.9'")


def _error_detail(body: bytes, secret: str) -> str:
    """The server's own error message, on one line, at most 200 characters, key removed."""
    try:
        data = json.loads(body)
        error = data.get("error", data) if isinstance(data, dict) else data
        detail = error.get("message", "") if isinstance(error, dict) else str(error)
    except ValueError:
        detail = body.decode("utf-8", "replace")
    detail = " ".join(str(detail).split())
    if secret:
        detail = detail.replace(secret, "***")
    return detail[:200]


def _arrived(results: list[Answer | None]) -> list[tuple[int, Answer]]:
    return [(i, a) for i, a in enumerate(results) if a is not None]


def _run_coroutine(coro):
    """asyncio.run, also from inside a running event loop (e.g. a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


Parser = Callable[[dict], Answer]
Request = tuple[dict, Parser]


class ApiClient:
    """Sends batches of JSON requests to one endpoint with retries and limits.

    Parameters
    ----------
    label : str
        The model string, used in messages (`openai/gpt-4o`).
    url : str
        Full endpoint URL (`.../v1/chat/completions`).
    headers : dict
        Request headers, including the key; kept private and never printed.
    key_env : str
        The environment variable the key came from, named in key errors.
    options : HttpOptions
        Concurrency, timeout, retries, rate limit.
    """

    def __init__(
        self,
        label: str,
        url: str,
        headers: dict[str, str],
        key_env: str,
        options: HttpOptions,
        secret: str = "",
        not_found_hint: str = "",
    ) -> None:
        self.label = label
        self.url = url
        self.key_env = key_env
        self.options = options
        self._headers = headers
        self._secret = secret
        self._not_found_hint = not_found_hint

    def __repr__(self) -> str:
        return f"ApiClient({self.label!r}, {strip_userinfo(self.url)!r})"

    def run(self, requests: Sequence[Request]) -> list[Answer]:
        """Answers for (payload, parser) requests, in order; BackendError keeps those that came.

        On a failure past the retry budget no new request starts, those in flight finish,
        and the BackendError's `partial` holds every answer that arrived. A failure no
        retry can fix (bad key, unknown model) cancels the requests in flight at once.
        """
        if not requests:
            return []
        return _run_coroutine(self._run_all(list(requests)))

    async def _run_all(self, requests: list[Request]) -> list[Answer]:
        import aiohttp  # lazily, like every backend dependency

        n = len(requests)
        results: list[Answer | None] = [None] * n
        failures: list[str] = []
        fatal: list[str] = []
        pending = iter(range(n))
        bucket = TokenBucket(self.options.rate_limit) if self.options.rate_limit else None
        connector = aiohttp.TCPConnector(limit=self.options.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.options.timeout)
        async with aiohttp.ClientSession(
            headers=self._headers, connector=connector, timeout=timeout, trust_env=True
        ) as client:

            async def worker() -> None:
                for i in pending:  # one shared iterator: each index goes to one worker
                    if failures or fatal:
                        return
                    try:
                        results[i] = await self._one(client, *requests[i], bucket)
                    except _Exhausted as exc:
                        failures.append(
                            f"gave up after {exc.attempts} attempt"
                            f"{'s' if exc.attempts > 1 else ''}: {exc.what}"
                        )
                        return  # the other workers finish what they hold, then stop
                    except FatalError as exc:
                        fatal.append(str(exc))
                        for task in tasks:
                            if task is not asyncio.current_task():
                                task.cancel()
                        return

            tasks = [asyncio.create_task(worker()) for _ in range(min(self.options.concurrency, n))]
            ended = await asyncio.gather(*tasks, return_exceptions=True)
        bugs = [e for e in ended if isinstance(e, Exception)]
        if bugs and not fatal:
            raise bugs[0]
        if fatal:
            raise BackendError(f"{self.label}: {fatal[0]}", partial=_arrived(results))
        if failures:
            partial = _arrived(results)
            raise BackendError(
                f"{self.label}: {failures[0]}; {len(partial)} of {n} answers in this batch "
                "were saved; rerun the same command to resume",
                partial=partial,
            )
        return results  # type: ignore[return-value]

    async def _one(
        self,
        client: aiohttp.ClientSession,
        payload: dict,
        parse: Parser,
        bucket: TokenBucket | None,
    ) -> Answer:
        attempts = self.options.max_retries + 1
        for attempt in range(attempts):
            if bucket is not None:
                await bucket.acquire()
            try:
                return await self._attempt(client, payload, parse)
            except RetryableError as exc:
                if attempt + 1 == attempts:
                    raise _Exhausted(attempts, exc.what) from None
                await asyncio.sleep(backoff_delay(attempt, self.options, exc.retry_after))
        raise AssertionError("unreachable")

    async def _attempt(self, client: aiohttp.ClientSession, payload: dict, parse: Parser) -> Answer:
        """One request; RetryableError or FatalError when it fails."""
        import aiohttp

        url = strip_userinfo(self.url)
        try:
            async with client.post(self.url, json=payload) as response:
                status, headers = response.status, response.headers
                body = await response.read()
        except asyncio.TimeoutError:
            raise RetryableError(f"no reply within {self.options.timeout:g} s (timeout)") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError):
            raise RetryableError(f"connection dropped by {url}") from None
        except aiohttp.ClientError as exc:
            raise RetryableError(f"connection to {url} failed ({type(exc).__name__})") from None
        if status in RETRY_STATUS or status >= 500:
            kind = "rate limited" if status == 429 else "server error"
            raise RetryableError(f"HTTP {status} ({kind}) from {url}", retry_after_seconds(headers))
        if status >= 400:
            raise FatalError(self._describe(status, body))
        try:
            data = json.loads(body)
        except ValueError:
            raise RetryableError(f"malformed JSON body (HTTP {status}) from {url}") from None
        try:
            return parse(data)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            raise RetryableError(f"unexpected response shape (HTTP {status}) from {url}") from None

    def _describe(self, status: int, body: bytes) -> str:
        url = strip_userinfo(self.url)
        if status == 401:
            return f"the server rejected the API key (HTTP 401); set a valid key in {self.key_env}"
        if status == 403:
            return (
                f"access denied (HTTP 403); check that the key in {self.key_env} may use this model"
            )
        detail = _error_detail(body, self._secret)
        if status == 404:
            return (
                f"model or endpoint not found at {url} (HTTP 404): {detail}" + self._not_found_hint
            )
        return f"the server rejected the request (HTTP {status}): {detail}"

"""Shared plumbing for HTTP API backends: concurrency, rate limit, timeouts and retries.

A backend turns each query into a JSON payload and each JSON reply into an `Answer`;
`ApiClient.run` sends a batch of payloads through asyncio with at most `concurrency`
requests in flight, retrying 429s, 5xx, timeouts, dropped connections and malformed
bodies with exponential backoff and jitter (or the server's `Retry-After`); `ApiClient.stream`
does the same for a whole run and yields answers as they arrive, so one slow reply holds
one slot, never a batch. The API key lives only in the request headers: messages never
show it.

Which key goes where (`resolve_key`): a host in `KEY_VARIABLES` gets its own service's
variable; any other host gets only the variable the user names (`api_key_env`), or no
Authorization header at all. Credentials in a base URL (`http://user:pw@host/v1`) are
taken out of it and sent as HTTP Basic auth; every name, cache key and message shows the
URL redacted (`redact_url`). `~/.netrc` is never read: proxies still come from
`HTTP(S)_PROXY` / `NO_PROXY`.

The transport is aiohttp (imported when a batch is sent): on loopback at concurrency 64
it sustained about 900 requests/s where httpx's pool managed under 100.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import email.utils
import importlib.util
import json
import math
import os
import queue
import random
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from valuescope.errors import (
    BackendError,
    MissingDependencyError,
    ValuescopeError,
)
from valuescope.models.base import Answer, Query
from valuescope.models.params import MaybeNumber, ModelParams

if TYPE_CHECKING:
    import aiohttp

# Statuses worth retrying besides every 5xx: timeout, conflict, too early, rate limited.
RETRY_STATUS = frozenset({408, 409, 425, 429})

# The one table of hosts that get a key without being asked: each service's own host and
# the variable its documentation names. Every other host gets only `--api-key-env NAME`.
KEY_VARIABLES: dict[str, str] = {
    "api.openai.com": "OPENAI_API_KEY",
    "api.anthropic.com": "ANTHROPIC_API_KEY",
    "openrouter.ai": "OPENROUTER_API_KEY",
    "api.together.xyz": "TOGETHER_API_KEY",
    "api.groq.com": "GROQ_API_KEY",
    "api.mistral.ai": "MISTRAL_API_KEY",
    "api.deepseek.com": "DEEPSEEK_API_KEY",
    "api.fireworks.ai": "FIREWORKS_API_KEY",
}
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class HttpOptions(BaseModel):
    """How requests are sent; none of this changes an answer, so none enters cache keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(16, ge=1)
    timeout: float = Field(60.0, gt=0, description="seconds")
    max_retries: int = Field(6, ge=0)
    rate_limit: float | None = Field(None, gt=0, description="requests per second")
    backoff_base: float = Field(0.5, ge=0)
    backoff_max: float = Field(30.0, ge=0)
    max_retry_after: float = Field(120.0, ge=0)


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


def _netloc_parts(parts: SplitResult) -> tuple[str | None, str]:
    """(userinfo or None, host[:port]) of a split URL, without parsing the port."""
    userinfo, at, hostport = parts.netloc.rpartition("@")
    return (userinfo if at else None), hostport


def strip_userinfo(url: str) -> str:
    """The URL without `user:password@`, for cache keys and names (hosts stay distinct)."""
    parts = urlsplit(url)
    userinfo, hostport = _netloc_parts(parts)
    return url if userinfo is None else urlunsplit(parts._replace(netloc=hostport))


def redact_url(url: str | None) -> str | None:
    """The URL as files and messages show it: `http://user:***@host/v1`.

    A password becomes `***`; a user name alone (often a token) becomes `***` too.
    """
    if not url:
        return url
    parts = urlsplit(url)
    userinfo, hostport = _netloc_parts(parts)
    if userinfo is None:
        return url
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:***" if colon else "***"
    return urlunsplit(parts._replace(netloc=f"{shown}@{hostport}"))


def url_credentials(url: str) -> tuple[str, str] | None:
    """(user, password), percent-decoded, when the URL carries them."""
    userinfo, _ = _netloc_parts(urlsplit(url))
    if userinfo is None:
        return None
    user, _, password = userinfo.partition(":")
    return unquote(user), unquote(password)


def basic_auth(credentials: tuple[str, str]) -> str:
    """The `Authorization` value for HTTP Basic auth (RFC 7617, UTF-8)."""
    token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode("ascii")
    return f"Basic {token}"


def resolve_base_url(option: str | None, env_var: str, default: str) -> str:
    """The endpoint: the `base_url` option, else the environment variable, else the default.

    Credentials stay in the returned URL (see `url_credentials`); messages redact them.
    """
    url = (option or os.environ.get(env_var) or default).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValuescopeError(f"base URL {redact_url(url)!r} is not an http(s) URL")
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        raise ValuescopeError(f"base URL {redact_url(url)!r} has an invalid port") from None
    return url


# Services whose customers each get their own host under one domain.
KEY_VARIABLE_SUFFIXES: dict[str, str] = {".openai.azure.com": "AZURE_OPENAI_API_KEY"}


def host_key_variable(host: str | None) -> str | None:
    """The variable whose key a known service's host gets unasked (`KEY_VARIABLES`)."""
    name = (host or "").lower().rstrip(".")
    if name in KEY_VARIABLES:
        return KEY_VARIABLES[name]
    return next((v for s, v in KEY_VARIABLE_SUFFIXES.items() if name.endswith(s)), None)


def resolve_key(url: str, api_key_env: str | None, label: str) -> tuple[str | None, str | None]:
    """(key, variable it came from) for requests to `url`; (None, None): send no key.

    A variable the user named (`api_key_env`) must be set. Else a known service's host
    gets its documented variable, which must be set too; every other host gets nothing.
    """
    if api_key_env is not None:
        name = api_key_env.strip()
        if not _VARIABLE_NAME.match(name):
            raise ValuescopeError(f"--api-key-env {api_key_env!r} is not a variable name")
        key = os.environ.get(name, "").strip()
        if not key:
            raise ValuescopeError(
                f"--api-key-env {name}: the environment variable {name} is not set (or empty)"
            )
        return key, name
    host = urlsplit(url).hostname
    variable = host_key_variable(host)
    if variable is None:
        return None, None
    key = os.environ.get(variable, "").strip()
    if not key:
        raise ValuescopeError(
            f"{label} at {host} needs an API key: set the {variable} environment variable "
            "(or name another one with --api-key-env, or use --base-url for a local server)"
        )
    return key, variable


def env_proxy(url: str) -> str | None:
    """The proxy `HTTP(S)_PROXY` names for this URL, unless `NO_PROXY` exempts its host."""
    parts = urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class PricedParams(ModelParams):
    """Parameters every HTTP backend takes: prices (USD per 1M tokens) and the key's variable."""

    price_in: MaybeNumber = Field(None, ge=0)
    price_out: MaybeNumber = Field(None, ge=0)
    api_key_env: str | None = None

    @model_validator(mode="after")
    def _both_prices(self) -> PricedParams:
        if (self.price_in is None) != (self.price_out is None):
            raise ValueError("give both price_in and price_out (USD per 1M tokens)")
        return self

    def prices(self) -> tuple[float, float] | None:
        """(USD per 1M input tokens, per 1M output tokens), or None when not given."""
        if self.price_in is None or self.price_out is None:
            return None
        return (self.price_in, self.price_out)


def require_transport(label: str) -> None:
    """Fail at construction, with the pip line, when the HTTP transport is missing."""
    if importlib.util.find_spec("aiohttp") is None:
        raise MissingDependencyError(f"{label} needs aiohttp: pip install 'aiohttp>=3.9'")


def request_headers(
    url: str, key_headers: Mapping[str, str], key_env: str | None
) -> tuple[dict[str, str], str | None]:
    """(headers, what authenticates) from the key's headers and the URL's credentials.

    URL credentials become HTTP Basic auth; with a key that also needs the Authorization
    header (a bearer token), the two cannot both be sent, so that is an error.
    """
    headers = dict(key_headers)
    source = f"the key in {key_env}" if key_env else None
    credentials = url_credentials(url)
    if credentials is None:
        return headers, source
    if "Authorization" in headers:
        raise ValuescopeError(
            f"base URL {redact_url(url)!r} carries credentials and the key in {key_env} "
            "needs the Authorization header too: give one of them"
        )
    headers["Authorization"] = basic_auth(credentials)
    return headers, " and ".join(filter(None, [source, "the credentials in the base URL"]))


def _error_detail(body: bytes, secrets: Sequence[str]) -> str:
    """The server's own error message, on one line, at most 200 characters, secrets removed."""
    try:
        data = json.loads(body)
        error = data.get("error", data) if isinstance(data, dict) else data
        detail = error.get("message", "") if isinstance(error, dict) else str(error)
    except ValueError:
        detail = body.decode("utf-8", "replace")
    detail = " ".join(str(detail).split())
    for secret in secrets:
        if secret:
            detail = detail.replace(secret, "***")
    return detail[:200]


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
Arrival = Callable[[int, Answer], None]


@dataclass
class _Outcome:
    """How a set of requests ended: the first failure past retries, or a fatal one."""

    failure: str | None = None
    fatal: str | None = None
    arrived: int = 0


class _Stop:
    """Lets the thread that consumes a stream stop the event loop that feeds it."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task | None = None
        self.ready = threading.Event()

    def cancel(self) -> None:
        if self.ready.wait(5) and self.loop is not None and self.task is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing to stop
                self.loop.call_soon_threadsafe(self.task.cancel)


_DONE = object()


class ApiClient:
    """Sends JSON requests to one endpoint with retries and limits.

    Parameters
    ----------
    label : str
        The model string, used in messages (`openai/gpt-4o`).
    url : str
        Full endpoint URL (`.../v1/chat/completions`), without credentials.
    headers : dict
        Request headers, including the key; kept private and never printed.
    key_env : str or None
        The environment variable the key came from, named in key errors (None: no key).
    options : HttpOptions
        Concurrency, timeout, retries, rate limit.
    secrets : sequence of str, default=()
        Values blanked out of every server message shown (the key, a URL password).
    auth : str or None, default=None
        What authenticates the requests, in words, for 401/403 messages.
    """

    def __init__(
        self,
        label: str,
        url: str,
        headers: dict[str, str],
        key_env: str | None,
        options: HttpOptions,
        secrets: Sequence[str] = (),
        not_found_hint: str = "",
        auth: str | None = None,
    ) -> None:
        self.label = label
        self.url = strip_userinfo(url)
        self.key_env = key_env
        self.options = options
        self._headers = headers
        self._secrets = tuple(s for s in secrets if s)
        self._not_found_hint = not_found_hint
        self._auth = auth if auth is not None else (f"the key in {key_env}" if key_env else None)

    def __repr__(self) -> str:
        return f"ApiClient({self.label!r}, {self.url!r})"

    def run(self, requests: Sequence[Request]) -> list[Answer]:
        """Answers for (payload, parser) requests, in order; BackendError keeps those that came.

        On a failure past the retry budget no new request starts, those in flight finish,
        and the BackendError's `partial` holds every answer that arrived. A failure no
        retry can fix (bad key, unknown model) cancels the requests in flight at once.
        """
        if not requests:
            return []
        results: list[Answer | None] = [None] * len(requests)

        def keep(i: int, answer: Answer) -> None:
            results[i] = answer

        outcome = _run_coroutine(self._send_all(list(requests), keep))
        arrived = [(i, a) for i, a in enumerate(results) if a is not None]
        self._raise_for(outcome, len(requests), arrived)
        return results  # type: ignore[return-value]

    def stream(self, requests: Sequence[Request]) -> Iterator[list[tuple[int, Answer]]]:
        """Answers as they arrive: lists of (position in `requests`, answer).

        Exactly `concurrency` requests stay in flight until the list runs out: a new one
        starts as soon as one finishes, so a slow reply holds up one slot, not the rest.
        Each list holds what arrived since the previous one. Past the retry budget the
        requests in flight finish and BackendError's `partial` holds the answers not yet
        yielded. If the consumer stops early (an error, Ctrl-C), requests in flight are
        cancelled; answers that had already arrived are yielded once more before the
        exception goes on, so the caller can save them.
        """
        if not requests:
            return
        arrivals: queue.Queue = queue.Queue()
        stop = _Stop()
        thread = threading.Thread(
            target=self._feed, args=(list(requests), arrivals, stop), daemon=True
        )
        thread.start()
        finished = False
        try:
            while not finished:
                got, finished, error = _drain(arrivals)
                exc = None if error is None else self._error_for(error, len(requests), got)
                if isinstance(exc, BackendError):
                    raise exc  # its `partial` holds `got`
                if got:
                    yield got
                if exc is not None:
                    raise exc
        except BaseException as exc:
            if isinstance(exc, GeneratorExit):
                stop.cancel()
                raise
            stop.cancel()
            leftover, _, _ = _drain(arrivals, block=False)
            if leftover and not isinstance(exc, BackendError):
                yield leftover  # saved by the caller; the next step raises `exc` again
            raise
        finally:
            stop.cancel()
            thread.join(10)

    def _feed(self, requests: list[Request], arrivals: queue.Queue, stop: _Stop) -> None:
        """The stream's event loop (in its own thread): answers and the ending go in `arrivals`."""

        async def main() -> _Outcome:
            stop.loop, stop.task = asyncio.get_running_loop(), asyncio.current_task()
            stop.ready.set()
            return await self._send_all(requests, lambda i, a: arrivals.put((i, a)))

        try:
            outcome: object = asyncio.run(main())
        except asyncio.CancelledError:
            outcome = _Outcome()
        except BaseException as exc:  # a bug: hand it to the consumer to raise
            outcome = exc
        finally:
            stop.ready.set()
        arrivals.put((_DONE, outcome))

    def _error_for(
        self, outcome: object, n: int, partial: list[tuple[int, Answer]]
    ) -> BaseException | None:
        if isinstance(outcome, BaseException):
            return outcome
        try:
            self._raise_for(outcome, n, partial)  # type: ignore[arg-type]
        except BackendError as exc:
            return exc
        return None

    def _raise_for(self, outcome: _Outcome, n: int, partial: list[tuple[int, Answer]]) -> None:
        if outcome.fatal:
            raise BackendError(f"{self.label}: {outcome.fatal}", partial=partial)
        if outcome.failure:
            raise BackendError(
                f"{self.label}: {outcome.failure}; {outcome.arrived} of the {n} answers asked "
                "for arrived and were kept; rerun the same command to resume",
                partial=partial,
            )

    async def _send_all(self, requests: list[Request], on_answer: Arrival) -> _Outcome:
        """Send every request, `concurrency` at a time; each answer goes to `on_answer`."""
        import aiohttp  # lazily, like every backend dependency

        n = len(requests)
        outcome = _Outcome()
        pending = iter(range(n))
        bucket = TokenBucket(self.options.rate_limit) if self.options.rate_limit else None
        connector = aiohttp.TCPConnector(limit=self.options.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.options.timeout)
        proxy = env_proxy(self.url)
        # trust_env=False: aiohttp would add ~/.netrc credentials to our own Authorization
        # header and refuse the request; the proxy from the environment is passed instead.
        async with aiohttp.ClientSession(
            headers=self._headers, connector=connector, timeout=timeout, trust_env=False
        ) as client:

            async def worker() -> None:
                for i in pending:  # one shared iterator: each index goes to one worker
                    if outcome.failure or outcome.fatal:
                        return
                    try:
                        answer = await self._one(client, *requests[i], bucket, proxy)
                    except _Exhausted as exc:
                        outcome.failure = outcome.failure or (
                            f"gave up after {exc.attempts} attempt"
                            f"{'s' if exc.attempts > 1 else ''}: {exc.what}"
                        )
                        return  # the other workers finish what they hold, then stop
                    except FatalError as exc:
                        outcome.fatal = outcome.fatal or str(exc)
                        for task in tasks:
                            if task is not asyncio.current_task():
                                task.cancel()
                        return
                    outcome.arrived += 1
                    on_answer(i, answer)

            tasks = [asyncio.create_task(worker()) for _ in range(min(self.options.concurrency, n))]
            ended = await asyncio.gather(*tasks, return_exceptions=True)
        bugs = [e for e in ended if isinstance(e, Exception)]
        if bugs and not outcome.fatal:
            raise bugs[0]
        return outcome

    async def _one(
        self,
        client: aiohttp.ClientSession,
        payload: dict,
        parse: Parser,
        bucket: TokenBucket | None,
        proxy: str | None = None,
    ) -> Answer:
        attempts = self.options.max_retries + 1
        for attempt in range(attempts):
            if bucket is not None:
                await bucket.acquire()
            try:
                return await self._attempt(client, payload, parse, proxy)
            except RetryableError as exc:
                if attempt + 1 == attempts:
                    raise _Exhausted(attempts, exc.what) from None
                await asyncio.sleep(backoff_delay(attempt, self.options, exc.retry_after))
        raise AssertionError("unreachable")

    async def _attempt(
        self, client: aiohttp.ClientSession, payload: dict, parse: Parser, proxy: str | None
    ) -> Answer:
        """One request; RetryableError or FatalError when it fails."""
        import aiohttp

        url = self.url
        try:
            async with client.post(url, json=payload, proxy=proxy) as response:
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
        url = self.url
        if status == 401 and self._auth:
            return f"the server rejected {self._auth} (HTTP 401); check it"
        if status == 401:
            return (
                f"the server asks for an API key (HTTP 401) and none was sent to {url}: "
                "name the variable that holds it with --api-key-env NAME"
            )
        if status == 403:
            what = self._auth or "the key"
            return f"access denied (HTTP 403); check that {what} may use this model"
        detail = _error_detail(body, self._secrets)
        if status == 404:
            return (
                f"model or endpoint not found at {url} (HTTP 404): {detail}" + self._not_found_hint
            )
        return f"the server rejected the request (HTTP {status}): {detail}"


class RequestPerQuery:
    """`answer` and `answer_stream` for backends that send one request per query.

    The backend has `name`, `base_url`, an `ApiClient` as `_client` and `_request(query)`.
    """

    name: str
    base_url: str
    _client: ApiClient

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, base_url={self.base_url!r})"

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        """Answer a batch concurrently; BackendError (with partial answers) past retries."""
        return self._client.run([self._request(q) for q in queries])

    def answer_stream(self, queries: Sequence[Query]) -> Iterator[list[tuple[int, Answer]]]:
        """(position, answer) lists as answers arrive, `concurrency` requests in flight."""
        return self._client.stream([self._request(q) for q in queries])

    def _request(self, query: Query):
        raise NotImplementedError


def drain_queue(arrivals: queue.Queue, block: bool = True) -> list:
    """Everything waiting in `arrivals`, after waiting for a first item when `block`.

    Waits in short steps so that Ctrl-C reaches the consuming thread at once.
    """
    got: list = []
    while block and not got:
        try:
            got.append(arrivals.get(timeout=0.1))
        except queue.Empty:
            continue
    while True:
        try:
            got.append(arrivals.get_nowait())
        except queue.Empty:
            return got


def _drain(
    arrivals: queue.Queue, block: bool = True
) -> tuple[list[tuple[int, Answer]], bool, object | None]:
    """(answers waiting, whether the stream ended, its error) after waiting for the first."""
    got: list[tuple[int, Answer]] = drain_queue(arrivals, block)
    for n, (i, item) in enumerate(got):
        if i is _DONE:
            error = item if isinstance(item, BaseException) or _failed(item) else None
            return got[:n] + got[n + 1 :], True, error
    return got, False, None


def _failed(outcome: object) -> bool:
    return isinstance(outcome, _Outcome) and bool(outcome.failure or outcome.fatal)


def restore_credentials(saved: str | None, given: str | None) -> str | None:
    """The base URL to resume with: a saved one lost its password, so take it again.

    `saved` comes from run_config.json (redacted); `given` is `--base-url` on the resume
    command, which must be the same URL once redacted.
    """
    if not saved or url_credentials(saved) is None:
        return saved
    if given and redact_url(given.strip().rstrip("/")) == saved.rstrip("/"):
        return given
    raise ValuescopeError(
        f"--resume: the run's base URL {saved} carried credentials, which are never saved; "
        "pass the same --base-url with them again"
    )

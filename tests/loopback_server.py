"""A real OpenAI-compatible (and Anthropic Messages) HTTP server on 127.0.0.1 for tests.

It answers as a synthetic Thurstonian agent: it reads the "Option A: ..." / "Option B: ..."
lines of the last user message (any label of one or two characters, and "A) ..." or
"Report A: ..." lines too), looks both utilities up in `ThurstoneAgent(seed)`, and
returns log-probabilities for the labels (split over "A" and " A", plus a few other
tokens) or a sampled label. Faults can be injected: a fraction of requests, a scripted sequence,
or everything after the N-th request fails with 429 (+ Retry-After), 5xx, a dropped
connection, a reply slower than the client's timeout, a malformed JSON body, or a 4xx.
It counts requests per prompt, records headers, arrival times and the most requests in
flight, so tests can check what a client did. `slow_every = N` makes every N-th request
a slow success (it waits `slow_latency` seconds, then answers normally).

`reasoning_rules = True` makes it hold reasoning model names (o1, o3-mini, gpt-5, ...) to
OpenAI's rules for them: a request with `max_tokens`, a temperature other than 1, or
`logprobs` gets HTTP 400 with OpenAI's error text; an accepted one (`max_completion_tokens`)
gets a few lines of reasoning ending in "Answer: X". Azure OpenAI paths
(`/openai/deployments/<name>/chat/completions`, `/openai/v1/chat/completions`) answer like
`/v1/chat/completions`; `Stats.paths` records each request's path and query string.

Run it alone with `python tests/loopback_server.py --port 8000 --latency 0.02`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from aiohttp import web

from valuescope.common.seeds import stable_seed
from valuescope.models.sim import ThurstoneAgent

OPTION_RE = re.compile(r"^(?:(?:Option|Report) )?([A-Za-z0-9]{1,2})[:)] (.+)$", re.MULTILINE)
RETRYABLE_KINDS = ("429", "500", "drop", "slow", "malformed")
ALL_KINDS = RETRYABLE_KINDS + ("503", "400", "401", "403", "404")
# Next-token distribution around the answer: 90% on the answer tokens, split 3:1 between
# the bare and the space-prefixed form, and 10% on other tokens.
ANSWER_MASS = 0.9
OTHER_TOKENS = {"I": 0.05, "Option": 0.03, "The": 0.02}
REASONING_NAME = re.compile(r"^(?:o[1-9](?:$|-)|gpt-5)")


@dataclass
class Faults:
    """Which requests fail, and how.

    A request takes the next entry of `script` if any ("ok" for none); else, once more
    than `fail_after` requests have arrived, `after_kind`; else with probability `rate`
    a kind drawn from `kinds`.
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = RETRYABLE_KINDS
    script: list[str] = field(default_factory=list)
    fail_after: int | None = None
    after_kind: str = "503"
    retry_after: float | None = 0.2
    slow_seconds: float = 5.0
    seed: int = 0


@dataclass
class Stats:
    """What the server saw. Prompt keys are (last user message, mode, seed)."""

    requests: int = 0
    received: Counter = field(default_factory=Counter)
    answered: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    headers: list[dict[str, str]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    paths: list[str] = field(default_factory=list)

    @property
    def n_answered(self) -> int:
        return sum(self.answered.values())


def prompt_key(user_text: str, mode: str, seed: int | None = None) -> tuple:
    """How the server names a prompt in `Stats.received` / `Stats.answered`."""
    return (user_text, mode, seed if mode == "sample" else None)


class LoopbackServer:
    """The server, run in a background thread with its own event loop.

    Parameters
    ----------
    seed : int, default=0
        Seed of the Thurstonian agent that answers.
    latency : float, default=0.0
        Seconds each request waits before its reply.
    logprobs : bool, default=True
        False: ignore `logprobs` requests, like a server without them.
    """

    def __init__(self, seed: int = 0, latency: float = 0.0, logprobs: bool = True) -> None:
        self.agent = ThurstoneAgent("thurstone", {}, seed=seed)
        self.seed = seed
        self.latency = latency
        self.logprobs = logprobs
        self.faults = Faults()
        self.stats = Stats()
        self.record_headers = True
        self.slow_every: int | None = None  # every N-th request answers late (but answers)
        self.slow_latency = 2.0
        self.reasoning_rules = False  # reasoning model names follow OpenAI's rules for them
        self._rng = random.Random(0)
        self._fault_rng = random.Random(0)
        self._utility = lru_cache(maxsize=None)(self.agent._utility)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (`.../v1`)."""
        return self.url + "/v1"

    def start(self, port: int = 0) -> LoopbackServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(sock, ready), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("loopback server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self, faults: Faults | None = None, latency: float | None = None) -> None:
        """Fresh statistics and faults (none unless given)."""
        self.faults = faults or Faults()
        self._fault_rng = random.Random(self.faults.seed)
        if latency is not None:
            self.latency = latency
        self.stats = Stats()

    def truth(self, texts):
        """The agent's hidden utilities for these outcome texts (`id, mean, sigma`)."""
        return self.agent.truth(texts)

    def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._chat)
        app.router.add_post("/openai/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock, backlog=1024).start())
        ready.set()
        try:
            loop.run_forever()
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(runner.cleanup())
            loop.close()

    # -- handlers ----------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "test-model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, self._chat_reply)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, self._messages_reply)

    async def _handle(self, request: web.Request, reply) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        number = stats.requests
        stats.arrivals.append(time.monotonic())
        stats.paths.append(request.path_qs)
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        if self.record_headers:
            stats.headers.append(dict(request.headers))
        try:
            body = json.loads(await request.read())
            key, payload = reply(body)
            stats.received[key] += 1
            fault = self._pick_fault(number)
            if self.latency:
                await asyncio.sleep(self.latency)
            if self.slow_every and number % self.slow_every == 0:
                await asyncio.sleep(self.slow_latency)
            if fault != "ok":
                stats.faults[fault] += 1
                return await self._fault(request, fault)
            stats.answered[key] += 1
            return web.json_response(payload)
        except Rejected as exc:  # OpenAI's own 400 for a parameter the model does not take
            error = {"message": exc.message, "type": "invalid_request_error"}
            return web.json_response(
                {"error": {**error, "param": exc.param, "code": exc.code}}, status=400
            )
        except (ValueError, KeyError, TypeError, StopIteration) as exc:
            return _error(400, f"bad request: {exc!r}")
        except ConnectionError:  # the client went away (e.g. it timed out)
            return web.Response(status=499)
        finally:
            stats.in_flight -= 1

    def _pick_fault(self, number: int) -> str:
        faults = self.faults
        if faults.script:
            return faults.script.pop(0)
        if faults.fail_after is not None and number > faults.fail_after:
            return faults.after_kind
        if faults.rate and self._fault_rng.random() < faults.rate:
            return self._fault_rng.choice(faults.kinds)
        return "ok"

    async def _fault(self, request: web.Request, kind: str) -> web.StreamResponse:
        if kind == "drop":
            request.transport.abort()
            return web.Response(status=500)
        if kind == "slow":
            await asyncio.sleep(self.faults.slow_seconds)
            return _error(504, "too slow")
        if kind == "malformed":
            return web.Response(
                status=200, body=b'{"id": "x", "choices": [{"mess', content_type="application/json"
            )
        headers = {}
        if kind == "429" and self.faults.retry_after is not None:
            headers["Retry-After"] = f"{self.faults.retry_after:g}"
        message = f"injected {kind}"
        if kind == "400":  # like servers that echo what they got: clients must not repeat it
            auth = request.headers.get("Authorization") or request.headers.get("x-api-key")
            message += f"; you sent {auth}"
        return _error(int(kind), message, headers)

    # -- the agent ---------------------------------------------------------------------
    def _options(self, user_text: str) -> tuple[float, tuple[str, str]]:
        """(P(first option), (first label, second label)) for a forced-choice prompt."""
        found = OPTION_RE.findall(user_text)
        if len(found) != 2 or found[0][0] == found[1][0]:
            raise ValueError("the last user message has no 'Option A:' / 'Option B:' lines")
        (label_a, text_a), (label_b, text_b) = found
        mu_a, s_a = self._utility(text_a.strip())
        mu_b, s_b = self._utility(text_b.strip())
        z = (mu_a - mu_b) / math.hypot(s_a, s_b)
        return 0.5 * (1 + math.erf(z / math.sqrt(2))), (label_a, label_b)

    def _sample(self, p: float, labels: tuple[str, str], user: str, seed: int | None) -> str:
        rng = self._rng if seed is None else random.Random(stable_seed(self.seed, user, seed))
        return labels[0] if rng.random() < p else labels[1]

    def _chat_reply(self, body: dict) -> tuple[tuple, dict]:
        messages = body["messages"]
        user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        p, labels = self._options(user)
        if self.reasoning_rules and REASONING_NAME.match(str(body.get("model", ""))):
            return self._reasoning_reply(body, messages, user, p, labels)
        want_logprobs = bool(body.get("logprobs")) and self.logprobs
        mode = "logprob" if body.get("logprobs") else "sample"
        seed = body.get("seed")
        usage = {
            "prompt_tokens": sum(len(m["content"]) for m in messages) // 4,
            "completion_tokens": 1,
        }
        usage["total_tokens"] = usage["prompt_tokens"] + 1
        if want_logprobs:
            tops = _top_logprobs(p, labels, int(body.get("top_logprobs") or 0))
            text = max(tops, key=tops.get)
            logprobs = {
                "content": [
                    {
                        "token": text,
                        "logprob": tops[text],
                        "bytes": list(text.encode()),
                        "top_logprobs": [
                            {"token": t, "logprob": lp, "bytes": list(t.encode())}
                            for t, lp in tops.items()
                        ],
                    }
                ]
            }
        else:
            text, logprobs = self._sample(p, labels, user, seed), None
        payload = {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": logprobs,
                    "finish_reason": "length" if want_logprobs else "stop",
                }
            ],
            "usage": usage,
        }
        return prompt_key(user, mode, seed), payload

    def _reasoning_reply(
        self, body: dict, messages: list, user: str, p: float, labels: tuple[str, str]
    ) -> tuple[tuple, dict]:
        check_reasoning_request(body)
        seed = body.get("seed")
        label = self._sample(p, labels, user, seed)
        text = f"Weighing both options.\nThe first seems {p:.2f} likely to be preferred.\n"
        text += f"Answer: {label}"
        prompt_tokens = sum(len(m["content"]) for m in messages) // 4
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 40,
            "total_tokens": prompt_tokens + 40,
            "completion_tokens_details": {"reasoning_tokens": 24},
        }
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
        payload = {
            "id": "chatcmpl-loopback-reasoning",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [choice],
            "usage": usage,
        }
        return prompt_key(user, "sample", seed), payload

    def _messages_reply(self, body: dict) -> tuple[tuple, dict]:
        messages = body["messages"]
        user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        p, labels = self._options(user)
        text = self._sample(p, labels, user, None)
        payload = {
            "id": "msg_loopback",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "test-model"),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": (len(body.get("system", "")) + len(user)) // 4,
                "output_tokens": 1,
            },
        }
        return prompt_key(user, "sample", None), payload


class Rejected(Exception):
    """A request OpenAI would refuse with HTTP 400 (its message, parameter and code)."""

    def __init__(self, message: str, param: str, code: str) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def check_reasoning_request(body: dict) -> None:
    """Rejected, in OpenAI's words, for what a reasoning model does not take."""
    if "max_tokens" in body:
        raise Rejected(
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        )
    if body.get("temperature", 1) != 1:
        raise Rejected(
            f"Unsupported value: 'temperature' does not support {body['temperature']} with "
            "this model. Only the default (1) value is supported.",
            "temperature",
            "unsupported_value",
        )
    if body.get("logprobs") or "top_logprobs" in body:
        raise Rejected(
            "Unsupported parameter: 'logprobs' is not supported with this model.",
            "logprobs",
            "unsupported_parameter",
        )
    if not body.get("max_completion_tokens"):
        raise Rejected(
            "Missing max_completion_tokens (the loopback server asks for it)",
            "max_completion_tokens",
            "missing_parameter",
        )


def _top_logprobs(p: float, labels: tuple[str, str], n: int) -> dict[str, float]:
    """The n most likely next tokens and their log-probabilities (at least the top one)."""
    p = min(max(p, 1e-12), 1 - 1e-12)
    a, b = labels
    probs = {
        a: 0.75 * ANSWER_MASS * p,
        " " + a: 0.25 * ANSWER_MASS * p,
        b: 0.75 * ANSWER_MASS * (1 - p),
        " " + b: 0.25 * ANSWER_MASS * (1 - p),
        **OTHER_TOKENS,
    }
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])[: max(1, min(n, 20))]
    return {t: math.log(q) for t, q in ranked}


def _error(status: int, message: str, headers: dict | None = None) -> web.Response:
    body = {"type": "error", "error": {"message": message, "type": "loopback_error"}}
    return web.json_response(body, status=status, headers=headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--slow-every", type=int, default=0, help="every N-th reply is slow")
    parser.add_argument("--slow-latency", type=float, default=2.0, help="seconds of a slow reply")
    args = parser.parse_args()
    server = LoopbackServer(seed=args.seed, latency=args.latency).start(args.port)
    server.record_headers = False
    server.slow_every = args.slow_every or None
    server.slow_latency = args.slow_latency
    server.reset(Faults(rate=args.fault_rate))
    print(f"serving on {server.base_url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()

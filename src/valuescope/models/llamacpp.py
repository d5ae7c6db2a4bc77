"""GGUF models through llama.cpp (`llamacpp/<file.gguf>?n_ctx=..&threads=..&batch=..`).

Prompts are rendered with the GGUF's own chat template. In logprob mode the backend
evaluates the prompt (plus an optional prefilled start of the assistant turn) and reads
the next-token distribution; in sample mode it samples with plain temperature from a
seed derived from the query and `?seed=`; the samples of one prompt in a batch share
its evaluation (each text is what asking it alone gives). Consecutive prompts share
their longest common prefix in the KV cache, and each batch is asked in token order so
that neighbours share as much as possible.

Tokens are evaluated in chunks aligned to multiples of `EVAL_CHUNK` positions. llama.cpp's
CPU kernels give slightly different results for different batch splits (up to 0.3 in a
logit for Qwen2.5 Q4_K_M), so a fixed split makes every answer a function of its prompt
alone, whatever was in the cache before.

Logprob prompts are evaluated several at a time (`batch`, default `DEFAULT_BATCH`): one
llama.cpp sequence per prompt in one `llama_decode` call, the chunks that sorted
neighbours share computed once for all of them (`batched.plan`). Attention sums its
cells in blocks of 16 in cell order, so a sequence's answer matches its single-prompt
evaluation only when each of its tokens sits in a cell whose index is its position
modulo 16; the plan pads each prompt's last, partial chunk with filler tokens of a
sequence nobody reads, so that every chunk starts a block of 16 cells, and pads the rows
to groups the matrix kernels round alike. `batch=1` runs the same plan for one prompt.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import numpy as np
from pydantic import Field

from valuescope.common.seeds import stable_seed
from valuescope.errors import MissingDependencyError, ValuescopeError
from valuescope.models import batched
from valuescope.models.base import Answer, Query
from valuescope.models.labels import space_lead
from valuescope.models.params import Flag, MaybeWhole, ModelParams, Whole, validate_params

LLAMA_CPP_VERSION = "0.3.36"
LLAMA_CPP_PIP = f'pip install "llama-cpp-python[server]=={LLAMA_CPP_VERSION}"'
# Starts the assistant turn so that the next token is the letter (measured in docs/embedded.md).
DEFAULT_PREFILL = "I would prefer Option"
EVAL_CHUNK = batched.CHUNK
DEFAULT_BATCH = 32  # prompts per llama.cpp call (measured in docs/embedded.md)
MAX_BATCH_TOKENS = 1024  # tokens per llama.cpp call (one micro-batch, see _context)


_MODEL_PARAMS_LOCK = threading.Lock()


@contextmanager
def _model_params(llama_cpp, **fields: object) -> Iterator[None]:
    """Load models with these `llama_model_params` fields set.

    `Llama()` takes its model parameters from `llama_model_default_params()` and has no
    keyword for the others (such as `use_extra_bufts`), so the defaults are wrapped while
    a model loads.
    """
    module = llama_cpp.llama.llama_cpp
    with _MODEL_PARAMS_LOCK:  # two threads loading models must not see each other's fields
        default = module.llama_model_default_params

        def params():
            out = default()
            for key, value in fields.items():
                setattr(out, key, value)
            return out

        module.llama_model_default_params = params
        try:
            yield
        finally:
            module.llama_model_default_params = default


def import_llama_cpp():
    """The `llama_cpp` module, or a one-line error with the pip command."""
    try:
        import llama_cpp
    except ImportError:
        raise MissingDependencyError(
            "GGUF models need llama-cpp-python, built from source: bash scripts/install-models.sh "
            f"(the lean build, 2-3 min on 2 cores; or the full build: {LLAMA_CPP_PIP})"
        ) from None
    return llama_cpp


def _cpu_times(cpus: set[int]) -> tuple[float, float] | None:
    """(busy, total) jiffies summed over these CPUs from /proc/stat, or None off Linux."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = total = 0.0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        values = [float(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
        total += sum(values)
        busy += sum(values) - values[3] - values[4]
    return (busy, total) if total else None


def busy_cores(cpus: set[int], window: float = 0.25) -> float | None:
    """Cores of `cpus` that other processes keep busy now, sampled over `window` seconds.

    The 1-minute load average lags a minute behind: just after a compile it still reads
    about 1.3 on an idle 2-core machine and would halve the threads. /proc/stat read twice
    gives the current use (psutil does the same; it is not worth a compiled dependency
    for one number). This process's own CPU time in the window is not counted. None where
    /proc/stat cannot be read.
    """
    start, own_start, clock = _cpu_times(cpus), os.times(), time.monotonic()
    if start is None:
        return None
    time.sleep(window)
    end, own_end, elapsed = _cpu_times(cpus), os.times(), time.monotonic() - clock
    if end is None or end[1] <= start[1]:
        return None
    share = (end[0] - start[0]) / (end[1] - start[1])
    own = (own_end.user + own_end.system - own_start.user - own_start.system) / elapsed
    return min(float(len(cpus)), max(0.0, share * len(cpus) - own))


def default_threads() -> int:
    """The cores this process may use less those busy now, at least 1.

    llama.cpp threads spin while they wait for each other, so a thread without a free
    core slows every step down (several times over on a busy 2-core machine). "Busy now"
    is `busy_cores()`, or the 1-minute load average where /proc/stat is not there.
    """
    cpus = os.sched_getaffinity(0)
    busy = busy_cores(cpus)
    if busy is None:
        busy = os.getloadavg()[0]
    return max(1, min(len(cpus), int(len(cpus) - busy + 0.5)))


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two token arrays."""
    m = min(len(a), len(b))
    diff = np.flatnonzero(a[:m] != b[:m])
    return int(diff[0]) if len(diff) else m


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits, computed in float64."""
    z = logits.astype(np.float64)
    z -= z.max()
    p = np.exp(z)
    return p / p.sum()


class LlamaCppBackend:
    """A GGUF chat model on CPU; see the module docstring for how it answers.

    Parameters
    ----------
    path : Path
        The GGUF file.
    prefill : str, default=DEFAULT_PREFILL
        Text that starts the assistant turn ("" for none); part of `name`.
    n_ctx : int, default=2048
        Context length in tokens (prompt plus generated answer).
    threads : int or None, default=None
        CPU threads; None uses `default_threads()`.
    seed : int, default=0
        Mixed into every sampling seed (sample answers are drawn from (seed, query), so
        they reproduce); part of `name` when not 0.
    reuse : bool, default=True
        Keep the shared prompt prefix in the KV cache between queries (False evaluates
        every prompt from scratch, for benchmarks).
    batch : int, default=DEFAULT_BATCH
        Logprob prompts evaluated together in one llama.cpp call (1: one at a time; the
        answers are the same either way). Needs `reuse`.
    repack : bool, default=False
        Let llama.cpp repack the weights for its CPU matrix kernels (its own default).
        Off here: measured on Qwen2.5 Q4_K_M, repacked kernels round a row differently
        with the number of rows in a call (answers moved by up to 0.035 with how a
        prompt is batched) and were slower on this machine's CPU (docs/benchmarks.md).
        Part of `name` (`&repack=0` or `1`): the two give different answers.
    label : str or None, default=None
        Model part of `name` (default: `llamacpp/<file name>`).
    """

    supports_logprobs = True

    def __init__(
        self,
        path: str | Path,
        *,
        prefill: str = DEFAULT_PREFILL,
        n_ctx: int = 2048,
        threads: int | None = None,
        seed: int = 0,
        reuse: bool = True,
        batch: int = DEFAULT_BATCH,
        repack: bool = False,
        label: str | None = None,
    ) -> None:
        llama_cpp = import_llama_cpp()
        path = Path(path).expanduser()
        if not path.is_file():
            raise ValuescopeError(f"llamacpp: no GGUF file at {path}")
        self.path, self.prefill, self.seed, self.reuse = path, prefill, seed, reuse
        self.batch = max(1, batch) if reuse else 1
        self.threads = threads or default_threads()
        self.tokens_evaluated = 0  # prompt tokens actually run through the model
        self._prompt_in_cache = 0  # leading cache tokens evaluated in aligned chunks
        try:
            with _model_params(llama_cpp, use_extra_bufts=repack):
                self.llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_batch=min(512, n_ctx),
                    n_threads=self.threads,
                    n_threads_batch=self.threads,
                    verbose=False,
                )
        except (ValueError, RuntimeError) as exc:
            raise ValuescopeError(f"llamacpp: cannot load {path}: {exc}") from None
        self._lib = llama_cpp
        self._multi_sequence_context(llama_cpp, n_ctx)
        self._format = self._chat_formatter(llama_cpp)
        self.n_vocab = self.llm.n_vocab()
        self._label_ids: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        self._lead: dict[tuple[str, str], list[int]] = {}
        self.answer_ids = dict(zip("AB", self.label_token_ids(("A", "B"))))
        label = label or f"llamacpp/{path.name}"
        extra = (f"&seed={seed}" if seed else "") + f"&repack={int(repack)}"
        self.name = f"{label}?prefill={quote(prefill)}{extra}#bytes={path.stat().st_size}"

    def _multi_sequence_context(self, llama_cpp, n_ctx: int) -> None:
        """Swap the context for one with `batch` + 1 sequences sharing one KV cache.

        One micro-batch per call, so that the rows are grouped as the plan padded them.
        """
        from llama_cpp import _internals

        params = self.llm.context_params
        params.n_seq_max = self.batch + 1  # the last one holds the filler tokens
        params.kv_unified = True  # a shared prefix is one set of cells, not copies
        self.max_batch_tokens = min(n_ctx, MAX_BATCH_TOKENS)
        params.n_batch = params.n_ubatch = self.max_batch_tokens
        try:
            ctx = _internals.LlamaContext(model=self.llm._model, params=params, verbose=False)
        except ValueError as exc:
            msg = f"llamacpp: cannot make a {self.batch}-sequence context: {exc}"
            raise ValuescopeError(msg) from None
        self.llm._ctx.close()
        self.llm._ctx = ctx
        self._batch = llama_cpp.llama_batch_init(self.max_batch_tokens, 0, self.batch + 1)
        self._memory = llama_cpp.llama_get_memory(ctx.ctx)

    def __del__(self) -> None:
        batch = getattr(self, "_batch", None)
        if batch is not None:
            self._lib.llama_batch_free(batch)
            self._batch = None

    def _chat_formatter(self, llama_cpp):
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValuescopeError(f"llamacpp: {self.path.name} carries no chat template")
        model = self.llm._model
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        return llama_cpp.llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
        )

    def _text_tokens(self, text: str) -> list[int]:
        """Tokens of plain text (no BOS, special tokens not parsed)."""
        return self.llm.tokenize(text.encode(), add_bos=False, special=False)

    def label_token_ids(self, labels: tuple[str, str]) -> tuple[list[int], list[int]]:
        """Token ids that spell each answer label alone (" A" and/or "A"), checked."""
        if labels not in self._label_ids:
            ids = []
            for label in labels:
                found = []
                for text in (f" {label}", label):
                    toks = self._text_tokens(text)
                    if len(toks) == 1 and self.llm.detokenize(toks).decode() == text:
                        found.append(toks[0])
                if not found:
                    raise ValuescopeError(
                        f"llamacpp: {self.path.name} has no single token for the label {label!r}"
                    )
                ids.append(found)
            if set(ids[0]) & set(ids[1]):
                raise ValuescopeError(f"llamacpp: labels {labels} share a token")
            self._label_ids[labels] = (ids[0], ids[1])
        return self._label_ids[labels]

    def label_lead(self, labels: tuple[str, str]) -> list[int]:
        """Tokens put after the prefill so that a logprob answer is the label's token
        (`labels.space_lead`: the space before a digit label Qwen spells apart)."""
        if labels not in self._lead:
            self._lead[labels] = space_lead(self._text_tokens, self.prefill, labels)
        return self._lead[labels]

    def render(self, messages: Sequence[tuple[str, str]], prefill: str | None = None) -> list[int]:
        """Prompt tokens: the chat template with a generation prompt, then the prefill.

        `prefill` replaces the backend's own prefill (free-text generation passes "").

        A template that rejects system messages gets the system text folded into the
        first user turn.
        """
        from jinja2 import TemplateError

        chat = [{"role": role, "content": content} for role, content in messages]
        try:
            prompt = self._format(messages=chat).prompt
        except (ValueError, TemplateError) as exc:
            if len(chat) < 2 or chat[0]["role"] != "system":
                msg = f"llamacpp: the chat template of {self.path.name} fails: {exc}"
                raise ValuescopeError(msg) from None
            first = {"role": "user", "content": f"{chat[0]['content']}\n\n{chat[1]['content']}"}
            prompt = self._format(messages=[first, *chat[2:]]).prompt
        prefill = self.prefill if prefill is None else prefill
        return self.llm.tokenize((prompt + prefill).encode(), add_bos=False, special=True)

    def evaluate(self, tokens: Sequence[int]) -> int:
        """Put `tokens` in the context, evaluating only what differs; returns tokens evaluated."""
        self._check_fits(tokens)
        # evaluate at least one token, to get logits
        return self._fill(tokens, len(tokens) - 1 if self.reuse else 0)

    def _fill(self, tokens: Sequence[int], most: int) -> int:
        """Make the cache hold `tokens`, keeping at most `most` cached ones; tokens evaluated."""
        llm = self.llm
        cached = llm.input_ids[: min(self._prompt_in_cache, llm.n_tokens)]
        same = common_prefix(np.asarray(tokens), cached)
        keep = min(same, most) // EVAL_CHUNK * EVAL_CHUNK  # whole chunks only
        if keep and not llm._ctx.kv_cache_seq_rm(0, keep, -1):  # e.g. recurrent models
            keep = 0
        if keep == 0:
            llm.reset()
            llm._ctx.kv_cache_seq_rm(0, 0, -1)
        llm.n_tokens = keep
        for start in range(keep, len(tokens), EVAL_CHUNK):
            llm.eval(list(tokens[start : start + EVAL_CHUNK]))
        self._prompt_in_cache = len(tokens)
        self.tokens_evaluated += len(tokens) - keep
        return len(tokens) - keep

    def _check_fits(self, tokens: Sequence[int]) -> None:
        if len(tokens) >= self.llm.n_ctx():
            raise ValuescopeError(
                f"llamacpp: a prompt of {len(tokens)} tokens does not fit "
                f"n_ctx={self.llm.n_ctx()}; raise it with ?n_ctx="
            )

    def clear(self) -> None:
        """Forget the cached context (the next prompt is evaluated from its first token)."""
        self.llm.reset()
        self._prompt_in_cache = 0

    def next_token_logits(self) -> np.ndarray:
        """Logits of the token after the last one evaluated, shape (n_vocab,)."""
        ptr = self._lib.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        prompts = [
            self.render(q.messages) + (self.label_lead(q.labels) if q.mode == "logprob" else [])
            for q in queries
        ]
        order = sorted(range(len(queries)), key=prompts.__getitem__) if self.reuse else None
        answers: list[Answer | None] = [None] * len(queries)
        group: list[int] = []
        samples: list[int] = []  # sample queries of one prompt (its evaluation is shared)
        for i in order or range(len(queries)):
            if queries[i].mode == "sample":
                if samples and prompts[samples[0]] != prompts[i]:
                    self._sample_all(queries, prompts, samples, answers)
                    samples = []
                samples.append(i)
                continue
            group.append(i)
            if len(group) == self.batch:
                self._logprob_group(queries, prompts, group, answers)
                group = []
        if group:
            self._logprob_group(queries, prompts, group, answers)
        if samples:
            self._sample_all(queries, prompts, samples, answers)
        return answers  # type: ignore[return-value]

    def _logprob_group(
        self,
        queries: Sequence[Query],
        prompts: list[list[int]],
        group: list[int],
        answers: list[Answer | None],
    ) -> None:
        """Logprob answers for `group` (indices, sorted prompts) from one llama.cpp call.

        A group too big for one call is halved. With `reuse` off the prompts start from
        an empty cache.
        """
        toks = [prompts[i] for i in group]
        for i in group:
            self._check_fits(prompts[i])
        prefix = batched.common_cached(toks) if self.reuse else 0
        plan = batched.plan(toks, prefix, filler_token=toks[0][0])
        too_big = len(plan.tokens) > self.max_batch_tokens
        if too_big and len(group) == 1:  # a long prompt alone: all but its last chunk first
            if not self.reuse:
                self.clear()
            prefix = batched.common_cached(toks)
            plan = batched.plan(toks, prefix, filler_token=toks[0][0])
        elif len(group) > 1 and (too_big or prefix + len(plan.tokens) >= self.llm.n_ctx()):
            half = len(group) // 2
            self._logprob_group(queries, prompts, group[:half], answers)
            self._logprob_group(queries, prompts, group[half:], answers)
            return
        logits = self._decode_plan(toks[0][:prefix], plan, len(group))
        for i, row in zip(group, logits):
            answers[i] = self._logprob_answer(queries[i], row, len(prompts[i]))

    def _decode_plan(self, prefix: list[int], plan: batched.Plan, n: int) -> list[np.ndarray]:
        """Run `plan` for `n` sequences after `prefix` (cached as sequence 0); logits rows."""
        lib, mem, batch = self._lib, self._memory, self._batch
        self._fill(prefix, len(prefix))
        for seq in range(1, n):
            lib.llama_memory_seq_cp(mem, 0, seq, -1, -1)
        batch.n_tokens = len(plan.tokens)
        for j, (tok, pos, seqs) in enumerate(zip(plan.tokens, plan.positions, plan.seqs)):
            batch.token[j], batch.pos[j], batch.n_seq_id[j], batch.logits[j] = (
                tok,
                pos,
                len(seqs),
                0,
            )
            for k, seq in enumerate(seqs):
                batch.seq_id[j][k] = seq
        for j in plan.outputs:
            batch.logits[j] = 1
        try:
            status = lib.llama_decode(self.llm.ctx, batch)
            if status != 0:
                raise ValuescopeError(f"llamacpp: llama_decode failed ({status}) on a batch")
            rows = [
                np.ctypeslib.as_array(
                    lib.llama_get_logits_ith(self.llm.ctx, j), shape=(self.n_vocab,)
                ).copy()
                for j in plan.last
            ]
        finally:
            # back to the prefix alone, as sequence 0, as if it had been evaluated alone
            lib.llama_memory_seq_rm(mem, -1, len(prefix), -1)
            lib.llama_memory_seq_keep(mem, 0)
            self.llm.n_tokens = len(prefix)
            self._prompt_in_cache = len(prefix)
        self.tokens_evaluated += len(plan.tokens)
        return rows

    def _logprob_answer(self, q: Query, logits: np.ndarray, n_tokens: int) -> Answer:
        ids_a, ids_b = self.label_token_ids(q.labels)
        p = softmax(logits)
        p_a, p_b = float(p[ids_a].sum()), float(p[ids_b].sum())
        mass = p_a + p_b
        return Answer(p_a=p_a / mass if mass > 0 else 0.5, mass=mass, tokens_in=n_tokens)

    def _rng(self, q: Query) -> np.random.Generator:
        return np.random.default_rng(
            stable_seed(self.seed, q.messages, q.sample_index, q.temperature)
        )

    def _sample(self, q: Query, tokens: list[int]) -> Answer:
        text, n_out = self._decode(tokens, q.max_tokens, q.temperature, self._rng(q))
        return Answer(text=self.prefill + text, tokens_in=len(tokens), tokens_out=n_out)

    def _sample_all(
        self,
        queries: Sequence[Query],
        prompts: list[list[int]],
        same: list[int],
        answers: list[Answer | None],
    ) -> None:
        """Answer sample queries `same` (indices, one prompt): the prompt evaluated once.

        Each query then decodes from the prompt's logits with its own generator, exactly as
        `_sample` would (same cells, same one-token steps, so the same text); only the
        re-evaluation of the prompt's last chunk per sample is saved. `batch=1` asks each
        query alone. Decoding the samples side by side, one llama.cpp sequence each, would
        be faster but not the same: a token decoded among others gets logits up to 0.57
        away from the same token decoded alone (measured, docs/embedded.md).
        """
        tokens = prompts[same[0]]
        if self.batch == 1:
            for i in same:
                answers[i] = self._sample(queries[i], tokens)
            return
        self.evaluate(tokens)
        logits = self.next_token_logits()
        for i in same:
            q = queries[i]
            text, n_out = self._continue(tokens, logits, q.max_tokens, q.temperature, self._rng(q))
            answers[i] = Answer(text=self.prefill + text, tokens_in=len(tokens), tokens_out=n_out)

    def _draw(self, logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
        if temperature <= 0:
            return int(np.argmax(logits))
        return int(rng.choice(self.n_vocab, p=softmax(logits / temperature)))

    def _decode(
        self, tokens: list[int], max_tokens: int, temperature: float, rng: np.random.Generator
    ) -> tuple[str, int]:
        """Decode after `tokens` until end of turn or `max_tokens`: (text, tokens made)."""
        self.evaluate(tokens)
        return self._continue(tokens, self.next_token_logits(), max_tokens, temperature, rng)

    def _continue(
        self,
        tokens: list[int],
        logits: np.ndarray,
        max_tokens: int,
        temperature: float,
        rng: np.random.Generator,
    ) -> tuple[str, int]:
        """`_decode` once `tokens` are in the cache and `logits` follow them.

        Leaves the cache holding `tokens` alone (the next `llm.eval` drops what was made).
        """
        out: list[int] = []
        vocab = self.llm._model.vocab
        try:
            while len(out) < max_tokens:
                tok = self._draw(logits, temperature, rng)
                if self._lib.llama_vocab_is_eog(vocab, tok):
                    break
                out.append(tok)
                if len(tokens) + len(out) >= self.llm.n_ctx():
                    break
                self.llm.eval([tok])
                logits = self.next_token_logits()
        finally:
            self.llm.n_tokens = len(tokens)
        return self.llm.detokenize(out).decode("utf-8", errors="replace"), len(out)

    def generate(
        self,
        prompts: Sequence[tuple[tuple[str, str], ...]],
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        """Free-text replies to chats (no forced-choice prefill), in order, seeded."""
        replies = []
        for messages in prompts:
            rng = np.random.default_rng(stable_seed(self.seed, "generate", messages, seed))
            text, _ = self._decode(self.render(messages, prefill=""), max_tokens, temperature, rng)
            replies.append(text)
        return replies


class LlamaCppParams(ModelParams):
    """`llamacpp/<file.gguf>?...` and `embedded/<name>?...`: the load and answer settings."""

    prefill: str = DEFAULT_PREFILL
    seed: Whole = Field(0, ge=0)
    n_ctx: Whole = Field(2048, ge=64, description="context window, tokens")
    threads: MaybeWhole = Field(None, ge=1)
    reuse: Flag = Field(True, description="reuse the shared prompt prefix's KV cache")
    batch: Whole = Field(
        DEFAULT_BATCH, ge=1, le=255, description="logprob prompts per llama.cpp call (1: off)"
    )
    repack: Flag = Field(False, description="llama.cpp's repacked CPU kernels (its default)")


def backend_kwargs(params: dict[str, str], provider: str = "llamacpp") -> dict:
    """Constructor keywords from model-string parameters (checked)."""
    return validate_params(LlamaCppParams, provider, params).model_dump()


def make_llamacpp(name: str, params: dict[str, str], **_: object) -> LlamaCppBackend:
    """Factory for `llamacpp/<path to a .gguf file>`.

    The run's `--seed` does not reach the model (it would split the cache); `?seed=` does.
    """
    kwargs = backend_kwargs(params, provider=f"llamacpp/{name}")
    import_llama_cpp()
    return LlamaCppBackend(name, **kwargs)

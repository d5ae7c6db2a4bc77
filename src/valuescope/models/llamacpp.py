"""GGUF models through llama.cpp (`llamacpp/<file.gguf>?n_ctx=..&threads=..&batch=..`).

Prompts are rendered with the GGUF's own chat template. In logprob mode the backend
evaluates the prompt (plus an optional prefilled start of the assistant turn) and reads
the next-token distribution; in sample mode it samples with plain temperature from a
seed derived from the query and `?seed=`; the samples of one prompt in a batch share
its evaluation (each text is what asking it alone gives). Consecutive prompts share
their longest common prefix in the KV cache, and each batch is asked in token order so
that neighbours share as much as possible.

llama.cpp's CPU kernels round differently when a prompt is split into calls of fewer
than 8 rows, or when its cells are laid out otherwise than alone (moving P(A) by up to
0.03 on Qwen2.5 Q4_K_M), so every call gives each sequence at least
`streams.MIN_ROWS` rows: an answer is then that of its prompt evaluated alone in one
call, whatever was in the cache before (measured: bit for bit, docs/benchmarks.md).

Logprob prompts are evaluated several at a time (`batch`, default `DEFAULT_BATCH`) in a
second context with one KV stream per sequence: stream 0 keeps the prompts' common
head, and the rest of the prompts' prefix tree is evaluated in rounds, each segment in a
stream copied from its parent's, the segments of a round side by side in micro-batches
of `STREAMS_PER_RUN` streams (`streams.schedule`).
`batch=1`, `reuse=0`, and prompts longer than a stream are asked one at a time in the
main context.
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
from valuescope.models import streams
from valuescope.models.base import Answer, Query
from valuescope.models.labels import space_lead
from valuescope.models.params import Flag, MaybeWhole, ModelParams, Whole, validate_params

LLAMA_CPP_VERSION = "0.3.36"
LLAMA_CPP_PIP = f'pip install "llama-cpp-python[server]=={LLAMA_CPP_VERSION}"'
# Starts the assistant turn so that the next token is the letter (measured in docs/embedded.md).
DEFAULT_PREFILL = "I would prefer Option"
DEFAULT_BATCH = 32  # prompts per llama.cpp call (measured in docs/benchmarks.md)
MAX_BATCH_TOKENS = 1024  # rows per llama.cpp call in the batched context
STREAM_CELLS = 256  # KV cells per stream (llama.cpp rounds a stream up to 256); grows
# llama.cpp evaluates a run of consecutive streams as one micro-batch; one of 8 or more
# streams rounds differently from a prompt evaluated alone (measured on Qwen2.5 1.5B,
# docs/benchmarks.md), so every 8th stream is left out and runs stay at 7
STREAMS_PER_RUN = 7


def physical_stream(stream: int) -> int:
    """The llama.cpp sequence of schedule stream `stream` (0, the head, stays 0)."""
    return stream + (stream - 1) // STREAMS_PER_RUN if stream else 0


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


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits, computed in float64."""
    z = logits.astype(np.float64)
    z -= z.max()
    p = np.exp(z)
    return p / p.sum()


def call_spans(start: int, stop: int, most: int) -> list[tuple[int, int]]:
    """Split tokens `start`..`stop` into calls of at most `most` rows, none shorter than
    `streams.MIN_ROWS` unless the whole span is."""
    spans = []
    while stop - start > most:
        size = most if stop - start - most >= streams.MIN_ROWS else stop - start - streams.MIN_ROWS
        spans.append((start, start + size))
        start += size
    return [*spans, (start, stop)] if stop > start else spans


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
        self._streams = None  # the batched context, made at the first batch
        self._stream_cells = 0
        self._stream_head: list[int] = []
        self._format = self._chat_formatter(llama_cpp)
        self.n_vocab = self.llm.n_vocab()
        self._label_ids: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        self._lead: dict[tuple[str, str], list[int]] = {}
        self.answer_ids = dict(zip("AB", self.label_token_ids(("A", "B"))))
        label = label or f"llamacpp/{path.name}"
        extra = (f"&seed={seed}" if seed else "") + f"&repack={int(repack)}"
        self.name = f"{label}?prefill={quote(prefill)}{extra}#bytes={path.stat().st_size}"

    def _streams_context(self, cells: int) -> None:
        """Make (or grow) the batched context: the head stream and the prompt streams of a
        schedule of `batch` prompts (`physical_stream` spreads them), `cells` cells each."""
        if self._streams is not None and self._stream_cells >= cells:
            return
        from llama_cpp import _internals

        self._close_streams()
        main = self.llm.context_params
        params = type(main).from_buffer_copy(main)
        prompt_streams = streams.stream_count(self.batch, STREAMS_PER_RUN)
        params.n_seq_max = physical_stream(prompt_streams) + 1  # stream 0 holds the head
        params.kv_unified = False  # one stream per sequence: cells as when evaluated alone
        params.n_ctx = cells * params.n_seq_max
        params.n_batch = params.n_ubatch = MAX_BATCH_TOKENS
        try:
            ctx = _internals.LlamaContext(model=self.llm._model, params=params, verbose=False)
        except ValueError as exc:
            msg = f"llamacpp: cannot make a {self.batch}-sequence context: {exc}"
            raise ValuescopeError(msg) from None
        self._streams, self._stream_cells, self._stream_head = ctx, cells, []
        self._batch = self._lib.llama_batch_init(MAX_BATCH_TOKENS, 0, 1)
        self._memory = self._lib.llama_get_memory(ctx.ctx)

    def _close_streams(self) -> None:
        batch = getattr(self, "_batch", None)
        if batch is not None:
            self._lib.llama_batch_free(batch)
            self._batch = None
        if getattr(self, "_streams", None) is not None:
            self._streams.close()
            self._streams = None

    def __del__(self) -> None:
        self._close_streams()

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
        """Make the cache hold `tokens`, keeping at most `most` cached ones; tokens evaluated.

        The rest is evaluated in calls of at least `streams.MIN_ROWS` rows (fewer round
        differently), so the result is that of one call from an empty cache.
        """
        llm = self.llm
        same = streams.shared_length(tokens, llm.input_ids[: llm.n_tokens])
        keep = max(0, min(same, most, len(tokens) - streams.MIN_ROWS))
        if keep and not llm._ctx.kv_cache_seq_rm(0, keep, -1):  # e.g. recurrent models
            keep = 0
        if keep == 0:
            llm.reset()
            llm._ctx.kv_cache_seq_rm(0, 0, -1)
        llm.n_tokens = keep
        for start, stop in call_spans(keep, len(tokens), llm.n_batch):
            llm.eval(list(tokens[start:stop]))
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
        if self._streams is not None:
            self._lib.llama_memory_clear(self._memory, True)
            self._stream_head = []

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
        """Logprob answers for `group` (indices, sorted prompts): several streams per call,
        or one prompt at a time in the main context (`batch=1`, a lone or too long prompt).
        """
        for i in group:
            self._check_fits(prompts[i])
        longest = MAX_BATCH_TOKENS - streams.MIN_ROWS
        together = [i for i in group if len(prompts[i]) <= longest] if self.batch > 1 else []
        for i in group if len(together) < 2 else set(group) - set(together):
            self.evaluate(prompts[i])
            answers[i] = self._logprob_answer(queries[i], self.next_token_logits(), len(prompts[i]))
        if len(together) < 2:
            return
        toks = [prompts[i] for i in together]
        need = max(map(len, toks)) + streams.MIN_ROWS
        self._streams_context(-(-need // STREAM_CELLS) * STREAM_CELLS)
        head = streams.common_head(toks)
        try:
            self._put_head(toks[0][:head])
            rows = self._run_schedule(toks, head)
        except BaseException:
            self._lib.llama_memory_clear(self._memory, True)  # a half-run call leaves debris
            self._stream_head = []
            raise
        for i, logits in zip(together, rows):
            answers[i] = self._logprob_answer(queries[i], logits, len(prompts[i]))

    def _decode_rows(
        self, rows: list[tuple[int, int, int]], want: Sequence[int]
    ) -> list[np.ndarray]:
        """One call in the batched context: `rows` of (token, position, stream); the logits
        of the rows at indices `want`."""
        lib, batch = self._lib, self._batch
        batch.n_tokens = len(rows)
        for j, (tok, pos, seq) in enumerate(rows):
            batch.token[j], batch.pos[j], batch.n_seq_id[j], batch.logits[j] = tok, pos, 1, 0
            batch.seq_id[j][0] = seq
        for j in want:
            batch.logits[j] = 1
        status = lib.llama_decode(self._streams.ctx, batch)
        if status != 0:
            raise ValuescopeError(f"llamacpp: llama_decode failed ({status}) on a batch")
        self.tokens_evaluated += len(rows)
        return [
            np.ctypeslib.as_array(
                lib.llama_get_logits_ith(self._streams.ctx, j), shape=(self.n_vocab,)
            ).copy()
            for j in want
        ]

    def _put_head(self, head: list[int]) -> None:
        """Make stream 0 hold `head`, keeping what it holds of it already."""
        same = streams.shared_length(self._stream_head, head)
        if same < len(head):
            same = max(0, min(same, len(head) - streams.MIN_ROWS))
        self._lib.llama_memory_seq_rm(self._memory, streams.HEAD, same, -1)
        self._stream_head = head[:same]
        for start, stop in call_spans(same, len(head), MAX_BATCH_TOKENS):
            self._decode_rows([(head[p], p, streams.HEAD) for p in range(start, stop)], [])
        self._stream_head = list(head)

    def _run_schedule(self, prompts: list[list[int]], head: int) -> list[np.ndarray]:
        """Evaluate `prompts` after the head in stream 0; the logits after each one."""
        lib, mem = self._lib, self._memory
        out: list[np.ndarray | None] = [None] * len(prompts)
        plan = streams.schedule(
            prompts, head, self.batch, MAX_BATCH_TOKENS, prompts[0][0], run=STREAMS_PER_RUN
        )
        for call in plan:
            for st in call.starts:  # a copy across streams copies the whole stream
                dest = physical_stream(st.stream)
                lib.llama_memory_seq_cp(mem, physical_stream(st.source), dest, -1, -1)
                lib.llama_memory_seq_rm(mem, dest, st.keep, -1)
            rows, want, ends = [], [], []
            for part in call.parts:
                seq = physical_stream(part.stream)
                rows += [(t, part.start + j, seq) for j, t in enumerate(part.tokens)]
                if part.last:
                    want.append(len(rows) - len(part.tokens) + part.real - 1)
                    ends.append(part.prompt)
            for k, logits in zip(ends, self._decode_rows(rows, want)):
                out[k] = logits
        return out  # type: ignore[return-value]

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

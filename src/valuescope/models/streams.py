"""Several prompts per llama.cpp call, one KV stream each: which calls to make, in order.

The backend's batched context keeps one KV stream per sequence (`kv_unified=False`):
stream 0 holds the prompts' common head, and each prompt is evaluated in a stream of
its own, so every token sits in the cell of its position exactly as when the prompt is
evaluated alone. That, and at least `MIN_ROWS` rows per stream in every call, is what
makes the answers equal (bit for bit, measured) to one whole-prompt call per prompt: on
llama.cpp's CPU kernels a call of fewer rows, or cells laid out otherwise (several
sequences sharing one stream), rounds differently and moves P(A) by up to 0.03.

A prompt starts by copying the stream of an earlier prompt that has already evaluated
the tokens the two share (a token-granular prefix tree; prompts sorted, so the best
source is among the previous prompt's run), then evaluates the rest. In a call every
stream evaluates the same number of tokens (llama.cpp splits the streams of one call
equally); a stream with fewer left ends its prompt there and is padded with filler after its last
token, which no earlier row attends to and which the next start in that stream drops
(only a prompt's last part is ever padded). Streams in a call are
numbered consecutively where possible, since llama.cpp makes one micro-batch per run of
consecutive streams.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

MIN_ROWS = 8  # rows per stream in a call at or above which the kernels round as one call
HEAD = 0  # the stream that holds the common head


@dataclass(frozen=True)
class Start:
    """Before a call: prompt `prompt` takes stream `stream`, keeping its first `keep`
    tokens copied from stream `source` (the same stream: kept in place)."""

    prompt: int
    source: int
    stream: int
    keep: int


@dataclass(frozen=True)
class Part:
    """One stream's rows in a call: `tokens` from position `start`; the first `real` are
    the prompt's own, the rest filler. `last`: the prompt ends here (read its logits)."""

    prompt: int
    stream: int
    start: int
    tokens: tuple[int, ...]
    real: int
    last: bool


@dataclass
class Call:
    """One llama.cpp call: the starts to apply first, then the parts (by stream)."""

    starts: list[Start] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(len(p.tokens) for p in self.parts)


def shared_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def common_head(prompts: Sequence[Sequence[int]]) -> int:
    """Tokens all prompts share, leaving each at least one of its own; 0 if fewer than
    `MIN_ROWS` (a shorter head would be a call of too few rows)."""
    first = prompts[0]
    head = min(min(shared_length(first, p), len(p) - 1) for p in prompts)
    return head if head >= MIN_ROWS else 0


def schedule(
    prompts: Sequence[Sequence[int]],
    head: int,
    streams: int,
    max_rows: int,
    filler: int,
    run: int | None = None,
) -> Iterator[Call]:
    """The calls that evaluate `prompts` (sorted) after `head` tokens in stream `HEAD`.

    `run`: streams per micro-batch (streams 1..run, run+1..2*run, ...; all by default);
    the streams of one micro-batch evaluate the same number of tokens.

    `streams`: prompt streams available (numbered 1..streams); `max_rows`: rows per call.
    """
    n = len(prompts)
    if n == 0:
        return
    if streams < 1 or max_rows < MIN_ROWS:
        raise ValueError("need at least one stream and MIN_ROWS rows per call")
    if any(len(p) <= head for p in prompts) or any(p[:head] != prompts[0][:head] for p in prompts):
        raise ValueError("the head must be a common prefix shorter than every prompt")
    lcp = [[0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i):
            lcp[i][j] = lcp[j][i] = shared_length(prompts[i], prompts[j])
    # the most an earlier prompt can give each prompt (at least one token left to evaluate)
    want = [max([head] + [min(lcp[i][j], len(prompts[i]) - 1) for j in range(i)]) for i in range(n)]
    done: list[int | None] = [None] * n  # tokens in each prompt's stream, once started
    stream_of: list[int | None] = [None] * n

    def given(i: int, k: int) -> int:  # tokens prompt k's stream can give prompt i now
        return min(lcp[i][k], done[k], len(prompts[i]) - 1)  # type: ignore[type-var]

    def needed(k: int) -> bool:  # a finished stream some waiting prompt still wants
        return any(done[i] is None and want[i] > head and given(i, k) >= want[i] for i in range(n))

    while True:
        call = Call()
        active = {k for k in range(n) if done[k] is not None and done[k] < len(prompts[k])}
        for i in range(n):
            if done[i] is not None:
                continue
            holders = [k for k in range(n) if done[k] is not None and stream_of[k] is not None]
            best = max(holders, key=lambda k: given(i, k), default=None)
            keep, source = head, None
            if best is not None and given(i, best) > head:
                keep, source = given(i, best), best
            if keep < want[i] and active:
                continue  # its best source is still evaluating what they share
            busy = {stream_of[k] for k in holders if k in active or needed(k)}
            free = [s for s in range(1, streams + 1) if s not in busy]
            if not free:
                if active:
                    continue
                free = [min(stream_of[k] for k in holders)]  # nothing runs: reuse one
            stream = free[0]
            src_stream = HEAD if source is None else stream_of[source]
            for k in holders:  # the stream changes hands
                if stream_of[k] == stream:
                    stream_of[k] = None
            call.starts.append(Start(i, src_stream, stream, keep))  # type: ignore[arg-type]
            done[i], stream_of[i] = keep, stream
            active.add(i)
        if not active:
            return
        holders = [k for k in range(n) if done[k] is not None and stream_of[k] is not None]
        kept = {stream_of[k] for k in holders if k not in active and needed(k)}
        while True:  # close gaps between the running streams: one micro-batch, not several
            order = sorted(active, key=lambda k: stream_of[k])  # type: ignore[arg-type,return-value]
            running = {stream_of[k] for k in order}
            lo, hi = stream_of[order[0]], stream_of[order[-1]]
            gaps = [g for g in range(lo, hi) if g not in running and g not in kept]  # type: ignore[arg-type]
            if not gaps:
                break
            last = order[-1]
            for k in holders:  # the gap's old holder is done and wanted by nobody
                if stream_of[k] == gaps[0]:
                    stream_of[k] = None
            call.starts.append(Start(last, stream_of[last], gaps[0], done[last]))  # type: ignore[arg-type]
            stream_of[last] = gaps[0]
        order = order[: max_rows // MIN_ROWS]
        most = max_rows // len(order)
        width: dict[int, int] = {}
        for k in order:
            block = (stream_of[k] - 1) // (run or streams)  # type: ignore[operator]
            left = len(prompts[k]) - done[k]  # type: ignore[operator]
            width[block] = max(MIN_ROWS, min(left, most, width.get(block, left)))
        for k in order:
            block = (stream_of[k] - 1) // (run or streams)  # type: ignore[operator]
            start = done[k]
            prompt = prompts[k]
            real = min(width[block], len(prompt) - start)  # type: ignore[operator]
            toks = tuple(prompt[start : start + real]) + (filler,) * (width[block] - real)
            end = start + real  # type: ignore[operator]
            call.parts.append(Part(k, stream_of[k], start, toks, real, end == len(prompt)))  # type: ignore[arg-type]
            done[k] = end
        yield call

"""Several prompts per llama.cpp call, one KV stream each: which calls to make, in order.

The backend's batched context keeps one KV stream per sequence (`kv_unified=False`):
stream 0 holds the prompts' common head, and each prompt is evaluated in streams of its
own, so every token sits in the cell of its position exactly as when the prompt is
evaluated alone. That, and at least `MIN_ROWS` rows per stream in every call, is what
makes the answers equal (bit for bit, measured) to one whole-prompt call per prompt: on
llama.cpp's CPU kernels a call of fewer rows, or cells laid out otherwise (several
sequences sharing one stream), rounds differently and moves P(A) by up to 0.03.

The prompts (sorted) after the head form a prefix tree: a segment is a run of tokens
that the same prompts share, evaluated once. The schedule goes in rounds: a round
evaluates every segment whose parent is done, each in a stream that starts as a copy of
its parent's stream; rounds alternate between two banks of streams, so a round reads
only the other bank and never overwrites a stream it still copies from. Within a round
the segments are sorted by length and laid out in micro-batches of `run` consecutive
streams (llama.cpp makes one micro-batch per run of consecutive streams, and every
stream of a micro-batch evaluates the same number of rows): a stream with fewer tokens
than its micro-batch's width is padded with filler after its last one, which no earlier
row attends to and which the next copy of that stream drops. Every micro-batch streams
the weights once, so few and full micro-batches are what make the schedule fast; a
segment shorter than `MIN_ROWS` that no prompt ends at is evaluated with each of its
children instead of being padded in a round of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

MIN_ROWS = 8  # rows per stream in a call at or above which the kernels round as one call
# what one more micro-batch costs, in rows: each streams the weights once (Qwen2.5 1.5B on
# one core: 0.52 s a micro-batch and 18.6 ms a row, docs/benchmarks.md)
MICRO_BATCH_ROWS = 28
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


def bank_size(streams: int, run: int | None) -> int:
    """Streams of one bank: `streams`, rounded up to whole micro-batches of `run`."""
    return -(-streams // run) * run if run else streams


def stream_count(streams: int, run: int | None = None) -> int:
    """Prompt streams a schedule for `streams` prompts in flight uses (two banks)."""
    return 2 * bank_size(streams, run)


@dataclass
class Segment:
    """Tokens `start:end` of every prompt under it; `prompt`: one of them; `ends`: the
    prompt that ends here, if any; `parent`: the segment before it (None: the head)."""

    start: int
    end: int
    parent: int | None
    prompt: int
    ends: int | None
    children: list[int] = field(default_factory=list)
    folded: bool = False  # evaluated with each of its children instead


def prefix_tree(prompts: Sequence[Sequence[int]], head: int) -> list[Segment]:
    """The segments of `prompts` (sorted) after `head`; each prompt keeps at least its
    last token to itself, and a segment shorter than `MIN_ROWS` that no prompt ends at
    is folded into its children."""
    segs: list[Segment] = []
    path: list[int] = []  # the previous prompt's segments, from the head down
    for i, prompt in enumerate(prompts):
        shared = head
        if i:
            shared = max(head, min(shared_length(prompts[i - 1], prompt), len(prompt) - 1))
        while path and segs[path[-1]].start >= shared:
            path.pop()
        parent = path[-1] if path else None
        if parent is not None and segs[parent].end > shared:  # split it where they part
            upper = segs[parent]
            lower = Segment(shared, upper.end, parent, upper.prompt, upper.ends)
            segs.append(lower)
            for seg in segs[:-1]:
                if seg.parent == parent:
                    seg.parent = len(segs) - 1
            upper.end, upper.ends = shared, None
        segs.append(Segment(shared, len(prompt), parent, i, i))
        path.append(len(segs) - 1)
    for k, seg in enumerate(segs):
        if seg.parent is not None:
            segs[seg.parent].children.append(k)
    for k in _top_down(segs):  # fold short inner segments into their children
        seg = segs[k]
        if seg.ends is None and seg.end - seg.start < MIN_ROWS and seg.children:
            for c in seg.children:
                segs[c].start, segs[c].parent = seg.start, seg.parent
            if seg.parent is not None:
                siblings = segs[seg.parent].children
                siblings[siblings.index(k) : siblings.index(k) + 1] = seg.children
            seg.children, seg.folded = [], True
    return segs


def _top_down(segs: list[Segment]) -> list[int]:
    """Segment indices, parents before children, children in prompt order."""
    order = [k for k, seg in enumerate(segs) if seg.parent is None and not seg.folded]
    i = 0
    while i < len(order):
        order += segs[order[i]].children
        i += 1
    return order


def block_width(left: Sequence[int], max_rows: int, run: int) -> int:
    """Rows per stream for a micro-batch of streams with `left` tokens to go: the width
    with the least filler plus `MICRO_BATCH_ROWS` per micro-batch the longer streams then
    need in a later round (`run` streams each)."""
    most = max_rows // len(left)

    def cost(w: int) -> tuple[int, int]:
        longer = [n - w for n in left if n > w]
        filler = sum(w - n for n in left if n <= w) + sum(max(0, MIN_ROWS - n) for n in longer)
        return filler + MICRO_BATCH_ROWS * -(-len(longer) // run), w

    widths = {max(MIN_ROWS, min(most, n)) for n in left}
    return min(widths, key=cost)


def schedule(
    prompts: Sequence[Sequence[int]],
    head: int,
    streams: int,
    max_rows: int,
    filler: int,
    run: int | None = None,
) -> Iterator[Call]:
    """The calls that evaluate `prompts` (sorted) after `head` tokens in stream `HEAD`.

    `streams`: prompts in flight at once (more prompts go in turns of `streams`); the
    schedule uses `stream_count(streams, run)` streams, numbered from 1.
    `run`: streams per micro-batch (all of a bank by default). `max_rows`: rows per call.
    """
    n = len(prompts)
    if n == 0:
        return
    width = run or streams
    if streams < 1 or max_rows < MIN_ROWS * min(width, streams):
        raise ValueError("need at least one stream and MIN_ROWS rows per stream of a call")
    if any(len(p) <= head for p in prompts) or any(p[:head] != prompts[0][:head] for p in prompts):
        raise ValueError("the head must be a common prefix shorter than every prompt")
    bank = bank_size(streams, run)
    round_ = 0
    for first in range(0, n, streams):
        turn = prompts[first : first + streams]
        segs = prefix_tree(turn, head)
        pos = {k: seg.start for k, seg in enumerate(segs)}
        source = {k: HEAD for k, seg in enumerate(segs) if seg.parent is None}
        ready = [k for k in _top_down(segs) if segs[k].parent is None]  # the roots
        while ready:
            ready.sort(key=lambda k: segs[k].end - pos[k])  # alike widths side by side
            base = (round_ % 2) * bank
            call, after = Call(), []
            for lo in range(0, len(ready), width):
                block = ready[lo : lo + width]
                rows = block_width([segs[k].end - pos[k] for k in block], max_rows, width)
                if call.rows + rows * len(block) > max_rows:
                    yield call
                    call = Call()
                for j, k in enumerate(block):
                    seg, stream, at = segs[k], base + lo + j + 1, pos[k]
                    call.starts.append(Start(first + seg.prompt, source[k], stream, at))
                    real = min(rows, seg.end - at)
                    tokens = tuple(turn[seg.prompt][at : at + real]) + (filler,) * (rows - real)
                    pos[k] = at + real
                    last = pos[k] == seg.end and seg.ends is not None
                    prompt = first + (seg.ends if last else seg.prompt)  # type: ignore[operator]
                    call.parts.append(Part(prompt, stream, at, tokens, real, last))
                    if pos[k] < seg.end:
                        source[k] = stream
                        after.append(k)
                    for c in seg.children if pos[k] == seg.end else []:
                        source[c] = stream
                        after.append(c)
            yield call
            ready, round_ = after, round_ + 1

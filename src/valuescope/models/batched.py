"""Several prompts in one llama.cpp batch: which tokens to send, where, for which sequence.

A plan lays out prompts that share a cached prefix (`prefix` tokens, a multiple of
`CHUNK`, already in the KV cache for every sequence) as a tree of 16-token chunks: a
chunk that consecutive prompts share is sent once, tagged with all their sequence ids.
Each chunk starts a block of `CHUNK` cells (the batch fills cells from `prefix` on, in
order), so every token lands in a cell whose index equals its position modulo `CHUNK`,
as when its prompt is evaluated alone; a prompt's last, shorter chunk is followed by
filler tokens of sequence `len(prompts)`, which no prompt attends to.

The CPU matrix kernels take rows in groups and round a leftover group differently:
measured on Qwen2.5 Q4_K_M (with llama.cpp's repacked kernels, the backend's default
then), a prompt's logits change (by ~3e-6, enough to tip later roundings) with the
number of rows that get logits unless it is a multiple of 16; so the batch, and the rows
that get logits, are padded with filler to a multiple of `ROWS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

CHUNK = 16
ROWS = 16


def shared_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class Plan:
    """One batch: per token its id, position and sequence ids; where to read logits."""

    prefix: int
    tokens: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    seqs: list[tuple[int, ...]] = field(default_factory=list)
    last: list[int] = field(default_factory=list)  # batch index of each prompt's last token
    outputs: list[int] = field(default_factory=list)  # batch indices that get logits
    filler: int = 0  # filler tokens among `tokens`

    def pad(self, token: int, seq: int, multiple: int, least: int = 0) -> None:
        """Append filler until the batch is a multiple of `multiple` and `least` long."""
        while len(self.tokens) % multiple or len(self.tokens) < least:
            self.tokens.append(token)
            self.positions.append(self.filler)
            self.seqs.append((seq,))
            self.filler += 1


def common_cached(prompts: Sequence[Sequence[int]]) -> int:
    """Chunk-aligned prefix all prompts share, leaving each at least one token to evaluate."""
    first = prompts[0]
    shared = min(min(shared_length(first, p), len(p) - 1) for p in prompts)
    return max(0, shared) // CHUNK * CHUNK


def plan(prompts: Sequence[Sequence[int]], prefix: int, filler_token: int) -> Plan:
    """The batch for `prompts` (best sorted, so that neighbours share chunks) after `prefix`."""
    if prefix % CHUNK or any(len(p) <= prefix for p in prompts):
        raise ValueError("the cached prefix must be chunk-aligned and shorter than every prompt")
    filler_seq = len(prompts)
    nodes: list[tuple[int, list[int], list[int]]] = []  # (start position, tokens, sequences)
    chains: list[dict[int, int]] = []  # per prompt: chunk start -> node index
    for b, prompt in enumerate(prompts):
        chain: dict[int, int] = {}
        start = prefix
        if b:
            prev = prompts[b - 1]
            same = min(shared_length(prev, prompt), len(prompt) - 1)
            start = max(prefix, same // CHUNK * CHUNK)
            for pos in range(prefix, start, CHUNK):  # full chunks equal to the previous prompt's
                node = chains[b - 1][pos]
                nodes[node][2].append(b)
                chain[pos] = node
        for pos in range(start, len(prompt), CHUNK):
            chain[pos] = len(nodes)
            nodes.append((pos, list(prompt[pos : pos + CHUNK]), [b]))
        chains.append(chain)
    out = Plan(prefix=prefix)
    last_node = {chain[max(chain)]: b for b, chain in enumerate(chains)}
    out.last = [0] * len(prompts)
    for index, (start, toks, seqs) in enumerate(nodes):
        out.pad(filler_token, filler_seq, CHUNK)
        out.tokens += toks
        out.positions += range(start, start + len(toks))
        out.seqs += [tuple(seqs)] * len(toks)
        if index in last_node:
            out.last[last_node[index]] = len(out.tokens) - 1
    extra = -len(prompts) % ROWS  # filler rows that get logits too
    out.pad(filler_token, filler_seq, ROWS, least=len(out.tokens) + extra)
    out.outputs = sorted(out.last) + list(range(len(out.tokens) - extra, len(out.tokens)))
    return out

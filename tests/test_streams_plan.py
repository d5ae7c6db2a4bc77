"""The per-stream batch schedule (models/streams.py), checked by replaying it on lists.

The replay keeps each stream's tokens by position, applies the starts (copy, then drop
from `keep`) and the parts (write, then drop the filler) as llama.cpp would, and checks
at each prompt's last row that the stream holds exactly that prompt.
"""

from __future__ import annotations

import numpy as np
import pytest

from valuescope.models import streams
from valuescope.models.llamacpp import call_spans
from valuescope.models.streams import (
    HEAD,
    MIN_ROWS,
    common_head,
    prefix_tree,
    schedule,
    stream_count,
)

FILLER = -1


def prompts_like_the_pipeline(seed: int, n: int) -> list[list[int]]:
    """Sorted prompts of a head, an option A, a middle, an option B and a tail."""
    rng = np.random.default_rng(seed)
    head = list(rng.integers(0, 50, 40))
    options = [list(rng.integers(0, 50, rng.integers(3, 25))) for _ in range(8)]
    out = []
    for _ in range(n):
        a, b = rng.choice(len(options), 2, replace=False)
        out.append(head + options[a] + [99, 98] + options[b] + [97, 96, 95])
    out.append(list(out[0]))  # a duplicate
    return sorted(out)


def replay(prompts, head, n_streams, max_rows, run=None):
    """Run the schedule on lists; return (rows per prompt's last part, calls, rows)."""
    cells: dict[int, list[int]] = {HEAD: list(prompts[0][:head])}
    seen: dict[int, int] = {}
    calls = list(schedule(prompts, head, n_streams, max_rows, FILLER, run=run))
    for call in calls:
        written = {p.stream for p in call.parts}
        for s in call.starts:
            assert 1 <= s.stream <= stream_count(n_streams, run)
            assert s.source not in written  # read before this call overwrites it
            source = list(cells.get(s.source, []))
            assert source[: s.keep] == list(prompts[s.prompt][: s.keep])  # a true prefix
            cells[s.stream] = source[: s.keep]  # the copy drops what follows `keep`
        assert {s.stream for s in call.starts} == written  # every part's stream starts anew
        blocks: dict[int, set[int]] = {}
        for p in call.parts:
            blocks.setdefault((p.stream - 1) // (run or n_streams), set()).add(len(p.tokens))
        assert all(len(w) == 1 and min(w) >= MIN_ROWS for w in blocks.values())
        assert call.rows <= max_rows
        assert len(written) == len(call.parts)
        assert [p.stream for p in call.parts] == sorted(p.stream for p in call.parts)
        for p in call.parts:
            row = cells[p.stream]
            assert len(row) == p.start  # continues where the stream ends
            assert list(p.tokens[: p.real]) == list(prompts[p.prompt][p.start : p.start + p.real])
            assert all(t == FILLER for t in p.tokens[p.real :])
            row += p.tokens  # filler included: the next start from this stream drops it
            if p.last:
                assert row[: p.start + p.real] == list(prompts[p.prompt])
                assert p.prompt not in seen
                seen[p.prompt] = p.start + p.real
    return seen, calls


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_streams", [1, 2, 5, 32])
def test_every_prompt_ends_in_a_stream_that_holds_exactly_it(seed, n_streams):
    prompts = prompts_like_the_pipeline(seed, 24)
    head = common_head(prompts)
    seen, _ = replay(prompts, head, n_streams, max_rows=256)
    assert sorted(seen) == list(range(len(prompts)))


@pytest.mark.parametrize("run", [None, 7])
def test_shared_tokens_are_evaluated_once_given_streams(run):
    prompts = prompts_like_the_pipeline(7, 32)
    head = common_head(prompts)
    _, calls = replay(prompts, head, 32, max_rows=1024, run=run)
    evaluated: dict[tuple[int, ...], int] = {}  # a prefix -> how often its last token ran
    for part in (p for call in calls for p in call.parts):
        for at in range(part.start, part.start + part.real):
            key = tuple(prompts[part.prompt][: at + 1])
            evaluated[key] = evaluated.get(key, 0) + 1
    tree = {tuple(p[: at + 1]) for p in prompts for at in range(head, len(p))}
    assert tree <= set(evaluated)  # every token of the prefix tree ran
    # again only in a short segment evaluated with each of its children: fewer than
    # MIN_ROWS tokens once per prompt beyond the first
    assert sum(evaluated.values()) - len(evaluated) <= (MIN_ROWS - 1) * (len(prompts) - 1)
    real = sum(evaluated.values())
    filler = sum(call.rows for call in calls) - real
    # padding: segments shorter than MIN_ROWS, and wider micro-batches where that costs
    # less than the micro-batches their longer streams would need later
    short = sum(
        max(0, MIN_ROWS - s.end + s.start) for s in prefix_tree(prompts, head) if not s.folded
    )
    micro = sum(len({(p.stream - 1) // (run or 32) for p in call.parts}) for call in calls)
    assert filler <= short + streams.MICRO_BATCH_ROWS * micro
    assert sum(call.rows for call in calls) < 0.75 * sum(len(p) - head for p in prompts)


def test_a_prompt_waits_for_its_source_instead_of_evaluating_what_it_shares():
    base = list(range(100, 140))
    prompts = [base + [1] * 30 + [2], base + [1] * 30 + [3]]
    _, calls = replay(prompts, 0, 2, max_rows=1024)
    second = [s for c in calls for s in c.starts if s.prompt == 1]
    assert second[0].keep == 70 and second[0].source != HEAD


def test_head_below_min_rows_is_not_used():
    assert common_head([[1, 2, 3, 4, 9], [1, 2, 3, 4, 8]]) == 0
    prompts = [[1] * 12 + [5], [1] * 12 + [6]]
    assert common_head(prompts) == 12


def test_bad_heads_are_refused():
    with pytest.raises(ValueError):
        list(schedule([[1, 2, 3], [1, 2]], 2, 4, 64, FILLER))
    with pytest.raises(ValueError):
        list(schedule([[1, 2, 3], [2, 2, 3]], 1, 4, 64, FILLER))


@pytest.mark.parametrize(
    ("start", "stop", "most"),
    [(0, 5, 512), (3, 40, 16), (0, 1030, 512), (0, 1025, 512), (10, 10, 8)],
)
def test_call_spans_cover_the_tokens_in_calls_of_min_rows_or_more(start, stop, most):
    spans = call_spans(start, stop, most)
    covered = [p for a, b in spans for p in range(a, b)]
    assert covered == list(range(start, stop))
    assert all(b - a <= most for a, b in spans)
    if stop - start >= MIN_ROWS:
        assert all(b - a >= MIN_ROWS for a, b in spans)


def tree_of(prompts, head=0):
    """(start, end, ends) of the unfolded segments, and each one's parent as such."""
    segs = prefix_tree(prompts, head)
    spans = {k: (s.start, s.end, s.ends) for k, s in enumerate(segs) if not s.folded}
    return {(v, spans.get(segs[k].parent)) for k, v in spans.items()}


def test_prefix_tree_splits_where_prompts_part():
    p0, p1, p2 = [1] * 10 + [2] * 10 + [3], [1] * 10 + [2] * 10 + [4], [1] * 10 + [5] * 10
    assert tree_of([p0, p1, p2]) == {
        ((0, 10, None), None),
        ((10, 20, None), (0, 10, None)),
        ((10, 20, 2), (0, 10, None)),
        ((20, 21, 0), (10, 20, None)),
        ((20, 21, 1), (10, 20, None)),
    }


def test_prefix_tree_folds_short_inner_segments_into_their_children():
    p0, p1, p2 = [1] * 10 + [2] * 3 + [3] * 9, [1] * 10 + [2] * 3 + [4] * 9, [1] * 10 + [5] * 9
    assert tree_of([p0, p1, p2]) == {
        ((0, 10, None), None),
        ((10, 19, 2), (0, 10, None)),
        ((10, 22, 0), (0, 10, None)),
        ((10, 22, 1), (0, 10, None)),
    }


def test_prefix_tree_of_a_prompt_inside_another_and_of_duplicates():
    assert tree_of([[1] * 10, [1] * 10 + [2] * 9]) == {
        ((0, 10, 0), None),
        ((10, 19, 1), (0, 10, 0)),
    }
    assert tree_of([[1] * 12, [1] * 12], head=0) == {
        ((0, 11, None), None),
        ((11, 12, 0), (0, 11, None)),
        ((11, 12, 1), (0, 11, None)),
    }
    assert tree_of([[7] * 9 + [1], [7] * 9 + [2]], head=9) == {
        ((9, 10, 0), None),
        ((9, 10, 1), None),
    }


def test_a_short_segment_a_prompt_ends_at_is_kept():
    p0, p1, p2 = [1] * 10, [1] * 10 + [2] * 3, [1] * 10 + [2] * 3 + [4] * 9
    assert tree_of([p0, p1, p2]) == {
        ((0, 10, 0), None),
        ((10, 13, 1), (0, 10, 0)),
        ((13, 22, 2), (10, 13, 1)),
    }
    seen, _ = replay([p0, p1, p2], 0, 3, max_rows=64)
    assert seen == {0: 10, 1: 13, 2: 22}


def test_block_width_pads_only_where_padding_costs_less_than_a_micro_batch():
    assert streams.block_width([9, 30, 30], 1024, 7) == 30  # 21 filler < 28 rows
    assert streams.block_width([9, 60, 60], 1024, 7) == 9  # 51 filler > 28 rows
    assert streams.block_width([3, 5], 1024, 7) == MIN_ROWS
    assert streams.block_width([200, 200], 256, 7) == 128  # a call's rows bound it


def test_alike_lengths_share_a_micro_batch():
    head = [5] * 20
    short = [head + [i, 0] + [1] * 7 for i in range(7)]  # 9 tokens after the head
    long = [head + [i, 1] + [1] * 28 for i in range(7)]  # 30
    prompts = sorted(short + long)  # interleaved: each i's short prompt before its long one
    _, calls = replay(prompts, 20, 14, max_rows=1024, run=7)
    assert len(calls) == 1 and {len(p.tokens) for p in calls[0].parts} == {9, 30}
    assert calls[0].rows == 7 * 9 + 7 * 30  # two micro-batches, no filler

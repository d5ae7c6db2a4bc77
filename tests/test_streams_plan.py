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
from valuescope.models.streams import HEAD, MIN_ROWS, common_head, schedule

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


def replay(prompts, head, n_streams, max_rows):
    """Run the schedule on lists; return (rows per prompt's last part, calls, rows)."""
    cells: dict[int, list[int]] = {HEAD: list(prompts[0][:head])}
    seen: dict[int, int] = {}
    calls = list(schedule(prompts, head, n_streams, max_rows, FILLER))
    for call in calls:
        for s in call.starts:
            assert 1 <= s.stream <= n_streams
            source = list(cells.get(s.source, []))
            assert source[: s.keep] == list(prompts[s.prompt][: s.keep])  # a true prefix
            cells[s.stream] = source[: s.keep]
        widths = {len(p.tokens) for p in call.parts}
        assert len(widths) == 1 and widths.pop() >= MIN_ROWS
        assert call.rows <= max_rows
        assert len({p.stream for p in call.parts}) == len(call.parts)
        assert [p.stream for p in call.parts] == sorted(p.stream for p in call.parts)
        for p in call.parts:
            row = cells[p.stream]
            assert len(row) == p.start  # continues where the stream ends
            assert list(p.tokens[: p.real]) == list(prompts[p.prompt][p.start : p.start + p.real])
            assert all(t == FILLER for t in p.tokens[p.real :])
            assert p.last or p.real == len(p.tokens)  # filler only after a prompt's end
            row += p.tokens[: p.real]  # the filler is dropped when the stream is next used
            if p.last:
                assert row == list(prompts[p.prompt])
                assert p.prompt not in seen
                seen[p.prompt] = len(row)
    return seen, calls


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_streams", [1, 2, 5, 32])
def test_every_prompt_ends_in_a_stream_that_holds_exactly_it(seed, n_streams):
    prompts = prompts_like_the_pipeline(seed, 24)
    head = common_head(prompts)
    seen, _ = replay(prompts, head, n_streams, max_rows=256)
    assert sorted(seen) == list(range(len(prompts)))


def test_shared_tokens_are_evaluated_once_given_streams():
    prompts = prompts_like_the_pipeline(7, 32)
    head = common_head(prompts)
    _, calls = replay(prompts, head, 32, max_rows=1024)
    evaluated = sum(call.rows for call in calls)
    # the prefix tree of the prompts (each token once), plus at most MIN_ROWS - 1 filler
    # rows a prompt
    tree = (
        len(prompts[0])
        - head
        + sum(len(b) - streams.shared_length(a, b) for a, b in zip(prompts, prompts[1:]))
    )
    assert tree <= evaluated <= tree + len(prompts) * (MIN_ROWS - 1)
    assert evaluated < 0.75 * sum(len(p) - head for p in prompts)


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

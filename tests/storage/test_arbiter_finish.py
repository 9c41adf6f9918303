"""``StreamArbiter.finish``: the end of a stream gives the lake what the arbiter still held (a resync
snapshot ahead of the merged book, and its replica's rows after it), exactly as the hold timeout would
have; the sink's committed state is untouched by it."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from schemas import arrow_to_rows, rows_to_arrow
from storage.arbitrate import MERGED_GAP, ArbitrationOptions, StreamArbiter

S = 1_000_000_000


def _book(replica: str, seq: int, ts: int, *, snap: bool = False, epoch: int = 0) -> tuple[Any, ...]:
    return ("binance", "BTC-USDT", ts, ts, "bid", 100.0 + seq, 1.0, snap, seq, epoch, 0, replica)


def _table(rows: list[tuple[Any, ...]]) -> dict[str, pa.Table]:
    return {"book": pa.Table.from_batches([rows_to_arrow("book", rows)])}


# a ends at 12; b (re)synced with a snapshot at 20, ahead of the merged book, and its data ends 1 s
# later: nobody can deliver 13..19 any more, but hold_s (2 s) has not passed within the data
ROWS = [
    _book("a", 10, 1 * S, snap=True),
    _book("a", 11, 2 * S),
    _book("b", 11, 2 * S + 1, snap=True),
    _book("a", 12, 3 * S),
    _book("b", 20, 4 * S, snap=True, epoch=1),
    _book("b", 20, 4 * S, snap=True, epoch=1),  # a second level of the same snapshot
    _book("b", 21, 5 * S, epoch=1),
]


def _seen(out: dict[str, pa.Table]) -> list[tuple[Any, ...]]:
    return [(r[8], r[7], r[9], r[11]) for r in arrow_to_rows(out["book"])] if "book" in out else []


def test_finish_releases_held_rows_as_the_hold_timeout_would() -> None:
    arbiter = StreamArbiter(ArbitrationOptions(hold_s=2.0))
    processed = arbiter.process(_table(ROWS))
    assert _seen(processed) == [(10, True, 0, "a"), (11, False, 0, "a"), (12, False, 0, "a")]
    assert "feed_events" not in processed
    held_state = arbiter.dumps()
    assert json.loads(held_state)["books"][0][2]["held"]  # the sink commits held rows in its state

    finished = arbiter.finish()
    released = arrow_to_rows(finished["book"])
    assert _seen(finished) == [(20, True, 1, "b"), (20, True, 1, "b"), (21, False, 1, "b")]
    assert [r[3] for r in released] == [4 * S, 4 * S, 5 * S]  # receive times kept (never going back)
    (gap,) = arrow_to_rows(finished["feed_events"])
    assert gap[4] == MERGED_GAP and len(gap) == 6  # the merged stream's gap: no replica (a null column)
    assert json.loads(gap[5]) == {"after_seq": 12, "to_seq": 20, "resync_replica": "b", "epoch": 1}
    assert arbiter.stats.merged_gaps == 1

    # the same rows as the hold timeout releases them (a later row of the stream, past hold_s)
    timed = StreamArbiter(ArbitrationOptions(hold_s=2.0))
    timed.process(_table(ROWS))
    later = timed.process(_table([_book("b", 22, 8 * S, epoch=1)]))
    assert arrow_to_rows(later["book"])[:3] == released
    assert arrow_to_rows(later["feed_events"]) == [gap]

    # nothing is held any more: a second finish gives nothing, and the stream can go on
    assert arbiter.finish() == {}
    assert not json.loads(arbiter.dumps())["books"][0][2]["held"]
    more = arbiter.process(_table([_book("b", 22, 6 * S, epoch=1)]))
    assert _seen(more) == [(22, False, 1, "b")]


def test_finish_from_committed_state_gives_the_same_rows() -> None:
    """A sink restarted from its committed state holds the same rows: finish is deterministic."""
    first = StreamArbiter(ArbitrationOptions(hold_s=2.0))
    first.process(_table(ROWS[:4]))
    restarted = StreamArbiter(ArbitrationOptions(hold_s=2.0), json.loads(first.dumps()))
    restarted.process(_table(ROWS[4:]))
    whole = StreamArbiter(ArbitrationOptions(hold_s=2.0))
    whole.process(_table(ROWS))
    assert restarted.dumps() == whole.dumps()
    a, b = restarted.finish(), whole.finish()
    assert a.keys() == b.keys() == {"book", "feed_events"}
    assert all(a[ds].equals(b[ds]) for ds in a)


def test_finish_with_nothing_held_changes_nothing() -> None:
    arbiter = StreamArbiter(ArbitrationOptions(hold_s=2.0))
    assert arbiter.finish() == {}  # a fresh arbiter
    arbiter.process(_table(ROWS[:4]))
    state = arbiter.dumps()
    assert arbiter.finish() == {}
    assert arbiter.dumps() == state
    trades = [("binance", "BTC-USDT", 1, 1, "7", 10.0, 1.0, "buy", 0, "a")]
    arbiter.process({"trades": pa.Table.from_batches([rows_to_arrow("trades", trades)])})
    assert arbiter.finish() == {}  # keyed datasets hold nothing back

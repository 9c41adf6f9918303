"""Frames the websocket library has already received are normalised as one burst (one record buffer,
one emit), with nothing changed in what is published: the real Binance recording, sent faster than
the collector reads it (``bench.feed.RecordedFeed``), gives exactly the rows the recording gives
offline, in the order a replay of the live capture gives them, raw archive batches included."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from bench.feed import RecordedFeed, expected_rows, load_recording, make_feed
from collectors.capture import replay_capture
from collectors.connection import Collector, ConnectionSettings, ConnectionStats, OutputQueue, _message_ready
from collectors.raw import RawSettings
from collectors.registry import get_dialect
from schemas import RecordBuffer

SYMBOLS = ("BTCUSDT", "ETHUSDT")


async def _collect(
    feed: RecordedFeed, settings: ConnectionSettings, capture: Path
) -> tuple[Collector, RecordBuffer, list[int]]:
    """Runs a collector against the whole feed; returns it, what it published and each put's rows."""
    got = RecordBuffer()
    puts: list[int] = []

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    collector = Collector(
        get_dialect("binance"),
        list(SYMBOLS),
        sink,
        ws_url=feed.ws_url,
        rest_url=feed.rest_url,
        settings=settings,
        capture_path=capture,
    )
    original = OutputQueue.put

    async def counting_put(self: OutputQueue, batch: RecordBuffer, frames: int = 1) -> None:
        puts.append(len(batch.book) + len(batch.bbo) + len(batch.trades))
        await original(self, batch, frames)

    collector.output.put = counting_put.__get__(collector.output)  # type: ignore[method-assign]
    await collector.start()
    try:
        await asyncio.wait_for(feed.done.wait(), timeout=60)
        want = len(SYMBOLS) * int(expected_rows(feed.recording)[-1])
        for _ in range(600):
            if len(got.book) + len(got.bbo) + len(got.trades) >= want:
                break
            await asyncio.sleep(0.05)
    finally:
        await collector.stop()
    return collector, got, puts


@pytest.fixture(scope="module")
def recording() -> Any:
    return load_recording()


async def test_a_fast_feed_is_normalised_in_bursts_with_every_row(tmp_path: Path, recording: Any) -> None:
    feed = make_feed(SYMBOLS, 0.0, 60.0)
    await feed.start()
    try:
        collector, got, puts = await _collect(feed, ConnectionSettings(), tmp_path / "live.capture")
    finally:
        await feed.stop()
    frames = len(recording.prologue) + len(recording.frames)
    assert feed.frames_sent == len(SYMBOLS) * frames
    assert collector.stats.frames == feed.frames_sent
    # every row the recording gives, per symbol (nothing lost, nothing doubled)
    per_symbol = int(expected_rows(recording)[-1])
    for symbol in ("BTC-USDT", "ETH-USDT"):
        rows = sum(1 for ds in ("trades", "book", "bbo") for r in got.rows(ds) if r[1] == symbol)
        assert rows == per_symbol
    assert not [e for e in got.feed_events if e[4] not in ("connect", "disconnect")]
    # bursts happened: far fewer emits than frames, none larger than the cap
    data_puts = [n for n in puts if n]
    assert len(data_puts) < collector.stats.frames / 4
    # the live rows, in their order, are those of a replay of the live capture
    replayed = replay_capture(get_dialect("binance").new_normaliser(), tmp_path / "live.capture")
    assert replayed.book == got.book
    assert replayed.bbo == got.bbo
    assert replayed.trades == got.trades


async def test_raw_batches_closing_inside_a_burst_keep_the_order(tmp_path: Path, recording: Any) -> None:
    feed = make_feed(SYMBOLS, 0.0, 60.0)
    await feed.start()
    settings = ConnectionSettings(raw=RawSettings(batch_bytes=64 * 1024, batch_s=60.0))
    try:
        collector, got, _ = await _collect(feed, settings, tmp_path / "live.capture")
    finally:
        await feed.stop()
    assert collector.stats.raw_batches > 50  # many raw batches closed while bursts were normalised
    replayed = replay_capture(get_dialect("binance").new_normaliser(), tmp_path / "live.capture")
    assert replayed.book == got.book
    assert replayed.trades == got.trades
    # every frame received (plus the two injected snapshots and the closing disconnect line)
    assert collector.stats.frames <= sum(r[5] for r in got.raw) <= collector.stats.frames + 3


def test_a_burst_needs_a_whole_message_queued() -> None:
    class Frame:
        def __init__(self, fin: bool) -> None:
            self.fin = fin

    queue: deque[Frame] = deque()

    class Frames:
        pass

    class Messages:
        frames = Frames()

    class Ws:
        recv_messages = Messages()

    Frames.queue = queue  # type: ignore[attr-defined]
    ready = _message_ready(Ws())
    assert not ready()  # nothing queued
    queue.append(Frame(False))
    assert not ready()  # the first fragment of a message whose rest is not here yet
    queue.append(Frame(True))
    assert ready()
    assert not _message_ready(object())()  # another connection object: one frame per burst


def _rows(n: int) -> RecordBuffer:
    out = RecordBuffer()
    out.bbo.extend(("binance", "BTC-USDT", None, i, 1.0, 1.0, 2.0, 1.0, i, 0) for i in range(n))
    return out


async def test_the_output_queue_bound_counts_the_frames_of_a_burst() -> None:
    stats = ConnectionStats()
    queue = OutputQueue(10, "drop-oldest", stats, "binance")
    await queue.put(_rows(3), frames=6)
    await queue.put(_rows(2), frames=4)
    assert len(queue) == 10 and stats.dropped_rows == 0
    await queue.put(_rows(1), frames=3)  # does not fit: the oldest burst (6 frames, 3 rows) goes
    assert len(queue) == 7 and stats.dropped_batches == 1 and stats.dropped_rows == 3
    await queue.put(_rows(4), frames=25)  # larger than the bound: it goes in alone
    assert len(queue) == 25 and stats.max_queue_depth == 25
    merged = await queue.get_all()
    assert len(merged.bbo) == 4 and len(merged.feed_events) == 1  # the drops, recorded
    assert len(queue) == 0

    blocking = OutputQueue(10, "block", ConnectionStats(), "binance")
    await blocking.put(_rows(1), frames=8)
    waiting = asyncio.create_task(blocking.put(_rows(1), frames=5))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # 8 + 5 frames exceed the bound: the connection waits
    assert len((await blocking.get_all()).bbo) == 1
    await asyncio.wait_for(waiting, 1)
    assert len(blocking) == 5

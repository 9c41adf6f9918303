"""A damaged local log: detected, reported with its place, skipped exactly on request, never deleted.

Each case flips 16 bytes inside one entry (what a bad disk block or a stray write does) and checks
the rows the sink delivers, its exit code and message, and the ``log_corrupt`` feed event.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from schemas import rows_to_arrow
from streaming.local import (
    ENTRY_HEADER,
    SEGMENT_MAGIC,
    LocalLogReader,
    LocalLogWriter,
    LogCorruptError,
    list_segments,
    log_end,
)
from tests.storage.test_sink import lake_rows
from ticktape.cli import main

T0 = 1_723_161_254_024_619_568
ROWS_PER_ENTRY = 10


def trade(i: int) -> tuple:
    return ("binance", "BTC-USDT", T0 + i - 5, T0 + i, str(i), 60000.0 + i, 0.5, "buy", 0)


def write_entries(log_dir: Path, start: int, n: int, **kw) -> None:
    with LocalLogWriter(log_dir, **kw) as w:
        assert w.next_entry == start
        for k in range(start, start + n):
            w.append("trades", rows_to_arrow("trades", [trade(k * ROWS_PER_ENTRY + j) for j in range(10)]))


def entry_offsets(path: Path) -> list[tuple[int, int, int]]:
    """(entry number, offset, total size) of every entry of an intact segment."""
    data = path.read_bytes()
    pos, out = len(SEGMENT_MAGIC), []
    while pos + ENTRY_HEADER.size <= len(data):
        length, _crc, number = ENTRY_HEADER.unpack_from(data, pos)
        out.append((number, pos, ENTRY_HEADER.size + length))
        pos += ENTRY_HEADER.size + length
    return out


def flip16(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        data = fh.read(16)
        fh.seek(offset)
        fh.write(bytes(b ^ 0xFF for b in data))


def damage_entry(path: Path, number: int) -> tuple[int, int]:
    """Flips 16 bytes in the middle of entry ``number``'s body; returns its (offset, size)."""
    for n, pos, size in entry_offsets(path):
        if n == number:
            flip16(path, pos + ENTRY_HEADER.size + (size - ENTRY_HEADER.size) // 2)
            return pos, size
    raise AssertionError(f"entry {number} not in {path}")


def sink(log_dir: Path, lake: Path, *extra: str) -> int:
    return main(
        [
            "sink",
            "--log",
            str(log_dir),
            "--lake",
            str(lake),
            "--until-idle",
            "0.3",
            "--flush-idle",
            "0.1",
            *extra,
        ]
    )


def trade_ids(lake: Path) -> list[int]:
    return sorted(int(r[4]) for r in lake_rows(lake, "trades"))


def expected_ids(entries: range, lost: set[int]) -> list[int]:
    return [k * ROWS_PER_ENTRY + j for k in entries if k not in lost for j in range(ROWS_PER_ENTRY)]


def corrupt_events(lake: Path) -> list[dict]:
    return [json.loads(r[5]) for r in lake_rows(lake, "feed_events") if r[4] == "log_corrupt"]


def check_stop_then_skip(
    log_dir: Path, lake: Path, capsys: pytest.CaptureFixture[str], segment: Path, pos: int, size: int
) -> None:
    """The sink stops at the damage (exit 3, a located message), then --skip-corrupt skips exactly it."""
    lost = 7
    assert sink(log_dir, lake) == 3
    err = capsys.readouterr().err
    assert str(segment) in err and f"bytes {pos}..{pos + size}" in err and "--skip-corrupt" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert trade_ids(lake) == expected_ids(range(lost), set())  # everything before the damage

    assert sink(log_dir, lake, "--skip-corrupt") == 0
    capsys.readouterr()
    assert trade_ids(lake) == expected_ids(range(log_end(log_dir)), {lost})
    (event,) = corrupt_events(lake)
    assert event["segment"] == segment.name and event["start"] == pos and event["end"] == pos + size
    assert event["bytes"] == size and event["first_lost_entry"] == lost and event["next_entry"] == lost + 1

    # Exactly once: a second run delivers nothing more, and the event is not repeated.
    assert sink(log_dir, lake, "--skip-corrupt") == 0
    assert trade_ids(lake) == expected_ids(range(log_end(log_dir)), {lost})
    assert len(corrupt_events(lake)) == 1


def test_damage_mid_way_through_an_older_segment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_dir, lake = tmp_path / "log", tmp_path / "lake"
    write_entries(log_dir, 0, 40, segment_bytes=20_000)
    segments = list_segments(log_dir)
    assert len(segments) >= 3
    first, segment = next((f, p) for f, p in segments if f <= 7 < f + len(entry_offsets(p)))
    assert segment != segments[-1][1] and first < 7
    pos, size = damage_entry(segment, 7)
    check_stop_then_skip(log_dir, lake, capsys, segment, pos, size)


def test_damage_mid_way_through_the_last_segment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_dir, lake = tmp_path / "log", tmp_path / "lake"
    write_entries(log_dir, 0, 30)
    ((_, segment),) = list_segments(log_dir)
    pos, size = damage_entry(segment, 7)
    check_stop_then_skip(log_dir, lake, capsys, segment, pos, size)


def test_writer_reopening_a_damaged_log_keeps_intact_entries_and_quarantines_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_dir, lake = tmp_path / "log", tmp_path / "lake"
    write_entries(log_dir, 0, 30)
    ((_, segment),) = list_segments(log_dir)
    pos, size = damage_entry(segment, 7)
    # The last entry is complete but damaged too: not a torn write, so it is kept aside, not deleted.
    last_pos, _ = damage_entry(segment, 29)
    tail = segment.read_bytes()[last_pos:]

    w = LocalLogWriter(log_dir)
    assert w.next_entry == 29 and w.truncated_bytes == 0
    assert w.quarantined is not None and w.quarantined.read_bytes() == tail
    assert [(d.start, d.end, d.first_lost, d.next_entry) for d in w.damage] == [(pos, pos + size, 7, 8)]
    w.close()
    assert segment.stat().st_size == last_pos  # the 21 intact entries after the damage stay
    write_entries(log_dir, 29, 5)

    check_stop_then_skip(log_dir, lake, capsys, segment, pos, size)
    assert trade_ids(lake) == expected_ids(range(34), {7})


def test_a_torn_tail_is_still_truncated_and_only_that(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    write_entries(log_dir, 0, 5)
    ((_, segment),) = list_segments(log_dir)
    intact = segment.stat().st_size
    with open(segment, "ab") as fh:  # an entry cut off by a crash: header says more than follows
        fh.write(ENTRY_HEADER.pack(5000, 0, 5) + b"\x01" * 100)
    w = LocalLogWriter(log_dir)
    assert w.truncated_bytes == ENTRY_HEADER.size + 100 and w.quarantined is None and w.next_entry == 5
    w.close()
    assert segment.stat().st_size == intact
    assert not (log_dir / "quarantine").exists()


def test_reader_seeking_past_damage_and_damage_ending_a_segment(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    write_entries(log_dir, 0, 40, segment_bytes=20_000)
    segments = list_segments(log_dir)
    (first, segment), (second, _) = segments[0], segments[1]
    damage_entry(segment, 2)
    # A sink that resumes after the damage (it skipped it before) reads on without stopping.
    reader = LocalLogReader(log_dir)
    reader.seek(4)
    assert [n for n, _ in reader.read()][:3] == [4, 5, 6]
    reader.close()
    # The last entry of a finished segment damaged: the reader does not wait for it forever.
    damage_entry(segment, second - 1)
    reader = LocalLogReader(log_dir)
    reader.seek(second - 2)
    assert [n for n, _ in reader.read()] == [second - 2]  # what precedes the damage comes first
    with pytest.raises(LogCorruptError, match=f"entries {second - 1}..{second - 1} unreadable"):
        reader.read()
    reader.close()
    skipping = LocalLogReader(log_dir, skip_corrupt=True)
    got = []
    while batch := skipping.read():
        got.extend(n for n, _ in batch)
    assert got == [n for n in range(40) if n not in (2, second - 1)]
    assert [(d.first_lost, d.next_entry) for d in skipping.skipped] == [(2, 3), (second - 1, second)]
    assert first == 0 and os.path.exists(segment)


def test_a_live_sink_stays_up_unhealthy_at_damage_until_stopped(tmp_path: Path) -> None:
    import asyncio

    import aiohttp

    from storage.sink import Sink, SinkOptions
    from streaming.local import LocalConsumer
    from ticktape.metrics import SinkMetricsServer

    log_dir, lake = tmp_path / "log", tmp_path / "lake"
    write_entries(log_dir, 0, 12)
    ((_, segment),) = list_segments(log_dir)
    damage_entry(segment, 5)

    async def main() -> None:
        sink = Sink(
            LocalConsumer(log_dir, poll_interval_s=0.01),
            lake,
            SinkOptions(poll_timeout_s=0.05, flush_idle_s=0.05, hold_on_failure=True),
        )
        metrics = SinkMetricsServer(sink.stats)
        await metrics.start()
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(200):
                    async with session.get(f"http://127.0.0.1:{metrics.port}/healthz") as resp:
                        if resp.status == 503:
                            assert "is damaged at bytes" in await resp.text()
                            break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("/healthz never turned unhealthy")
                async with session.get(f"http://127.0.0.1:{metrics.port}/metrics") as resp:
                    assert "ticktape_sink_log_corrupt_total 1.0" in await resp.text()
            assert not task.done()  # still up: probes and alerts see it
            assert trade_ids(lake) == expected_ids(range(5), set())
        finally:
            stop.set()
            with pytest.raises(LogCorruptError):
                await task
            await metrics.stop()

    asyncio.run(main())

"""The embedded local transport: durable segment log, publisher queue policies, tail-following consumer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from schemas import RecordBuffer, arrow_to_rows
from streaming import open_consumer, open_publisher
from streaming.local import (
    ENTRY_HEADER,
    SEGMENT_MAGIC,
    LocalConsumer,
    LocalLogReader,
    LocalLogWriter,
    LocalPublisher,
    LogCorruptError,
    LogLockedError,
    list_segments,
    read_log,
)
from tests.support.services import ROOT

T0 = 1_723_161_254_024_619_568


def trade(i: int, symbol: str = "BTC-USDT") -> tuple:
    return ("binance", symbol, T0 + i - 5, T0 + i, str(i), 60000.0 + i, 0.5, "buy" if i % 2 else "sell", 0)


def records(start: int, n: int) -> RecordBuffer:
    buf = RecordBuffer()
    for i in range(start, start + n):
        buf.trades.append(trade(i))
        buf.book.append(("binance", "BTC-USDT", None, T0 + i, "bid", 1.0 + i, 2.0, False, i, 0, 0))
    buf.bbo.append(("binance", "BTC-USDT", None, T0 + start, 1.0, 2.0, 3.0, 4.0, None, 0))
    buf.feed_events.append(("binance", None, "connection", T0 + start, "connect", "{}"))
    return buf


def log_rows(log_dir: Path) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for _n, dataset, table in read_log(log_dir):
        out.setdefault(dataset, []).extend(arrow_to_rows(table))
    return out


def expected_rows(chunks: list[RecordBuffer]) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for c in chunks:
        for ds in ("trades", "book", "bbo", "feed_events"):
            if c.rows(ds):
                out.setdefault(ds, []).extend(c.rows(ds))
    return out


def write_batches(log_dir: Path, n: int, **kw) -> None:
    """n entries of 10 trades each, written with the blocking writer."""
    from schemas import rows_to_arrow

    with LocalLogWriter(log_dir, **kw) as w:
        for k in range(w.next_entry, w.next_entry + n):
            w.append("trades", rows_to_arrow("trades", [trade(k * 10 + j) for j in range(10)]))


def test_publish_consume_round_trip(tmp_path: Path) -> None:
    chunks = [records(i * 100, 100) for i in range(20)]
    copies = [RecordBuffer(list(c.trades), list(c.book), list(c.bbo), list(c.feed_events)) for c in chunks]

    async def main() -> list:
        pub = open_publisher("local", log_dir=tmp_path / "log")
        await pub.start()
        for c in chunks:
            await pub.publish(c)
            assert len(c) == 0  # publish takes the rows
        await pub.close()
        assert pub.stats.published_rows == sum(len(c) for c in copies)
        assert pub.stats.dropped_rows == 0
        con = open_consumer("local", log_dir=tmp_path / "log")
        await con.start()
        assert con.streams() == ["local"]
        got = []
        while batches := await con.poll(0.2):
            got.extend(batches)
        await con.close()
        return got

    batches = asyncio.run(main())
    assert [b.first for b in batches] == list(range(len(batches)))
    assert all(b.first == b.last and b.stream == "local" for b in batches)
    rows: dict[str, list[tuple]] = {}
    for b in batches:
        rows.setdefault(b.dataset, []).extend(arrow_to_rows(b.table))
    assert rows == expected_rows(copies)


def test_unknown_transport_and_missing_log_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown transport 'carrier-pigeon'"):
        open_publisher("carrier-pigeon")
    with pytest.raises(ValueError, match="log directory"):
        open_consumer("local")


def test_torn_tail_is_ignored_by_readers_and_truncated_by_the_next_writer(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    write_batches(log_dir, 5)
    seg = list_segments(log_dir)[-1][1]
    intact = seg.stat().st_size
    # A crash in the middle of writing entry 5: its header and half its body made it to disk.
    with open(seg, "rb") as fh:
        data = fh.read()
    first_entry = data[len(SEGMENT_MAGIC) :]
    length = ENTRY_HEADER.unpack_from(first_entry)[0]
    torn = bytearray(first_entry[: ENTRY_HEADER.size + length // 2])
    torn[8:16] = (5).to_bytes(8, "little")
    with open(seg, "ab") as fh:
        fh.write(bytes(torn))

    reader = LocalLogReader(log_dir)
    assert [n for n, _ in reader.read()] == [0, 1, 2, 3, 4]
    assert reader.read() == []  # the torn entry is waited on, never returned

    write_batches(log_dir, 3)  # a new writer truncates the torn bytes and goes on at entry 5
    assert [n for n, _ in reader.read()] == [5, 6, 7]
    reader.close()
    rows = log_rows(log_dir)["trades"]
    assert rows == [trade(i) for i in range(80)]
    assert seg.stat().st_size > intact


def test_corrupt_complete_tail_entry_is_quarantined_not_deleted(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    write_batches(log_dir, 3)
    seg = list_segments(log_dir)[-1][1]
    with open(seg, "r+b") as fh:  # flip a byte in the last entry's body: CRC mismatch
        fh.seek(-3, os.SEEK_END)
        b = fh.read(1)
        fh.seek(-3, os.SEEK_END)
        fh.write(bytes([b[0] ^ 0xFF]))
    assert [n for n, _, _ in read_log(log_dir)] == [0, 1]
    w = LocalLogWriter(log_dir)
    # A complete entry failing its CRC is not a torn write: cut off, but kept in quarantine/.
    assert w.next_entry == 2 and w.truncated_bytes == 0 and w.quarantined_bytes > 0
    assert w.quarantined is not None and w.quarantined.stat().st_size == w.quarantined_bytes
    w.close()


def test_damage_before_the_tail_is_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    write_batches(log_dir, 4, segment_bytes=1)  # one entry per segment
    segments = list_segments(log_dir)
    assert [f for f, _ in segments] == [0, 1, 2, 3]
    with open(segments[1][1], "ab") as fh:
        fh.write(b"garbage that is not an entry")
    with pytest.raises(
        LogCorruptError,
        match=r"00000000000000000001.seg is damaged at bytes 1985..2013 \(28 bytes; no entry lost",
    ):
        list(read_log(log_dir))


def test_segments_roll_and_seek_lands_on_the_right_entry(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    write_batches(log_dir, 40, segment_bytes=4096)
    segments = list_segments(log_dir)
    assert len(segments) > 3
    assert all(p.name == f"{f:020d}.seg" for f, p in segments)
    for start in (0, 7, segments[2][0], segments[-1][0], 39):
        got = list(read_log(log_dir, start))
        assert [n for n, _, _ in got] == list(range(start, 40))
        assert arrow_to_rows(got[0][2])[0] == trade(start * 10)
    reader = LocalLogReader(log_dir)
    reader.seek(40)
    assert reader.read() == []


def test_single_writer_lock(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    first = LocalLogWriter(log_dir)
    with pytest.raises(LogLockedError, match=rf"already open for writing by process {os.getpid()}"):
        LocalLogWriter(log_dir)
    first.close()
    LocalLogWriter(log_dir).close()  # free again


def test_lock_of_a_killed_writer_is_released(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from streaming.local import LocalLogWriter
        w = LocalLogWriter({str(log_dir)!r})
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
        with pytest.raises(LogLockedError, match=f"process {proc.pid}"):
            LocalLogWriter(log_dir)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    LocalLogWriter(log_dir).close()


def test_drop_oldest_policy_counts_what_it_drops(tmp_path: Path) -> None:
    async def main() -> LocalPublisher:
        # The flusher would only run on its (long) interval: the queue fills up and must drop.
        pub = LocalPublisher(
            tmp_path / "log", queue_rows=500, policy="drop-oldest", flush_interval_s=30, batch_rows=10_000
        )
        await pub.start()
        for i in range(10):
            buf = RecordBuffer()
            buf.trades.extend(trade(i * 100 + j) for j in range(100))
            await pub.publish(buf)
        assert pub.stats.dropped_rows == 500
        assert pub.stats.queue_depth == 500
        await pub.close()
        return pub

    pub = asyncio.run(main())
    assert pub.stats.published_rows == 500
    assert log_rows(tmp_path / "log")["trades"] == [trade(i) for i in range(500, 1000)]


def test_block_policy_loses_nothing(tmp_path: Path) -> None:
    async def main() -> LocalPublisher:
        pub = LocalPublisher(
            tmp_path / "log", queue_rows=300, policy="block", flush_interval_s=0.01, batch_rows=200
        )
        await pub.start()
        for i in range(50):
            buf = RecordBuffer()
            buf.trades.extend(trade(i * 100 + j) for j in range(100))
            await pub.publish(buf)
            assert pub.stats.queue_depth <= 300
        await pub.close()
        return pub

    pub = asyncio.run(main())
    assert pub.stats.dropped_rows == 0 and pub.stats.published_rows == 5000
    assert log_rows(tmp_path / "log")["trades"] == [trade(i) for i in range(5000)]


def test_consumer_follows_a_log_written_by_another_process(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {str(ROOT)!r})
        sys.path.insert(0, {str(ROOT / "tests" / "streaming")!r})
        from schemas import RecordBuffer
        from streaming.local import LocalPublisher
        T0 = {T0}
        async def main():
            pub = LocalPublisher({str(log_dir)!r}, flush_interval_s=0.01, segment_bytes=8192)
            await pub.start()
            for k in range(30):
                buf = RecordBuffer()
                buf.trades.extend(("binance", "BTC-USDT", T0 + i - 5, T0 + i, str(i), 60000.0 + i, 0.5,
                                   "buy" if i % 2 else "sell", 0) for i in range(k * 50, k * 50 + 50))
                await pub.publish(buf)
                await pub.flush()
                await asyncio.sleep(0.02)
            await pub.close()
        asyncio.run(main())
        """
    )

    async def main() -> list[tuple]:
        con = LocalConsumer(log_dir, poll_interval_s=0.01)
        await con.start()
        assert await con.poll(0.05) == []  # no log yet: idle, not an error
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
        rows: list[tuple] = []
        expected_next = 0
        while len(rows) < 1500:
            for b in await con.poll(1.0):
                assert b.first == expected_next
                expected_next += 1
                rows.extend(arrow_to_rows(b.table))
            if proc.returncode is not None and len(rows) < 1500:
                assert proc.returncode == 0
        assert await proc.wait() == 0
        assert await con.poll(0.1) == []
        await con.close()
        return rows

    rows = asyncio.run(main())
    assert rows == [trade(i) for i in range(1500)]
    assert len(list_segments(log_dir)) > 1


def test_consumer_commit_records_the_position(tmp_path: Path) -> None:
    write_batches(tmp_path / "log", 3)

    async def main() -> None:
        con = LocalConsumer(tmp_path / "log", group="g1")
        await con.seek("local", 1)
        got = await con.poll(0.1)
        assert [b.first for b in got] == [1, 2]
        await con.commit("local", 2)
        with pytest.raises(KeyError):
            await con.seek("other", 0)

    asyncio.run(main())
    assert '"last": 2' in (tmp_path / "log" / "consumers" / "g1.json").read_text()


def test_retention_deletes_only_segments_every_group_committed(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    write_batches(log_dir, 20, segment_bytes=1, keep_segments=2)  # one entry per segment
    assert len(list_segments(log_dir)) == 20  # no consumer group yet: nothing is deleted

    async def commit(group: str, last: int) -> None:
        await LocalConsumer(log_dir, group=group).commit("local", last)

    asyncio.run(commit("sink", 15))
    asyncio.run(commit("quality", 9))
    write_batches(log_dir, 1, segment_bytes=1, keep_segments=2)
    # entries 0..9 are committed by both groups; segment 10 onwards is still needed by "quality"
    assert [f for f, _ in list_segments(log_dir)] == list(range(10, 21))
    assert [n for n, _, _ in read_log(log_dir, 10)] == list(range(10, 21))
    with pytest.raises(LogCorruptError, match="no longer exists"):
        list(read_log(log_dir, 3))
    asyncio.run(commit("quality", 20))
    asyncio.run(commit("sink", 22))
    write_batches(log_dir, 2, segment_bytes=1, keep_segments=2)
    assert [f for f, _ in list_segments(log_dir)] == [21, 22]


def test_seeking_past_the_end_of_the_log_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_batches(tmp_path / "log", 3)

    async def main() -> None:
        con = LocalConsumer(tmp_path / "log")
        await con.seek("local", 3)  # the next entry: fine, nothing to say
        assert not caplog.records
        await con.seek("local", 500)  # a lake that is ahead of this log: another log, same stream id
        assert await con.poll(0.05) == []

    asyncio.run(main())
    assert any("ends before entry 500 (next entry 3)" in r.getMessage() for r in caplog.records)


def test_close_stops_the_flusher_even_when_cancelled_as_it_wakes(tmp_path: Path) -> None:
    """Python 3.11's ``asyncio.wait_for`` swallows a cancel arriving with the event it waits for;
    the flusher must stop anyway, or ``close()`` never returns."""

    async def main() -> None:
        pub = LocalPublisher(tmp_path / "log", flush_interval_s=5.0)
        await pub.start()
        await asyncio.sleep(0.01)
        pub._wake.set()
        await asyncio.sleep(0)  # the event's waiter completes; the flusher has not resumed yet
        await asyncio.wait_for(pub.close(), 5)
        assert pub._task is not None and pub._task.cancelled()

    asyncio.run(main())

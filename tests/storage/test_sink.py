"""The sink and the lake writer: layout, sort order, commit markers, orphans, resume, SIGTERM, DuckDB."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas import arrow_schema, arrow_to_rows, rows_to_arrow
from storage.lake import (
    dataset_files,
    parse_sink_file_name,
    sink_file_name,
    sort_for_lake,
    split_partitions,
)
from storage.sink import Sink, SinkOptions, UnitWriter, commit_path, last_committed
from streaming.base import Consumer
from streaming.local import LocalConsumer, LocalLogWriter
from ticktape.commands.sink import local_group

DAY1 = int(datetime(2024, 8, 8, tzinfo=UTC).timestamp()) * 10**9
DAY2 = DAY1 + 86_400 * 10**9


def trade(ex: str, sym: str, ts: int, i: int) -> tuple:
    return (ex, sym, ts - 1000, ts, str(i), 100.0 + i, 1.0 + i, "buy", 0)


def entries() -> list[tuple[str, list[tuple]]]:
    """Log entries: trades of two exchanges around midnight between DAY1 and DAY2, equal timestamps included."""
    out = []
    i = 0
    for k in range(12):
        rows = []
        for j in range(40):
            ts = DAY2 - 5 * 10**9 + (k * 40 + j) * 20_000_000  # crosses midnight at k=6
            ex = "binance" if j % 3 else "okx"
            sym = ("ETH-USDT", "BTC-USDT", "SOL-USDT")[j % 3 if j % 5 else 0]
            rows.append(trade(ex, sym, ts - (ts % 100_000_000), i))  # equal ts_recv within 100 ms
            i += 1
        out.append(("trades", rows))
        out.append(
            ("feed_events", [("binance", None, "connection", DAY1 + k, "connect", json.dumps({"k": k}))])
        )
    return out


def make_log(log_dir: Path, items: list[tuple[str, list[tuple]]]) -> None:
    with LocalLogWriter(log_dir) as w:
        for dataset, rows in items:
            w.append(dataset, rows_to_arrow(dataset, rows))


def run_sink(log_dir: Path, lake: Path, **opts) -> Sink:
    options = SinkOptions(until_idle_s=0.3, poll_timeout_s=0.05, **opts)
    sink = Sink(LocalConsumer(log_dir), lake, options)
    asyncio.run(sink.run())
    return sink


def lake_rows(lake: Path, dataset: str) -> list[tuple]:
    rows: list[tuple] = []
    for f in dataset_files(lake, dataset):
        rows.extend(arrow_to_rows(pq.read_table(f, schema=arrow_schema(dataset))))
    return rows


def test_layout_sorting_and_commit_marker(tmp_path: Path) -> None:
    items = entries()
    make_log(tmp_path / "log", items)
    lake = tmp_path / "lake"
    sink = run_sink(tmp_path / "log", lake, flush_entries=8)
    all_trades = [r for ds, rows in items if ds == "trades" for r in rows]

    files = dataset_files(lake, "trades")
    rel = sorted(str(f.relative_to(lake)) for f in files)
    # units of 8 entries: 0..7, 8..15, 16..23; each split by exchange and UTC date of ts_recv
    assert (
        "trades/exchange=binance/date=2024-08-08/local-00000000000000000000-00000000000000000007.parquet"
        in rel
    )
    assert (
        "trades/exchange=okx/date=2024-08-09/local-00000000000000000016-00000000000000000023.parquet" in rel
    )
    for f in files:
        table = pq.read_table(f, schema=arrow_schema("trades"))
        exchange = f.parent.parent.name.split("=")[1]
        day = f.parent.name.split("=")[1]
        rows = arrow_to_rows(table)
        assert {r[0] for r in rows} == {exchange}
        assert {datetime.fromtimestamp(r[3] // 10**9, UTC).date().isoformat() for r in rows} == {day}
        # sorted by (symbol, ts_recv), stable: equal keys keep the order they arrived in
        assert parse_sink_file_name(f.name)[0] == "local"
        arrived = [
            r
            for r in all_trades
            if r[0] == exchange and datetime.fromtimestamp(r[3] // 10**9, UTC).date().isoformat() == day
        ]
        unit_ids = {r[4] for r in rows}
        assert rows == sorted([r for r in arrived if r[4] in unit_ids], key=lambda r: (r[1], r[3]))
        assert pq.ParquetFile(f).metadata.row_group(0).column(0).compression == "ZSTD"
    assert sorted(lake_rows(lake, "trades")) == sorted(all_trades)
    assert len(lake_rows(lake, "feed_events")) == 12

    marker = json.loads(commit_path(lake, "local").read_text())
    assert marker["last"] == 23 and marker["first"] == 16
    assert all((lake / p).is_file() for p in marker["files"])
    assert sink.stats.units == 3 and sink.stats.committed == {"local": 23}
    assert not list(lake.rglob("*.tmp"))


def test_duckdb_reads_the_lake_with_hive_partitions(tmp_path: Path) -> None:
    items = entries()
    make_log(tmp_path / "log", items)
    lake = tmp_path / "lake"
    run_sink(tmp_path / "log", lake)
    con = duckdb.connect()
    rel = f"read_parquet('{lake}/trades/**/*.parquet', hive_partitioning = true)"
    got = con.sql(
        f"select exchange, cast(date as varchar), count(*), "
        f"count(*) filter (where cast(epoch_ns(ts_recv) // 86400000000000 as bigint) = date - DATE '1970-01-01') "
        f"from {rel} group by all order by all"
    ).fetchall()
    trades = [r for ds, rows in items if ds == "trades" for r in rows]

    def count(ex: str, day: int) -> int:
        return sum(1 for r in trades if r[0] == ex and (DAY1 <= r[3] < DAY2) == (day == 1))

    assert got == [
        ("binance", "2024-08-08", count("binance", 1), count("binance", 1)),
        ("binance", "2024-08-09", count("binance", 2), count("binance", 2)),
        ("okx", "2024-08-08", count("okx", 1), count("okx", 1)),
        ("okx", "2024-08-09", count("okx", 2), count("okx", 2)),
    ]


def test_resume_after_commit_adds_only_new_entries(tmp_path: Path) -> None:
    items = entries()
    log_dir, lake = tmp_path / "log", tmp_path / "lake"
    make_log(log_dir, items[:10])
    run_sink(log_dir, lake)
    assert last_committed(lake, "local") == 9
    make_log(log_dir, items[10:])  # the log grows; a new sink run continues after the commit
    sink = run_sink(log_dir, lake)
    assert sink.stats.committed == {"local": 23}
    assert sorted(lake_rows(lake, "trades")) == sorted(
        r for ds, rows in items if ds == "trades" for r in rows
    )
    sink = run_sink(log_dir, lake)  # nothing new: nothing written
    assert sink.stats.units == 0 and sink.stats.files == 0


def test_orphans_of_a_crash_are_removed_and_nothing_else(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    writer = UnitWriter(lake)
    rows = [trade("binance", "BTC-USDT", DAY1 + i, i) for i in range(10)]
    writer.write_unit("local", 0, 4, {"trades": rows_to_arrow("trades", rows[:5])})
    # A crash while writing unit 5..9: its intent is on disk, one file renamed, one still temporary.
    part = lake / "trades/exchange=binance/date=2024-08-08"
    files, _ = writer.plan("local", 5, 9, {"trades": rows_to_arrow("trades", rows[5:])})
    (lake / "_ticktape/commits/local.intent.json").write_text(
        json.dumps(
            {"stream": "local", "first": 5, "last": 9, "files": [str(p.relative_to(lake)) for p, _ in files]}
        )
    )
    orphan = part / sink_file_name("local", 5, 9)
    pq.write_table(pa.Table.from_batches([rows_to_arrow("trades", rows[5:])]), orphan)
    temp = part / f".{sink_file_name('local', 10, 12)}.tmp"
    temp.write_bytes(b"half a file")
    # Files that are not this stream's orphans: compaction output, another stream, committed data.
    compacted = part / "compacted-0001.parquet"
    compacted.write_bytes(b"x")
    other = part / sink_file_name("local-2", 5, 9)
    other.write_bytes(b"x")
    kept = part / sink_file_name("local", 0, 4)
    other_tmp = part / ".compacted-0002.parquet.tmp"
    other_tmp.write_bytes(b"x")

    assert UnitWriter(lake).recover("local") == 4
    assert not orphan.exists() and not temp.exists()
    assert compacted.exists() and other.exists() and kept.exists() and other_tmp.exists()


def test_rows_with_invalid_exchange_ids_are_kept_aside(tmp_path: Path) -> None:
    rows = [trade("binance", "BTC-USDT", DAY1 + i, i) for i in range(5)]
    rows.append(trade("../evil", "BTC-USDT", DAY1 + 9, 9))
    rows.append(trade("Binance", "BTC-USDT", DAY1 + 10, 10))
    lake = tmp_path / "lake"
    result = UnitWriter(lake).write_unit("local", 0, 0, {"trades": rows_to_arrow("trades", rows)})
    assert result.rows == {"trades": 5} and result.rejected_rows == 2
    assert sorted(lake_rows(lake, "trades")) == rows[:5]
    rejected = pq.read_table(lake / "_ticktape/rejected/trades" / sink_file_name("local", 0, 0))
    assert rejected.column("exchange").to_pylist() == ["../evil", "Binance"]
    assert not (tmp_path / "evil").exists()


def test_split_partitions_keeps_arrival_order_and_sort_is_stable() -> None:
    rows = [
        trade("okx" if i % 2 else "binance", "BTC-USDT", DAY1 + 86_400 * 10**9 * (i % 3), i)
        for i in range(30)
    ]
    table = pa.Table.from_batches([rows_to_arrow("trades", rows)])
    parts, rejected = split_partitions(table)
    assert rejected is None
    got = {(ex, day): arrow_to_rows(t) for ex, day, t in parts}
    for (ex, day), part_rows in got.items():
        assert part_rows == [
            r
            for r in rows
            if r[0] == ex and datetime.fromtimestamp(r[3] // 10**9, UTC).date().isoformat() == day
        ]
    same_key = [trade("binance", "ETH-USDT", DAY1, i) for i in range(5)]
    mixed = [trade("binance", "BTC-USDT", DAY1 + 1, 99), *same_key]
    assert arrow_to_rows(sort_for_lake(pa.Table.from_batches([rows_to_arrow("trades", mixed)]))) == [
        mixed[0],
        *same_key,
    ]


def test_same_log_gives_identical_files(tmp_path: Path) -> None:
    make_log(tmp_path / "log", entries())
    run_sink(tmp_path / "log", tmp_path / "a", flush_rows=150)
    run_sink(tmp_path / "log", tmp_path / "b", flush_rows=150)
    a = {str(p.relative_to(tmp_path / "a")): p.read_bytes() for p in (tmp_path / "a").rglob("*.parquet")}
    b = {str(p.relative_to(tmp_path / "b")): p.read_bytes() for p in (tmp_path / "b").rglob("*.parquet")}
    assert len(a) > 6 and a == b


def test_sink_command_flushes_commits_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    items = entries()
    log_dir, lake = tmp_path / "log", tmp_path / "lake"
    make_log(log_dir, items)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ticktape.cli",
            "sink",
            "--log",
            str(log_dir),
            "--lake",
            str(lake),
            "--flush-entries",
            "1000",
            "--flush-idle",
            "600",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The unit stays open (no size, idle or age trigger): wait until the sink has read the log.
        consumers = log_dir / "consumers"
        deadline = time.monotonic() + 60
        assert proc.stderr is not None
        for line in proc.stderr:
            if "resuming after position -1" in line:
                break
            assert time.monotonic() < deadline
        time.sleep(2.0)  # reading 24 small entries takes milliseconds
        assert not commit_path(lake, "local").exists()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "committed through position 23" in out
    assert last_committed(lake, "local") == 23
    # the log knows how far this lake's sink got (its retention keeps what any lake still needs)
    assert json.loads((consumers / f"{local_group(str(lake))}.json").read_text())["last"] == 23
    assert sorted(lake_rows(lake, "trades")) == sorted(
        r for ds, rows in items if ds == "trades" for r in rows
    )


def test_sink_command_errors(tmp_path: Path) -> None:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "ticktape.cli",
            "sink",
            "--lake",
            str(tmp_path / "lake"),
            "--until-idle",
            "0.1",
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert res.returncode == 2 and "--transport local needs --log DIR" in res.stderr


@pytest.mark.parametrize("bad", ["", "a/b", "..", "x" * 300])
def test_stream_ids_are_checked(bad: str) -> None:
    with pytest.raises(ValueError):
        sink_file_name(bad, 0, 1)


class ReassignedConsumer(LocalConsumer):
    """A local consumer whose stream moves to another sink for a while, as a Kafka rebalance does."""

    def __init__(self, log_dir: Path, lake: Path, revoke_after_polls: int, back_after_polls: int) -> None:
        super().__init__(log_dir, max_poll_entries=2)
        self.lake = lake
        self.polls = 0
        self.revoke_after = revoke_after_polls
        self.back_after = back_after_polls

    def streams(self) -> list[str]:
        return [] if self.revoke_after <= self.polls < self.back_after else [self.stream]

    async def poll(self, timeout_s: float):
        self.polls += 1
        if self.polls == self.revoke_after:
            # The new owner drains the stream into the same lake while this one has lost it.
            other = Sink(
                LocalConsumer(self.log_dir), self.lake, SinkOptions(until_idle_s=0.2, poll_timeout_s=0.05)
            )
            await other.run()
        if self.revoke_after <= self.polls < self.back_after:
            return []
        return await super().poll(timeout_s)


def test_a_reassigned_stream_is_not_written_twice(tmp_path: Path) -> None:
    items = entries()
    make_log(tmp_path / "log", items)
    lake = tmp_path / "lake"
    consumer = ReassignedConsumer(tmp_path / "log", lake, revoke_after_polls=3, back_after_polls=6)
    sink = Sink(consumer, lake, SinkOptions(until_idle_s=1.0, poll_timeout_s=0.05, flush_entries=50))
    asyncio.run(sink.run())
    # This sink had read entries 0..3 (an unfinished unit) when the stream moved; the other sink wrote
    # everything. Back with the stream, this one resumes after the other's commit: nothing twice.
    assert consumer.polls > 6 and sink.stats.units == 0
    assert last_committed(lake, "local") == 23
    assert sorted(lake_rows(lake, "trades")) == sorted(
        r for ds, rows in items if ds == "trades" for r in rows
    )


def test_duckdb_reports_the_partition_value_of_exchange(tmp_path: Path) -> None:
    """Why rows are only ever written under their own exchange's partition: DuckDB (2.0) reads the
    hive partition value for ``exchange``, not the value stored in the file."""
    part = tmp_path / "trades/exchange=binance/date=2024-08-08"
    part.mkdir(parents=True)
    rows = [trade("okx", "BTC-USDT", DAY1, 1)]
    pq.write_table(pa.Table.from_batches([rows_to_arrow("trades", rows)]), part / "x.parquet")
    got = duckdb.sql(
        f"select exchange from read_parquet('{tmp_path}/trades/**/*.parquet', hive_partitioning = true)"
    ).fetchall()
    assert got == [("binance",)]


class TwoLogs(Consumer):
    """Two local logs read as two streams by one consumer (as one Kafka consumer reads partitions)."""

    def __init__(self, a: Path, b: Path) -> None:
        self.parts = {"log-a": LocalConsumer(a, stream="log-a"), "log-b": LocalConsumer(b, stream="log-b")}

    async def start(self) -> None:
        for c in self.parts.values():
            await c.start()

    def streams(self) -> list[str]:
        return sorted(self.parts)

    async def seek(self, stream: str, next_position: int) -> None:
        await self.parts[stream].seek(stream, next_position)

    async def poll(self, timeout_s: float):
        out = []
        for c in self.parts.values():
            out.extend(await c.poll(0.0))
        if not out:
            await asyncio.sleep(timeout_s)
        return out


def test_open_units_of_many_streams_are_bounded_in_memory(tmp_path: Path) -> None:
    items = entries()
    make_log(tmp_path / "a", items)
    make_log(tmp_path / "b", items)
    lake = tmp_path / "lake"
    opts = SinkOptions(until_idle_s=0.3, poll_timeout_s=0.05, max_pending_rows=200)
    sink = Sink(TwoLogs(tmp_path / "a", tmp_path / "b"), lake, opts)
    asyncio.run(sink.run())
    assert sink.stats.committed == {"log-a": 23, "log-b": 23}
    assert sink.stats.units > 4  # without the bound: one unit per stream
    trades = sorted(r for ds, rows in items if ds == "trades" for r in rows)
    assert sorted(lake_rows(lake, "trades")) == sorted(trades + trades)

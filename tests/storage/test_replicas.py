"""Collector replicas (issue 17): two replicas of one venue, each losing its link at a different
moment, give the lake a single collector that never lost its connection would give; through the
local log and through Kafka; and SIGKILLs of the sink change nothing."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import multiprocessing
import os
import random
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collectors.connection import Collector
from collectors.outage import OutageProxy
from collectors.registry import get_dialect
from collectors.simulator import SimulatorConfig
from schemas import RECORD_DATASETS, Flags, arrow_schema, arrow_to_rows, field_names
from storage.arbitrate import MERGED_GAP, REPLICA_COVER, ArbitrationOptions, StreamArbiter
from storage.lake import dataset_files
from storage.sink import Sink, SinkOptions, UnitWriter, last_committed, load_arbitration
from streaming import open_consumer, open_publisher
from streaming.base import Publisher
from streaming.replica import ReplicaPublisher
from tests.collectors.book_replay import tops_by_seq
from tests.collectors.test_connection import FAST
from ticktape.cli import build_parser
from ticktape.runtime import build_collector

EXCHANGE = "binance"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
OUTAGE_S = 0.6


async def _until(cond: Callable[[], bool], timeout_s: float = 15.0, what: str = "") -> None:
    """Waits for a condition (polled; the collectors report through their counters)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.02)


def _synced(collector: Collector) -> int:
    return collector.stats.snapshots_fetched


async def capture(publisher: Publisher, reference_log: Path) -> dict[str, Any]:
    """Replicas a and b (each behind its own outage proxy) publish to ``publisher``; a reference
    collector without a replica, connected directly, to ``reference_log``. a loses its link, then
    (after a is back in sync) b does."""
    dialect = get_dialect(EXCHANGE)
    sim = dialect.simulator(SimulatorConfig(symbols=SYMBOLS, rate_hz=40.0))
    await sim.start()
    proxies = {name: OutageProxy("127.0.0.1", sim.port) for name in ("a", "b")}
    for proxy in proxies.values():
        await proxy.start()
    reference_pub = open_publisher("local", log_dir=reference_log)
    await reference_pub.start()
    await publisher.start()
    reference = build_collector(
        dialect, list(SYMBOLS), reference_pub, ws_url=sim.ws_url, rest_url=sim.rest_url, settings=FAST
    )
    replicas = {
        name: build_collector(
            get_dialect(EXCHANGE),
            list(SYMBOLS),
            ReplicaPublisher(publisher, name),
            ws_url=proxy.ws_url,
            rest_url=proxy.rest_url,
            settings=FAST,
        )
        for name, proxy in proxies.items()
    }
    collectors = [reference, *replicas.values()]
    try:
        await reference.start()
        for c in replicas.values():
            await c.start()
        await _until(lambda: all(_synced(c) >= len(SYMBOLS) for c in collectors), what="books synced")
        for name in ("a", "b"):
            c = replicas[name]
            connects, synced = c.stats.connects, _synced(c)
            frames = c.stats.frames
            await _until(lambda c=c, f=frames: c.stats.frames > f + 100, what="frames before the outage")
            await proxies[name].outage(OUTAGE_S)
            await _until(
                lambda c=c, n=connects, s=synced: c.stats.connects > n and _synced(c) >= s + len(SYMBOLS),
                what=f"replica {name} back in sync",
            )
        frames = reference.stats.frames
        await _until(lambda: reference.stats.frames > frames + 200, what="frames after the outages")
    finally:
        for c in collectors:
            await c.stop()
        await publisher.close()
        await reference_pub.close()
        for proxy in proxies.values():
            await proxy.stop()
        await sim.stop()
    return {name: c.stats.connects for name, c in replicas.items()}


def drain(consumer: Any, lake: Path, **options: Any) -> Any:
    sink = Sink(consumer, lake, SinkOptions(until_idle_s=1.0, durable=False, **options))
    return asyncio.run(sink.run())


def lake_rows(lake: Path, dataset: str) -> list[tuple[Any, ...]]:
    """A dataset's rows in the lake's order (symbol, ts_recv, then file and row: stream order)."""
    files = dataset_files(lake, dataset)
    if not files:
        return []
    table = pa.concat_tables([pq.read_table(f, schema=arrow_schema(dataset)) for f in files])
    rows = arrow_to_rows(table)
    order = sorted(range(len(rows)), key=lambda i: (rows[i][1] or "", rows[i][3]))  # stable: file order kept
    return [rows[i] for i in order]


def assert_like_one_unbroken_collector(merged: Path, reference: Path) -> dict[str, int]:
    """The replicas' lake equals the reference collector's over the time both covered."""
    m_trades, r_trades = lake_rows(merged, "trades"), lake_rows(reference, "trades")
    assert {r[9] for r in m_trades} == {"a", "b"}  # both replicas contributed
    keys = [(r[1], r[4]) for r in m_trades]
    assert len(keys) == len(set(keys)), "a trade is in the lake twice"
    lo = max(min(r[2] for r in m_trades), min(r[2] for r in r_trades))
    hi = min(max(r[2] for r in m_trades), max(r[2] for r in r_trades))

    def window(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        # everything but receive times, flags and the replica: what the venue sent
        return sorted((r[1], r[2], r[4], r[5], r[6], r[7]) for r in rows if lo <= r[2] <= hi)

    assert window(m_trades) == window(r_trades)
    assert len(window(r_trades)) > 50

    m_book, r_book = lake_rows(merged, "book"), lake_rows(reference, "book")
    assert not [r for r in m_book if r[10] & Flags.MAYBE_BAD_BOOK], "a replica's gap reached the lake"
    assert {r[9] for r in m_book} == {0}, "the merged book needed a resync"
    assert {r[11] for r in m_book} == {"a", "b"}
    m_tops, r_tops = tops_by_seq(m_book), tops_by_seq(r_book)
    common = set(m_tops) & set(r_tops)
    assert len(common) > 200
    for key in sorted(common):
        assert m_tops[key] == r_tops[key], f"book top differs at {key}"
    # after its first snapshot the merged book has every update the reference has, for every symbol
    for symbol in {k[0] for k in r_tops}:
        first = min(s for (sym, s) in m_tops if sym == symbol)
        expected = {k for k in r_tops if k[0] == symbol and k[1] > first}
        last = max(s for (sym, s) in m_tops if sym == symbol)
        assert {k for k in expected if k[1] <= last} <= set(m_tops), f"{symbol}: updates missing"

    events = lake_rows(merged, "feed_events")
    covers = [json.loads(e[5]) for e in events if e[4] == REPLICA_COVER]
    assert {c["gap_replica"] for c in covers} == {"a", "b"}
    assert all(c["replica"] != c["gap_replica"] and c["to_seq"] > c["after_seq"] for c in covers)
    assert not [e for e in events if e[4] == MERGED_GAP]
    disconnects = {e[6] for e in events if e[4] == "disconnect"}
    assert {"a", "b"} <= disconnects  # each replica's own events keep their replica
    return {"trades": len(m_trades), "book": len(m_book), "covers": len(covers)}


@pytest.fixture(scope="module")
def local_capture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("replicas")
    log_dir, reference_log = root / "log", root / "reference-log"
    asyncio.run(capture(open_publisher("local", log_dir=log_dir), reference_log))
    reference = root / "reference-lake"
    drain(open_consumer("local", log_dir=reference_log), reference)
    return {"log": log_dir, "reference": reference}


def test_two_replicas_through_the_local_log_equal_one_unbroken_collector(
    local_capture: dict[str, Path], tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    stats = drain(open_consumer("local", log_dir=local_capture["log"]), lake)
    shown = assert_like_one_unbroken_collector(lake, local_capture["reference"])
    assert stats.arbitration.duplicates["trades"] > 0 and stats.arbitration.covers >= 2
    assert load_arbitration(lake, "local") is not None
    # without arbitration the same log gives every copy: what the issue measured
    every = tmp_path / "every"
    drain(open_consumer("local", log_dir=local_capture["log"]), every, arbitration=None)
    assert len(lake_rows(every, "trades")) > 1.3 * shown["trades"]


def test_the_reference_collector_alone_is_untouched(local_capture: dict[str, Path], tmp_path: Path) -> None:
    """Records without a replica pass through: no state, no replica column values, same rows."""
    lake = tmp_path / "lake"
    reference_log = local_capture["reference"].parent / "reference-log"
    drain(open_consumer("local", log_dir=reference_log), lake)
    for ds in RECORD_DATASETS:
        assert lake_rows(lake, ds) == lake_rows(local_capture["reference"], ds), ds
    assert load_arbitration(lake, "local") is None
    assert all(len(r) == 11 for r in lake_rows(lake, "book"))  # replica column all null


def test_two_replicas_through_kafka(kafka_broker: Any, tmp_path: Path) -> None:
    prefix = f"rep{uuid.uuid4().hex[:8]}"
    kafka = {"bootstrap": kafka_broker.address, "topic_prefix": prefix, "partitions": 2}
    reference_log = tmp_path / "reference-log"
    asyncio.run(capture(open_publisher("kafka", **kafka), reference_log))
    reference = tmp_path / "reference"
    drain(open_consumer("local", log_dir=reference_log), reference)
    lake = tmp_path / "lake"
    drain(open_consumer("kafka", **kafka), lake)
    assert_like_one_unbroken_collector(lake, reference)


def test_two_replicas_through_kinesis(moto: Any, tmp_path: Path) -> None:
    """The same through Kinesis (moto server): both replicas put records with the key
    ``exchange|symbol``, so one shard holds both copies of a symbol and the sink arbitrates them."""
    import boto3

    name = f"rep{uuid.uuid4().hex[:8]}"
    boto3.client("kinesis", endpoint_url=moto.url, region_name="us-east-1").create_stream(
        StreamName=name, ShardCount=2
    )
    kinesis = {"stream_name": name, "endpoint_url": moto.url}
    reference_log = tmp_path / "reference-log"
    asyncio.run(capture(open_publisher("kinesis", policy="block", **kinesis), reference_log))
    reference = tmp_path / "reference"
    drain(open_consumer("local", log_dir=reference_log), reference)
    lake = tmp_path / "lake"
    drain(open_consumer("kinesis", **kinesis), lake)
    assert_like_one_unbroken_collector(lake, reference)


# -- exactly once across SIGKILLs -------------------------------------------------------------------

SINK_FLAGS = ["--flush-entries", "7", "--until-idle", "1"]


def _sink_child(argv: list[str]) -> None:
    from ticktape.cli import main

    os._exit(main(argv))


def start_sink(log_dir: Path, lake: Path) -> multiprocessing.process.BaseProcess:
    proc = multiprocessing.get_context("fork").Process(
        target=_sink_child, args=(["sink", "--log", str(log_dir), "--lake", str(lake), *SINK_FLAGS],)
    )
    proc.start()
    return proc


def snapshot(lake: Path) -> dict[str, list[tuple[str, list[tuple[Any, ...]]]]]:
    return {
        ds: [
            (str(f.relative_to(lake)), arrow_to_rows(pq.read_table(f, schema=arrow_schema(ds))))
            for f in dataset_files(lake, ds)
        ]
        for ds in RECORD_DATASETS
    }


def test_sigkill_of_the_sink_changes_nothing(local_capture: dict[str, Path], tmp_path: Path) -> None:
    build_parser()  # import every command in the parent: forked sinks start at once
    log_dir = local_capture["log"]
    expected_lake = tmp_path / "uninterrupted"
    proc = start_sink(log_dir, expected_lake)
    proc.join(120)
    assert proc.exitcode == 0
    end = last_committed(expected_lake, "local")
    lake = tmp_path / "killed"
    rng = random.Random(17)
    kills = 0
    for target in sorted(rng.sample(range(0, end - 5), 6)):
        proc = start_sink(log_dir, lake)
        while proc.is_alive() and last_committed(lake, "local") < target:
            time.sleep(0.002)
        if not proc.is_alive():
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        kills += 1
    assert kills >= 4
    proc = start_sink(log_dir, lake)
    proc.join(120)
    assert proc.exitcode == 0 and last_committed(lake, "local") == end
    assert snapshot(lake) == snapshot(expected_lake)
    assert load_arbitration(lake, "local") == load_arbitration(expected_lake, "local")


# -- the arbiter on its own -------------------------------------------------------------------------


def _book(replica: str, seq: int, ts: int, *, snap: bool = False, epoch: int = 0, flags: int = 0) -> tuple:
    return ("binance", "BTC-USDT", ts, ts, "bid", 100.0 + seq, 1.0, snap, seq, epoch, flags, replica)


def test_arbitration_does_not_depend_on_where_units_are_cut() -> None:
    # the row positions storage/arbitrate.py reads
    assert field_names("book")[3] == "ts_recv" and field_names("book")[7:] == (
        "is_snapshot",
        "seq",
        "epoch",
        "flags",
        "replica",
    )
    rows = [
        _book("a", 10, 1, snap=True),
        _book("a", 11, 2),
        _book("b", 11, 3, snap=True),
        _book("a", 12, 4),
        _book("b", 12, 5),
        _book("a", 13, 6, flags=int(Flags.MAYBE_BAD_BOOK)),
        _book("b", 13, 7),
        _book("b", 14, 8),
        _book("a", 14, 9, snap=True, epoch=1),  # a resyncs behind the merged book: b covered 12..14
        _book("a", 15, 10),
        _book("b", 15, 11),
    ]
    from schemas import rows_to_arrow

    def run(cuts: list[int]) -> tuple[list[tuple], bytes]:
        arbiter = StreamArbiter(ArbitrationOptions())
        out: list[tuple] = []
        events: list[tuple] = []
        bounds = [0, *cuts, len(rows)]
        state = None
        for lo, hi in itertools.pairwise(bounds):
            arbiter = StreamArbiter(ArbitrationOptions(), state)
            table = pa.Table.from_batches([rows_to_arrow("book", rows[lo:hi])])
            result = arbiter.process({"book": table})
            out += arrow_to_rows(result["book"])
            if "feed_events" in result:
                events.extend(arrow_to_rows(result["feed_events"]))
            state = json.loads(arbiter.dumps())
        return out + events, arbiter.dumps()

    whole, state = run([])
    assert [r[8] for r in whole if len(r) == 12] == [10, 11, 12, 13, 14, 15]
    assert [r[11] for r in whole if len(r) == 12] == ["a", "a", "a", "b", "b", "a"]
    covers = [json.loads(r[5]) for r in whole if len(r) == 7 and r[4] == REPLICA_COVER]
    assert covers == [{"after_seq": 12, "gap_replica": "a", "replica": "b", "to_seq": 14}]
    for cuts in ([1], [3, 7], [2, 5, 8, 9], list(range(1, len(rows)))):
        assert run(cuts) == (whole, state), cuts


def test_equal_trades_without_ids_stay_two() -> None:
    from schemas import rows_to_arrow

    def trade(replica: str, ts: int) -> tuple:
        return ("binance", "BTC-USDT", 1000, ts, "", 10.0, 1.0, "buy", 0, replica)

    rows = [trade("a", 1), trade("a", 2), trade("b", 3), trade("b", 4), trade("b", 5)]
    arbiter = StreamArbiter()
    out = arbiter.process({"trades": pa.Table.from_batches([rows_to_arrow("trades", rows)])})
    # a saw it twice, b three times: the venue sent it three times
    assert [r[9] for r in arrow_to_rows(out["trades"])] == ["a", "a", "b"]
    assert collections.Counter(arbiter.stats.duplicates) == {"trades": 2}


def test_a_range_no_replica_had_is_a_merged_gap_and_a_resync() -> None:
    from schemas import rows_to_arrow

    s = 1_000_000_000
    rows = [
        _book("a", 10, 1 * s, snap=True),
        _book("a", 11, 2 * s),
        _book("b", 11, 2 * s + 1, snap=True),
        _book("a", 12, 3 * s),
        # both replicas lose the venue; a resyncs first, ahead of the merged book (12): held
        _book("a", 20, 4 * s, snap=True, epoch=1),
        _book("a", 21, 5 * s),
        _book("a", 22, 7 * s),  # 3 s later nobody delivered 13..20: the held snapshot is a resync
        _book("b", 22, 7 * s + 1, snap=True, epoch=1),  # behind the merged book now: followed again
        _book("b", 23, 8 * s),
    ]
    arbiter = StreamArbiter(ArbitrationOptions(hold_s=2.0))
    out = arbiter.process({"book": pa.Table.from_batches([rows_to_arrow("book", rows)])})
    book = arrow_to_rows(out["book"])
    assert [(r[8], r[7], r[9], r[11]) for r in book] == [
        (10, True, 0, "a"),
        (11, False, 0, "a"),
        (12, False, 0, "a"),
        (20, True, 1, "a"),
        (21, False, 1, "a"),
        (22, False, 1, "a"),
        (23, False, 1, "b"),
    ]
    assert [r[3] for r in book] == sorted(r[3] for r in book)  # receive times never go back
    gap, cover = arrow_to_rows(out["feed_events"])
    assert gap[4] == MERGED_GAP and gap[6] is None  # the merged stream's gap: no replica
    assert json.loads(gap[5]) == {"after_seq": 12, "to_seq": 20, "resync_replica": "a", "epoch": 1}
    # b's own outage (after 11, until its resync at 22) was covered by a, including the resynced range
    assert cover[4] == REPLICA_COVER and cover[6] == "a"
    assert json.loads(cover[5]) == {"after_seq": 11, "gap_replica": "b", "replica": "a", "to_seq": 22}
    assert arbiter.stats.merged_gaps == 1 and arbiter.stats.covers == 1


def test_lake_files_written_before_the_replica_column_still_read(tmp_path: Path) -> None:
    """A day with files of both layouts: the catalog's views, compaction and the sink's own reading
    give the old rows a null replica; a day of old files only still has the column in its view."""
    import datetime as dt

    from schemas import base_arrow_schema, rows_to_arrow
    from storage.catalog import open_catalog
    from storage.compact import compact_lake

    day = dt.date(2026, 11, 1)
    ns = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp() * 1e9)
    part = tmp_path / "trades" / "exchange=binance" / f"date={day}"
    part.mkdir(parents=True)
    old = [("binance", "BTC-USDT", ns, ns + 1, "1", 10.0, 1.0, "buy", 0)]
    new = [("binance", "BTC-USDT", ns, ns + 2, "2", 10.0, 1.0, "buy", 0, "a")]
    old_table = pa.Table.from_batches([rows_to_arrow("trades", old)]).select(
        base_arrow_schema("trades").names
    )
    assert "replica" not in old_table.column_names
    # as an older sink wrote it: its file, and its commit marker
    UnitWriter(tmp_path, durable=False).write_unit("old", 0, 0, {})
    pq.write_table(old_table, part / "old-00000000000000000000-00000000000000000000.parquet")
    with open_catalog(str(tmp_path)) as catalog:  # old files only: the column is there, null
        assert catalog.query("SELECT trade_id, replica FROM trades").to_pylist() == [
            {"trade_id": "1", "replica": None}
        ]
    UnitWriter(tmp_path, durable=False).write_unit("new", 0, 0, {"trades": rows_to_arrow("trades", new)})
    expected = [{"trade_id": "1", "replica": None}, {"trade_id": "2", "replica": "a"}]
    with open_catalog(str(tmp_path)) as catalog:
        assert catalog.query("SELECT trade_id, replica FROM trades ORDER BY 1").to_pylist() == expected
    results = compact_lake(tmp_path, day=day)
    assert [r.status for r in results] == ["compacted"]
    (compacted,) = dataset_files(tmp_path, "trades")
    table = pq.read_table(compacted)
    assert table.schema == arrow_schema("trades")
    assert table.select(["trade_id", "replica"]).to_pylist() == expected


def test_a_book_without_sequence_fails_over_to_the_other_replicas_levels() -> None:
    """Kraken-like books (no sequence): the merged book follows replica a; when a falls silent while
    b keeps sending, b's current levels become a snapshot of the merged book and b's rows follow."""
    from schemas import rows_to_arrow

    s = 1_000_000_000

    def lvl(replica: str, ts: int, side: str, price: float, size: float, snap: bool = False) -> tuple:
        return ("kraken", "BTC-USD", ts, ts, side, price, size, snap, None, 0, 16 if snap else 0, replica)

    rows = [
        lvl("a", 1 * s, "bid", 99.0, 1.0, snap=True),
        lvl("a", 1 * s, "ask", 101.0, 1.0, snap=True),
        lvl("b", 1 * s + 5, "bid", 99.0, 1.0, snap=True),
        lvl("b", 1 * s + 5, "ask", 101.0, 1.0, snap=True),
        lvl("a", 2 * s, "bid", 99.5, 2.0),
        lvl("b", 2 * s + 5, "bid", 99.5, 2.0),
        # a's link is down from here on; b goes on
        lvl("b", 3 * s, "ask", 101.0, 0.0),
        lvl("b", 3 * s, "ask", 100.5, 3.0),
        lvl("b", 5 * s, "bid", 99.8, 1.0),  # b has now sent a row 3 s after a's last one ...
        lvl("b", 6 * s, "bid", 99.9, 1.0),  # ... so at its next row b leads
    ]
    arbiter = StreamArbiter(ArbitrationOptions(hold_s=2.0))
    out = arrow_to_rows(
        arbiter.process({"book": pa.Table.from_batches([rows_to_arrow("book", rows)])})["book"]
    )
    assert [(r[4], r[5], r[6], r[7], r[9], r[11]) for r in out] == [
        ("bid", 99.0, 1.0, True, 0, "a"),
        ("ask", 101.0, 1.0, True, 0, "a"),
        ("bid", 99.5, 2.0, False, 0, "a"),
        # the fail-over snapshot: b's levels before its row at 6 s
        ("bid", 99.8, 1.0, True, 1, "b"),
        ("bid", 99.5, 2.0, True, 1, "b"),
        ("bid", 99.0, 1.0, True, 1, "b"),
        ("ask", 100.5, 3.0, True, 1, "b"),
        ("bid", 99.9, 1.0, False, 1, "b"),
    ]
    tops = tops_by_seq([(*r[:8], r[8] if r[8] is not None else -1, *r[9:]) for r in out])
    assert tops[("BTC-USD", -1)] == ((99.9, 1.0), (100.5, 3.0))
    assert arbiter.stats.failovers == 1
    # the state (each replica's levels) survives a restart
    again = StreamArbiter(ArbitrationOptions(hold_s=2.0), json.loads(arbiter.dumps()))
    assert again.dumps() == arbiter.dumps()

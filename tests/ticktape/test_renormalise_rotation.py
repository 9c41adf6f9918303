"""Renormalising a day with planned rotations (make-before-break): a real Collector rotating its
connection every 1.5 s against a venue's simulator, with the raw archive on, through the local log
and the sink into a lake; ``ticktape renormalise`` of that day gives one copy of every event, equal
to what the collector merged live (``ticktape/raw.py``, ``arbitrate_streams``). Binance hands its
books over at a matching update id (one epoch live); Bitget's rotation is a resync live (epoch + 1,
a ``resync`` event), while the merged book continues at the matching sequence."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collectors.connection import Collector
from collectors.raw import RawSettings
from collectors.registry import get_dialect
from collectors.simulator import SimulatorConfig
from schemas import Flags, RecordBuffer, arrow_schema, arrow_to_rows
from storage.arbitrate import MERGED_GAP, REPLICA_COVER, ArbitrationOptions
from storage.lake import dataset_files
from storage.sink import Sink, SinkOptions
from streaming import open_consumer, open_publisher
from tests.collectors.book_replay import assert_tops_match_bbo, tops_by_seq
from tests.collectors.test_connection import FAST
from ticktape.cli import main
from ticktape.raw import (
    REPLAYED_DATASETS,
    arbitrate_streams,
    day_streams,
    parser_manifest,
    replay_stream,
    rotation_arbitration,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
ROTATING = dataclasses.replace(
    FAST, raw=RawSettings(batch_bytes=16 * 1024, batch_s=0.3), max_connection_age_s=1.5
)


def lake_rows(lake: Path, dataset: str) -> list[tuple[Any, ...]]:
    """A dataset's rows in the lake's order (symbol, ts_recv; equal keys in file and row order)."""
    files = dataset_files(lake, dataset)
    if not files:
        return []
    rows = arrow_to_rows(pa.concat_tables([pq.read_table(f, schema=arrow_schema(dataset)) for f in files]))
    order = sorted(range(len(rows)), key=lambda i: (rows[i][1] or "", rows[i][3]))
    return [rows[i] for i in order]


def raw_days(lake: Path, exchange: str) -> list[str]:
    return sorted(p.name[5:] for p in (lake / "raw" / f"exchange={exchange}").glob("date=*"))


async def collect_rotating(exchange: str, lake: Path, log_dir: Path) -> Collector:
    """The collector rotates at least three times, with trades flowing after the last handover."""
    dialect = get_dialect(exchange)
    sim = dialect.simulator(SimulatorConfig(symbols=SYMBOLS, rate_hz=200.0))
    await sim.start()
    publisher = open_publisher("local", log_dir=log_dir)
    await publisher.start()
    got = RecordBuffer()
    collector = Collector(
        dialect,
        list(SYMBOLS),
        publisher.publish,
        ws_url=sim.ws_url,
        rest_url=sim.rest_url,
        settings=ROTATING,
        observers=[got.extend],
    )

    async def until(predicate: Any, what: str) -> None:
        for _ in range(400):
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"not within 20 s: {what}")

    await collector.start()
    try:
        await collector.wait_connected()
        await until(lambda: collector.rotations >= 3, "three rotations")
        mark = len(got.trades)
        await until(lambda: len(got.trades) > mark + 10, "trades after the last handover")
    finally:
        await collector.stop()
        await sim.stop()
        await publisher.flush()
        await publisher.close()
    consumer = open_consumer("local", log_dir=log_dir)
    await Sink(consumer, lake, SinkOptions(until_idle_s=1.0, poll_timeout_s=0.05)).run()
    return collector


@pytest.fixture(scope="module", params=["binance", "bitget"])
def rotation_day(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The live lake's datasets, what a stream-by-stream replay of the raw day gives, and the lake
    after ``ticktape renormalise`` (with its manifests and output)."""
    exchange = request.param
    base = tmp_path_factory.mktemp(f"rotation-{exchange}")
    lake = base / "lake"
    collector = asyncio.run(collect_rotating(exchange, lake, base / "log"))
    live = {ds: lake_rows(lake, ds) for ds in (*REPLAYED_DATASETS, "feed_events")}
    days = raw_days(lake, exchange)
    streams: dict[str, list[tuple[Any, ...]]] = {}  # each stream whole (the run may cross midnight)
    for day in days:
        for stream, rows in day_streams(lake, exchange, date.fromisoformat(day)).items():
            streams.setdefault(stream, []).extend(rows)
    naive: Counter[str] = Counter()  # what each stream replayed on its own gives (before arbitration)
    for rows in streams.values():
        buf = replay_stream(get_dialect(exchange).new_normaliser(), sorted(rows, key=lambda r: r[2]))
        for ds in REPLAYED_DATASETS:
            naive[ds] += len(buf.rows(ds))
    manifests = []
    for day in days:
        args = [
            "renormalise",
            "--lake",
            str(lake),
            "--exchange",
            exchange,
            "--date",
            day,
            "--allow-open-day",
        ]
        assert main(args) == 0
        manifest = parser_manifest(lake, exchange, date.fromisoformat(day))
        assert manifest is not None
        manifests.append(manifest)
    renormalised = {ds: lake_rows(lake, ds) for ds in (*REPLAYED_DATASETS, "feed_events")}
    yield {
        "exchange": exchange,
        "collector": collector,
        "live": live,
        "naive": naive,
        "renormalised": renormalised,
        "manifests": manifests,
    }


def test_the_raw_day_has_rotated_streams_that_overlap(rotation_day: dict[str, Any]) -> None:
    assert rotation_day["collector"].rotations >= 2
    rotated = sorted({s for m in rotation_day["manifests"] for s in m["rotated_streams"]})
    assert len(rotated) >= 2 and all("-g" in s for s in rotated)
    # replayed stream by stream, the overlaps give copies: what renormalise had to remove
    live, naive = rotation_day["live"], rotation_day["naive"]
    assert naive["trades"] >= len(live["trades"])  # copies of trades: see the trades test
    assert naive["bbo"] >= len(live["bbo"])
    assert naive["book"] > len(rotation_day["renormalised"]["book"])


def test_renormalised_trades_are_the_live_trades_each_exactly_once(rotation_day: dict[str, Any]) -> None:
    live, new = rotation_day["live"]["trades"], rotation_day["renormalised"]["trades"]
    for symbol in ("BTC-USDT", "ETH-USDT"):
        ids = [int(r[4]) for r in new if r[1] == symbol]
        assert len(ids) > 10, symbol
        assert len(ids) == len(set(ids)), f"{symbol}: a trade is in the renormalised day twice"
        assert sorted(ids) == list(range(min(ids), min(ids) + len(ids))), f"{symbol}: a trade was lost"

    def venue(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        # what the venue sent: symbol, ts_exchange, id, price, size, side
        return sorted((r[1], r[2], r[4], r[5], r[6], r[7]) for r in rows)

    assert venue(new) == venue(live)
    dropped = sum(m["arbitration"]["dropped"].get("trades", 0) for m in rotation_day["manifests"])
    assert dropped == rotation_day["naive"]["trades"] - len(new)
    if rotation_day["exchange"] == "bitget":
        # the successor receives recent trades again when it subscribes: copies in every overlap
        assert dropped > 50
    # (binance: only trades of the overlap's few hundred ms, often none or a handful)


def test_renormalised_bbo_has_no_duplicate_and_equals_live(rotation_day: dict[str, Any]) -> None:
    live, new = rotation_day["live"]["bbo"], rotation_day["renormalised"]["bbo"]
    keys = [(r[1], r[8]) for r in new]
    assert len(keys) == len(set(keys)), "a bbo update is in the renormalised day twice"
    for symbol in ("BTC-USDT", "ETH-USDT"):
        seqs = [r[8] for r in new if r[1] == symbol]
        assert seqs == sorted(seqs), f"{symbol}: bbo went backwards"

    def venue(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return sorted((r[1], r[2], *r[4:9]) for r in rows)

    assert venue(new) == venue(live)


def test_renormalised_book_tops_equal_the_live_books_at_every_sequence(rotation_day: dict[str, Any]) -> None:
    live, new = rotation_day["live"], rotation_day["renormalised"]
    book = new["book"]
    assert not [r for r in book if r[10] & Flags.MAYBE_BAD_BOOK]
    assert {r[11] if len(r) > 11 else None for r in book} == {None}  # no replica: one collector's day
    # one book across the rotations, from the live book's first snapshot and epoch. Binance: no
    # resync (the collector waits until the successor's snapshot is behind the old connection's last
    # update). Bitget: live, a resync at every handover; merged, only where the old connection's
    # last update was before the successor's snapshot (no delta of the range in between was
    # received: a merged_gap, the snapshot taken as a resync), usually none
    by_seq = get_dialect(rotation_day["exchange"]).book_handover_by_seq
    gaps = [(e[1], json.loads(e[5])) for e in new["feed_events"] if e[4] == MERGED_GAP]
    assert not gaps or not by_seq
    first_snapshots = set()
    for symbol in ("BTC-USDT", "ETH-USDT"):
        live_epochs = {r[9] for r in live["book"] if r[1] == symbol}
        resyncs = sum(1 for sym, _ in gaps if sym == symbol)
        first = min(live_epochs)
        assert sorted({r[9] for r in book if r[1] == symbol}) == list(range(first, first + resyncs + 1))
        if not by_seq:
            assert len(live_epochs) > 2 and resyncs < len(live_epochs), live_epochs
        first_snapshots |= {(r[1], r[8]) for r in live["book"] if r[1] == symbol and r[7] and r[9] == first}
    live_snapshots = {(r[1], r[8]) for r in live["book"] if r[7]}
    resynced = {(r[1], r[8]) for r in book if r[7]} - first_snapshots
    assert resynced == {(sym, g["to_seq"]) for sym, g in gaps} <= live_snapshots
    new_tops, live_tops = tops_by_seq(book), tops_by_seq(live["book"])
    # every update once, none lost, none added; live also has the tops of the handover snapshots
    # (bitget: a resync), which the merged book, continuing by sequence, never needed
    handover_snapshots = {(r[1], r[8]) for r in live["book"] if r[7]} - first_snapshots
    assert set(new_tops) <= set(live_tops)
    assert set(live_tops) - set(new_tops) <= handover_snapshots
    assert len(new_tops) > 200
    # the renormalised book has the venue's best bid and ask at every sequence the bbo names
    assert assert_tops_match_bbo(book, new["bbo"]) > 100
    # and the live book's tops at every sequence: a handover never puts the successor's rows before
    # the old connection's last one in the lake's (symbol, ts_recv) order (collectors/connection.py)
    differ = [key for key in sorted(new_tops) if new_tops[key] != live_tops[key]]
    assert not differ, differ[:5]
    events = new["feed_events"]
    assert not [e for e in events if e[4] in (REPLICA_COVER, "gap", "resync")]
    # the live day's handover resyncs (a connection event) are gone with the resyncs themselves
    resyncs = [json.loads(e[5]) for e in live["feed_events"] if e[4] == "resync"]
    assert not resyncs if by_seq else {d["reason"] for d in resyncs} == {"rotation"}
    kept = Counter(e[4] for e in events if e[4] != MERGED_GAP)
    assert kept == Counter(e[4] for e in live["feed_events"] if e[4] != "resync")


def test_renormalise_reports_the_arbitrated_overlap(rotation_day: dict[str, Any]) -> None:
    for m in rotation_day["manifests"]:
        if m["rotated_streams"]:
            arb = m["arbitration"]
            assert arb["replica_covers"] == 0
            assert arb["merged_gaps"] == 0 or rotation_day["exchange"] == "bitget"  # see the book test
            assert set(arb["dropped"]) <= {"trades", "book", "bbo"}
            assert m["rows"]["trades"] + arb["dropped"].get("trades", 0) >= m["previous_rows"]["trades"]
    total = {
        ds: sum(m["arbitration"]["dropped"].get(ds, 0) for m in rotation_day["manifests"] if m["arbitration"])
        for ds in ("trades", "book", "bbo")
    }
    naive, new = rotation_day["naive"], rotation_day["renormalised"]
    for ds in ("trades", "book", "bbo"):
        assert total[ds] == naive[ds] - len(new[ds]), ds
    assert total["book"] > 0
    print(
        f"{rotation_day['exchange']} rotation day:",
        json.dumps(
            {
                ds: {
                    "live": len(rotation_day["live"][ds]),
                    "replayed": naive[ds],
                    "renormalised": len(new[ds]),
                }
                for ds in ("trades", "book", "bbo")
            }
        ),
    )


def test_arbitrated_streams_keep_the_first_snapshots_epoch_and_lose_nothing_at_the_end() -> None:
    """Two streams' replays (a predecessor and its successor): one copy of each trade and update, no
    replica in the output, the merged book's epochs counted from the first snapshot's (1, as a
    normaliser numbers them), and a resync the arbiter still held when the data ended is in it."""
    s = 1_000_000_000

    def book(ts: int, seq: int, epoch: int, snap: bool = False) -> tuple[Any, ...]:
        return ("binance", "BTC-USDT", ts, ts, "bid", 100.0 + seq, 1.0, snap, seq, epoch, 0)

    def trade(ts: int, trade_id: str) -> tuple[Any, ...]:
        return ("binance", "BTC-USDT", ts, ts, trade_id, 100.0, 1.0, "buy", 0)

    old = RecordBuffer(
        book=[book(1 * s, 10, 1, True), book(2 * s, 11, 1), book(3 * s, 12, 1), book(4 * s, 13, 1)],
        trades=[trade(2 * s, "7"), trade(3 * s + 5, "8")],
    )
    new = RecordBuffer(
        # joins at 11 (behind the merged book), continues past old's end, then loses the venue and
        # resyncs at 30 just before its data ends: nobody has 15..29, held until the end
        book=[
            book(2 * s + 1, 11, 1, True),
            book(3 * s + 1, 12, 1),
            book(5 * s, 14, 1),
            book(6 * s, 30, 2, True),
            book(6 * s + 1, 31, 2),
        ],
        trades=[trade(3 * s, "8"), trade(5 * s, "9")],
        feed_events=[("binance", "BTC-USDT", "book", 6 * s, "resync", '{"epoch":2}')],
    )
    merged, arbiter = arbitrate_streams({"binance-0@1": old, "binance-0-g1@1": new})
    assert [r[4] for r in merged.trades] == ["7", "8", "9"]
    assert merged.trades[1][3] == 3 * s  # the first copy received
    assert all(len(r) == 9 for r in merged.trades) and all(len(r) == 11 for r in merged.book)
    assert [(r[8], r[7], r[9]) for r in merged.book] == [
        (10, True, 1),
        (11, False, 1),
        (12, False, 1),
        (13, False, 1),
        (14, False, 1),
        (30, True, 2),  # released at the end of the data (StreamArbiter.finish)
        (31, False, 2),
    ]
    gap = [e for e in merged.feed_events if e[4] == MERGED_GAP]
    assert len(gap) == 1 and json.loads(gap[0][5])["epoch"] == 2  # in the output's numbering
    assert json.loads(gap[0][5])["resync_replica"] == "binance-0-g1@1"  # the stream, in the detail
    assert merged.feed_events[0] == new.feed_events[0]  # the streams' own events are kept
    assert arbiter.stats.duplicates["trades"] == 1 and arbiter.stats.merged_gaps == 1


def test_a_quiet_symbols_trades_sent_again_at_subscribe_stay_once() -> None:
    """A successor subscribing 10 minutes after a quiet symbol's last trades receives them again
    (Bitget sends recent trades on subscribe): live the collector did not publish them twice
    (``ROTATION_TRADE_IDS``), nor does renormalise, although they are older than the sink's key window."""
    s = 1_000_000_000

    def trade(ts: int, trade_id: str) -> tuple[Any, ...]:
        return ("bitget", "BTC-USDT", ts, ts, trade_id, 100.0, 1.0, "buy", 0)

    old = RecordBuffer(trades=[trade(0, "1"), trade(1 * s, "2"), trade(500 * s, "3")])
    new = RecordBuffer(trades=[trade(700 * s, "2"), trade(700 * s, "3"), trade(701 * s, "4")])
    streams = {"bitget-0@1": old, "bitget-0-g1@1": new}
    merged, _ = arbitrate_streams(streams, rotation_arbitration())
    assert [r[4] for r in merged.trades] == ["1", "2", "3", "4"]
    # the sink's options alone (a 120 s window) would take trades 2 and 3 twice
    merged, _ = arbitrate_streams(streams, ArbitrationOptions())
    assert [r[4] for r in merged.trades] == ["1", "2", "3", "2", "3", "4"]

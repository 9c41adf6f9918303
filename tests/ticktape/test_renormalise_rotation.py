"""Renormalising a day with planned rotations (make-before-break): a real Collector rotating its
connection every 1.5 s against the binance simulator, with the raw archive on, through the local log
and the sink into a lake; ``ticktape renormalise`` of that day gives one copy of every event, equal
to what the collector merged live (``ticktape/raw.py``, ``arbitrate_streams``)."""

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
from storage.arbitrate import MERGED_GAP, REPLICA_COVER
from storage.lake import dataset_files
from storage.sink import Sink, SinkOptions
from streaming import open_consumer, open_publisher
from tests.collectors.book_replay import assert_tops_match_bbo, tops_by_seq
from tests.collectors.test_connection import FAST
from ticktape.cli import main
from ticktape.raw import REPLAYED_DATASETS, day_streams, parser_manifest, replay_stream

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


def raw_days(lake: Path) -> list[str]:
    return sorted(p.name[5:] for p in (lake / "raw" / "exchange=binance").glob("date=*"))


async def collect_rotating(lake: Path, log_dir: Path) -> Collector:
    """The collector rotates at least twice, with trades flowing after the last handover."""
    dialect = get_dialect("binance")
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


@pytest.fixture(scope="module")
def rotation_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The live lake's datasets, what a stream-by-stream replay of the raw day gives, and the lake
    after ``ticktape renormalise`` (with its manifests and output)."""
    base = tmp_path_factory.mktemp("rotation")
    lake = base / "lake"
    collector = asyncio.run(collect_rotating(lake, base / "log"))
    live = {ds: lake_rows(lake, ds) for ds in (*REPLAYED_DATASETS, "feed_events")}
    days = raw_days(lake)
    streams: dict[str, list[tuple[Any, ...]]] = {}  # each stream whole (the run may cross midnight)
    for day in days:
        for stream, rows in day_streams(lake, "binance", date.fromisoformat(day)).items():
            streams.setdefault(stream, []).extend(rows)
    naive: Counter[str] = Counter()  # what each stream replayed on its own gives (before arbitration)
    for rows in streams.values():
        buf = replay_stream(get_dialect("binance").new_normaliser(), sorted(rows, key=lambda r: r[2]))
        for ds in REPLAYED_DATASETS:
            naive[ds] += len(buf.rows(ds))
    manifests = []
    for day in days:
        args = [
            "renormalise",
            "--lake",
            str(lake),
            "--exchange",
            "binance",
            "--date",
            day,
            "--allow-open-day",
        ]
        assert main(args) == 0
        manifest = parser_manifest(lake, "binance", date.fromisoformat(day))
        assert manifest is not None
        manifests.append(manifest)
    renormalised = {ds: lake_rows(lake, ds) for ds in (*REPLAYED_DATASETS, "feed_events")}
    yield {
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
    assert naive["trades"] > len(live["trades"])
    assert naive["book"] > len(live["book"])
    assert naive["bbo"] > len(live["bbo"])


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
    assert dropped == rotation_day["naive"]["trades"] - len(new) > 0


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
    # one book across the rotations, in the epochs the collector gave it live (binance: no resync)
    for symbol in ("BTC-USDT", "ETH-USDT"):
        assert {r[9] for r in book if r[1] == symbol} == {r[9] for r in live["book"] if r[1] == symbol}
    snapshots = {(r[1], r[8]) for r in book if r[7]}
    assert snapshots == {(r[1], r[8]) for r in live["book"] if r[7]}  # one snapshot per symbol
    new_tops, live_tops = tops_by_seq(book), tops_by_seq(live["book"])
    assert set(new_tops) == set(live_tops)  # every update once, none lost, none added
    assert len(new_tops) > 200
    for key in sorted(live_tops):
        assert new_tops[key] == live_tops[key], f"book top differs at {key}"
    assert assert_tops_match_bbo(book, new["bbo"]) > 100
    events = new["feed_events"]
    assert not [e for e in events if e[4] in (MERGED_GAP, REPLICA_COVER, "gap", "resync")]


def test_renormalise_reports_the_arbitrated_overlap(
    rotation_day: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    for m in rotation_day["manifests"]:
        if m["rotated_streams"]:
            arb = m["arbitration"]
            assert arb["merged_gaps"] == 0 and arb["replica_covers"] == 0
            assert set(arb["dropped"]) <= {"trades", "book", "bbo"}
            assert m["rows"]["trades"] + arb["dropped"].get("trades", 0) >= m["previous_rows"]["trades"]
    total = {
        ds: sum(m["arbitration"]["dropped"].get(ds, 0) for m in rotation_day["manifests"] if m["arbitration"])
        for ds in ("trades", "book", "bbo")
    }
    naive, new = rotation_day["naive"], rotation_day["renormalised"]
    for ds in ("trades", "book", "bbo"):
        assert total[ds] == naive[ds] - len(new[ds]) > 0, ds
    print(
        "rotation day:",
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

"""The raw archive end to end (issue 17): a live collector with raw on, through the local log and
through Kafka (tansu), into the lake; the lake's raw day replays to exactly the live records, and
``renormalise`` rebuilds the day identically with the same parser and picks up a changed one."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import types
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from collectors import registry
from collectors.connection import Collector
from collectors.raw import RawSettings, parser_version
from collectors.registry import get_dialect
from collectors.simulator import SimulatorConfig
from collectors.venues.binance import BinanceDialect, BinanceNormaliser
from schemas import RecordBuffer, arrow_schema, arrow_to_rows
from storage.lake import dataset_files
from storage.sink import Sink, SinkOptions
from streaming import open_consumer, open_publisher
from tests.collectors.test_connection import FAST
from ticktape.cli import main
from ticktape.raw import (
    REPLAYED_DATASETS,
    _is_connection_event,
    day_streams,
    expire_raw,
    parser_manifest,
    replay_stream,
    rotated_streams,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
RAW = dataclasses.replace(FAST, raw=RawSettings(batch_bytes=16 * 1024, batch_s=0.3))
COMPARED = (*REPLAYED_DATASETS, "feed_events")


def lake_rows(lake: Path, dataset: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for f in dataset_files(lake, dataset):
        rows.extend(arrow_to_rows(pq.read_table(f, schema=arrow_schema(dataset))))
    return rows


def normalised(lake: Path) -> dict[str, Counter[tuple[Any, ...]]]:
    """The lake's datasets that frames determine (feed events: the normalisers' own), as multisets."""
    out = {ds: Counter(lake_rows(lake, ds)) for ds in REPLAYED_DATASETS}
    out["feed_events"] = Counter(e for e in lake_rows(lake, "feed_events") if not _is_connection_event(e))
    return out


def raw_days(lake: Path) -> list[date]:
    return sorted(date.fromisoformat(p.name[5:]) for p in (lake / "raw" / "exchange=binance").glob("date=*"))


async def collect_into(
    transport: str, options: dict[str, Any], lake: Path, idle_s: float = 1.5
) -> RecordBuffer:
    """A binance simulator and a raw-on collector publishing to ``transport`` (a lost update, then a
    lost connection), then a sink draining it into ``lake``; returns what the collector delivered."""
    dialect = get_dialect("binance")
    sim = dialect.simulator(SimulatorConfig(symbols=SYMBOLS, rate_hz=40.0))
    await sim.start()
    publisher = open_publisher(transport, **options)
    await publisher.start()
    got = RecordBuffer()
    collector = Collector(
        dialect,
        list(SYMBOLS),
        publisher.publish,
        ws_url=sim.ws_url,
        rest_url=sim.rest_url,
        settings=RAW,
        observers=[got.extend],
    )

    async def until(predicate: Any, what: str) -> None:
        for _ in range(300):
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"not within 15 s: {what}")

    def events(kind: str, symbol: str) -> int:
        return sum(1 for e in got.feed_events if e[4] == kind and e[1] == symbol)

    await collector.start()
    try:
        await collector.wait_connected()
        await until(lambda: len(got.trades) > 20 and len(got.book) > 100, "trades and book")
        btc, eth = events("resync", "BTC-USDT"), events("resync", "ETH-USDT")
        sim.faults.drop_updates["BTCUSDT"] = 1
        await until(lambda: events("resync", "BTC-USDT") > btc, "a resync after the lost update")
        await sim.disconnect_all()
        await until(lambda: collector.stats.connects >= 2 and events("resync", "ETH-USDT") > eth, "reconnect")
        await until(lambda: collector.stats.raw_batches >= 4, "raw batches")
    finally:
        await collector.stop()
        await sim.stop()
        await publisher.flush()
        await publisher.close()
    consumer = open_consumer(transport, **options)
    await Sink(consumer, lake, SinkOptions(until_idle_s=idle_s, poll_timeout_s=0.05)).run()
    return got


def check_raw_replays_the_lake(lake: Path, got: RecordBuffer) -> None:
    live = normalised(lake)
    assert sum(live["trades"].values()) == len(got.trades) > 20  # the sink wrote every live record
    assert {e[4] for e in live["feed_events"]} >= {"gap", "resync"}
    raw = lake_rows(lake, "raw")
    assert len(raw) == len(got.raw) >= 4
    assert sum(r[5] for r in raw) > 100  # frames
    replayed = {ds: Counter[tuple[Any, ...]]() for ds in COMPARED}
    for day in raw_days(lake):
        streams = day_streams(lake, "binance", day)
        for rows in streams.values():
            assert [r[2] for r in rows] == list(range(rows[0][2], rows[0][2] + len(rows)))
            buf = replay_stream(get_dialect("binance").new_normaliser(), rows)
            for ds in COMPARED:
                replayed[ds].update(buf.rows(ds))
    for ds in COMPARED:
        assert replayed[ds] == live[ds], ds


@pytest.fixture
def local_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, RecordBuffer]]:
    base = tmp_path_factory.mktemp("raw-local")
    lake = base / "lake"
    got = asyncio.run(collect_into("local", {"log_dir": base / "log"}, lake))
    yield lake, got


def test_raw_through_the_local_log_replays_to_the_live_lake(local_lake: tuple[Path, RecordBuffer]) -> None:
    lake, got = local_lake
    check_raw_replays_the_lake(lake, got)


def test_raw_through_kafka_replays_to_the_live_lake(kafka_broker: Any, tmp_path: Path) -> None:
    options = {"bootstrap": kafka_broker.address, "topic_prefix": f"raw{uuid.uuid4().hex[:8]}"}
    got = asyncio.run(collect_into("kafka", options, tmp_path / "lake"))
    check_raw_replays_the_lake(tmp_path / "lake", got)


def test_replay_command_reads_a_raw_day_like_a_capture(
    local_lake: tuple[Path, RecordBuffer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake, _ = local_lake
    other = tmp_path / "replayed"
    for day in raw_days(lake):
        day_dir = lake / "raw" / "exchange=binance" / f"date={day.isoformat()}"
        assert main(["replay", "--exchange", "binance", "--input", str(day_dir), "--lake", str(other)]) == 0
        assert "raw stream(s)" in capsys.readouterr().out
        # wrong exchange: refused, nothing written
        assert (
            main(["replay", "--exchange", "okx", "--input", str(day_dir), "--lake", str(tmp_path / "x")]) == 2
        )
    assert normalised(other) == normalised(lake)
    # exactly once: a second replay adds nothing
    for day in raw_days(lake):
        day_dir = lake / "raw" / "exchange=binance" / f"date={day.isoformat()}"
        assert main(["replay", "--exchange", "binance", "--input", str(day_dir), "--lake", str(other)]) == 0
    assert normalised(other) == normalised(lake)


def test_renormalise_with_the_same_parser_gives_the_live_day(
    local_lake: tuple[Path, RecordBuffer], capsys: pytest.CaptureFixture[str]
) -> None:
    lake, _ = local_lake
    before = normalised(lake)
    connection_events = Counter(e for e in lake_rows(lake, "feed_events") if _is_connection_event(e))
    for day in raw_days(lake):
        args = ["renormalise", "--lake", str(lake), "--exchange", "binance", "--date", day.isoformat()]
        assert main(args) == 2  # today is not closed
        assert "not closed" in capsys.readouterr().err
        assert main([*args, "--allow-open-day"]) == 0
        manifest = parser_manifest(lake, "binance", day)
        assert manifest is not None
        assert manifest["parser"] == parser_version(BinanceNormaliser)
        assert manifest["live_parsers"] == [manifest["parser"]]
        assert manifest["rotated_streams"] == []
    assert normalised(lake) == before
    assert Counter(e for e in lake_rows(lake, "feed_events") if _is_connection_event(e)) == connection_events
    for ds in COMPARED:  # one file per renormalised partition
        assert all(f.name.startswith("renormalised-") for f in dataset_files(lake, ds))


class TenfoldSizeNormaliser(BinanceNormaliser):
    """A deliberately changed parser: trade sizes in tenths (what a fixed unit bug looks like)."""

    def emit_trade(self, out: RecordBuffer, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        symbol, ts_exchange, ts_recv, trade_id, price, size, *rest = args
        super().emit_trade(out, symbol, ts_exchange, ts_recv, trade_id, price, size * 10, *rest, **kwargs)


class ChangedDialect(BinanceDialect):
    """Binance with the changed parser, registered in place of binance for one test."""

    normaliser_class = TenfoldSizeNormaliser


def test_renormalise_picks_up_a_changed_parser(
    local_lake: tuple[Path, RecordBuffer], monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, _ = local_lake
    before = normalised(lake)
    module = types.ModuleType("tests_raw_changed_binance")
    module.DIALECT_CLASS = ChangedDialect  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(registry.EXCHANGE_MODULES, "binance", module.__name__)
    for day in raw_days(lake):
        args = ["renormalise", "--lake", str(lake), "--exchange", "binance", "--date", day.isoformat()]
        assert main([*args, "--allow-open-day"]) == 0
        manifest = parser_manifest(lake, "binance", day)
        assert manifest is not None
        assert manifest["parser"] == parser_version(TenfoldSizeNormaliser) != manifest["live_parsers"][0]
    after = normalised(lake)
    assert after["trades"] == Counter({(*r[:6], r[6] * 10, *r[7:]): n for r, n in before["trades"].items()})
    for ds in ("book", "bbo", "feed_events"):
        assert after[ds] == before[ds], ds


def test_renormalise_without_raw_data_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["renormalise", "--lake", str(tmp_path), "--exchange", "binance", "--date", "2024-08-08"]
    assert main(args) == 2
    assert "no raw data for binance on 2024-08-08" in capsys.readouterr().err
    assert not (tmp_path / "_ticktape").exists()


def test_sync_uploads_the_raw_archive_like_other_datasets(
    local_lake: tuple[Path, RecordBuffer], moto: Any
) -> None:
    import boto3

    lake, _ = local_lake
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    bucket = f"raw-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    days = raw_days(lake)
    after = (days[-1] + timedelta(days=1)).isoformat()
    argv = ["sync", "--lake", str(lake), "--to", f"s3://{bucket}/l", "--endpoint-url", moto.url]
    assert main([*argv, "--closed-before", after]) == 0
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="l/raw/")
    remote = {o["Key"].removeprefix("l/"): o["Size"] for o in listed.get("Contents", [])}
    local = {str(f.relative_to(lake)): f.stat().st_size for f in dataset_files(lake, "raw")}
    assert remote == local and local


def test_raw_retention_per_exchange(
    local_lake: tuple[Path, RecordBuffer], capsys: pytest.CaptureFixture[str]
) -> None:
    lake, _ = local_lake
    day = raw_days(lake)[-1]
    later = day + timedelta(days=40)
    assert expire_raw(lake, 30, {"binance": 0}, today=later) == []  # 0: binance keeps raw forever
    assert expire_raw(lake, 30, {"binance": 45}, today=later) == []
    assert raw_days(lake)
    # the default (30 days) through `ticktape compact`, which applies retention; other datasets stay
    trades = lake_rows(lake, "trades")
    (lake / "raw" / "exchange=binance" / f"date={day.isoformat()}").rename(
        lake / "raw" / "exchange=binance" / f"date={(day - timedelta(days=31)).isoformat()}"
    )
    assert main(["compact", "--lake", str(lake), "--closed-before", day.isoformat()]) == 0
    assert "raw archive past its retention: deleted" in capsys.readouterr().out
    assert day - timedelta(days=31) not in raw_days(lake)
    assert not (lake / "raw" / "exchange=binance" / f"date={(day - timedelta(days=31)).isoformat()}").exists()
    assert lake_rows(lake, "trades") == trades


def test_collect_takes_raw_from_the_configuration_the_environment_and_flags(tmp_path: Path) -> None:
    from ticktape.cli import build_parser
    from ticktape.commands.collect import connection_settings_of

    config = tmp_path / "ticktape.toml"
    config.write_text("[collect]\nraw = true\nraw_batch_s = 0.5\n")
    parser = build_parser(only="collect")
    base = ["collect", "--exchange", "binance", "--symbols", "BTCUSDT"]

    def raw_of(argv: list[str], env: dict[str, str]) -> RawSettings | None:
        args = parser.parse_args([*base, *argv])
        args.config_resolver(args, env)
        return connection_settings_of(args).raw

    assert raw_of([], {}) is None  # off by default
    assert raw_of(["--config", str(config)], {}) == RawSettings(batch_s=0.5)
    assert raw_of([], {"TICKTAPE_COLLECT_RAW": "true"}) == RawSettings()
    assert raw_of(["--config", str(config), "--no-raw"], {}) is None


def test_raw_through_kinesis_replays_to_the_live_lake(moto: Any, tmp_path: Path) -> None:
    import boto3

    name = f"raw{uuid.uuid4().hex[:8]}"
    boto3.client("kinesis", endpoint_url=moto.url, region_name="us-east-1").create_stream(
        StreamName=name, ShardCount=2
    )
    options = {"stream_name": name, "endpoint_url": moto.url, "region": "us-east-1"}
    got = asyncio.run(collect_into("kinesis", options, tmp_path / "lake", idle_s=5.0))
    check_raw_replays_the_lake(tmp_path / "lake", got)


def test_successors_of_planned_rotations_are_named() -> None:
    streams = {"gate-futures-0@17": [], "gate-futures-0-g1@17": [], "binance-2-g12@5": [], "binance-1@5": []}
    assert rotated_streams(streams) == ["binance-2-g12@5", "gate-futures-0-g1@17"]

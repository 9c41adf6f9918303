"""The Python API (``ticktape.open_lake``) and ``ticktape ls`` over a small lake: the real Binance sample
replayed into it, plus synthetic trades of three exchanges and several days (tests/storage/lakegen.py)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import schemas
import ticktape
from tests.storage.lakegen import run_command, write_trade_day
from ticktape.commands import ls as ls_command
from ticktape.commands.replay import replay_to_lake
from ticktape.lake import CLEAN_MASK, LakeLookupError, closest

SAMPLE = ("binance", "ethusdt_20240808.capture.gz")
DAYS = [dt.date(2026, 11, 30), dt.date(2026, 12, 1), dt.date(2026, 12, 2)]


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> Path:
    lake = tmp_path_factory.mktemp("lake")
    replay_to_lake(samples.joinpath(*SAMPLE), "binance", lake)
    for k, exchange in enumerate(("okx", "kraken", "coinbase")):
        for day in DAYS[: k + 1]:
            write_trade_day(lake, exchange, day, n=3_000, files=3, seed=k)
    return lake


@pytest.fixture()
def lake(lake_dir: Path):
    with ticktape.open_lake(str(lake_dir)) as opened:
        yield opened


def duck(lake_dir: Path, sql: str) -> list[tuple]:
    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW trades AS SELECT * FROM read_parquet('{lake_dir}/trades/**/*.parquet', "
        "hive_partitioning = true, hive_types = {'exchange': 'VARCHAR', 'date': 'DATE'})"
    )
    return con.sql(sql).fetchall()


def test_import_ticktape_stays_light() -> None:
    code = (
        "import sys, ticktape; assert callable(ticktape.open_lake); "
        "heavy = [m for m in ('duckdb', 'pyarrow', 'great_expectations', 'aiohttp') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_what_the_lake_holds(lake, lake_dir: Path) -> None:
    assert lake.exchanges() == ["binance", "coinbase", "kraken", "okx"]
    assert lake.symbols("binance") == ["ETH-USDT"]
    assert lake.symbols("okx") == ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
    assert lake.days("coinbase") == DAYS
    assert lake.days("okx") == DAYS[:1]
    assert lake.days("binance") == [dt.date(2024, 8, 8)]
    inv = lake.inventory()
    # row counts from the footers equal a full count
    for exchange, n in duck(lake_dir, "SELECT exchange, count(*) FROM trades GROUP BY ALL"):
        assert inv.exchanges[exchange]["trades"].rows == n
    assert inv.exchanges["kraken"]["trades"].files == 6
    # symbols of files with several symbols per row group, with their days
    assert inv.symbols("kraken") == {
        s: {d.isoformat() for d in DAYS[:2]} for s in ("BTC-USDT", "ETH-USDT", "SOL-USDT")
    }
    assert inv.exchanges["binance"]["book"].first.startswith("2024-08-08T23:54")


def test_readers_filter_and_clean(lake, lake_dir: Path) -> None:
    trades = lake.trades(exchange="kraken", symbol="ETH-USDT")
    assert isinstance(trades, pa.Table)
    assert trades.schema.names == schemas.arrow_schema("trades").names
    (expected,) = duck(
        lake_dir, "SELECT count(*) FROM trades WHERE exchange = 'kraken' AND symbol = 'ETH-USDT'"
    )
    assert trades.num_rows == expected[0] > 0
    clean = lake.trades(exchange="kraken", symbol="ETH-USDT", clean=True)
    (kept,) = duck(
        lake_dir,
        f"SELECT count(*) FROM trades WHERE exchange = 'kraken' AND symbol = 'ETH-USDT' AND flags & {CLEAN_MASK} = 0",
    )
    assert clean.num_rows == kept[0] < trades.num_rows
    assert all(f & CLEAN_MASK == 0 for f in clean.column("flags").to_pylist())
    assert CLEAN_MASK == ticktape.Flags.OUTDATED | ticktape.Flags.MAYBE_BAD_BOOK | ticktape.Flags.DUPLICATE
    # [start, end): the second day only, by date, ISO string or datetime alike
    day2 = lake.trades(exchange="coinbase", start=DAYS[1], end=DAYS[2])
    iso = lake.trades(exchange="coinbase", start="2026-12-01T00:00:00Z", end="2026-12-02")
    naive = lake.trades(exchange="coinbase", start=dt.datetime(2026, 12, 1), end=dt.datetime(2026, 12, 2))
    assert day2.num_rows == iso.num_rows == naive.num_rows == 3_000
    stamps = day2.column("ts_recv").cast(pa.int64()).to_pylist()
    lo = int(dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()) * 10**9
    assert lo <= min(stamps) and max(stamps) < lo + 86_400 * 10**9
    bbo = lake.bbo(exchange="binance", symbol="ETH-USDT", columns=["ts_recv", "bid_price", "ask_price"])
    assert bbo.num_rows == 24_077 and bbo.column_names == ["ts_recv", "bid_price", "ask_price"]
    assert lake.book(exchange="binance").num_rows == 108_802
    assert lake.feed_events(exchange="binance").num_rows == 0
    # every dataset of schemas has a reader, so datasets added there appear here
    for dataset in schemas.DATASETS:
        assert getattr(lake, dataset)().schema.names == schemas.arrow_schema(dataset).names
    assert (
        lake.sql("SELECT count(*) AS n FROM trades WHERE exchange = ?", ["okx"]).column("n")[0].as_py()
        == 3_000
    )


def test_book_at_through_the_api(lake) -> None:
    book = lake.book_at("binance", "ETH-USDT", "2024-08-08T23:58:00Z", depth=3)
    assert book.synced and len(book.bids) == 3 and book.bids[0][0] < book.asks[0][0]


def test_lookups_say_what_exists(lake) -> None:
    with pytest.raises(LakeLookupError, match=r"no exchange 'binanse'.*it holds: binance, "):
        lake.trades(exchange="binanse")
    with pytest.raises(LakeLookupError, match=r"'BTC-USDT' on binance .*closest symbols: ETH-USDT"):
        lake.trades(exchange="binance", symbol="BTC-USDT")
    with pytest.raises(LakeLookupError, match=r"no data on 2020-01-01 for okx .*days with data: 2026-11-30"):
        lake.check_day("2020-01-01", "okx")
    with pytest.raises(LakeLookupError, match=r"datasets: trades"):
        lake.read("trade")
    assert closest("ETH-USDT", ["BTC-USD", "ETH-USDT-PERP", "ETH-USD", "SOL-USDT"])[:2] == [
        "ETH-USDT-PERP",
        "ETH-USD",
    ]
    assert closest("binanse", ["okx", "binance-futures", "binance", "kraken"])[:2] == [
        "binance",
        "binance-futures",
    ]


def test_ls_lists_exchanges_datasets_symbols_and_days(
    lake_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_command(ls_command, ["ls", "--lake", str(lake_dir)]) == 0
    out = capsys.readouterr().out
    for exchange in ("binance", "okx", "kraken", "coinbase"):
        assert f"  {exchange}: " in out
    assert "108,802" in out
    assert "2026-11-30 .. 2026-12-02 (3 days)" in out
    without = next(
        line for line in out.splitlines() if line.startswith("registered exchanges without data here:")
    )
    assert "binance-futures" in without.split(":", 1)[1].split(", ")
    assert run_command(ls_command, ["ls", "--lake", str(lake_dir), "--exchange", "kraken", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["exchanges"]) == ["kraken"]
    kraken = data["exchanges"]["kraken"]
    assert kraken["datasets"]["trades"]["rows"] == 6_000
    assert kraken["symbols"]["SOL-USDT"] == ["2026-11-30", "2026-12-01"]
    assert (kraken["first_day"], kraken["last_day"]) == ("2026-11-30", "2026-12-01")
    assert run_command(ls_command, ["ls", "--lake", str(lake_dir), "--exchange", "krakn"]) == 2
    assert "no exchange 'krakn'" in capsys.readouterr().err
    assert run_command(ls_command, ["ls", "--lake", str(lake_dir / "nope")]) == 2


def test_an_s3_lake_reads_the_same(lake_dir: Path, moto) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    s3.create_bucket(Bucket="api-lake")
    for path in lake_dir.rglob("*.parquet"):
        if not path.name.startswith("."):
            s3.upload_file(str(path), "api-lake", f"research/{path.relative_to(lake_dir).as_posix()}")
    with ticktape.open_lake("s3://api-lake/research", endpoint_url=moto.url) as remote:
        assert remote.exchanges() == ["binance", "coinbase", "kraken", "okx"]
        assert remote.days("coinbase") == DAYS
        assert remote.symbols("kraken") == ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
        assert (
            remote.trades(exchange="okx", symbol="SOL-USDT").num_rows
            == (
                duck(lake_dir, "SELECT count(*) FROM trades WHERE exchange = 'okx' AND symbol = 'SOL-USDT'")[
                    0
                ][0]
            )
        )
        with pytest.raises(LakeLookupError, match="closest symbols: ETH-USDT"):
            remote.book(exchange="binance", symbol="ETH-USD")

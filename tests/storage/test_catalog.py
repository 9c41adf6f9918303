"""The DuckDB catalog and ``ticktape query``: views per dataset, empty views, partitions, output formats."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from schemas import DATASETS, arrow_schema
from storage.catalog import empty_view_sql, open_catalog
from ticktape.commands import query as query_cmd

from .lakegen import partition_dir, run_command, write_trade_day

DAY = date(2024, 8, 8)


def test_empty_lake_has_every_view_with_its_columns(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    with open_catalog(str(lake)) as cat:
        assert sorted(cat.empty) == sorted(DATASETS)
        for dataset in DATASETS:
            t = cat.query(f"SELECT * FROM {dataset}")
            assert t.num_rows == 0
            assert t.column_names == [*arrow_schema(dataset).names, "date"]


def test_empty_view_types_match_a_non_empty_view(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_trade_day(lake, "binance", DAY, n=50, files=1)
    with open_catalog(str(lake)) as cat:
        real = cat.con.sql("DESCRIBE trades").fetchall()
        empty = cat.con.sql(f"DESCRIBE ({empty_view_sql('trades')})").fetchall()
    assert [(r[0], r[1]) for r in real] == [(r[0], r[1]) for r in empty]


def test_exchange_comes_from_the_partition_and_prunes(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_trade_day(lake, "binance", DAY, n=100, files=1)
    write_trade_day(lake, "okx", DAY, n=40, files=1, stream="other")
    with open_catalog(str(lake)) as cat:
        t = cat.query("SELECT exchange, date, count(*) AS n FROM trades GROUP BY ALL ORDER BY ALL")
        assert t.to_pylist() == [
            {"exchange": "binance", "date": DAY, "n": 100},
            {"exchange": "okx", "date": DAY, "n": 40},
        ]
        plan = cat.con.sql("EXPLAIN SELECT count(*) FROM trades WHERE exchange = 'okx'").fetchall()[0][1]
        assert "Scanning Files: 1/2" in plan
        # Nanoseconds survive the round trip.
        ts = cat.query("SELECT epoch_ns(max(ts_recv)) AS t FROM trades").column("t")[0].as_py()
    files = list(partition_dir(lake, "trades", "binance", DAY).glob("*.parquet")) + list(
        partition_dir(lake, "trades", "okx", DAY).glob("*.parquet")
    )
    expected = max(max(pq.read_table(f).column("ts_recv").cast("int64").to_pylist()) for f in files)
    assert ts == expected


def test_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    write_trade_day(lake, "binance", DAY, n=30, files=1)
    sql = "SELECT symbol, ts_recv, price, side, date FROM trades ORDER BY symbol, ts_recv, trade_id LIMIT 5"
    assert run_command(query_cmd, ["query", "--lake", str(lake), "--format", "json", sql]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 5 and set(rows[0]) == {"symbol", "ts_recv", "price", "side", "date"}
    assert rows[0]["ts_recv"].startswith("2024-08-08T") and rows[0]["ts_recv"].endswith("Z")
    assert len(rows[0]["ts_recv"]) == len("2024-08-08T00:00:00.000000000Z")
    assert rows[0]["date"] == "2024-08-08" and isinstance(rows[0]["price"], float)
    assert run_command(query_cmd, ["query", "--lake", str(lake), "--format", "csv", sql]) == 0
    parsed = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert parsed[0] == ["symbol", "ts_recv", "price", "side", "date"] and len(parsed) == 6
    assert [r[1] for r in parsed[1:]] == [r["ts_recv"] for r in rows]
    assert run_command(query_cmd, ["query", "--lake", str(lake), sql]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split(" | ")[0].strip() == "symbol" and table[-1] == "(5 rows)"
    assert "NULL" in "\n".join(table) or all(r["side"] is not None for r in rows)
    assert run_command(query_cmd, ["query", "--lake", str(lake), "SELECT 1 AS x WHERE false"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "(0 rows)"
    assert (
        run_command(
            query_cmd, ["query", "--lake", str(lake), "--format", "json", "SELECT 1 AS x WHERE false"]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == []


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    write_trade_day(lake, "binance", DAY, n=10, files=1)
    assert run_command(query_cmd, ["query", "--lake", str(lake), "SELECT nope FROM trades"]) == 1
    assert "nope" in capsys.readouterr().err
    assert run_command(query_cmd, ["query", "--lake", str(tmp_path / "missing"), "SELECT 1"]) == 2
    assert "lake directory not found" in capsys.readouterr().err
    assert run_command(query_cmd, ["query", "--lake", "s3://", "SELECT 1"]) == 2

"""rows_to_arrow (one struct conversion) and the lake's Parquet encodings, round trip through DuckDB."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from schemas import RECORD_DATASETS, arrow_schema, arrow_to_rows, field_names, rows_to_arrow
from storage.lake import parquet_encodings, write_parquet_atomic

TRADE = (
    "binance",
    "ETH-USDT",
    1_723_161_254_000_000_000,
    1_723_161_254_024_619_568,
    "42",
    2683.8,
    0.5,
    "buy",
    8,
)
BOOK = ("binance", "ETH-USDT", None, 1_723_161_254_024_619_568, "bid", 2683.8, 0.0, False, 35346513505, 0, 2)


def test_round_trip_keeps_every_value_and_the_schema() -> None:
    rows = [TRADE, (*TRADE[:2], None, TRADE[3] + 1, "43", 2683.9, 1.25, None, 0)]
    batch = rows_to_arrow("trades", rows)
    assert batch.schema == arrow_schema("trades")
    assert arrow_to_rows(batch) == rows


def test_rows_given_as_lists_are_accepted() -> None:
    # Arrow would read a list as key/value pairs of a struct; the column path takes over.
    batch = rows_to_arrow("book", [list(BOOK)])  # type: ignore[list-item]
    assert arrow_to_rows(batch) == [BOOK]


def test_empty_rows_give_an_empty_batch_with_the_schema() -> None:
    for dataset in RECORD_DATASETS:
        batch = rows_to_arrow(dataset, [])
        assert batch.num_rows == 0 and batch.schema == arrow_schema(dataset)


@pytest.mark.parametrize("bad", [TRADE[:-1], (*TRADE, "replica-a", 1)])
def test_a_row_of_the_wrong_length_is_a_value_error(bad: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        rows_to_arrow("trades", [TRADE, bad])


def test_rows_with_and_without_a_replica_convert_together() -> None:
    batch = rows_to_arrow("trades", [TRADE, (*TRADE, "a")])
    assert batch.schema == arrow_schema("trades")
    assert batch.column("replica").to_pylist() == [None, "a"]
    assert arrow_to_rows(batch) == [(*TRADE, None), (*TRADE, "a")]
    # a single collector's rows come back in the layout collectors build (no replica column)
    assert arrow_to_rows(rows_to_arrow("trades", [TRADE])) == [TRADE]


def test_a_value_of_the_wrong_type_is_rejected() -> None:
    with pytest.raises((pa.ArrowException, TypeError, ValueError)):
        rows_to_arrow("trades", [(*TRADE[:5], "not a price", *TRADE[6:])])


def test_lake_encodings_read_back_identically_in_duckdb(tmp_path: Path) -> None:
    rows = [
        (
            *BOOK[:3],
            BOOK[3] + i * 1_000_003,
            BOOK[4],
            2683.8 - i / 100,
            float(i % 7),
            i == 0,
            BOOK[8] + i,
            0,
            2,
        )
        for i in range(5000)
    ]
    table = pa.Table.from_batches([rows_to_arrow("book", rows)])
    options = parquet_encodings(table.schema)
    assert "ts_recv" in options["column_encoding"] and "symbol" in options["use_dictionary"]
    path = tmp_path / "book.parquet"
    write_parquet_atomic(table, path, durable=False)
    with duckdb.connect() as con:
        rel = con.sql(f"SELECT * FROM read_parquet('{path}')")
        assert rel is not None
        back = rel.to_arrow_table()
    assert back.column_names == list(field_names("book"))
    assert arrow_to_rows(back.cast(arrow_schema("book"))) == rows

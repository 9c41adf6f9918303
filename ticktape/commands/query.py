"""``ticktape query``: SQL over the lake (local or S3) with one DuckDB view per dataset."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
from collections.abc import Iterator
from typing import IO, Any

import duckdb
import pyarrow as pa

from schemas import DATASETS
from storage.catalog import LakeBusyError, open_catalog
from storage.lake import iso_ns as format_ns
from ticktape.config import enable_config

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: Rows the table format prints unless ``--limit`` says otherwise (CSV and JSON print every row).
DEFAULT_TABLE_ROWS = 1_000


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``query`` subcommand."""
    p = subparsers.add_parser(
        "query",
        help="run SQL over the lake (views: " + ", ".join(DATASETS) + ")",
        description=(
            "Opens DuckDB with one view per dataset (" + ", ".join(DATASETS) + ") over a local lake "
            "or an s3://BUCKET/PREFIX lake (offline: no DuckDB extension is downloaded), runs SQL and "
            "prints the result. Timestamps print as ISO 8601 UTC with nanoseconds."
        ),
    )
    p.add_argument("--lake", required=True, help="lake directory or s3://BUCKET/PREFIX")
    p.add_argument("--endpoint-url", help="S3 endpoint (S3-compatible stores, moto, MinIO)")
    p.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="output format (csv and json print every row: use them for exports)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_TABLE_ROWS,
        help="rows the table format prints at most, saying how many it left out (default %(default)s; 0: all)",
    )
    p.add_argument("sql", help='SQL, e.g. "SELECT symbol, count(*) FROM trades GROUP BY ALL"')
    p.set_defaults(func=run)
    enable_config(p, "query")


def _column_values(col: pa.ChunkedArray) -> list[Any]:
    typ = col.type
    if pa.types.is_timestamp(typ):
        # Python datetimes stop at microseconds: go through integers to keep nanoseconds.
        ints = col.cast(pa.int64()).to_pylist()
        if typ.unit != "ns":
            scale = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000}[typ.unit]
            ints = [None if v is None else v * scale for v in ints]
        return [None if v is None else format_ns(v) for v in ints]
    if pa.types.is_date(typ) or pa.types.is_time(typ):
        return [None if v is None else v.isoformat() for v in col.to_pylist()]
    if pa.types.is_decimal(typ):
        return [None if v is None else float(v) for v in col.to_pylist()]
    return list(col.to_pylist())


def rows_of(table: pa.Table) -> Iterator[tuple[Any, ...]]:
    """Result rows with timestamps and dates already rendered as ISO strings."""
    columns = [_column_values(table.column(i)) for i in range(table.num_columns)]
    return zip(*columns, strict=True) if columns else iter(())


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def write_table(table: pa.Table, out: IO[str], limit: int = 0) -> None:
    """Aligned text table with a header, a rule and a row count; at most ``limit`` rows (0: all)."""
    total = table.num_rows
    if 0 < limit < total:
        table = table.slice(0, limit)
    header = table.column_names
    cells = [[_cell(v) for v in row] for row in rows_of(table)]
    widths = [len(h) for h in header]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in table.schema]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return " | ".join(parts).rstrip()

    out.write(line(header) + "\n")
    out.write("-+-".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write(line(row) + "\n")
    if table.num_rows < total:
        out.write(
            f"({total:,} rows; the first {table.num_rows:,} shown, {total - table.num_rows:,} left out: "
            "--limit N shows more, --format csv or json prints them all)\n"
        )
    else:
        out.write(f"({total} row{'s' if total != 1 else ''})\n")


def write_csv(table: pa.Table, out: IO[str]) -> None:
    """CSV with a header row; NULL is an empty field."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in rows_of(table):
        writer.writerow(["" if v is None else v for v in row])


def write_json(table: pa.Table, out: IO[str]) -> None:
    """A JSON array of objects, one per row (timestamps as ISO strings, NaN as null)."""
    names = table.column_names
    out.write("[")
    for i, row in enumerate(rows_of(table)):
        record = {
            n: (None if isinstance(v, float) and v != v else v) for n, v in zip(names, row, strict=True)
        }
        out.write(("," if i else "") + "\n" + json.dumps(record, default=str, allow_nan=False))
    out.write("\n]\n" if table.num_rows else "]\n")


WRITERS = {"table": write_table, "csv": write_csv, "json": write_json}


def run(args: argparse.Namespace) -> int:
    """Runs one query; exit 1 on an SQL or I/O error, 2 when the lake does not exist."""
    try:
        catalog = open_catalog(args.lake, endpoint_url=args.endpoint_url)
    except (FileNotFoundError, ValueError) as exc:
        print(f"ticktape query: {exc}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:
        print(f"ticktape query: cannot open the lake {args.lake}: {exc}", file=sys.stderr)
        return 1
    with catalog:
        try:
            table = catalog.query(args.sql)
        except (duckdb.Error, LakeBusyError) as exc:
            print(f"ticktape query: {exc}", file=sys.stderr)
            return 1
    if args.format == "table":
        write_table(table, sys.stdout, max(0, args.limit))
    else:
        WRITERS[args.format](table, sys.stdout)
    return 0

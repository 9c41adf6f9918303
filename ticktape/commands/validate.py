"""``ticktape validate``: Great Expectations suites over one closed day of the lake."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import duckdb

from quality.expectations import DEFAULT_CHUNK_ROWS, default_out_dir, validate_day
from quality.scoring import QualityConfig
from storage.catalog import open_catalog
from ticktape.commands.report import write_report
from ticktape.config import enable_config, quality_config_of
from ticktape.lake import Lake, LakeLookupError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``validate`` subcommand."""
    p = subparsers.add_parser(
        "validate",
        help="Great Expectations suites over a closed day: schema, nulls, prices, unique ids, bbo, order",
        description=(
            "Validates one closed UTC day of the lake, per dataset and exchange: schema, nulls, positive "
            "prices and sizes, sides, unique trade ids, no crossed bbo, exchange timestamps ordered per "
            "symbol, latency and outdated ratio within bounds. Writes results.json, GE Data Docs (readable "
            "offline) and the day's report.html to <lake>-validation/<date>/ (or --out) and exits 1 when "
            "any expectation fails."
        ),
    )
    p.add_argument("--lake", required=True, help="lake directory or s3://BUCKET/PREFIX")
    p.add_argument("--date", required=True, help="the UTC day to validate (YYYY-MM-DD)")
    p.add_argument("--endpoint-url", help="S3 endpoint (S3-compatible stores, moto, MinIO)")
    p.add_argument("--out", type=Path, help="results directory (default <lake>-validation/<date>)")
    p.add_argument("--exchange", action="append", help="only this exchange (repeatable)")
    p.add_argument(
        "--max-rows",
        type=int,
        default=DEFAULT_CHUNK_ROWS,
        help="rows per DataFrame handed to Great Expectations; a day goes in chunks of whole symbols "
        "(default %(default)s)",
    )
    p.add_argument(
        "--allow-open-day",
        action="store_true",
        help="validate today (UTC) too, although its data is still arriving",
    )
    p.add_argument(
        "--outdated-cutoff",
        type=float,
        default=QualityConfig.outdated_cutoff_s,
        help="latency above the floor that makes a message OUTDATED, seconds (default %(default)s)",
    )
    p.add_argument(
        "--no-report",
        action="store_true",
        help="do not write the day's HTML report (ticktape report) beside the results",
    )
    p.set_defaults(func=run)
    enable_config(p, "validate")


def run(args: argparse.Namespace) -> int:
    """0 when every suite passes, 1 when one fails, 2 on bad arguments or a day without data."""
    try:
        day = dt.date.fromisoformat(args.date)
    except ValueError:
        print(f"ticktape validate: --date must be YYYY-MM-DD, got {args.date!r}", file=sys.stderr)
        return 2
    if day >= dt.datetime.now(dt.UTC).date() and not args.allow_open_day:
        print(
            f"ticktape validate: {args.date} is not closed yet (UTC); use --allow-open-day to validate anyway",
            file=sys.stderr,
        )
        return 2
    try:
        out = args.out or default_out_dir(args.lake, args.date)
        catalog = open_catalog(args.lake, endpoint_url=args.endpoint_url)
    except (FileNotFoundError, ValueError) as exc:
        print(f"ticktape validate: {exc}", file=sys.stderr)
        return 2
    page: Path | None = None
    page_error = None
    try:
        with catalog:
            lake = Lake(catalog)
            try:
                for exchange in args.exchange or []:
                    lake.check_exchange(exchange)
                lake.check_day(args.date)
            except LakeLookupError as exc:
                print(f"ticktape validate: {exc}", file=sys.stderr)
                return 2
            config = quality_config_of(args)  # [thresholds] of --config; --outdated-cutoff is in it
            report = validate_day(catalog.con, args.date, out, config, args.exchange, max(1, args.max_rows))
            if report.suites and not args.no_report:
                # the day's HTML report beside its validation results (the daily job's last step)
                page = out / "report.html"
                try:
                    write_report(lake, args.date, page, config, args.exchange)
                except (duckdb.Error, OSError) as exc:
                    page, page_error = None, exc
    except duckdb.Error as exc:
        print(f"ticktape validate: cannot read the lake {args.lake}: {exc}", file=sys.stderr)
        return 2
    if not report.suites:
        print(f"ticktape validate: no data for {args.date} in {args.lake}", file=sys.stderr)
        return 2
    for s in report.suites:
        status = "passed" if s.success else "FAILED"
        print(f"{s.dataset:<12} {s.exchange:<16} {s.rows:>10} rows  {s.evaluated:>3} expectations  {status}")
        for f in s.failed:
            column = f["kwargs"].get("column") or f["kwargs"].get("column_list") or ""
            detail = f["observed_value"] if f["observed_value"] is not None else f["unexpected_count"]
            print(f"    {f['expectation']} {column}: {detail}")
    print(f"results: {out / 'results.json'}")
    if report.data_docs:
        print(f"data docs: {report.data_docs}")
    if page is not None:
        print(f"report: {page}")
    print("validation " + ("passed" if report.success else "FAILED"))
    if page_error is not None:
        print(f"ticktape validate: the day's report was not written: {page_error}", file=sys.stderr)
        return 1
    return 0 if report.success else 1

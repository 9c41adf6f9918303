"""``ticktape quality``: the live quality metrics, recomputed over captured data in the lake."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

import duckdb
import orjson

from quality.batch import LakeFilter, format_table, lake_quality
from quality.scoring import QualityConfig
from storage.catalog import open_catalog
from ticktape.config import enable_config, quality_config_of
from ticktape.lake import Lake, LakeLookupError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``quality`` subcommand."""
    p = subparsers.add_parser(
        "quality",
        help="feed quality of captured data: latency, clock offset, outdated ratio, gaps, score",
        description=(
            "Per exchange and channel: messages, latency quantiles above the clock-offset floor, the "
            "clock offset estimate (host clock minus exchange clock), outdated ratio, gaps, duplicates, "
            "health score and state, computed with the rules of the live tracker."
        ),
    )
    p.add_argument("--lake", required=True, help="lake directory or s3://BUCKET/PREFIX")
    p.add_argument("--endpoint-url", help="S3 endpoint (S3-compatible stores, moto, MinIO)")
    p.add_argument("--exchange", help="only this exchange id")
    p.add_argument("--date", help="only this UTC day (YYYY-MM-DD)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--outdated-cutoff",
        type=float,
        default=QualityConfig.outdated_cutoff_s,
        help="latency above the floor that makes a message OUTDATED, seconds (default %(default)s)",
    )
    p.set_defaults(func=run)
    enable_config(p, "quality")


def run(args: argparse.Namespace) -> int:
    """Prints the report; 2 on a bad argument or an unreadable lake, 1 when the lake has no messages."""
    if args.date is not None:
        try:
            dt.date.fromisoformat(args.date)
        except ValueError:
            print(f"ticktape quality: --date must be YYYY-MM-DD, got {args.date!r}", file=sys.stderr)
            return 2
    try:
        catalog = open_catalog(args.lake, endpoint_url=args.endpoint_url)
    except (FileNotFoundError, ValueError) as exc:
        print(f"ticktape quality: {exc}", file=sys.stderr)
        return 2
    config = quality_config_of(args)  # [thresholds] of --config; --outdated-cutoff is in it
    try:
        with catalog:
            lake = Lake(catalog)
            if args.exchange is not None:
                lake.check_exchange(args.exchange)
            if args.date is not None:
                lake.check_day(args.date, args.exchange)
            report = lake_quality(catalog.con, config, LakeFilter(args.exchange, args.date))
    except LakeLookupError as exc:
        print(f"ticktape quality: {exc}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:
        print(f"ticktape quality: cannot read the lake {args.lake}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif report:
        print(format_table(report))
    if not report:
        print(f"ticktape quality: no trades, book or bbo messages in {args.lake}", file=sys.stderr)
        return 1
    return 0

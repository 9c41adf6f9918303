"""``ticktape renormalise``: rebuild one exchange's day of normalised datasets from the raw archive with
today's parsers, and publish it atomically (``ticktape/raw.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from collectors.registry import exchange_ids, get_dialect
from storage.compact import CompactionError, parse_day, utc_today
from ticktape.config import dialect_options_of, enable_config
from ticktape.raw import REPLAYED_DATASETS, renormalise_day


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``renormalise`` subcommand."""
    p = subparsers.add_parser(
        "renormalise",
        help="rebuild a day's normalised datasets from the raw archive with today's parsers",
        description=(
            "Replays the raw archive of one exchange and day (raw/exchange=ID/date=D, written when "
            "collectors run with [collect] raw = true) through today's normaliser and replaces that "
            f"day's {', '.join(REPLAYED_DATASETS)} and the normalisers' feed events, one atomic swap "
            "per dataset (connection events recorded live are kept). Streams that began on an earlier "
            "day are replayed from their start; on a day with planned connection rotations the overlapping "
            "connections are arbitrated like collector replicas (one copy of each event). Writes _ticktape/parsers/exchange=ID/date=D.json "
            "naming the parser version. Run it on closed days, before `ticktape sync` uploads them."
        ),
    )
    p.add_argument("--lake", required=True, type=Path, help="lake directory")
    p.add_argument("--exchange", required=True, help=f"exchange id ({', '.join(exchange_ids())})")
    p.add_argument("--date", required=True, help="the UTC day (YYYY-MM-DD)")
    p.add_argument(
        "--allow-open-day",
        action="store_true",
        help="renormalise today's day even though a sink may write it",
    )
    p.add_argument(
        "--allow-brief-gap",
        action="store_true",
        help="on file systems without atomic directory exchange (e.g. NFS), publish with two renames",
    )
    p.set_defaults(func=run)
    enable_config(p, "renormalise")


def run(args: argparse.Namespace) -> int:
    """Runs the renormalisation; 2 on bad arguments or no raw data, 1 when the day is busy."""
    err = sys.stderr
    try:
        day = parse_day(args.date)
        dialect = get_dialect(args.exchange, dialect_options_of(args))
    except ValueError as exc:
        print(f"ticktape renormalise: {exc}", file=err)
        return 2
    if day >= utc_today() and not args.allow_open_day:
        print(
            f"ticktape renormalise: {day.isoformat()} is not closed yet (UTC): a sink may still write it; "
            "pass --allow-open-day if nothing does",
            file=err,
        )
        return 2
    try:
        result = renormalise_day(
            args.lake, args.exchange, day, dialect.make_normaliser, allow_brief_gap=args.allow_brief_gap
        )
    except ValueError as exc:
        print(f"ticktape renormalise: {exc}", file=err)
        return 2
    except (CompactionError, OSError) as exc:
        print(f"ticktape renormalise: {exc}", file=err)
        return 1
    print(
        f"renormalised {args.exchange} {day.isoformat()}: {result.streams} stream(s), {result.raw_batches} raw "
        f"batch(es), {result.frames:,} frames; parser {result.parser} (live: {', '.join(result.live_parsers)})"
    )
    print(f"  {'dataset':<14} {'before':>12} {'after':>12}")
    for ds, rows in result.rows.items():
        print(f"  {ds:<14} {result.previous_rows.get(ds, 0):>12,} {rows:>12,}")
    if result.rotated:
        dropped = ", ".join(f"{ds} {n:,}" for ds, n in result.dropped.items()) or "none"
        print(
            f"  warning: {len(result.rotated)} stream(s) began as planned rotations; the handover overlaps "
            f"were arbitrated to one copy (rows dropped: {dropped}; book ranges no stream had: "
            f"{result.merged_gaps})"
        )
    print(f"  manifest: {result.manifest}")
    return 0

"""``ticktape compact``: merge closed days of the lake into a few large sorted files, atomically."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from collectors.raw import RAW_RETENTION_DAYS
from schemas import DATASETS
from storage.compact import CompactResult, compact_lake, parse_day, utc_today
from storage.lake import partition_dirs
from ticktape.config import enable_config
from ticktape.lake import days_text
from ticktape.raw import expire_raw


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``compact`` subcommand."""
    p = subparsers.add_parser(
        "compact",
        help="merge a closed day's files per dataset and exchange into few large sorted files",
        description=(
            "Merges the sink's files of closed days (UTC dates before today) into compacted-*.parquet "
            "files sorted by (symbol, ts_recv), zstd, large row groups. Publication is atomic: readers "
            "see the old files or the new ones, never both. Running it twice changes nothing."
        ),
    )
    p.add_argument("--lake", required=True, type=Path, help="lake directory")
    add_day_arguments(p)
    p.add_argument(
        "--raw-retention-days",
        type=int,
        default=RAW_RETENTION_DAYS,
        help="delete raw archive days older than this (0: keep forever; per exchange: [lake] raw_retention)",
    )
    p.add_argument(
        "--allow-brief-gap",
        action="store_true",
        help="on file systems without atomic directory exchange (e.g. NFS), publish with two renames",
    )
    p.set_defaults(func=run)
    enable_config(p, "compact")


def add_day_arguments(p: argparse.ArgumentParser) -> None:
    """``--date`` and ``--closed-before``: which closed days a command covers (compact, sync)."""
    p.add_argument("--date", help="only this UTC day (YYYY-MM-DD); default: every closed day")
    p.add_argument(
        "--closed-before",
        help="days before this date (YYYY-MM-DD) count as closed (default: today, UTC)",
    )


def _report(res: CompactResult) -> None:
    part = res.partition
    if res.status == "compacted":
        extra = f", {res.detail}" if res.detail else ""
        print(
            f"{part.relative}: {res.input_files} files -> {len(res.output_files)} "
            f"({res.output_rows} rows, {res.seconds:.1f} s{extra})"
        )
    elif res.status in ("busy", "failed"):
        print(f"{part.relative}: {res.status}: {res.detail}", file=sys.stderr)
    else:
        print(f"{part.relative}: {res.status}" + (f" ({res.detail})" if res.detail else ""))


def run(args: argparse.Namespace) -> int:
    """Runs the compaction; exit 1 when a partition failed or stayed busy, 2 on bad arguments."""
    try:
        day = parse_day(args.date) if args.date else None
        closed_before = parse_day(args.closed_before) if args.closed_before else None
        limit = closed_before or utc_today()
        if day is not None and day >= limit:
            after = (day + dt.timedelta(days=1)).isoformat()
            print(
                f"ticktape compact: {day.isoformat()} is not closed yet (days before {limit.isoformat()} "
                f"count as closed, UTC): a sink may still be writing it. Once nothing writes that day any "
                f"more, compact it with --date {day.isoformat()} --closed-before {after}",
                file=sys.stderr,
            )
            return 2
        results = compact_lake(
            args.lake,
            day=day,
            closed_before=closed_before,
            allow_brief_gap=args.allow_brief_gap,
            on_result=_report,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"ticktape compact: {exc}", file=sys.stderr)
        return 2
    cfg = getattr(args, "config_obj", None)
    per_exchange = {k: int(v) for k, v in (cfg.lake.raw_retention if cfg is not None else {}).items()}
    for removed in expire_raw(args.lake, args.raw_retention_days, per_exchange):
        print(f"{removed.relative_to(args.lake)}: raw archive past its retention: deleted")
    if not results and day is not None:
        days = sorted({p.name.removeprefix("date=") for p in partition_dirs(args.lake, DATASETS)})
        have = f"days with data: {days_text(days)}" if days else "the lake holds no data yet"
        print(f"ticktape compact: no data on {day.isoformat()} in {args.lake}; {have}", file=sys.stderr)
        return 2
    if not results:
        print("nothing to compact (no closed day in the lake)")
    bad = [r for r in results if r.status in ("busy", "failed")]
    return 1 if bad else 0

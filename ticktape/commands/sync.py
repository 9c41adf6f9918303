"""``ticktape sync``: upload closed days of the lake to S3 with SHA-256 checksums and verify them."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from storage.compact import parse_day
from storage.sync import DayReport, S3Lake, sync_lake, total_bytes
from ticktape.config import enable_config

from .compact import add_day_arguments


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``sync`` subcommand."""
    p = subparsers.add_parser(
        "sync",
        help="upload closed days to S3 with SHA-256 checksums, manifest last, and verify them",
        description=(
            "Uploads the closed days (UTC dates before today) of a lake to s3://BUCKET/PREFIX. Every "
            "object carries a SHA-256 checksum; an existing object is never overwritten; each day's "
            "manifest (files, rows, sizes, checksums) is written last. Every run verifies the remote "
            "objects of the days it covers and exits 1 naming any mismatch. Credentials come from the "
            "standard AWS chain (environment, ~/.aws, instance or container role)."
        ),
    )
    p.add_argument("--lake", required=True, type=Path, help="lake directory")
    p.add_argument("--to", required=True, dest="dest", help="destination, s3://BUCKET/PREFIX")
    p.add_argument("--endpoint-url", help="S3 endpoint (S3-compatible stores, moto, MinIO)")
    add_day_arguments(p)
    p.add_argument(
        "--verify-content",
        action="store_true",
        help="also download every object of the covered days and compare its SHA-256",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    p.add_argument(
        "--metrics-file",
        type=Path,
        help="Prometheus text file to update after the run (node-exporter textfile collector): "
        "ticktape_sync_failures_total, ticktape_sync_last_success_timestamp_seconds, ...",
    )
    p.set_defaults(func=run)
    enable_config(p, "sync")


def run(args: argparse.Namespace) -> int:
    """Runs the sync: 0 when every covered day is on S3 and verified, 1 on any mismatch, 2 on bad usage."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        day = parse_day(args.date) if args.date else None
        closed_before = parse_day(args.closed_before) if args.closed_before else None
        remote = S3Lake(args.dest, endpoint_url=args.endpoint_url)
        todo = total_bytes(args.lake, day, closed_before) if args.lake.is_dir() else 0
    except (ValueError, FileNotFoundError) as exc:
        print(f"ticktape sync: {exc}", file=sys.stderr)
        return 2
    bar: Any = None
    if sys.stderr.isatty() and not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=todo, unit="B", unit_scale=True, unit_divisor=1024, desc="sync", file=sys.stderr)
    try:
        reports = sync_lake(
            args.lake,
            remote,
            day=day,
            closed_before=closed_before,
            verify_content=args.verify_content,
            progress=None if bar is None else bar.update,
            on_day=(lambda r: print(_day_line(r))) if bar is None else (lambda r: bar.write(_day_line(r))),
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"ticktape sync: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:
        print(f"ticktape sync: S3 error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"ticktape sync: {exc}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    for r in reports:
        for key in r.repaired:
            print(f"{r.day.isoformat()}: repaired (uploaded again): {key}", file=sys.stderr)
        for problem in r.problems:
            print(f"{r.day.isoformat()}: {problem}", file=sys.stderr)
    if not reports:
        print("nothing to sync (no closed day in the lake)")
    ok = all(r.ok for r in reports)
    if args.metrics_file is not None:
        write_metrics(args.metrics_file, ok, reports)
    return 0 if ok else 1


def write_metrics(path: Path, ok: bool, reports: list[DayReport]) -> None:
    """Updates the sync's Prometheus text file: counters carry over from the previous run's file."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, write_to_textfile
    from prometheus_client.parser import text_string_to_metric_families

    previous: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(path.read_text()):
            for sample in family.samples:
                previous[sample.name] = sample.value
    except (OSError, ValueError):
        pass  # first run, or an unreadable file: start from zero
    now = time.time()
    registry = CollectorRegistry()
    failures = Counter("ticktape_sync_failures", "failed sync runs", registry=registry)
    failures.inc(previous.get("ticktape_sync_failures_total", 0.0) + (0 if ok else 1))
    last_success = Gauge(
        "ticktape_sync_last_success_timestamp_seconds",
        "Unix time of the last successful sync",
        registry=registry,
    )
    last_success.set(now if ok else previous.get("ticktape_sync_last_success_timestamp_seconds", 0.0))
    Gauge(
        "ticktape_sync_last_run_timestamp_seconds", "Unix time of the last sync run", registry=registry
    ).set(now)
    Gauge("ticktape_sync_last_run_uploaded_bytes", "bytes uploaded by the last run", registry=registry).set(
        sum(r.uploaded_bytes for r in reports)
    )
    Gauge(
        "ticktape_sync_last_run_problems", "mismatches and conflicts of the last run", registry=registry
    ).set(sum(len(r.problems) + bool(r.skipped) for r in reports))
    write_to_textfile(str(path), registry)


def _day_line(report: DayReport) -> str:
    name = report.day.isoformat()
    if report.skipped:
        return f"{name}: NOT SYNCED: {report.skipped}"
    state = "ok" if report.ok else f"MISMATCH ({len(report.problems)} problem(s))"
    manifest = ", manifest written" if report.manifest_written else ""
    repaired = (
        f", {len(report.repaired)} repaired (missing on S3, uploaded again from the matching local file)"
        if report.repaired
        else ""
    )
    if report.content_verified:
        verified = f"; verified {report.content_verified} object(s) by downloading and hashing their content"
    else:
        verified = f"; verified {report.verified} object(s) by size and stored SHA-256 (not content)"
    return (
        f"{name}: {state}: {report.files} files, {len(report.uploaded)} uploaded "
        f"({report.uploaded_bytes / 1e6:.1f} MB), {report.present} already there{repaired}{manifest}{verified}"
    )

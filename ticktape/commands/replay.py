"""``ticktape replay``: normalises a raw capture file into the lake, or publishes it to a transport.

Direct to the lake (``--lake DIR``) it uses the sink's writer (storage.sink.UnitWriter): positions are
capture line numbers, files are named ``<stream>-<first line>-<last line>.parquet`` with the stream
``replay.<exchange>.<file name>.<content hash>``, and commit markers make a replay exactly-once: an
interrupted replay resumes after its last committed line, and replaying the same file again (or the
same file after more frames were appended to it) adds only what the lake does not hold yet.

With ``--transport`` it publishes the records instead (``ticktape sink`` writes them).

``--input`` may also be a day of the raw archive, ``<lake>/raw/exchange=<id>/date=<D>``: each of its
streams (one collector connection) is replayed like a capture file of its own, with its own
normaliser and the stream id ``replay.<exchange>.raw.<D>.<stream>`` (``ticktape/raw.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import hashlib
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from collectors.base import DialectOptions, new_record_buffer
from collectors.capture import CaptureError, CaptureItem, ReplayStats, iter_units, read_capture
from collectors.registry import exchange_ids, get_dialect
from schemas import RECORD_DATASETS
from storage.lake import check_stream_id
from storage.sink import EncodedUnit, UnitResult, UnitWriter
from streaming.base import arrow_tables
from streaming.local import LogError
from ticktape.config import dialect_options_of, enable_config
from ticktape.transport_args import TransportArgsError, add_transport_args, publisher_from_args

#: Lines per unit (one file per dataset, exchange and date) when replaying straight into the lake.
LAKE_UNIT_LINES = 1_000_000
LAKE_UNIT_ROWS = 500_000
#: Lines per published chunk when replaying into a transport (the publisher batches further).
PUBLISH_UNIT_LINES = 4_096
PUBLISH_UNIT_ROWS = 50_000
PROGRESS_INTERVAL_S = 0.5
#: Lines of a capture read before a replay, to tell whether it is the stated exchange's at all.
SNIFF_LINES = 1_000
#: Decompressed bytes read at a time while sniffing (the default 4 MiB blocks hold ~15,000 lines).
SNIFF_BLOCK = 1 << 16
#: The cyclic garbage collector's first-generation threshold during a replay (Python's default is 700):
#: at most this many tracked objects of cyclic garbage wait for a collection (rows are freed by their
#: reference counts, not by the collector).
REPLAY_GC_THRESHOLD = 100_000
#: Seconds a thread may hold the GIL while another waits for it, during a replay to the lake (Python's
#: default is 0.005).
REPLAY_SWITCH_INTERVAL_S = 0.0002
#: Units of a replay to the lake being encoded or committed while the next is normalised.
REPLAY_UNITS_IN_FLIGHT = 2


@contextlib.contextmanager
def batch_gc() -> Iterator[None]:
    """Garbage collection for a batch run that allocates millions of short-lived row tuples: what is
    alive when it starts (modules, classes, tables) moves to the permanent generation (``gc.freeze``)
    and first-generation collections run ~140x less often, and with them the full collections that walk
    every live object (a replay of 504k frames spent ~5 % of its CPU time collecting at the default;
    bench/RESULTS.md, "Capture reading and replay loop"; at 100,000 instead of 10,000 the whole replay
    took 1.87-1.90 s instead of 1.88-2.07 s of wall time and 2.5 instead of 2.8 CPU s, the same peak
    RSS, 498 MB: "Issue 18 targets at a glance"). Both are undone at the end (a
    test process runs commands in process). Documentation followed (checked 2026-12-06):
    https://docs.python.org/3/library/gc.html#gc.freeze and
    https://docs.python.org/3/library/gc.html#gc.set_threshold.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(REPLAY_GC_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


@contextlib.contextmanager
def quick_gil_handoff(interval_s: float = REPLAY_SWITCH_INTERVAL_S) -> Iterator[None]:
    """A shorter GIL switch interval while the normalising thread and the lake writer run together.

    The normaliser holds the GIL almost all the time (its C scanner runs between a few bytecodes per
    frame); the writer needs it only for the short Python steps between Arrow's sort, encode and write
    calls (those release it), and at Python's default interval it waited up to 5 ms for each: its
    units took 1.7-2.0 s of a 2.1-2.4 s replay of 504k frames, 1.0-1.1 s at 0.2 ms, and the whole
    replay ran ~1.2x faster (bench/RESULTS.md, "Issue 18 targets at a glance"). Restored at the end.
    https://docs.python.org/3/library/sys.html#sys.setswitchinterval (checked 2026-12-06).
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(interval_s)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def sniff_capture(path: str | Path, exchange: str, lines: int = SNIFF_LINES) -> tuple[int, int]:
    """``(lines checked, lines unparseable)`` over the first ``lines`` lines of a capture: bad capture
    lines, and frames that the exchange's normaliser turns into a ``parse_error`` event."""
    from schemas import RecordBuffer

    normaliser = get_dialect(exchange).new_normaliser()
    buf = RecordBuffer()
    checked = bad = 0
    for item in read_capture(path, block=SNIFF_BLOCK):
        if checked >= lines:
            break
        if item is None:  # a disconnect marker
            continue
        checked += 1
        if isinstance(item, CaptureError):
            bad += 1
            continue
        if not isinstance(item, tuple):  # a subscription line: not a frame
            continue
        before = len(buf.feed_events)
        normaliser.on_frame(item[0], item[1], buf)
        if any(ev[4] == "parse_error" for ev in buf.feed_events[before:]):
            bad += 1
        buf.clear()
    return checked, bad


def replay_stream_id(exchange: str, path: str | Path) -> str:
    """The stream id of a direct replay: exchange, file name and a hash of the file's first 64 KiB.

    The hash tells apart files of the same name from different places; it ignores the rest of the
    file, so a capture that grew since the last replay keeps its stream and resumes.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read(64 * 1024)).hexdigest()[:10]
    base = re.sub(r"[^A-Za-z0-9._-]", "_", path.name)[:80]
    return f"replay.{exchange}.{base}.{digest}"


class Progress:
    """A progress line on stderr, redrawn at most every half second (only on a terminal)."""

    def __init__(self, out: TextIO, label: str) -> None:
        self.out = out
        self.label = label
        self.last = 0.0

    def __call__(self, stats: ReplayStats) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_INTERVAL_S:
            return
        self.last = now
        elapsed = max(now - stats.started, 1e-9)
        self.out.write(
            f"\r{self.label}: {stats.lines:,} lines, {stats.frames / elapsed:,.0f} frames/s, "
            f"{stats.units} unit(s) written, {elapsed:.0f} s "
        )
        self.out.flush()

    def done(self) -> None:
        """Clears the progress line."""
        if self.last:
            self.out.write("\r\033[K")
            self.out.flush()


def replay_to_lake(
    path: str | Path | Iterable[CaptureItem],
    exchange: str,
    lake: str | Path,
    *,
    stream: str | None = None,
    unit_lines: int = LAKE_UNIT_LINES,
    unit_rows: int = LAKE_UNIT_ROWS,
    progress: Callable[[ReplayStats], None] | None = None,
    options: DialectOptions | None = None,
) -> tuple[ReplayStats, str]:
    """Replays a capture straight into the lake, exactly once; returns the stats and the stream id.

    Rows that do not fit the schema (none should: the normaliser validates) become ``bad_row``
    feed events instead of failing the replay.
    """
    normaliser = get_dialect(exchange, options).make_normaliser()
    if stream is None:
        if not isinstance(path, str | Path):
            raise ValueError("a replay of capture items needs a stream id")
        stream = replay_stream_id(exchange, path)
    writer = UnitWriter(lake)
    committed = writer.recover(stream)
    stats = ReplayStats()
    units = iter_units(
        path,
        normaliser,
        stats,
        unit_lines=unit_lines,
        unit_rows=unit_rows,
        start_after=max(committed, 0),
        progress=progress,
        new_buffer=new_record_buffer,  # rows become Arrow batches: held as columns
    )

    def account(result: UnitResult) -> None:
        stats.units += 1
        stats.files += len(result.files)
        stats.bytes += result.bytes
        for ds, n in result.rows.items():
            stats.rows[ds] += n

    # While the next unit is normalised, units are sorted and encoded to Parquet by two threads (Arrow
    # releases the GIL; encoding a unit takes longer than normalising one) and committed in order by a
    # third (UnitWriter.commit_encoded: intent, files, marker). At most REPLAY_UNITS_IN_FLIGHT units
    # are encoded or committed at a time, so memory holds at most that many and the one normalised.
    with (
        quick_gil_handoff(),
        ThreadPoolExecutor(
            max_workers=REPLAY_UNITS_IN_FLIGHT, thread_name_prefix="replay-encoder"
        ) as encoders,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-writer") as committer,
    ):

        def commit_after(previous: Future[UnitResult] | None, encoded: Future[EncodedUnit]) -> UnitResult:
            # A unit commits only after the one before it did: a failed unit (it raises here too)
            # is never followed by a later one's commit marker, which would skip its lines.
            if previous is not None:
                previous.result()
            return writer.commit_encoded(encoded.result())

        in_flight: collections.deque[Future[UnitResult]] = collections.deque()
        last_commit: Future[UnitResult] | None = None
        for first, last, buf in units:
            encoded = encoders.submit(writer.encode_unit, stream, first, last, arrow_tables(buf))
            if len(in_flight) == REPLAY_UNITS_IN_FLIGHT:
                account(in_flight.popleft().result())
            last_commit = committer.submit(commit_after, last_commit, encoded)
            in_flight.append(last_commit)
        while in_flight:
            account(in_flight.popleft().result())
    stats.elapsed_s = time.monotonic() - stats.started
    stats.parse_errors = normaliser.parse_errors
    return stats, stream


async def replay_to_transport(
    path: str | Path | Iterable[CaptureItem],
    exchange: str,
    args: argparse.Namespace,
    progress: Callable[[ReplayStats], None] | None = None,
) -> tuple[ReplayStats, dict[str, int]]:
    """Replays a capture into the transport chosen by ``args``; returns stats and publisher counters."""
    normaliser = get_dialect(exchange, dialect_options_of(args)).make_normaliser()
    publisher = publisher_from_args(args)
    await publisher.start()
    stats = ReplayStats()
    try:
        units = iter_units(
            path,
            normaliser,
            stats,
            unit_lines=PUBLISH_UNIT_LINES,
            unit_rows=PUBLISH_UNIT_ROWS,
            progress=progress,
        )
        for _first, _last, buf in units:
            for ds in RECORD_DATASETS:
                stats.rows[ds] += len(buf.rows(ds))
            await publisher.publish(buf)
            # Let the publisher's background flusher run between chunks (publish only yields when full).
            await asyncio.sleep(0)
        await publisher.flush()
    finally:
        await publisher.close()
    stats.elapsed_s = time.monotonic() - stats.started
    stats.parse_errors = normaliser.parse_errors
    p = publisher.stats
    return stats, {"published_rows": p.published_rows, "dropped_rows": p.dropped_rows, "errors": p.errors}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``replay`` subcommand."""
    p = subparsers.add_parser(
        "replay",
        help="normalise a raw capture file into the lake (or publish it to a transport)",
        description="Replay a raw capture (DESIGN.md format) through the exchange's normaliser. With --lake "
        "the records go straight into the lake (exactly once, resumable); with --transport they are "
        "published for `ticktape sink`.",
    )
    p.add_argument("--exchange", required=True, help=f"exchange id ({', '.join(exchange_ids())})")
    p.add_argument(
        "--input",
        required=True,
        metavar="FILE",
        help="capture file (.gz is decompressed), or a raw archive day LAKE/raw/exchange=ID/date=D",
    )
    p.add_argument("--lake", metavar="DIR", help="write the lake directly")
    p.add_argument(
        "--stream-id", metavar="ID", help="stream id in lake file names (default derived from the file)"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help=f"replay even when most of the first {SNIFF_LINES:,} lines do not parse as this exchange's frames",
    )
    add_transport_args(p, default=None)
    p.set_defaults(func=run)
    enable_config(p, "replay")


def _print_summary(
    out: TextIO, path: str, exchange: str, stats: ReplayStats, where: str, extra: dict[str, int] | None = None
) -> None:
    rate = stats.frames / stats.elapsed_s if stats.elapsed_s > 0 else 0.0
    out.write(
        f"replayed {path} ({exchange}): {stats.lines:,} lines, {stats.frames:,} frames, "
        f"{stats.disconnects} disconnect(s), {stats.capture_errors} bad capture line(s), "
        f"{stats.parse_errors} parse error(s) in {stats.elapsed_s:.2f} s ({rate:,.0f} frames/s)\n"
    )
    if stats.skipped_lines:
        out.write(
            f"  first {stats.skipped_lines:,} lines were already in the lake (commit marker): skipped\n"
        )
    out.write(f"  {'dataset':<12} {'rows':>12}\n")
    for ds in RECORD_DATASETS:
        out.write(f"  {ds:<12} {stats.rows.get(ds, 0):>12,}\n")
    out.write(f"  -> {where}\n")
    from collectors import book  # loaded by the replay already

    out.write(f"  book engine: {book.IMPLEMENTATION}\n")
    if extra:
        out.write("  " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in extra.items()) + "\n")


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """glibc's malloc keeps freed memory for reuse while a replay runs (the record buffers' column
    arrays of each unit are tens of MB; fresh ones cost a page fault per page: ~12 % of the normalising
    loop, bench/RESULTS.md "Columnar record buffers"), and gives it back at the end
    (``collectors._booknative.keep_freed_memory``; nothing changes without the compiled engine or
    glibc). Arrow allocates from the same heap meanwhile (its system pool instead of its default,
    mimalloc): the writer's sorted copies and Parquet buffers reuse it too, and mimalloc's handling of
    buffers freed on another thread than the one that made them cost ~7 % more CPU over a replay
    (bench/RESULTS.md, "Issue 18 targets at a glance").
    https://arrow.apache.org/docs/python/memory.html#memory-pools (checked 2026-12-06)."""
    import pyarrow as pa

    from collectors import book

    native = book._native
    kept = bool(native.keep_freed_memory(True)) if native is not None else False
    arrow_pool = pa.default_memory_pool()
    if kept:
        pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        if kept:
            pa.set_memory_pool(arrow_pool)
            native.keep_freed_memory(False)


def run(args: argparse.Namespace) -> int:
    """Runs the replay; returns the exit code."""
    with batch_gc(), reuse_freed_memory():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    err = sys.stderr
    if bool(args.lake) == bool(args.transport):
        print("ticktape replay: give either --lake DIR or --transport (with its options)", file=err)
        return 2
    path = Path(args.input)
    if path.is_dir():
        return _run_raw_day(args, path)
    if not path.is_file():
        print(f"ticktape replay: no such capture file: {path}", file=err)
        return 2
    try:
        get_dialect(args.exchange)
        if args.stream_id:
            check_stream_id(args.stream_id)
    except ValueError as exc:
        print(f"ticktape replay: {exc}", file=err)
        return 2
    if not args.force:
        try:
            checked, bad = sniff_capture(path, args.exchange)
        except OSError as exc:
            print(f"ticktape replay: cannot read {path}: {exc}", file=err)
            return 1
        if checked and bad * 2 > checked:
            print(
                f"ticktape replay: {path} does not look like a capture of {args.exchange}: {bad:,} of its "
                f"first {checked:,} lines are not {args.exchange} frames (or not capture lines at all); "
                "nothing was written. Check --exchange (and the file), or replay anyway with --force.",
                file=err,
            )
            return 3
    progress = Progress(err, f"replay {path.name}") if err.isatty() else None
    try:
        if args.lake:
            stats, stream = replay_to_lake(
                path,
                args.exchange,
                args.lake,
                stream=args.stream_id,
                progress=progress,
                options=dialect_options_of(args),
            )
            where = f"lake {args.lake} (stream {stream}, {stats.units} unit(s), {stats.files} file(s), "
            where += f"{stats.bytes / 1e6:.1f} MB)"
            extra = None
        else:
            stats, extra = asyncio.run(replay_to_transport(path, args.exchange, args, progress))
            where = f"transport {args.transport}"
    except TransportArgsError as exc:
        print(f"ticktape replay: {exc}", file=err)
        return 2
    except (LogError, OSError) as exc:
        print(f"ticktape replay: {exc}", file=err)
        return 1
    finally:
        if progress is not None:
            progress.done()
    _print_summary(sys.stdout, str(path), args.exchange, stats, where, extra)
    return 0


def _merge(total: ReplayStats, part: ReplayStats) -> None:
    for name in ("lines", "frames", "disconnects", "capture_errors", "parse_errors", "skipped_lines"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    for name in ("files", "bytes", "units"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    for ds, n in part.rows.items():
        total.rows[ds] += n


def _run_raw_day(args: argparse.Namespace, path: Path) -> int:
    """Replays a raw archive day, stream by stream (each like a capture file of its own)."""
    from ticktape.raw import day_streams, raw_day_dir, stream_items

    err = sys.stderr
    where_day = raw_day_dir(path)
    if where_day is None:
        print(
            f"ticktape replay: {path} is a directory but not a raw archive day (LAKE/raw/exchange=ID/date=D)",
            file=err,
        )
        return 2
    lake, exchange, day = where_day
    if exchange != args.exchange:
        print(f"ticktape replay: {path} holds {exchange}'s raw frames, not {args.exchange}'s", file=err)
        return 2
    try:
        streams = day_streams(lake, exchange, day)
    except (OSError, ValueError) as exc:
        print(f"ticktape replay: cannot read {path}: {exc}", file=err)
        return 1
    if not streams:
        print(f"ticktape replay: {path} holds no raw data", file=err)
        return 2
    total = ReplayStats()
    extra: dict[str, int] | None = None
    try:
        for name, rows in streams.items():
            items = stream_items(rows)
            if args.lake:
                stream = re.sub(r"[^A-Za-z0-9._-]", "_", f"replay.{exchange}.raw.{day.isoformat()}.{name}")
                stats, _ = replay_to_lake(
                    items, exchange, args.lake, stream=stream[:200], options=dialect_options_of(args)
                )
            else:
                stats, counts = asyncio.run(replay_to_transport(items, exchange, args))
                extra = {k: (extra or {}).get(k, 0) + v for k, v in counts.items()}
            _merge(total, stats)
    except TransportArgsError as exc:
        print(f"ticktape replay: {exc}", file=err)
        return 2
    except (LogError, OSError, ValueError) as exc:
        print(f"ticktape replay: {exc}", file=err)
        return 1
    total.elapsed_s = time.monotonic() - total.started
    where = f"lake {args.lake}" if args.lake else f"transport {args.transport}"
    _print_summary(sys.stdout, f"{path} ({len(streams)} raw stream(s))", exchange, total, where, extra)
    return 0

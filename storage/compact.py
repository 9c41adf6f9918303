"""Compaction: merge a closed day's small sink files into a few large, sorted Parquet files.

For every ``<lake>/<dataset>/exchange=<id>/date=<D>`` partition of a closed day, the sink's files are
merged into ``compacted-<token>-<part>.parquet`` files sorted by ``(symbol, ts_recv)`` (ties keep the
sink's order), zstd-compressed, with row groups of :data:`ROW_GROUP_ROWS` rows.

Publication is atomic for every reader that lists the partition (DuckDB globs included): the new files
are written and fsynced in a staging directory outside the dataset trees
(``<lake>/_ticktape/compact/...``), and the staging directory is then *exchanged* with the live
partition directory in one ``renameat2(RENAME_EXCHANGE)`` call: at every instant the partition path
names either the old directory or the new one, never both and never a mix.

DuckDB's glob, however, lists a directory and then stats every entry *by path*; a glob that overlaps
the swap by microseconds can therefore list part of a partition, and a query that listed the old files
can find them gone when it opens them. So every swap is bracketed by a publication sequence number
(a seqlock, ``_ticktape/compact/SEQUENCE``: odd while a swap is under way). :mod:`storage.catalog`
reads it before and after each query and runs the query again when it moved, and retries a query whose
listed file vanished: ``ticktape query`` never returns a day twice or half. (Plain DuckDB over the glob
is exposed to that microsecond window during a compaction; compact before handing a day to research.)

Compaction is idempotent: a partition holding only the files of one compaction is left alone, and the
output names derive from the input names and sizes, so the same inputs always give the same names (the
S3 sync relies on it). A crash at any point leaves either the old or the new partition live; the next
run finishes or discards the leftover staging directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import DATASETS, arrow_schema

from .lake import (
    COMPACT_COMPRESSION_LEVEL,
    PARQUET_COMPRESSION,
    STATE_DIR,
    fsync_dir,
    fsync_file,
    parquet_compression,
    parquet_encodings,
    parse_sink_file_name,
    partition_dirs,
    sort_keys,
    write_json_atomic,
)
from .sink import committed_streams

log = logging.getLogger(__name__)

#: Rows per Parquet row group in compacted files ("several hundred thousand").
ROW_GROUP_ROWS = 500_000
#: Rows per compacted file before a new part starts (a few large files per partition and day).
FILE_ROWS = 20_000_000
#: Name prefix of compacted files; they carry no stream positions, so the sink never treats them as its own.
COMPACTED_PREFIX = "compacted-"
#: Where staging directories live, relative to the lake (outside every dataset tree, so globs never see it).
WORK_SUBDIR = Path(STATE_DIR) / "compact"
PLAN_NAME = "plan.json"
SEQUENCE_NAME = "SEQUENCE"
LOCK_NAME = "LOCK"
#: An odd publication sequence older than this was left by a crashed compaction.
STALE_SWAP_S = 60.0
#: Attempts when the sink adds a file to the partition while we compact it.
MAX_ATTEMPTS = 3

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class CompactionError(RuntimeError):
    """A partition could not be compacted; nothing was published for it."""


@dataclass(frozen=True, slots=True)
class Partition:
    """One ``<dataset>/exchange=<id>/date=<D>`` directory of the lake."""

    dataset: str
    exchange: str
    day: date
    path: Path

    @property
    def relative(self) -> str:
        """``<dataset>/exchange=<id>/date=<D>`` (the same below a local or an S3 lake root)."""
        return f"{self.dataset}/exchange={self.exchange}/date={self.day.isoformat()}"


@dataclass(slots=True)
class CompactResult:
    """What happened to one partition."""

    partition: Partition
    status: str  # "compacted", "already-compacted", "empty", "busy", "failed"
    input_files: int = 0
    input_rows: int = 0
    output_files: list[str] = field(default_factory=list)
    output_rows: int = 0
    seconds: float = 0.0
    detail: str = ""


def utc_today() -> date:
    """Today's date in UTC (days before it are closed)."""
    return datetime.now(UTC).date()


def parse_day(text: str) -> date:
    """A ``YYYY-MM-DD`` date; ``ValueError`` with a readable message otherwise."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date (expected YYYY-MM-DD): {text!r}") from None


def is_data_file(path: Path) -> bool:
    """A published Parquet file of a partition (temporary and hidden names excluded)."""
    name = path.name
    return name.endswith(".parquet") and not name.startswith((".", "_")) and path.is_file()


def data_files(directory: Path) -> list[Path]:
    """Published Parquet files of a partition directory, sorted by name."""
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    return [p for p in entries if is_data_file(p)]


def iter_partitions(lake: Path, datasets: tuple[str, ...] = DATASETS) -> Iterator[Partition]:
    """Every partition directory of the lake, by dataset, exchange and date."""
    for path in partition_dirs(lake, datasets):
        exchange = path.parent.name.partition("=")[2]
        try:
            day = date.fromisoformat(path.name.partition("=")[2])
        except ValueError:
            log.warning("ignoring %s: not a date partition", path)
            continue
        if exchange:
            yield Partition(path.parent.parent.name, exchange, day, path)


def select_days(
    lake: Path, day: date | None, closed_before: date | None
) -> tuple[list[Partition], list[date]]:
    """Partitions of the days to process, and the days that were asked for but are not closed yet.

    ``day`` None means every closed day; ``closed_before`` defaults to today (UTC).
    """
    limit = closed_before or utc_today()
    chosen: list[Partition] = []
    open_days: set[date] = set()
    for part in iter_partitions(lake):
        if day is not None and part.day != day:
            continue
        if part.day >= limit:
            open_days.add(part.day)
            continue
        chosen.append(part)
    if day is not None and day >= limit:
        open_days.add(day)
    return chosen, sorted(open_days)


def exchange_dirs(a: Path, b: Path) -> None:
    """Atomically swaps two directories (Linux ``renameat2(RENAME_EXCHANGE)``).

    Raises ``OSError`` with ``errno`` EINVAL/ENOSYS/EOPNOTSUPP where the file system cannot do it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available in this C library")
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"renameat2(RENAME_EXCHANGE) {a} <-> {b}: {os.strerror(err)}")


def _token(inputs: list[Path]) -> str:
    # Output names depend only on what went in: same inputs, same names (idempotent, sync-friendly).
    h = hashlib.sha256()
    for p in inputs:
        h.update(f"{p.name}\0{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def _compacted_generation(files: list[Path]) -> str | None:
    """The token when every file belongs to one compaction (``compacted-<token>-<part>``), else None."""
    tokens = set()
    for p in files:
        if not p.name.startswith(COMPACTED_PREFIX):
            return None
        tokens.add(p.name[len(COMPACTED_PREFIX) :].split("-", 1)[0])
    return tokens.pop() if len(tokens) == 1 else None


def uncommitted_files(lake: Path, files: list[Path]) -> list[str]:
    """Sink files whose positions are beyond their stream's commit marker."""
    commits = committed_streams(lake)
    out = []
    for p in files:
        parsed = parse_sink_file_name(p.name)
        if parsed is not None and parsed[2] > commits.get(parsed[0], -1):
            out.append(p.name)
    return out


def _parquet_rows(files: list[Path]) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in files)


def _work_dir(lake: Path, part: Partition) -> Path:
    return lake / WORK_SUBDIR / part.relative


def _sweep_late_files(old_dir: Path, live: Path, inputs: set[str]) -> list[str]:
    """Moves files that the sink published into the old directory after we listed it into the live one."""
    moved = []
    for p in data_files(old_dir):
        if p.name not in inputs and not (live / p.name).exists():
            os.rename(p, live / p.name)
            moved.append(p.name)
    if moved:
        fsync_dir(live)
        log.warning("moved %d file(s) published during compaction into %s: %s", len(moved), live, moved)
    return moved


def _sequence_path(lake: Path) -> Path:
    return lake / WORK_SUBDIR / SEQUENCE_NAME


def publication_sequence(lake: Path) -> tuple[int, bool]:
    """The lake's publication sequence number, and whether a swap is in progress right now.

    A seqlock for readers: :mod:`storage.catalog` reads it before and after a query and runs the query
    again when it moved. DuckDB's glob lists a directory and then stats every entry by path, so a glob
    that overlaps a swap can list part of a partition; the sequence is how ticktape's readers notice.
    An odd number left behind by a crashed compaction (older than :data:`STALE_SWAP_S`) is not a swap.
    """
    path = _sequence_path(lake)
    try:
        text = path.read_text()
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0, False
    try:
        seq = int(text.strip() or 0)
    except ValueError:
        return 0, False
    return seq, seq % 2 == 1 and age < STALE_SWAP_S


def _bump_sequence(lake: Path) -> int:
    path = _sequence_path(lake)
    path.parent.mkdir(parents=True, exist_ok=True)
    seq = publication_sequence(lake)[0] + 1
    tmp = path.with_name(f".{SEQUENCE_NAME}.{os.getpid()}")
    tmp.write_text(f"{seq}\n")
    os.rename(tmp, path)
    return seq


@contextlib.contextmanager
def lake_lock(lake: Path, wait: bool = False) -> Iterator[None]:
    """Holds the lake's compaction lock: one compaction at a time per lake, and no sync reading the
    files of a day while a compaction swaps them. ``wait`` blocks until it is free; otherwise a held
    lock raises :class:`CompactionError`."""
    path = lake / WORK_SUBDIR / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise CompactionError(
                f"another compaction or sync holds {path}; try again when it has finished"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def recover(lake: Path) -> None:
    """Finishes or discards staging directories that a crashed compaction left behind."""
    root = lake / WORK_SUBDIR
    if not root.is_dir():
        return
    for plan_path in sorted(root.glob(f"*/exchange=*/date=*/{PLAN_NAME}")):
        work = plan_path.parent
        rel = work.relative_to(root)
        live = lake / rel
        try:
            plan = json.loads(plan_path.read_text())
            outputs, inputs = list(plan["outputs"]), set(plan["inputs"])
        except (OSError, ValueError, KeyError, TypeError):
            outputs, inputs = [], set()
        staged = work / "next"
        if outputs and staged.is_dir() and all((live / name).is_file() for name in outputs):
            # The exchange happened: the staging dir holds the old files. Rescue any late sink file.
            _sweep_late_files(staged, live, inputs)
        log.info("removing leftover compaction staging %s", work)
        shutil.rmtree(work, ignore_errors=True)
    # Staging dirs without a plan (crash before the plan was written) hold nothing published.
    for leftover in sorted(root.glob("*/exchange=*/date=*")):
        if leftover.is_dir() and not (leftover / PLAN_NAME).exists():
            shutil.rmtree(leftover, ignore_errors=True)


def _write_sorted(
    inputs: list[Path], dataset: str, staged: Path, token: str, tmp_dir: Path
) -> tuple[list[str], int]:
    """Sorts the inputs with DuckDB (spilling to disk when large) and writes the compacted parts."""
    schema = arrow_schema(dataset)
    from .catalog import duckdb_type  # deferred: the catalog imports this module

    # a column no input has (replica, in days written before it existed) is selected as nulls
    present = set().union(*(pq.read_schema(p).names for p in inputs))
    cols = ", ".join(
        f'"{f.name}"' if f.name in present else f'CAST(NULL AS {duckdb_type(f.type)}) AS "{f.name}"'
        for f in schema
    )
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "temp_directory": str(tmp_dir),
            "preserve_insertion_order": True,
        }
    )
    names: list[str] = []
    total = 0
    try:
        files_sql = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in inputs) + "]"
        # filename/file_row_number make the order total: equal (symbol, ts_recv) keep the sink's order.
        order = ", ".join(name for name, _ in sort_keys(schema.names))
        query = (
            f"SELECT {cols} FROM read_parquet({files_sql}, hive_partitioning = false, union_by_name = true,"
            f" filename = true,"
            f" file_row_number = true) ORDER BY {order}, filename, file_row_number"
        )
        reader = con.sql(query).to_arrow_reader(ROW_GROUP_ROWS)
        writer: pq.ParquetWriter | None = None
        file_rows = 0
        pending: list[pa.RecordBatch] = []
        pending_rows = 0

        def close_part() -> None:
            nonlocal writer
            if writer is not None:
                writer.close()
                writer = None
                fsync_file(staged / names[-1])

        def flush_group() -> None:
            nonlocal writer, file_rows, pending, pending_rows
            if not pending:
                return
            table = pa.Table.from_batches(pending, schema=schema)
            if writer is None:
                names.append(f"{COMPACTED_PREFIX}{token}-{len(names):05d}.parquet")
                # the sink's encodings (storage.lake.parquet_encodings): compacted files are never
                # larger than the files they replace
                writer = pq.ParquetWriter(
                    staged / names[-1],
                    schema,
                    write_statistics=True,
                    **parquet_compression(schema, PARQUET_COMPRESSION, COMPACT_COMPRESSION_LEVEL),
                    **parquet_encodings(schema),
                )
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            file_rows += table.num_rows
            pending, pending_rows = [], 0
            if file_rows >= FILE_ROWS:
                close_part()
                file_rows = 0

        for batch in reader:
            # DuckDB hands back timestamp[ns, tz=Etc/UTC] and all-nullable fields: restore the lake schema.
            arrays = [batch.column(i).cast(f.type) for i, f in enumerate(schema)]
            pending.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
            pending_rows += batch.num_rows
            total += batch.num_rows
            if pending_rows >= ROW_GROUP_ROWS:
                flush_group()
        flush_group()
        close_part()
    finally:
        con.close()
    return names, total


def compact_partition(
    lake: Path,
    part: Partition,
    allow_brief_gap: bool = False,
    exchange: Callable[[Path, Path], None] = exchange_dirs,
) -> CompactResult:
    """Compacts one partition (see the module docstring for the publication protocol)."""
    started = time.monotonic()
    live = part.path
    for attempt in range(1, MAX_ATTEMPTS + 1):
        inputs = data_files(live)
        result = CompactResult(part, "empty", input_files=len(inputs))
        if not inputs:
            return result
        if _compacted_generation(inputs) is not None:
            result.status = "already-compacted"
            return result
        busy = [p.name for p in live.iterdir() if not is_data_file(p)]
        if busy:
            result.status = "busy"
            result.detail = f"unpublished entries present (a sink still writing?): {busy[:5]}"
            return result
        uncommitted = uncommitted_files(lake, inputs)
        if uncommitted:
            # A file the sink has not committed may be an orphan that its recovery deletes and rewrites:
            # merging it would duplicate its rows.
            result.status = "busy"
            result.detail = f"sink files beyond the last commit (sink crashed or running?): {uncommitted[:5]}"
            return result
        result.input_rows = _parquet_rows(inputs)
        token = _token(inputs)
        work = _work_dir(lake, part)
        shutil.rmtree(work, ignore_errors=True)
        staged = work / "next"
        staged.mkdir(parents=True)
        tmp_dir = work / "spill"
        tmp_dir.mkdir()
        names, rows = _write_sorted(inputs, part.dataset, staged, token, tmp_dir)
        shutil.rmtree(tmp_dir)
        if rows != result.input_rows:
            shutil.rmtree(work, ignore_errors=True)
            raise CompactionError(
                f"{part.relative}: read {rows} rows but the inputs hold {result.input_rows}"
            )
        written = _parquet_rows([staged / n for n in names])
        if written != rows:
            shutil.rmtree(work, ignore_errors=True)
            raise CompactionError(f"{part.relative}: wrote {written} rows, expected {rows}")
        os.chmod(staged, stat.S_IMODE(live.stat().st_mode))
        fsync_dir(staged)
        input_names = [p.name for p in inputs]
        plan = {"partition": part.relative, "inputs": input_names, "outputs": names, "rows": rows}
        write_json_atomic(work / PLAN_NAME, plan)
        if [p.name for p in data_files(live)] != input_names:
            # The sink published into this day while we merged: start again with the new file set.
            log.warning("%s changed during compaction (attempt %d); retrying", part.relative, attempt)
            shutil.rmtree(work, ignore_errors=True)
            continue
        _publish(lake, live, staged, work, allow_brief_gap, exchange)
        _sweep_late_files(staged, live, set(input_names))
        shutil.rmtree(work, ignore_errors=True)
        result.status = "compacted"
        result.output_files = names
        result.output_rows = rows
        result.seconds = time.monotonic() - started
        return result
    return CompactResult(
        part,
        "busy",
        detail=f"the partition kept changing during {MAX_ATTEMPTS} attempts",
        seconds=time.monotonic() - started,
    )


def _publish(
    lake: Path,
    live: Path,
    staged: Path,
    work: Path,
    allow_brief_gap: bool,
    exchange: Callable[[Path, Path], None],
) -> None:
    _bump_sequence(lake)  # odd: a swap is under way
    try:
        _swap(live, staged, work, allow_brief_gap, exchange)
    finally:
        _bump_sequence(lake)  # even again: readers that overlapped the swap see the number move
    fsync_dir(live.parent)
    fsync_dir(work)


def _swap(
    live: Path, staged: Path, work: Path, allow_brief_gap: bool, exchange: Callable[[Path, Path], None]
) -> None:
    try:
        exchange(live, staged)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
        if not allow_brief_gap:
            shutil.rmtree(work, ignore_errors=True)
            raise CompactionError(
                f"this file system cannot exchange directories atomically ({exc.strerror}); "
                "re-run with --allow-brief-gap to publish with two renames (readers may see the day "
                "missing for an instant, never twice)"
            ) from None
        # Two renames: for an instant the day is absent, but never present twice.
        aside = work / "old"
        os.rename(live, aside)
        os.rename(staged, live)
        os.rename(aside, staged)


def _index_book_day(lake: Path, part: Partition) -> str:
    """Builds the book index of a compacted day unless it is current; a description for the report."""
    from .book_at import build_book_index, index_is_current  # book_at builds on this module

    if index_is_current(lake, part.exchange, part.day):
        return "book index current"
    started = time.monotonic()
    try:
        count = build_book_index(lake, part.exchange, part.day)
    except (OSError, duckdb.Error, ValueError) as exc:
        # The index only speeds up `ticktape book`; without it the answers are the same, only slower.
        log.error("book index of %s failed: %s", part.relative, exc)
        return f"book index failed: {exc}"
    return f"book index: {count} checkpoints ({time.monotonic() - started:.1f} s)"


def compact_lake(
    lake: Path,
    day: date | None = None,
    closed_before: date | None = None,
    allow_brief_gap: bool = False,
    on_result: Callable[[CompactResult], None] | None = None,
    book_index: bool = True,
) -> list[CompactResult]:
    """Compacts every partition of the closed days (or of ``day``). Open days raise ``ValueError``.

    With ``book_index``, every compacted ``book`` day also gets its book index (checkpoints that make
    :func:`storage.book_at.book_at` read minutes of rows instead of days).
    """
    if not lake.is_dir():
        raise FileNotFoundError(f"lake directory not found: {lake}")
    parts, open_days = select_days(lake, day, closed_before)
    if day is not None and open_days:
        raise ValueError(
            f"{day.isoformat()} is not closed yet (days before {(closed_before or utc_today()).isoformat()} are)"
        )
    results = []
    with lake_lock(lake):
        recover(lake)
        if publication_sequence(lake)[0] % 2:
            _bump_sequence(lake)  # a crashed compaction left it odd
        for part in parts:
            try:
                res = compact_partition(lake, part, allow_brief_gap=allow_brief_gap)
            except (CompactionError, OSError, duckdb.Error) as exc:
                res = CompactResult(part, "failed", detail=str(exc))
                log.error("compaction of %s failed: %s", part.relative, exc)
            if book_index and part.dataset == "book" and res.status in ("compacted", "already-compacted"):
                res.detail = _index_book_day(lake, part)
            results.append(res)
            if on_result is not None:
                on_result(res)
    return results

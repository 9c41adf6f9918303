"""The sink: transport -> Parquet lake, exactly once (DESIGN.md, "Lake").

The sink reads batches from a :class:`streaming.base.Consumer` and groups them, per stream, into
*units*: consecutive positions ``first..last`` of one stream. A unit ends at deterministic boundaries
(``flush_rows`` rows or ``flush_entries`` batches, counted from the unit's first position), so a sink
restarted after a crash cuts the log exactly where the first run did and rewrites identical files.
Live feeds that pause are flushed after ``flush_idle_s`` without new data, or at the latest after
``max_delay_s``, and many streams together never hold more than ``max_pending_rows`` in memory:
these only change where units end, never what the lake holds.

Writing a unit (:class:`UnitWriter`):

1. an *intent* ``<lake>/_ticktape/commits/<stream>.intent.json`` lists the files about to be written;
2. one file per (dataset, exchange, UTC date of ``ts_recv``):
   ``<lake>/<dataset>/exchange=<id>/date=<date>/<stream>-<first:020d>-<last:020d>.parquet``, each
   written to a temporary name, fsynced and renamed; then the directories are fsynced;
3. the *commit marker* ``<lake>/_ticktape/commits/<stream>.commit.json`` (position ``last`` and the
   unit's files) replaces the previous one atomically.

Streams that carry collector replicas (issue 17) are arbitrated before a unit is written
(``storage/arbitrate.py``): the lake keeps one copy of every event. The arbiter's state is written
as ``<lake>/_ticktape/commits/<stream>.arbitration-<last:020d>.json`` before the commit marker, which
names it: a restarted sink resumes with the state of its last commit, so it writes the same rows.

On start (:meth:`UnitWriter.recover`) the files named by an intent beyond the last commit, and
temporary files of the stream, are removed: they are orphans of a crash. Reading resumes at the last
committed position + 1. Files whose names carry no stream positions (``compacted-*.parquet``) are never
touched. Rows whose exchange id cannot name a partition are kept under ``<lake>/_ticktape/rejected/``.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from schemas import arrow_schema, conform
from streaming.base import ConsumedBatch, Consumer
from streaming.local import LOG_CORRUPT, LogCorruptError

from .arbitrate import ArbitrationOptions, ArbitrationStats, StreamArbiter
from .lake import (
    STATE_DIR,
    TEMP_SUFFIX,
    check_stream_id,
    encode_parquet,
    fsync_dir,
    partition_dir,
    sink_file_name,
    sink_file_pattern,
    sort_for_lake,
    split_partitions,
    write_bytes_atomic,
    write_json_atomic,
)

log = logging.getLogger(__name__)

COMMITS_DIR = f"{STATE_DIR}/commits"
REJECTED_DIR = f"{STATE_DIR}/rejected"


def commit_path(lake: str | Path, stream: str) -> Path:
    """The commit marker of a stream."""
    return Path(lake) / COMMITS_DIR / f"{check_stream_id(stream)}.commit.json"


def intent_path(lake: str | Path, stream: str) -> Path:
    """The intent file of a stream (files of the unit being written)."""
    return Path(lake) / COMMITS_DIR / f"{check_stream_id(stream)}.intent.json"


def arbitration_path(lake: str | Path, stream: str, last: int) -> Path:
    """The arbitration state committed with the unit ending at ``last`` (``storage/arbitrate.py``)."""
    return Path(lake) / COMMITS_DIR / f"{check_stream_id(stream)}.arbitration-{last:020d}.json"


def _arbitration_files(lake: Path, stream: str) -> list[tuple[int, Path]]:
    prefix = f"{stream}.arbitration-"
    folder = lake / COMMITS_DIR
    out = []
    if folder.is_dir():
        for p in folder.glob(f"{prefix}*.json"):
            digits = p.name[len(prefix) : -len(".json")]
            if digits.isdigit():
                out.append((int(digits), p))
    return sorted(out)


def load_arbitration(lake: str | Path, stream: str) -> dict[str, Any] | None:
    """The arbitration state of the last commit of ``stream`` (None: the stream had no replicas)."""
    marker = _read_json(commit_path(lake, stream))
    if marker is None or not marker.get("arbitration"):
        return None
    path = Path(lake) / COMMITS_DIR / marker["arbitration"]
    data: dict[str, Any] = json.loads(path.read_bytes())
    return data


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    return data


def last_committed(lake: str | Path, stream: str) -> int:
    """The last position of ``stream`` that is complete in the lake; -1 when none is."""
    marker = _read_json(commit_path(lake, stream))
    return -1 if marker is None else int(marker["last"])


def committed_streams(lake: str | Path) -> dict[str, int]:
    """Every stream with a commit marker in the lake and its last committed position."""
    folder = Path(lake) / COMMITS_DIR
    out: dict[str, int] = {}
    if folder.is_dir():
        for p in sorted(folder.glob("*.commit.json")):
            if not p.name.startswith("."):
                out[p.name[: -len(".commit.json")]] = int(json.loads(p.read_bytes())["last"])
    return out


@dataclass
class UnitResult:
    """What one unit wrote."""

    stream: str
    first: int
    last: int
    rows: dict[str, int]
    files: list[str]
    bytes: int
    rejected_rows: int


@dataclass
class EncodedUnit:
    """A unit's files as their bytes (:meth:`UnitWriter.encode_unit`): ``(path, Parquet bytes, rows)``
    per file, and per file of rows it rejects."""

    stream: str
    first: int
    last: int
    files: list[tuple[Path, pa.Buffer, int]]
    rejected: list[tuple[Path, pa.Buffer, int]]


class UnitWriter:
    """Writes units of one or more streams into a lake, with intents and commit markers."""

    def __init__(self, lake: str | Path, *, durable: bool = True, compression: str = "zstd") -> None:
        self.lake = Path(lake)
        self.durable = durable
        self.compression = compression
        #: orphan files the last :meth:`recover` removed
        self.orphans_removed = 0

    def recover(self, stream: str) -> int:
        """Removes the orphans a crash left for ``stream``; returns its last committed position (-1: none)."""
        committed = last_committed(self.lake, stream)
        intent = _read_json(intent_path(self.lake, stream))
        removed = 0
        for position, path in _arbitration_files(self.lake, stream):
            if position > committed:  # written for a unit whose commit marker never came
                path.unlink(missing_ok=True)
        if intent is not None and int(intent["first"]) > committed:
            pattern = sink_file_pattern(stream)
            folders = {(self.lake / rel).parent for rel in intent["files"]}
            for folder in sorted(folders):
                if not folder.is_dir():
                    continue
                for name in os.listdir(folder):
                    target = name
                    if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                        target = name[1 : -len(TEMP_SUFFIX)]  # a temporary file (lake.temp_path)
                    m = pattern.match(target)
                    # Only this stream's files beyond the commit: other streams' files, committed
                    # files and compacted files stay.
                    if m is not None and int(m["first"]) > committed:
                        (folder / name).unlink(missing_ok=True)
                        removed += 1
                if self.durable:
                    fsync_dir(folder)
            if removed:
                log.warning(
                    "stream %s: removed %d orphan file(s) of an unfinished unit %s..%s (last commit %d)",
                    stream,
                    removed,
                    intent["first"],
                    intent["last"],
                    committed,
                )
        self.orphans_removed = removed
        return committed

    def plan(
        self, stream: str, first: int, last: int, tables: Mapping[str, pa.Table | pa.RecordBatch]
    ) -> tuple[list[tuple[Path, pa.Table]], list[tuple[str, pa.Table]]]:
        """Files of a unit: ``([(path, rows)], [(dataset, rejected rows)])``."""
        name = sink_file_name(stream, first, last)
        files = []
        rejected = []
        for dataset in sorted(tables):
            table = tables[dataset]
            if isinstance(table, pa.RecordBatch):
                table = pa.Table.from_batches([table])
            if table.num_rows == 0:
                continue
            parts, bad = split_partitions(table)
            for exchange, date, rows in parts:
                files.append((partition_dir(self.lake, dataset, exchange, date) / name, rows))
            if bad is not None:
                rejected.append((dataset, bad))
        return files, rejected

    def _write_arbitration(self, stream: str, last: int, state: bytes) -> str:
        path = arbitration_path(self.lake, stream, last)
        # its directory is the commit marker's, fsynced when the marker is written
        write_bytes_atomic(state, path, durable=self.durable, sync_dir=False)
        return path.name

    def write_unit(
        self,
        stream: str,
        first: int,
        last: int,
        tables: Mapping[str, pa.Table | pa.RecordBatch],
        arbitration: bytes | None = None,
    ) -> UnitResult:
        """Writes and commits the unit ``first..last`` of ``stream`` (``tables`` per dataset), with the
        arbitration state after it (``storage/arbitrate.py``) when the stream carries replicas."""
        return self.commit_encoded(self.encode_unit(stream, first, last, tables), arbitration)

    def encode_unit(
        self, stream: str, first: int, last: int, tables: Mapping[str, pa.Table | pa.RecordBatch]
    ) -> EncodedUnit:
        """The files of a unit as their bytes in memory, nothing written yet (:meth:`commit_encoded`
        writes them). The costly part of a unit, apart from its commit: a replay encodes two units
        at a time on two threads and commits them in order on a third."""
        files, rejected = self.plan(stream, first, last, tables)
        name = sink_file_name(stream, first, last)
        return EncodedUnit(
            stream,
            first,
            last,
            [
                (path, encode_parquet(sort_for_lake(t), compression=self.compression), t.num_rows)
                for path, t in files
            ],
            [
                (
                    self.lake / REJECTED_DIR / ds / name,
                    encode_parquet(t, compression=self.compression),
                    t.num_rows,
                )
                for ds, t in rejected
            ],
        )

    def commit_encoded(self, unit: EncodedUnit, arbitration: bytes | None = None) -> UnitResult:
        """Writes and commits a unit from :meth:`encode_unit`: its intent, its files, their
        directories' fsync, its arbitration state (if any) and its commit marker, in that order."""
        stream, first, last = unit.stream, unit.first, unit.last
        rel = [str(p.relative_to(self.lake)) for p, _, _ in [*unit.files, *unit.rejected]]
        write_json_atomic(
            intent_path(self.lake, stream),
            {"stream": stream, "first": first, "last": last, "files": rel},
            self.durable,
        )
        rows: dict[str, int] = collections.Counter()
        size = 0
        folders = set()
        for path, data, n in unit.files:
            size += write_bytes_atomic(data, path, durable=self.durable, sync_dir=False)
            folders.add(path.parent)
            rows[path.parts[-4]] += n
        rejected_rows = 0
        for path, data, n in unit.rejected:
            write_bytes_atomic(data, path, durable=self.durable, sync_dir=False)
            folders.add(path.parent)
            rejected_rows += n
            log.error(
                "stream %s %d..%d: %d %s row(s) with an invalid exchange id or no ts_recv kept in %s",
                stream,
                first,
                last,
                n,
                path.parts[-2],
                path,
            )
        arbitration_name = None
        if arbitration is not None:
            arbitration_name = self._write_arbitration(stream, last, arbitration)
        if self.durable:
            for folder in sorted(folders):
                fsync_dir(folder)
        marker = {
            "stream": stream,
            "first": first,
            "last": last,
            "files": rel,
            "rows": dict(rows),
            "rejected_rows": rejected_rows,
            "committed_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        }
        if arbitration_name is not None:
            marker["arbitration"] = arbitration_name
        write_json_atomic(commit_path(self.lake, stream), marker, self.durable)
        for position, path in _arbitration_files(self.lake, stream):
            if position < last:  # states of earlier commits: the marker no longer names them
                path.unlink(missing_ok=True)
        return UnitResult(stream, first, last, dict(rows), rel, size, rejected_rows)


def _newest_ts_recv(tables: Iterable[pa.Table]) -> int | None:
    """The largest ``ts_recv`` (ns) over some tables, or None."""
    newest: int | None = None
    for table in tables:
        if table.num_rows and "ts_recv" in table.column_names:
            value = pc.max(table.column("ts_recv").cast(pa.int64())).as_py()
            if value is not None and (newest is None or value > newest):
                newest = value
    return newest


def concat_tables(dataset: str, tables: Sequence[pa.Table]) -> pa.Table:
    """One table of ``dataset``'s schema from batches (cast where a transport's schema differs; a
    ``replica`` column missing from entries written before it existed becomes nulls)."""
    schema = arrow_schema(dataset)
    fixed = [t if t.schema.equals(schema) else conform(dataset, t) for t in tables]
    if not fixed:
        return schema.empty_table()
    return pa.concat_tables(fixed) if len(fixed) > 1 else fixed[0]


@dataclass
class SinkOptions:
    """When the sink ends a unit, and when it stops."""

    flush_rows: int = 500_000
    flush_entries: int = 1_000
    flush_idle_s: float = 2.0
    max_delay_s: float = 60.0
    until_idle_s: float | None = None
    poll_timeout_s: float = 0.25
    durable: bool = True
    #: memory bound over all streams' open units (many Kafka partitions): the largest is cut early
    max_pending_rows: int = 2_000_000
    #: on damage the transport cannot read past: keep running (unhealthy, serving metrics) until
    #: ``stop`` is set instead of returning at once, then raise
    hold_on_failure: bool = False
    #: how replicas are arbitrated (``storage/arbitrate.py``); None: never (the lake keeps every copy)
    arbitration: ArbitrationOptions | None = field(default_factory=ArbitrationOptions)


@dataclass
class SinkStats:
    """What a sink run did."""

    rows: dict[str, int] = field(default_factory=lambda: collections.Counter())
    files: int = 0
    bytes: int = 0
    units: int = 0
    batches: int = 0
    skipped_batches: int = 0
    rejected_rows: int = 0
    orphans_removed: int = 0
    committed: dict[str, int] = field(default_factory=dict)
    #: receive time (ns) of the newest record committed to the lake: the sink-lag metric's anchor
    newest_committed_ts_recv: int | None = None
    #: damaged ranges of the transport met: skipped (recorded as ``log_corrupt`` events) or stopped at
    log_corrupt: int = 0
    #: why the sink stopped consuming (it is unhealthy), or None
    failure: str | None = None
    #: what replica arbitration did: duplicates dropped per dataset, gaps covered, merged gaps
    arbitration: ArbitrationStats = field(default_factory=ArbitrationStats)


@dataclass
class _Pending:
    first: int
    last: int
    started: float
    last_added: float
    rows: int = 0
    entries: int = 0
    tables: dict[str, list[pa.Table]] = field(default_factory=lambda: collections.defaultdict(list))


class Sink:
    """Drains a consumer into the lake, exactly once. See the module docstring."""

    def __init__(self, consumer: Consumer, lake: str | Path, options: SinkOptions | None = None) -> None:
        self.consumer = consumer
        self.options = options or SinkOptions()
        self.writer = UnitWriter(lake, durable=self.options.durable)
        self.stats = SinkStats()
        self._committed: dict[str, int] = {}
        self._pending: dict[str, _Pending] = {}
        self._arbiters: dict[str, StreamArbiter] = {}

    async def _adopt(self, stream: str) -> None:
        """Recovers a newly seen stream: orphans removed, consumer positioned after the last commit."""
        committed = await asyncio.to_thread(self.writer.recover, stream)
        self.stats.orphans_removed += self.writer.orphans_removed
        if self.options.arbitration is not None:
            state = await asyncio.to_thread(load_arbitration, self.writer.lake, stream)
            arbiter = StreamArbiter(self.options.arbitration, state)
            arbiter.stats = self.stats.arbitration  # one set of counters over all streams
            self._arbiters[stream] = arbiter
        self._committed[stream] = committed
        self.stats.committed[stream] = committed
        await self.consumer.seek(stream, committed + 1)
        log.info("stream %s: resuming after position %d", stream, committed)

    async def run(self, stop: asyncio.Event | None = None) -> SinkStats:
        """Consumes until ``stop`` is set or, with ``until_idle_s``, nothing new came for that long."""
        opts = self.options
        stop = stop or asyncio.Event()
        await self.consumer.start()
        try:
            for stream in self.consumer.streams():
                await self._adopt(stream)
            last_data = time.monotonic()
            while not stop.is_set():
                try:
                    batches = await self.consumer.poll(opts.poll_timeout_s)
                except LogCorruptError as exc:
                    await self._stop_at_damage(exc, stop)
                    raise
                now = time.monotonic()
                if batches:
                    last_data = now
                    await self._add_all(batches, now)
                elif opts.until_idle_s is not None and now - last_data >= opts.until_idle_s:
                    log.info("nothing new for %.1f s: stopping", opts.until_idle_s)
                    break
                self._forget_revoked()
                for stream, p in list(self._pending.items()):
                    if now - p.last_added >= opts.flush_idle_s or now - p.started >= opts.max_delay_s:
                        await self._flush(stream)
            await self.flush_all()
        finally:
            await self.consumer.close()
        return self.stats

    async def _stop_at_damage(self, exc: LogCorruptError, stop: asyncio.Event) -> None:
        """Commits everything read before the damage, turns unhealthy and (live) waits for ``stop``."""
        await self.flush_all()
        self.stats.log_corrupt += 1
        self.stats.failure = str(exc)
        if self.options.hold_on_failure:
            log.error("stopped consuming (unhealthy until stopped): %s", exc)
            await stop.wait()

    async def _bound_memory(self) -> None:
        """Ends the largest open units while all of them together exceed ``max_pending_rows``."""
        while self._pending and sum(p.rows for p in self._pending.values()) > self.options.max_pending_rows:
            largest = max(self._pending, key=lambda s: self._pending[s].rows)
            await self._flush(largest)

    def _forget_revoked(self) -> None:
        """Drops the state of streams the consumer no longer owns (a Kafka rebalance moved them).

        Their pending rows are not written: the new owner resumes from the commit marker and writes
        them; writing them here too would put them in the lake twice, cut differently.
        """
        assigned = set(self.consumer.streams())
        for stream in [s for s in self._committed if s not in assigned]:
            dropped = self._pending.pop(stream, None)
            del self._committed[stream]
            self._arbiters.pop(stream, None)
            log.info(
                "stream %s: no longer assigned to this sink%s",
                stream,
                f"; {dropped.rows} unwritten rows left to its new owner" if dropped else "",
            )

    async def _add_all(self, batches: list[ConsumedBatch], now: float) -> None:
        discard: set[str] = set()
        for b in batches:
            if b.stream in discard:
                continue
            if b.stream not in self._committed:
                # A stream assigned while running (a Kafka rebalance): recover it and re-read it from
                # its commit; batches of it already in hand would be read twice, so they are dropped.
                await self._adopt(b.stream)
                discard.add(b.stream)
                self.stats.skipped_batches += 1
                continue
            await self._add(b, now)
            await self._bound_memory()

    async def _add(self, b: ConsumedBatch, now: float) -> None:
        opts = self.options
        self.stats.batches += 1
        committed = self._committed[b.stream]
        p = self._pending.get(b.stream)
        if b.last <= committed or (p is not None and b.first <= p.last):
            # Delivered again (after a seek or a rebalance): already in the lake or in this unit.
            self.stats.skipped_batches += 1
            return
        if b.first <= committed:
            # Straddles the commit (a transport batching across it): re-read from the commit.
            await self.consumer.seek(b.stream, committed + 1)
            self.stats.skipped_batches += 1
            return
        if p is None:
            p = self._pending[b.stream] = _Pending(b.first, b.last, now, now)
        p.last = b.last
        p.last_added = now
        p.entries += 1
        p.rows += b.table.num_rows
        if b.table.num_rows:
            p.tables[b.dataset].append(b.table)
            if b.dataset == "feed_events" and pc.any(pc.equal(b.table.column("kind"), LOG_CORRUPT)).as_py():
                self.stats.log_corrupt += 1
        if p.rows >= opts.flush_rows or p.entries >= opts.flush_entries:
            await self._flush(b.stream)

    async def _flush(self, stream: str) -> None:
        p = self._pending.pop(stream, None)
        if p is None:
            return
        tables = {ds: concat_tables(ds, ts) for ds, ts in p.tables.items()}
        arbiter = self._arbiters.get(stream)
        state = None
        if arbiter is not None:
            tables = arbiter.process(tables)
            state = arbiter.dumps() if arbiter.active else None
        result = await asyncio.to_thread(self.writer.write_unit, stream, p.first, p.last, tables, state)
        await self.consumer.commit(stream, p.last)
        self._committed[stream] = p.last
        st = self.stats
        st.committed[stream] = p.last
        st.units += 1
        st.files += len(result.files)
        st.bytes += result.bytes
        st.rejected_rows += result.rejected_rows
        for ds, n in result.rows.items():
            st.rows[ds] += n
        newest = _newest_ts_recv(tables.values())
        if newest is not None and (
            st.newest_committed_ts_recv is None or newest > st.newest_committed_ts_recv
        ):
            st.newest_committed_ts_recv = newest
        log.info(
            "committed %s %d..%d: %s (%d files, %.1f MB)",
            stream,
            p.first,
            p.last,
            ", ".join(f"{ds} {n}" for ds, n in sorted(result.rows.items())) or "no rows",
            len(result.files),
            result.bytes / 1e6,
        )

    async def flush_all(self) -> None:
        """Writes and commits every pending unit."""
        for stream in list(self._pending):
            await self._flush(stream)

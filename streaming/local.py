"""The embedded ``local`` transport: a durable, crash-safe, append-only log of record batches.

Layout of a log directory::

    <log>/LOCK                              single-writer lock (flock) holding the writer's pid
    <log>/<first entry:020d>.seg            segments, named by the number of their first entry
    <log>/consumers/<group>.json            last position each consumer group committed (advisory)

A segment starts with the 8-byte magic :data:`SEGMENT_MAGIC`, followed by entries. An entry is one
dataset batch::

    u32 body length | u32 CRC32 | u64 entry number | body
    body = u8 dataset code (index in schemas.DATASETS) | Arrow IPC stream (one record batch)

all little-endian; the CRC covers length, entry number and body. Entry numbers start at 0 and
increase by one along the log: they are the positions of the ``local`` stream.

Durability: entries are appended with a single ``write``; ``fsync`` follows per the policy (every
entry, every publisher flush, or only on close). A crash can leave a torn last entry (an *incomplete*
one: its header or body ends at the end of the file): the next writer truncates exactly that on open;
readers never return an incomplete entry, they wait for it.

Damage (bytes changed on disk, anywhere): every entry carries its CRC and its number, so an intact
entry is recognised wherever it starts. When an entry fails its CRC, readers look for the next intact
one (a header numbered above the last good entry whose CRC matches) and report the bytes in between
as a :class:`LogDamage` (segment, byte range, entries lost). By default that is a
:class:`LogCorruptError`; a reader opened with ``skip_corrupt`` skips exactly that range and reports
it instead (the sink records it as a ``log_corrupt`` feed event). A writer reopening a log keeps
intact entries after damage in place (they are still delivered), truncates only a true torn tail, and
copies any other unreadable tail bytes to ``<log>/quarantine/`` before cutting them off, so nothing
is ever deleted unseen. Only one process may write a log at a time (``flock`` on ``LOCK``); a second
writer gets :class:`LogLockedError` naming the holder.

Retention: when the writer rolls to a new segment it deletes the oldest segments whose entries every
consumer group has committed (``consumers/*.json``), always keeping the newest ``keep_segments``. A log
nobody has registered to consume is never trimmed; a group that stops consuming for good holds the
log's size up until its file is removed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import fcntl
import itertools
import json
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from schemas import DATASETS, RECORD_DATASETS, REPLICA_FIELD, RecordBuffer, conform, rows_to_arrow

from . import codec
from .base import (
    QUEUE_POLICIES,
    ConsumedBatch,
    Consumer,
    Publisher,
    PublisherStats,
    bad_row_event,
    split_to_arrow,
)

log = logging.getLogger(__name__)

SEGMENT_MAGIC = b"TTLOG\x00\x01\n"
SEGMENT_SUFFIX = ".seg"
#: Entry header: body length, CRC32, entry number.
ENTRY_HEADER = struct.Struct("<IIQ")
_CRC_PREFIX = struct.Struct("<IQ")
#: Bodies above this are treated as corruption (a publisher splits batches far below it).
MAX_ENTRY_BYTES = 512 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
#: fsync policies: after every entry, after every batch the publisher writes, or only on flush/close.
FSYNC_POLICIES = ("always", "batch", "never")
#: Segments always kept by retention (the newest ones), even when every consumer committed them.
DEFAULT_KEEP_SEGMENTS = 4
#: Rows per log entry at most: keeps entries (and the sink's reads) bounded.
MAX_ENTRY_ROWS = 65_536
DEFAULT_STREAM = "local"
#: Feed-event kind of a damaged range a sink skipped (``--skip-corrupt``).
LOG_CORRUPT = "log_corrupt"
#: Where a writer keeps unreadable tail bytes it cut off (never deleted).
QUARANTINE_DIR = "quarantine"

_DATASET_CODE = {name: i for i, name in enumerate(DATASETS)}


class LogError(RuntimeError):
    """Base class of local-log errors."""


class LogLockedError(LogError):
    """Another process holds the log's writer lock."""


@dataclass(frozen=True, slots=True)
class LogDamage:
    """Bytes of a segment that hold no intact entry, between two intact ones (or the segment end).

    Entries ``first_lost .. next_entry - 1`` are the ones that cannot be read (none when
    ``next_entry == first_lost``: the damage hit bytes between entries).
    """

    segment: Path
    start: int
    end: int
    first_lost: int
    next_entry: int

    @property
    def bytes(self) -> int:
        """Size of the damaged range."""
        return self.end - self.start

    @property
    def lost_entries(self) -> int:
        """How many entry numbers the damage swallowed."""
        return self.next_entry - self.first_lost

    def describe(self) -> str:
        """One line naming the file, the byte range and the entries lost."""
        lost = (
            f"entries {self.first_lost}..{self.next_entry - 1} unreadable"
            if self.lost_entries > 0
            else "no entry lost"
        )
        return (
            f"segment {self.segment} is damaged at bytes {self.start}..{self.end} "
            f"({self.bytes} bytes; {lost}; the next intact entry is {self.next_entry})"
        )

    def detail(self) -> dict[str, Any]:
        """The particulars, for a ``log_corrupt`` feed event."""
        return {
            "log": str(self.segment.parent),
            "segment": self.segment.name,
            "start": self.start,
            "end": self.end,
            "bytes": self.bytes,
            "first_lost_entry": self.first_lost,
            "next_entry": self.next_entry,
            "lost_entries": self.lost_entries,
        }


class LogCorruptError(LogError):
    """A log entry is damaged somewhere other than a torn tail (entries would be lost).

    ``damage`` names the segment and byte range when it is known.
    """

    def __init__(self, message: str, damage: LogDamage | None = None) -> None:
        super().__init__(message)
        self.damage = damage


def segment_name(first_entry: int) -> str:
    """File name of the segment whose first entry is ``first_entry``."""
    return f"{first_entry:020d}{SEGMENT_SUFFIX}"


def list_segments(log_dir: Path) -> list[tuple[int, Path]]:
    """``(first entry, path)`` of every segment, in log order."""
    out = []
    try:
        names = os.listdir(log_dir)
    except FileNotFoundError:
        return []
    for name in names:
        if name.endswith(SEGMENT_SUFFIX) and name[: -len(SEGMENT_SUFFIX)].isdigit():
            out.append((int(name[: -len(SEGMENT_SUFFIX)]), log_dir / name))
    out.sort()
    return out


def _crc(length: int, entry: int, body: bytes | memoryview) -> int:
    return zlib.crc32(body, zlib.crc32(_CRC_PREFIX.pack(length, entry)))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_body(dataset: str, batch: pa.RecordBatch, compression: str | None = "lz4") -> bytes:
    """An entry body: dataset code and the batch as an Arrow IPC stream.

    A ``replica`` column holding only nulls (a single collector's rows) is left out, so those entries
    stay byte for byte what they were before the column existed; :func:`decode_body` restores it."""
    last = batch.schema.names[-1] if batch.num_columns else None
    if last == REPLICA_FIELD and batch.column(batch.num_columns - 1).null_count == batch.num_rows:
        batch = batch.drop_columns([REPLICA_FIELD])
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, batch.schema, options=options) as writer:
        writer.write_batch(batch)
    return bytes([_DATASET_CODE[dataset]]) + sink.getvalue().to_pybytes()


def decode_body(body: bytes | memoryview) -> tuple[str, pa.Table]:
    """Inverse of :func:`encode_body`."""
    code = body[0]
    if code >= len(DATASETS):
        raise LogCorruptError(f"unknown dataset code {code}")
    table = pa.ipc.open_stream(pa.py_buffer(body[1:])).read_all()
    if REPLICA_FIELD not in table.column_names:
        table = conform(DATASETS[code], table)
    return DATASETS[code], table


#: Smallest body a writer produces (dataset code + an Arrow IPC stream): shorter "headers" are noise.
_MIN_BODY = 9


def find_intact_entry(data: bytes | memoryview, base: int, min_entry: int) -> tuple[int, int] | None:
    """The first intact entry in ``data`` numbered ``min_entry`` or above: ``(file offset, number)``.

    ``data`` is the segment from file offset ``base`` on. An intact entry is a header whose number
    fits, whose body lies within ``data`` and whose CRC matches; candidates are found with a
    vectorised scan of every byte offset, so a damaged 64 MiB segment is searched in well under a
    second.
    """
    n = len(data)
    hsize = ENTRY_HEADER.size
    if n < hsize:
        return None
    max_entry = min_entry + n // hsize
    candidates: list[int] = []
    for align in range(8):
        count = (n - align - hsize) // 8 + 1
        if count <= 0:
            continue
        numbers = np.frombuffer(data, dtype="<u8", count=count, offset=align + 8)
        lengths = np.frombuffer(data, dtype="<u4", count=2 * count - 1, offset=align)[::2]
        starts = align + 8 * np.arange(count, dtype=np.int64)
        ok = (
            (numbers >= min_entry)
            & (numbers <= max_entry)
            & (lengths >= _MIN_BODY)
            & (lengths.astype(np.int64) <= n - starts - hsize)
        )
        candidates.extend(int(x) for x in starts[ok])
    candidates.sort()
    for pos in candidates:
        length, crc, number = ENTRY_HEADER.unpack_from(data, pos)
        if (
            length <= MAX_ENTRY_BYTES
            and _crc(length, number, data[pos + hsize : pos + hsize + length]) == crc
        ):
            return base + pos, number
    return None


@dataclass(frozen=True, slots=True)
class _Scan:
    """Result of scanning a segment: its intact entries, damage between them, and its tail."""

    #: the number the entry after the last intact one gets
    next_entry: int
    #: where the last intact entry ends (the magic's end when there is none)
    valid_bytes: int
    file_bytes: int
    damage: tuple[LogDamage, ...]
    #: the bytes after ``valid_bytes`` are one incomplete entry (a torn write), nothing else
    torn_tail: bool


def _is_torn(data: bytes | memoryview, pos: int, expected: int) -> bool:
    """True when ``data[pos:]`` is the start of entry ``expected`` cut off by the end of the file."""
    rest = len(data) - pos
    if rest < ENTRY_HEADER.size:
        return True
    length, _crc_value, number = ENTRY_HEADER.unpack_from(data, pos)
    return number == expected and length <= MAX_ENTRY_BYTES and ENTRY_HEADER.size + length > rest


def _scan_segment(path: Path, first_entry: int) -> _Scan:
    """Validates every entry of a segment (length, CRC, numbering), finding intact entries past damage."""
    with open(path, "rb") as fh:
        data = fh.read()
    magic = len(SEGMENT_MAGIC)
    if len(data) < magic:
        return _Scan(first_entry, 0, len(data), (), True)
    view = memoryview(data)
    pos = magic
    expected = first_entry
    valid = magic
    damage: list[LogDamage] = []
    hsize = ENTRY_HEADER.size
    while pos < len(data):
        if pos + hsize <= len(data):
            length, crc, entry = ENTRY_HEADER.unpack_from(data, pos)
            end = pos + hsize + length
            if (
                entry == expected
                and length <= MAX_ENTRY_BYTES
                and end <= len(data)
                and _crc(length, entry, view[pos + hsize : end]) == crc
            ):
                pos = valid = end
                expected += 1
                continue
        found = find_intact_entry(view[pos:], pos, expected)
        if found is None:
            break
        damage.append(LogDamage(path, pos, found[0], expected, found[1]))
        pos, expected = found
    view.release()
    torn = valid == len(data) or _is_torn(data, valid, expected)
    return _Scan(expected, valid, len(data), tuple(damage), torn)


class LocalLogWriter:
    """Appends entries to a log directory (blocking I/O; the publisher runs it in a worker thread).

    Opening takes the writer lock, then repairs the tail: a torn last entry is truncated.
    """

    def __init__(
        self,
        log_dir: str | Path,
        *,
        fsync: str = "batch",
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        compression: str | None = "lz4",
        keep_segments: int | None = DEFAULT_KEEP_SEGMENTS,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync policy must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        self.dir = Path(log_dir)
        self.fsync_policy = fsync
        self.segment_bytes = segment_bytes
        self.compression = compression
        self.keep_segments = keep_segments
        self.truncated_bytes = 0
        #: bytes of an unreadable tail that were moved to the quarantine folder, and that file
        self.quarantined_bytes = 0
        self.quarantined: Path | None = None
        #: damaged ranges found in the last segment on open (the intact entries after them stay)
        self.damage: list[LogDamage] = []
        self.deleted_segments = 0
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._acquire_lock()
        self._fd = -1
        try:
            self._open_tail()
        except BaseException:
            self._release_lock()
            raise
        self._dirty = False

    # -- lock -----------------------------------------------------------------------------------
    def _acquire_lock(self) -> int:
        path = self.dir / "LOCK"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise LogLockedError(
                f"log {self.dir} is already open for writing by process {holder}; a log has one writer "
                "(stop that process or use another --log directory)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            # The pid is left in place on purpose only while locked; clear it so a stale pid never
            # shows up in another writer's error message.
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)
            self._lock_fd = -1

    # -- open / recovery ------------------------------------------------------------------------
    def _open_tail(self) -> None:
        segments = list_segments(self.dir)
        if not segments:
            self._new_segment(0)
            return
        first, path = segments[-1]
        scan = _scan_segment(path, first)
        fd = os.open(path, os.O_RDWR)
        magic = len(SEGMENT_MAGIC)
        if os.pread(fd, magic, 0) != SEGMENT_MAGIC:
            # Torn while the segment was being created, or a damaged header: the magic is not data.
            if scan.file_bytes > magic:
                log.warning("log %s: rewrote the damaged header of %s", self.dir, path.name)
            os.pwrite(fd, SEGMENT_MAGIC, 0)
        valid = max(scan.valid_bytes, magic)
        tail = scan.file_bytes - valid
        if tail > 0 and not scan.torn_tail:
            # Not an entry cut off by a crash: keep the bytes where a person can look at them.
            self.quarantined = self._quarantine(fd, path, valid, tail)
        elif tail > 0:
            self.truncated_bytes = tail
        if tail > 0:
            os.ftruncate(fd, valid)
            os.fsync(fd)
        if self.truncated_bytes:
            log.warning(
                "log %s: truncated a torn tail of %d bytes (one incomplete entry) in %s "
                "(entries up to %d are intact)",
                self.dir,
                self.truncated_bytes,
                path.name,
                scan.next_entry - 1,
            )
        for damage in scan.damage:
            self.damage.append(damage)
            log.error(
                "log %s: %s; the intact entries after it are kept; a sink stops there until run with "
                "--skip-corrupt",
                self.dir,
                damage.describe(),
            )
        self._fd = fd
        self._seg_first = first
        self._offset = valid
        self.next_entry = scan.next_entry

    def _quarantine(self, fd: int, path: Path, start: int, size: int) -> Path:
        """Copies ``size`` bytes of a segment from ``start`` into ``<log>/quarantine/`` (fsynced)."""
        folder = self.dir / QUARANTINE_DIR
        folder.mkdir(exist_ok=True)
        target = folder / f"{path.name}.{start}-{start + size}.bin"
        data = os.pread(fd, size, start)
        with open(target, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(folder)
        self.quarantined_bytes = size
        log.error(
            "log %s: %d unreadable bytes at the end of %s (offset %d) are not a torn entry; moved them to "
            "%s instead of deleting them",
            self.dir,
            size,
            path.name,
            start,
            target,
        )
        return target

    def _new_segment(self, first: int) -> None:
        path = self.dir / segment_name(first)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, SEGMENT_MAGIC)
        os.fsync(fd)
        _fsync_dir(self.dir)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._seg_first = first
        self._offset = len(SEGMENT_MAGIC)
        self.next_entry = first
        if self.keep_segments is not None:
            self._apply_retention(self.keep_segments)

    def _apply_retention(self, keep: int) -> None:
        """Deletes old segments that every consumer group has committed, keeping the newest ``keep``.

        Without any consumer group nothing is deleted: the log is then the only copy of the data.
        """
        committed = committed_positions(self.dir)
        if not committed:
            return
        safe = min(committed.values())
        segments = list_segments(self.dir)
        deletable = segments[: max(0, len(segments) - max(1, keep))]
        for i, (_first, path) in enumerate(deletable):
            if segments[i + 1][0] - 1 > safe:  # its last entry is not committed by every group yet
                break
            path.unlink(missing_ok=True)
            self.deleted_segments += 1
            log.info("log %s: deleted %s (committed by every consumer group)", self.dir, path.name)

    # -- writing --------------------------------------------------------------------------------
    def append_body(self, body: bytes) -> int:
        """Appends one encoded entry body; returns its entry number."""
        if self._fd < 0:
            raise LogError(f"log {self.dir} is closed")
        if self._offset >= self.segment_bytes and self.next_entry > self._seg_first:
            # Roll: the finished segment is made durable before the next one exists, so a reader
            # that sees the new segment can trust the old one to be complete.
            os.fsync(self._fd)
            self._new_segment(self.next_entry)
        entry = self.next_entry
        length = len(body)
        header = ENTRY_HEADER.pack(length, _crc(length, entry, body), entry)
        data = header + body
        written = os.pwrite(self._fd, data, self._offset)
        if written != len(data):
            # A short write (disk full): cut it off so the log never holds a torn entry.
            os.ftruncate(self._fd, self._offset)
            raise OSError(
                errno.ENOSPC,
                f"short write to log {self.dir} ({written} of {len(data)} bytes): is the disk full?",
                str(self.dir / segment_name(self._seg_first)),
            )
        self._offset += len(data)
        self.next_entry = entry + 1
        self._dirty = True
        if self.fsync_policy == "always":
            self.sync()
        return entry

    def append(self, dataset: str, batch: pa.RecordBatch) -> int:
        """Appends one batch of ``dataset``; returns its entry number."""
        return self.append_body(encode_body(dataset, batch, self.compression))

    def mark(self) -> tuple[int, int, int]:
        """Where the log ends now, for :meth:`rollback`."""
        return (self._seg_first, self._offset, self.next_entry)

    def rollback(self, mark: tuple[int, int, int]) -> None:
        """Removes entries appended after ``mark`` (a failed multi-entry write), within one segment."""
        seg_first, offset, next_entry = mark
        if self._fd < 0 or (seg_first, offset, next_entry) == self.mark():
            return
        if seg_first != self._seg_first:
            # The failed write rolled to a new segment; the previous segment's entries are durable
            # and stay. The retry repeats them: say so rather than hide it.
            log.error("log %s: a failed write spanned a segment roll; some entries may repeat", self.dir)
            return
        os.ftruncate(self._fd, offset)
        self._offset = offset
        self.next_entry = next_entry

    def sync(self) -> None:
        """Makes everything appended so far durable."""
        if self._fd >= 0 and self._dirty:
            os.fsync(self._fd)
            self._dirty = False

    def close(self) -> None:
        """Syncs, closes the segment and releases the lock."""
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1
        self._release_lock()

    def __enter__(self) -> LocalLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalLogReader:
    """Reads entries of a log directory from a position, following a log another process writes.

    Never returns an incomplete entry: a torn or half-written tail is waited on (a new writer
    truncates and rewrites it). Blocking I/O with ``pread``; no lock is taken.

    Damage (an entry failing its CRC with an intact entry after it, or unreadable bytes ending a
    segment the log has moved past) raises :class:`LogCorruptError` naming the segment and byte
    range; with ``skip_corrupt`` the reader skips exactly that range and appends it to
    :attr:`skipped` instead.
    """

    def __init__(self, log_dir: str | Path, *, skip_corrupt: bool = False) -> None:
        self.dir = Path(log_dir)
        self.skip_corrupt = skip_corrupt
        self.next_entry = 0
        #: damaged ranges skipped (``skip_corrupt``), in log order; the caller takes them
        self.skipped: list[LogDamage] = []
        self._fd = -1
        self._seg_first = -1
        self._seg_path: Path | None = None
        self._offset = 0

    def close(self) -> None:
        """Closes the open segment."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def seek(self, entry: int) -> None:
        """Continues at entry number ``entry``."""
        self.close()
        self.next_entry = entry
        self._seg_first = -1

    def _open_segment_for(self, entry: int) -> bool:
        """Opens the segment holding ``entry`` and positions on it; False if it does not exist yet."""
        segments = list_segments(self.dir)
        candidates = [(f, p) for f, p in segments if f <= entry]
        if not candidates:
            if segments and segments[0][0] > entry:
                raise LogCorruptError(
                    f"log {self.dir} starts at entry {segments[0][0]}; entry {entry} no longer exists"
                )
            return False
        first, path = candidates[-1]
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        self.close()
        self._fd = fd
        self._seg_first = first
        self._seg_path = path
        self._offset = len(SEGMENT_MAGIC)
        # Skip entries before the wanted one by their headers (bodies are not read).
        n = first
        while n < entry:
            header = os.pread(fd, ENTRY_HEADER.size, self._offset)
            if len(header) < ENTRY_HEADER.size:
                # The wanted entry is not written yet: start over on the next read.
                self.close()
                return False
            length, _crc_value, number = ENTRY_HEADER.unpack(header)
            if number != n or length > MAX_ENTRY_BYTES:
                # Damage before the wanted entry: continue from the next intact entry up to it; if
                # the wanted entry lies inside the damage, stop on it so that read() reports it.
                found = self._find_from(self._offset, n)
                if found is None or found[1] > entry:
                    self.next_entry = entry
                    return True
                self._offset, n = found
                continue
            self._offset += ENTRY_HEADER.size + length
            n += 1
        return True

    def _find_from(self, offset: int, min_entry: int) -> tuple[int, int] | None:
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size - offset, offset) if size > offset else b""
        return find_intact_entry(data, offset, min_entry)

    def _later_segment(self) -> int | None:
        """First entry of the segment after the open one, if the log has moved on."""
        later = [f for f, _ in list_segments(self.dir) if f > self._seg_first]
        return min(later) if later else None

    def read(self, max_entries: int = 256, max_bytes: int = 64 * 1024 * 1024) -> list[tuple[int, bytes]]:
        """Complete entries available now, from :attr:`next_entry` on: ``[(entry number, body)]``.

        Damage is reported (raised, or skipped with ``skip_corrupt``) only at the start of a call:
        entries before it are returned first, and what :attr:`skipped` gained precedes what is returned.
        """
        out: list[tuple[int, bytes]] = []
        total = 0
        while len(out) < max_entries and total < max_bytes:
            if self._fd < 0 and not self._open_segment_for(self.next_entry):
                break
            got = self._read_one()
            if got is not None:
                out.append((self.next_entry, got))
                total += len(got)
                self.next_entry += 1
                continue
            # Look at the log's state first, then read again: the entry may have been completed in
            # between, and once a later segment exists this one is final (a writer rolls after fsync).
            later = self._later_segment()
            got = self._read_one()
            if got is not None:
                out.append((self.next_entry, got))
                total += len(got)
                self.next_entry += 1
                continue
            if later == self.next_entry and os.fstat(self._fd).st_size == self._offset:
                self.close()  # this segment is finished: go on with the next one
                continue
            damage = self._damage_here(later)
            if damage is None:
                break
            if out:
                break  # entries before the damage go out first; the next call reports or skips it
            if not self.skip_corrupt:
                raise LogCorruptError(
                    f"log {self.dir}: {damage.describe()}; entries before it were delivered, "
                    "rerun with --skip-corrupt to skip exactly this range (recorded as a log_corrupt event)",
                    damage,
                )
            log.error("log %s: skipping damage: %s", self.dir, damage.describe())
            self.skipped.append(damage)
            self.next_entry = damage.next_entry
            if damage.end >= os.fstat(self._fd).st_size:
                self.close()  # the rest of this segment was damaged: the next one follows
            else:
                self._offset = damage.end
        return out

    def _damage_here(self, later: int | None) -> LogDamage | None:
        """Damage at the current position, or None when the bytes there may be a write in progress.

        ``later``: the first entry of the next segment, if the log has moved on.
        """
        assert self._seg_path is not None
        found = self._find_from(self._offset, self.next_entry)
        if found is not None and found[0] == self._offset:
            return None  # the entry here was completed just now: the next read returns it
        if found is not None:
            return LogDamage(self._seg_path, self._offset, found[0], self.next_entry, found[1])
        if later is None:
            return None  # the end of the newest segment: a write in progress or a torn tail
        # Bytes after the last good entry of a finished segment, or entries missing before the next
        # segment: damage, not a torn tail (a writer rolls only after its segment is intact).
        size = os.fstat(self._fd).st_size
        return LogDamage(self._seg_path, self._offset, size, self.next_entry, max(later, self.next_entry))

    def _read_one(self) -> bytes | None:
        header = os.pread(self._fd, ENTRY_HEADER.size, self._offset)
        if len(header) < ENTRY_HEADER.size:
            return None
        length, crc, number = ENTRY_HEADER.unpack(header)
        if number != self.next_entry or length > MAX_ENTRY_BYTES:
            return None
        body = os.pread(self._fd, length, self._offset + ENTRY_HEADER.size)
        if len(body) < length or _crc(length, number, body) != crc:
            return None
        self._offset += ENTRY_HEADER.size + length
        return body


# ---------------------------------------------------------------------------------------------
# Publisher
# ---------------------------------------------------------------------------------------------


def _rows_to_batches(
    dataset: str, rows: list[tuple[Any, ...]]
) -> tuple[list[pa.RecordBatch], list[tuple[Any, ...]]]:
    """Record batches of at most :data:`MAX_ENTRY_ROWS` rows, and a ``bad_row`` event for each row Arrow
    rejects (isolated so that the good rows still get through)."""
    batches = []
    events: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), MAX_ENTRY_ROWS):
        batch, bad = split_to_arrow(dataset, rows[start : start + MAX_ENTRY_ROWS])
        if batch is not None:
            batches.append(batch)
        for row, error in bad:
            if not events:
                log.error(
                    "a %s row does not fit the schema (%s): published as a bad_row event", dataset, error
                )
            events.append(bad_row_event(dataset, row, error))
    return batches, events


class LocalPublisher(Publisher):
    """Publishes records to a local log: a bounded queue drained by a background flusher.

    Rows are batched per dataset and written every ``flush_interval_s`` or as soon as ``batch_rows``
    rows wait. When ``queue_rows`` rows are queued, ``publish`` blocks (policy ``block``) or drops the
    oldest queued rows (``drop-oldest``), counted in ``stats.dropped_rows``.
    """

    def __init__(
        self,
        log_dir: str | Path,
        *,
        queue_rows: int = 1_000_000,
        policy: str = "block",
        flush_interval_s: float = 0.075,
        batch_rows: int = 50_000,
        fsync: str = "batch",
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        compression: str | None = "lz4",
        keep_segments: int | None = DEFAULT_KEEP_SEGMENTS,
    ) -> None:
        if policy not in QUEUE_POLICIES:
            raise ValueError(f"queue policy must be one of {', '.join(QUEUE_POLICIES)}, not {policy!r}")
        if queue_rows <= 0 or batch_rows <= 0:
            raise ValueError("queue_rows and batch_rows must be positive")
        self.log_dir = Path(log_dir)
        self.queue_rows = queue_rows
        self.policy = policy
        self.flush_interval_s = flush_interval_s
        self.batch_rows = batch_rows
        self._writer_options: dict[str, Any] = {
            "fsync": fsync,
            "segment_bytes": segment_bytes,
            "compression": compression,
            "keep_segments": keep_segments,
        }
        self.stats = PublisherStats(extra={"entries": 0, "bad_rows": 0, "truncated_bytes": 0})
        self._writer: LocalLogWriter | None = None
        self._chunks: collections.deque[RecordBuffer] = collections.deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._space = asyncio.Condition()
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._closed = False

    async def start(self) -> None:
        """Opens the log (taking the writer lock, repairing a torn tail) and starts the flusher."""
        if self._writer is not None:
            return
        self._writer = await asyncio.to_thread(LocalLogWriter, self.log_dir, **self._writer_options)
        self.stats.extra["truncated_bytes"] = self._writer.truncated_bytes
        self._task = asyncio.create_task(self._flusher(), name=f"local-log-flusher:{self.log_dir}")

    @property
    def next_entry(self) -> int:
        """The entry number the next written batch gets."""
        return self._writer.next_entry if self._writer else 0

    async def publish(self, records: RecordBuffer) -> None:
        """Queues the rows of ``records`` (moved out of it); blocks or drops when the queue is full."""
        if self._closed:
            raise LogError(f"publisher of {self.log_dir} is closed")
        if self._writer is None:
            await self.start()
        n = len(records)
        if n == 0:
            return
        if self.policy == "block":
            async with self._space:
                while self._queued > 0 and self._queued + n > self.queue_rows:
                    self._raise_if_failed()
                    self._wake.set()
                    await self._space.wait()
        else:
            while self._chunks and self._queued + n > self.queue_rows:
                old = self._chunks.popleft()
                self._queued -= len(old)
                self.stats.dropped_rows += len(old)
        self._chunks.append(records.take())
        self._queued += n
        self.stats.queue_depth = self._queued
        if self._queued >= self.batch_rows:
            self._wake.set()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise LogError(f"writing to log {self.log_dir} failed: {self._error}") from self._error

    async def _flusher(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that arrives
            # just as the event is set, and close() would then wait for this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._write_queued(sync=self._writer_options["fsync"] != "never")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # kept and re-raised to publish()/flush() callers
                self._error = exc
                self.stats.errors += 1
                log.error(
                    "local log %s: write failed (%s); rows stay queued and are retried", self.log_dir, exc
                )
                await asyncio.sleep(min(1.0, self.flush_interval_s * 10))

    async def _write_queued(self, sync: bool) -> None:
        async with self._write_lock:
            if not self._chunks:
                if sync and self._writer is not None:
                    await asyncio.to_thread(self._writer.sync)
                return
            chunks = list(self._chunks)
            self._chunks.clear()
            taken = sum(len(c) for c in chunks)
            try:
                entries, bad = await asyncio.to_thread(self._write_chunks, chunks, sync)
            except BaseException:
                # Nothing of a failed batch is lost: it goes back to the front of the queue.
                self._chunks.extendleft(reversed(chunks))
                raise
            self._queued -= taken
            self.stats.queue_depth = self._queued
            self.stats.published_rows += taken - bad
            self.stats.extra["entries"] += entries
            self.stats.extra["bad_rows"] += bad
            self.stats.errors += bad
            self._error = None
        async with self._space:
            self._space.notify_all()

    def _write_chunks(self, chunks: list[RecordBuffer], sync: bool) -> tuple[int, int]:
        writer = self._writer
        assert writer is not None
        entries = 0
        bad_total = 0
        bodies: list[bytes] = []
        bad_events: list[tuple[Any, ...]] = []
        # feed_events last: rows of the other datasets that do not encode become events there
        for dataset in (*(d for d in RECORD_DATASETS if d != "feed_events"), "feed_events"):
            rows = list(itertools.chain.from_iterable(c.rows(dataset) for c in chunks))
            if dataset == "feed_events":
                rows.extend(bad_events)
            if not rows:
                continue
            batches, events = _rows_to_batches(dataset, rows)
            bad_total += len(events)
            if dataset == "feed_events":
                batches.extend(_rows_to_batches(dataset, events)[0])
            else:
                bad_events.extend(events)
            bodies.extend(encode_body(dataset, b, writer.compression) for b in batches)
        mark = writer.mark()
        try:
            for body in bodies:
                writer.append_body(body)
                entries += 1
        except BaseException:
            # Roll back a partly written flush so that its retry does not write its first entries twice.
            writer.rollback(mark)
            raise
        if sync:
            writer.sync()
        return entries, bad_total

    async def flush(self) -> None:
        """Writes everything queued and fsyncs it; raises if the log cannot be written."""
        if self._writer is None:
            return
        try:
            await self._write_queued(sync=True)
        except Exception as exc:
            self.stats.errors += 1
            raise LogError(f"writing to log {self.log_dir} failed: {exc}") from exc

    async def close(self) -> None:
        """Flushes, stops the flusher and releases the log."""
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closed = True
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            if self._writer is not None:
                await asyncio.to_thread(self._writer.close)


# ---------------------------------------------------------------------------------------------
# Consumer
# ---------------------------------------------------------------------------------------------


class LocalConsumer(Consumer):
    """Reads a local log as one stream (id ``local`` by default); positions are entry numbers.

    Follows the tail of a log another process is writing. A missing log directory simply has no
    entries yet. ``commit`` records the group's position in ``<log>/consumers/<group>.json``.
    """

    def __init__(
        self,
        log_dir: str | Path,
        *,
        stream: str = DEFAULT_STREAM,
        group: str = "sink",
        poll_interval_s: float = 0.05,
        max_poll_entries: int = 256,
        max_poll_bytes: int = 64 * 1024 * 1024,
        skip_corrupt: bool = False,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.stream = stream
        self.group = group
        self.poll_interval_s = poll_interval_s
        self.max_poll_entries = max_poll_entries
        self.max_poll_bytes = max_poll_bytes
        self._reader = LocalLogReader(self.log_dir, skip_corrupt=skip_corrupt)
        self.entries_read = 0
        #: damaged ranges skipped (``skip_corrupt``) and entries whose body did not decode
        self.corrupt_ranges = 0
        self.decode_errors = 0

    async def start(self) -> None:
        """Nothing to connect: the log is read lazily (it may not exist yet)."""

    def streams(self) -> list[str]:
        """The single stream of this log."""
        return [self.stream]

    def _check_stream(self, stream: str) -> None:
        if stream != self.stream:
            raise KeyError(f"unknown stream {stream!r}; this consumer reads {self.stream!r}")

    async def seek(self, stream: str, next_position: int) -> None:
        """Continues at entry ``next_position``."""
        self._check_stream(stream)
        self._reader.seek(next_position)
        end = await asyncio.to_thread(log_end, self.log_dir)
        if next_position > end:
            # A sink whose lake is ahead of the log: a different (or recreated) log under the same
            # stream id. Nothing is read until the log catches up, so say why.
            log.warning(
                "log %s ends before entry %d (next entry %d): it is not the log this position came from; "
                "give each log its own stream id",
                self.log_dir,
                next_position,
                end,
            )

    @property
    def position(self) -> int:
        """The next entry number to be returned."""
        return self._reader.next_entry

    async def poll(self, timeout_s: float) -> list[ConsumedBatch]:
        """Complete entries available now, waiting up to ``timeout_s`` for the first one."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            # File reads and decoding run in a worker thread: a sink sharing its event loop with
            # collectors (the demo) must not delay their receive stamps.
            out = await asyncio.to_thread(self._read_batches)
            if out:
                self.entries_read += len(out)
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await asyncio.sleep(min(self.poll_interval_s, remaining))

    def _read_batches(self) -> list[ConsumedBatch]:
        out = []
        entries = self._reader.read(self.max_poll_entries, self.max_poll_bytes)
        for damage in self._reader.skipped:
            self.corrupt_ranges += 1
            out.extend(self._damage_batch(damage))
        self._reader.skipped.clear()
        for number, body in entries:
            try:
                dataset, table = decode_body(body)
            except (pa.ArrowException, LogCorruptError, ValueError, IndexError) as exc:
                # The CRC matched, so these are the bytes the writer wrote: kept in the event.
                self.decode_errors += 1
                log.error("log %s: entry %d does not decode: %s", self.log_dir, number, exc)
                row = codec.decode_error_row(
                    self.stream, number, None, bytes(body), exc, time.time_ns(), "log"
                )
                dataset, table = "feed_events", pa.Table.from_batches([rows_to_arrow("feed_events", [row])])
            out.append(ConsumedBatch(self.stream, number, number, dataset, table))
        return out

    def _damage_batch(self, damage: LogDamage) -> list[ConsumedBatch]:
        """A ``log_corrupt`` feed event covering the entries a skipped range swallowed."""
        detail = {"stream": self.stream, **damage.detail()}
        row = ("unknown", None, "log", time.time_ns(), LOG_CORRUPT, json.dumps(detail, sort_keys=True))
        if damage.lost_entries <= 0:
            # No entry number to carry it (bytes between entries): the error log is the record.
            return []
        table = pa.Table.from_batches([rows_to_arrow("feed_events", [row])])
        return [ConsumedBatch(self.stream, damage.first_lost, damage.next_entry - 1, "feed_events", table)]

    async def commit(self, stream: str, last_position: int) -> None:
        """Records the group's committed position (advisory: the sink's markers are authoritative)."""
        self._check_stream(stream)
        folder = self.log_dir / "consumers"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.group}.json"
        tmp = folder / f".{self.group}.json.tmp"
        tmp.write_text(json.dumps({"stream": stream, "last": last_position, "time": time.time()}))
        os.replace(tmp, path)

    async def close(self) -> None:
        """Closes the open segment."""
        self._reader.close()


def log_end(log_dir: str | Path) -> int:
    """The number the next entry appended to the log gets (0 for an empty or missing log)."""
    segments = list_segments(Path(log_dir))
    if not segments:
        return 0
    first, path = segments[-1]
    return _scan_segment(path, first).next_entry


def committed_positions(log_dir: str | Path) -> dict[str, int]:
    """Last committed position of every consumer group of a log (``consumers/<group>.json``)."""
    out: dict[str, int] = {}
    folder = Path(log_dir) / "consumers"
    if folder.is_dir():
        for p in folder.glob("*.json"):
            try:
                out[p.stem] = int(json.loads(p.read_text())["last"])
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("log %s: unreadable consumer position %s (ignored)", log_dir, p.name)
    return out


def read_log(log_dir: str | Path, start: int = 0) -> Iterable[tuple[int, str, pa.Table]]:
    """Every complete entry of a log from ``start``: ``(entry number, dataset, table)`` (for tools and tests)."""
    reader = LocalLogReader(log_dir)
    reader.seek(start)
    try:
        while True:
            entries = reader.read()
            if not entries:
                return
            for number, body in entries:
                dataset, table = decode_body(body)
                yield number, dataset, table
    finally:
        reader.close()

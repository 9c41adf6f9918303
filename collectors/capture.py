"""Raw capture files and the replay core: one received frame per line, ``<ts_recv ns> <frame text>``.

An empty line marks a disconnect (book state resets there). A line starting with ``#`` is written by
ticktape itself, never received: ``# subscription {"symbols": [...]}`` records the normalised symbols
the connection subscribed to, so that a replay drops the rows of other symbols exactly as the live
run did (a received frame cannot forge it: frame lines always start with their receive time).
Files whose name ends in ``.gz`` are gzip-compressed; they are read with ISA-L's igzip (the ``isal``
package, https://python-isal.readthedocs.io/en/latest/#igzip, checked 2026-12-05: a drop-in ``gzip``
module, about 3x faster to decompress here) when it is installed, else with the standard library's zlib.
Decompressed blocks are split into items in one C call per block (``collectors/_capturenative.c``,
built by ``make install``); :func:`parse_lines` is the reference, used where the extension is missing
or ``TICKTAPE_PURE_PYTHON=1`` is set, and the compiled code hands every line other than
``<digits> <frame>`` to its per-line function, so bad lines give the reference's own errors.
REST responses that the collector injects (depth snapshots) are frames of their own,
wrapped by the exchange module, so that replaying a capture gives exactly the records of the live run.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import gzip
import importlib
import os
import queue
import threading
import time
import types
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import orjson

from schemas import RecordBuffer

if TYPE_CHECKING:
    from .base import Normaliser

_gzip_reader: types.ModuleType
try:  # ISA-L's gzip decompresses ~3x faster than zlib; the standard library stays the fallback
    from isal import igzip as _gzip_reader
except ImportError:  # pragma: no cover - isal is a dependency, but has no wheel on every platform
    _gzip_reader = gzip

#: Bytes of (decompressed) capture read at a time: lines are split from these blocks in C.
READ_BLOCK = 1 << 22

#: The compiled splitter (``collectors._capturenative.split_block``; None: the reference
#: :func:`parse_lines` reads every line, as ``TICKTAPE_PURE_PYTHON=1`` asks).
_split_block: Callable[..., tuple[Sequence[CaptureItem], list[int], int, int]] | None
#: Its indexing twin (``collectors._capturenative.index_block``): the same items as a ``FrameBlock``,
#: a sequence that makes a frame's tuple only when asked; the Binance scanner reads its frames in place.
_index_block: Callable[..., tuple[Sequence[CaptureItem], list[int], int, int]] | None
try:
    _native_capture = importlib.import_module(f"{__package__}._capturenative")
    _split_block, _index_block = _native_capture.split_block, _native_capture.index_block
except ImportError:  # not built (make install says why)
    _split_block = _index_block = None
if os.environ.get("TICKTAPE_PURE_PYTHON", "") not in ("", "0"):
    _split_block = _index_block = None

#: How often (in lines) :func:`iter_units` reports progress.
PROGRESS_EVERY_LINES = 8_192

#: Marker returned by :func:`read_capture` for an empty line (a disconnect).
DISCONNECT = None
#: Start of the line recording a connection's subscription.
SUBSCRIPTION_PREFIX = b"# subscription "


@dataclass(frozen=True, slots=True)
class CaptureSubscription:
    """A ``# subscription`` line: the normalised symbols subscribed from here on."""

    line_no: int
    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CaptureError:
    """A line that is not in the capture format (kept so the replay can record it)."""

    line_no: int
    line: bytes
    reason: str


def _open_read(path: Path) -> IO[bytes]:
    raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - returned to the caller
    if path.name.endswith(".gz"):
        return _gzip_reader.GzipFile(fileobj=raw, mode="rb")
    return raw


#: What reading a capture yields: a frame, a bad line, a subscription line (``meta``), a disconnect.
CaptureItem = tuple[int, bytes] | CaptureError | CaptureSubscription | None


def _read_lines(fh: IO[bytes], size: int | None = None) -> Iterator[bytes]:
    """The file's lines without their ``\\n``, split from large blocks (``bytes.split`` runs in C;
    iterating a ``GzipFile`` line by line cost more than parsing the frames)."""
    rest = b""
    read = fh.read
    size = size or READ_BLOCK
    while block := read(size):
        lines = (rest + block).split(b"\n") if rest else block.split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


#: Items per chunk when capture items come from Python (the reference reader, raw archive streams).
CHUNK_ITEMS = 4_096

#: A chunk of capture items and the indices of those that are not ``(ts_recv, frame)`` tuples.
CaptureChunk = tuple[Sequence[CaptureItem], list[int]]


def read_capture(path: str | Path, meta: bool = False, *, block: int | None = None) -> Iterator[CaptureItem]:
    """Yields ``(ts_recv_ns, frame_bytes)`` per frame, ``None`` at a disconnect, ``CaptureError`` for bad lines.

    Frames are returned as bytes exactly as stored (no decoding), so the parser sees the wire text.
    ``#`` lines are skipped unless ``meta`` is set: then ``# subscription`` lines are yielded as
    :class:`CaptureSubscription`. ``block`` (default :data:`READ_BLOCK`) is how many decompressed bytes
    are read at a time: a reader of the first lines only asks for less.
    """
    for items, _specials in read_capture_chunks(path, meta, block=block):
        yield from items


def read_capture_chunks(
    path: str | Path, meta: bool = False, *, block: int | None = None, indexed: bool = False
) -> Iterator[CaptureChunk]:
    """:func:`read_capture`'s items in chunks (one per decompressed block with the compiled splitter).

    With ``indexed`` a chunk's items may be a ``FrameBlock`` (``collectors/_frameblock.h``) instead of a
    list: a sequence of the same items that holds plain frames as places in the block."""
    path = Path(path)
    split = _split_block
    if split is not None and indexed and _index_block is not None:
        split = _index_block
    if split is None:
        with _open_read(path) as fh:
            yield from chunk_items(parse_lines(_read_lines(fh, block), meta))
        return
    fallback = functools.partial(_line_item, meta=meta)
    with _open_read(path) as fh, contextlib.closing(_prefetched_blocks(fh, block)) as blocks:
        rest = b""
        line_no = 1
        for data in blocks:
            start = 0
            if rest:
                # Only the line cut at the last block's end is joined, not the whole block to it
                # (a 4 MiB copy per block, into fresh pages).
                end = data.find(b"\n") + 1
                if not end:
                    rest += data
                    continue
                start = end
                data_of_line = rest + data[:end]
                items, specials, _consumed, lines = split(data_of_line, line_no, meta, False, fallback, _SKIP)
                line_no += lines
                if items:
                    yield items, specials
            view = memoryview(data)[start:]  # an indexed block holds the view for its frames
            items, specials, consumed, lines = split(view, line_no, meta, False, fallback, _SKIP)
            rest = bytes(view[consumed:])
            line_no += lines
            if items:
                yield items, specials
        if rest:
            items, specials, _consumed, _lines = split(rest, line_no, meta, True, fallback, _SKIP)
            if items:
                yield items, specials


def _prefetched_blocks(fh: IO[bytes], size: int | None = None) -> Generator[bytes, None, None]:
    """``fh``'s blocks of :data:`READ_BLOCK` bytes, read (decompressed) by a thread ahead of the caller:
    ISA-L and zlib release the GIL while they decompress (measured: the replay loop of 504k frames 0.21 ->
    0.18 s wall), so reading overlaps the replay. An error of
    the file comes after the blocks read before it, as a plain read loop gives them."""
    size = size or READ_BLOCK
    blocks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def read_ahead() -> None:
        try:
            while not stop.is_set():
                block = fh.read(size)
                blocks.put(block)
                if not block:
                    return
        except BaseException as exc:  # handed to the caller, raised there
            blocks.put(exc)

    reader = threading.Thread(target=read_ahead, name="capture-reader", daemon=True)
    reader.start()
    try:
        while True:
            block = blocks.get()
            if isinstance(block, BaseException):
                raise block
            if not block:
                return
            yield block
    finally:
        # The caller stopped early (or failed): let a reader blocked on the full queue finish.
        stop.set()
        while reader.is_alive():
            try:
                blocks.get(timeout=0.05)
            except queue.Empty:
                pass
        reader.join()


def chunk_items(items: Iterable[CaptureItem]) -> Iterator[CaptureChunk]:
    """Capture items from anywhere in chunks of :data:`CHUNK_ITEMS`. When the source raises, the items
    it gave before are yielded first (as one item at a time would have been)."""
    chunk: list[CaptureItem] = []
    try:
        for item in items:
            chunk.append(item)
            if len(chunk) == CHUNK_ITEMS:
                yield chunk, [k for k, it in enumerate(chunk) if it.__class__ is not tuple]
                chunk = []
    except Exception:
        if chunk:
            yield chunk, [k for k, it in enumerate(chunk) if it.__class__ is not tuple]
        raise
    if chunk:
        yield chunk, [k for k, it in enumerate(chunk) if it.__class__ is not tuple]


def parse_lines(lines: Iterable[bytes], meta: bool = False) -> Iterator[CaptureItem]:
    """:func:`read_capture` over capture lines from anywhere (a file, the raw archive's blobs)."""
    for line_no, line in enumerate(lines, start=1):
        if line.endswith(b"\n"):
            line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            yield DISCONNECT
            continue
        stamp, space, frame = line.partition(b" ")
        if space and len(stamp) < 20 and stamp.isdigit():  # the plain line, as the C splitter reads it
            yield int(stamp), frame
            continue
        item = _line_item(line_no, line, meta)
        if item is not _SKIP:
            yield item  # type: ignore[misc]  # not _SKIP: an item


#: What :func:`_line_item` returns for a line that gives no item (a ``#`` line not asked for).
_SKIP = object()


def _line_item(line_no: int, line: bytes, meta: bool) -> CaptureItem | object:
    """The item of one non-empty capture line (without its line end), or :data:`_SKIP`. The reference
    for every line; the compiled splitter calls it for every line other than ``<digits> <frame>``."""
    if line[:1] == b"#":
        if meta and line.startswith(SUBSCRIPTION_PREFIX):
            return _subscription(line_no, line)
        return _SKIP
    stamp, space, frame = line.partition(b" ")
    if not space or not stamp:
        return CaptureError(line_no, line, "no space between receive time and frame")
    try:
        ts_recv = int(stamp)
    except ValueError:
        return CaptureError(line_no, line, "receive time is not an integer")
    return ts_recv, frame


def _subscription(line_no: int, line: bytes) -> CaptureSubscription | CaptureError:
    try:
        symbols = orjson.loads(line[len(SUBSCRIPTION_PREFIX) :])["symbols"]
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise TypeError("symbols is not a list of strings")
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        return CaptureError(line_no, line, f"bad subscription line: {exc}")
    return CaptureSubscription(line_no, tuple(symbols))


def merge_captures(parts: Iterable[str | Path], path: str | Path) -> None:
    """Writes one uncompressed capture of several connections' captures (benchmarks and fuzzing,
    which replay one file through one normaliser): a ``# subscription`` line with every part's
    symbols, then every frame in receive-time order (a stable sort), then one disconnect line.
    Disconnects inside the parts are dropped: use it on captures without reconnects."""
    symbols: set[str] = set()
    frames: list[tuple[int, bytes]] = []
    for part in parts:
        for item in read_capture(part, meta=True):
            if isinstance(item, CaptureSubscription):
                symbols.update(item.symbols)
            elif isinstance(item, tuple):
                frames.append(item)
    frames.sort(key=lambda frame: frame[0])
    with open(path, "wb") as fh:
        if symbols:
            fh.write(SUBSCRIPTION_PREFIX + orjson.dumps({"symbols": sorted(symbols)}) + b"\n")
        for ts_recv, frame in frames:
            fh.write(b"%d %s\n" % (ts_recv, frame))
        fh.write(b"\n")


class CaptureWriter:
    """Appends frames to a capture file (gzip when the name ends in ``.gz``).

    Frames containing a newline cannot be stored in the line format; websocket JSON frames never do,
    but a hostile frame could, so newlines are escaped as the two characters ``\\n`` (JSON-equivalent).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        raw = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        self._raw = raw
        self._fh: IO[bytes] = (
            gzip.GzipFile(fileobj=raw, mode="ab") if self.path.name.endswith(".gz") else raw  # type: ignore[assignment]
        )
        self.frames = 0

    def write_frame(self, ts_recv: int, frame: str | bytes) -> None:
        """Stores one frame with its receive time."""
        data = frame.encode("utf-8", "surrogateescape") if isinstance(frame, str) else frame
        if b"\n" in data or b"\r" in data:
            data = data.replace(b"\r", b"\\r").replace(b"\n", b"\\n")
        self._fh.write(b"%d %s\n" % (ts_recv, data))
        self.frames += 1

    def write_subscription(self, symbols: Iterable[str]) -> None:
        """Records the normalised symbols subscribed from here on (a ``# subscription`` line)."""
        self._fh.write(SUBSCRIPTION_PREFIX + orjson.dumps({"symbols": sorted(symbols)}) + b"\n")

    def write_disconnect(self) -> None:
        """Marks a disconnect (an empty line)."""
        self._fh.write(b"\n")

    def flush(self, fsync: bool = False) -> None:
        """Flushes buffered frames (and fsyncs the file when asked)."""
        self._fh.flush()
        if self._fh is not self._raw:
            self._raw.flush()
        if fsync:
            os.fsync(self._raw.fileno())

    def close(self) -> None:
        """Flushes and closes the file."""
        self._fh.close()
        if self._fh is not self._raw:
            self._raw.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class ReplayStats:
    """What a replay read and produced."""

    lines: int = 0
    frames: int = 0
    disconnects: int = 0
    capture_errors: int = 0
    parse_errors: int = 0
    skipped_lines: int = 0
    rows: dict[str, int] = field(default_factory=lambda: collections.Counter())
    files: int = 0
    bytes: int = 0
    units: int = 0
    started: float = field(default_factory=time.monotonic)
    elapsed_s: float = 0.0


def iter_units(
    path: str | Path | Iterable[CaptureItem],
    normaliser: Normaliser,
    stats: ReplayStats,
    *,
    unit_lines: int,
    unit_rows: int,
    start_after: int = 0,
    progress: Callable[[ReplayStats], None] | None = None,
    new_buffer: Callable[[], RecordBuffer] = RecordBuffer,
) -> Iterator[tuple[int, int, RecordBuffer]]:
    """Normalises a capture and yields ``(first line, last line, records)`` per unit.

    ``new_buffer`` makes the unit's record buffer (``collectors.base.new_record_buffer`` where the
    records become Arrow batches: rows held as columns).

    Unit boundaries depend only on the file (every ``unit_lines`` lines, or earlier once ``unit_rows``
    rows are waiting), so a resumed replay cuts where the first one did. Lines up to ``start_after``
    are still normalised (book state depends on them) but their records are discarded. ``path`` may
    also be parsed capture items (:func:`parse_lines`: the raw archive, ``storage/raw.py``).
    """
    on_frame = normaliser.on_frame
    on_frames = normaliser.on_frames
    buf = new_buffer()
    unit_first = 1
    line = 0
    frames = 0
    last_ts: int | None = None
    early_errors: list[CaptureError] = []
    chunks = (
        read_capture_chunks(path, meta=True, indexed=True)
        if isinstance(path, str | Path)
        else chunk_items(path)
    )
    for items, specials in chunks:
        # Runs of frames go through a tight loop; a run ends before every item that is not a frame
        # and at every line where the per-line checks below could act (a multiple of 64, the unit's
        # last line, start_after), so the checks see exactly the lines they would one by one.
        n = len(items)
        specials.append(n)
        next_special = specials[0]
        si = 0
        i = 0
        while i < n:
            if i < next_special and not early_errors:
                stop = ((line >> 6) + 1) << 6
                if unit_first + unit_lines - 1 < stop:
                    stop = unit_first + unit_lines - 1
                if line < start_after < stop:
                    stop = start_after
                if stop <= line:  # unit_lines < 1: every line is a unit of its own
                    stop = line + 1
                j = min(next_special, i + stop - line)
                on_frames(items, i, j, buf)  # no specials in items[i:j]
                last_ts = items[j - 1][0]  # type: ignore[index]
                frames += j - i
                line += j - i
                i = j
            else:
                item = items[i]
                i += 1
                line += 1
                if i > next_special:
                    si += 1
                    next_special = specials[si]
                if item.__class__ is tuple:
                    ts, frame = item
                    for err in early_errors:
                        normaliser.parse_error(buf, ts, err.line, f"capture line {err.line_no}: {err.reason}")
                    early_errors.clear()
                    last_ts = ts
                    frames += 1
                    on_frame(ts, frame, buf)
                elif item.__class__ is CaptureSubscription:
                    normaliser.subscribe(item.symbols)
                elif item is None:
                    stats.disconnects += 1
                    if last_ts is not None:  # before the first frame there is no state to reset
                        normaliser.on_disconnect(last_ts, buf)
                else:
                    assert isinstance(item, CaptureError)
                    stats.capture_errors += 1
                    if last_ts is None:
                        # Nothing to date it by yet: recorded with the first frame's receive time.
                        early_errors.append(item)
                    else:
                        normaliser.parse_error(
                            buf, last_ts, item.line, f"capture line {item.line_no}: {item.reason}"
                        )
            if line == start_after:
                buf.clear()
                unit_first = line + 1
            elif line - unit_first + 1 >= unit_lines or (not line & 63 and len(buf) >= unit_rows):
                if line > start_after:
                    stats.lines, stats.frames = line, frames
                    yield unit_first, line, buf.take()
                else:
                    buf.clear()
                unit_first = line + 1
            if progress is not None and not line % PROGRESS_EVERY_LINES:
                stats.lines, stats.frames = line, frames
                progress(stats)
    if early_errors:
        # A file without a single frame: the errors are dated 0 (the epoch), which is honest.
        for err in early_errors:
            normaliser.parse_error(buf, 0, err.line, f"capture line {err.line_no}: {err.reason}")
    stats.lines, stats.frames = line, frames
    stats.skipped_lines = min(start_after, line)
    if unit_first <= line and line > start_after:
        yield unit_first, line, buf


def replay_capture(normaliser: Normaliser, path: str | Path | Iterable[CaptureItem]) -> RecordBuffer:
    """Every record a replay of the whole capture file through ``normaliser`` produces, in one buffer."""
    out = RecordBuffer()
    for _first, _last, buf in iter_units(
        path, normaliser, ReplayStats(), unit_lines=1 << 62, unit_rows=1 << 62
    ):
        out.extend(buf)
    return out

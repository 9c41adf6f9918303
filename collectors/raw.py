"""The raw archive (issue 17): every frame a connection receives, published as ``raw`` records.

A collector with ``[collect] raw = true`` keeps, per connection, a buffer of capture-format lines
(``<ts_recv ns> <frame>\\n``, an empty line at a disconnect: DESIGN.md, "Raw capture format") exactly
as :class:`~collectors.capture.CaptureWriter` would write them. The per-frame cost is one
``bytearray`` append. A batch closes when it holds :attr:`RawSettings.batch_bytes` uncompressed
bytes, when its first frame is :attr:`RawSettings.batch_s` old (checked at each frame and at every
watchdog tick), at every disconnect and when the connection stops; it is then compressed (one
standard zstd frame, :data:`RAW_ZSTD_LEVEL`) into one ``raw`` row (``schemas/raw.avsc``).

A ``stream`` is one connection of one collector process (``<connection name>@<collector start ns>``):
it has one normaliser, so a replay runs one normaliser per stream and concatenates its batches in
``seq`` order (:func:`iter_batch_lines`, ``storage/raw.py``).

Reading the blob without ticktape: ``zstandard.ZstdDecompressor().decompress(data)`` (the frame
carries its content size), or ``pyarrow.decompress(data, size, codec="zstd")``; ``gzip`` rows
(``compression = "gzip"``) with the standard library. Documentation followed: the zstd frame format,
RFC 8878 section 3.1.1 (https://www.rfc-editor.org/rfc/rfc8878, checked 2026-12-05).
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pyarrow as pa

#: zstd level of raw blobs: on the binance sample level 1 compressed 8.5x at ~680 MB/s, level 3
#: 7.5x at ~500 MB/s, gzip -1 5.7x at ~220 MB/s (measured 2026-12-05, bench/RESULTS.md "Raw archive").
RAW_ZSTD_LEVEL = 1
#: Compression written by collectors (readers also accept "gzip").
RAW_COMPRESSION = "zstd"
#: Days of raw archive the lake keeps by default (``[lake] raw_retention_days``; ``ticktape compact``
#: deletes older raw days; per exchange: ``[lake] raw_retention``).
RAW_RETENTION_DAYS = 30
#: Largest compressed blob in one row: a value stays below Kafka's 900 kB message cap
#: (``max_message_bytes``) and Kinesis' 1 MiB record; a larger batch is cut in two at a line.
RAW_MAX_BLOB_BYTES = 800_000
#: Index of each field in a ``raw`` row (schema order).
RAW_EXCHANGE, RAW_STREAM, RAW_SEQ, RAW_TS_RECV, RAW_TS_LAST, RAW_FRAMES, RAW_SIZE = range(7)
RAW_COMPRESSION_FIELD, RAW_PARSER, RAW_DATA = 7, 8, 9


@dataclass(frozen=True)
class RawSettings:
    """When a raw batch closes (every field has a key in ``[collect]``: ``raw_batch_bytes``,
    ``raw_batch_s``)."""

    #: uncompressed capture bytes per batch (compressed, a batch stays far below Kafka's 900 kB cap)
    batch_bytes: int = 256 * 1024
    #: the longest a frame waits in a batch (seconds)
    batch_s: float = 1.0


@cache
def _codec() -> pa.Codec:
    return pa.Codec(RAW_COMPRESSION, RAW_ZSTD_LEVEL)


def compress(data: bytes | bytearray) -> bytes:
    """One standard zstd frame of ``data``."""
    out: bytes = _codec().compress(data, asbytes=True)
    return out


def decompress(compression: str, data: bytes, size: int) -> bytes:
    """The capture lines of one raw row; ``ValueError`` for an unknown compression or a damaged blob."""
    try:
        if compression == "zstd":
            out: bytes = pa.Codec("zstd").decompress(data, decompressed_size=size, asbytes=True)
        elif compression == "gzip":
            out = gzip.decompress(data)
        else:
            raise ValueError(f"unknown raw compression {compression!r}")
    except (OSError, pa.ArrowException, EOFError) as exc:
        raise ValueError(f"damaged raw blob ({compression}): {exc}") from None
    if len(out) != size:
        raise ValueError(f"raw blob holds {len(out)} bytes, its row says {size}")
    return out


@cache
def ticktape_version() -> str:
    """The installed ticktape version."""
    from importlib import metadata  # ~15 ms to import: only commands that stamp a version pay it

    try:
        return metadata.version("ticktape")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@cache
def parser_version(normaliser_class: type) -> str:
    """``<ticktape version>+<12 hex of SHA-256>`` over the source of every module in the normaliser
    class's ancestry (the venue module, ``collectors/base.py`` ...): any change to the code that
    turns frames into records changes it."""
    h = hashlib.sha256()
    seen: set[str] = set()
    for klass in normaliser_class.__mro__:
        module = sys.modules.get(klass.__module__)
        if module is None or klass.__module__ in seen or klass.__module__ == "builtins":
            continue
        seen.add(klass.__module__)
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            source = klass.__qualname__
        h.update(klass.__module__.encode() + b"\0" + source.encode() + b"\0")
    return f"{ticktape_version()}+{h.hexdigest()[:12]}"


class RawRecorder:
    """One connection's raw batches: :meth:`frame` per received frame, :meth:`disconnect` at each
    disconnect; a closed batch comes back from :meth:`frame`/:meth:`due`/:meth:`close` as a row."""

    __slots__ = (
        "_buf",
        "_first",
        "_frames",
        "_fresh",
        "_last",
        "_seq",
        "exchange",
        "parser",
        "settings",
        "stream",
    )

    def __init__(self, exchange: str, stream: str, parser: str, settings: RawSettings) -> None:
        self.exchange = exchange
        self.stream = stream
        self.parser = parser
        self.settings = settings
        self._buf = bytearray()
        self._first = 0
        self._last = 0
        self._frames = 0  # frames of the open batch
        self._seq = 0
        self._fresh = False  # frames since the last disconnect marker

    def frame(self, ts_recv: int, frame: str | bytes) -> list[tuple[Any, ...]] | None:
        """Appends one frame (as :class:`~collectors.capture.CaptureWriter` writes it); returns the
        batch's rows when this frame closed it."""
        data = frame.encode("utf-8", "surrogateescape") if isinstance(frame, str) else frame
        if b"\n" in data or b"\r" in data:
            data = data.replace(b"\r", b"\\r").replace(b"\n", b"\\n")
        buf = self._buf
        if not buf:
            self._first = ts_recv
        buf += b"%d %s\n" % (ts_recv, data)
        self._last = ts_recv
        self._frames += 1
        self._fresh = True
        if len(buf) >= self.settings.batch_bytes or ts_recv - self._first >= self.settings.batch_s * 1e9:
            return self._close()
        return None

    def disconnect(self, ts: int) -> list[tuple[Any, ...]] | None:
        """Marks a disconnect and closes the batch (a replay resets this stream's books there)."""
        if not self._fresh:
            return None  # nothing received since the last marker: a marker would reset nothing
        self._fresh = False
        if not self._buf:
            self._first = self._last = ts
        self._buf += b"\n"
        return self._close()

    def due(self, now_ns: int) -> list[tuple[Any, ...]] | None:
        """The batch's rows when its first line is older than ``batch_s`` (a quiet connection)."""
        if self._buf and now_ns - self._first >= self.settings.batch_s * 1e9:
            return self._close()
        return None

    def close(self) -> list[tuple[Any, ...]] | None:
        """The last, partly filled batch, if any."""
        return self._close() if self._buf else None

    def _close(self) -> list[tuple[Any, ...]]:
        data = bytes(self._buf)
        self._buf = bytearray()
        frames, self._frames = self._frames, 0
        blob = compress(data)
        if len(blob) > RAW_MAX_BLOB_BYTES and data.count(b"\n") > 1:
            return self._split(data)
        row = (
            self.exchange,
            self.stream,
            self._seq,
            self._first,
            self._last,
            frames,
            len(data),
            RAW_COMPRESSION,
            self.parser,
            blob,
        )
        self._seq += 1
        return [row]

    def _split(self, data: bytes) -> list[tuple[Any, ...]]:
        """Rows of a batch whose blob is too large for one transport message, cut at line boundaries
        (rare: a batch of huge, poorly compressible frames)."""
        middle = data.rfind(b"\n", 0, len(data) // 2) + 1 or data.find(b"\n") + 1
        rows = []
        for part in (data[:middle], data[middle:]):
            lines = part.split(b"\n")[:-1]
            stamps = [int(line.split(b" ", 1)[0]) for line in lines if line]
            self._buf = bytearray(part)
            self._frames = len(stamps)
            self._first = stamps[0] if stamps else self._last
            self._last = stamps[-1] if stamps else self._last
            rows.extend(self._close())
        return rows


def iter_batch_lines(rows: list[tuple[Any, ...]]) -> Iterator[bytes]:
    """The capture lines (without their newline) of one stream's rows, given in ``seq`` order."""
    for row in rows:
        data = decompress(row[RAW_COMPRESSION_FIELD], row[RAW_DATA], row[RAW_SIZE])
        lines = data.split(b"\n")
        if lines and not lines[-1]:
            lines.pop()  # every batch ends with a newline
        yield from lines

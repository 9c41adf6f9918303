"""Raw capture files: one received frame per line, ``<ts_recv ns> <frame text>``.

An empty line marks a disconnect (book state resets there). Files whose name ends in ``.gz`` are
gzip-compressed. REST responses that the collector injects (depth snapshots) are frames of their own,
wrapped by the exchange module, so that replaying a capture gives exactly the records of the live run.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: Marker returned by :func:`read_capture` for an empty line (a disconnect).
DISCONNECT = None


@dataclass(frozen=True, slots=True)
class CaptureError:
    """A line that is not in the capture format (kept so the replay can record it)."""

    line_no: int
    line: bytes
    reason: str


def _open_read(path: Path) -> IO[bytes]:
    raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - returned to the caller
    if path.name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def read_capture(path: str | Path) -> Iterator[tuple[int, bytes] | CaptureError | None]:
    """Yields ``(ts_recv_ns, frame_bytes)`` per frame, ``None`` at a disconnect, ``CaptureError`` for bad lines.

    Frames are returned as bytes exactly as stored (no decoding), so the parser sees the wire text.
    """
    path = Path(path)
    with _open_read(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.endswith(b"\n"):
                line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                yield DISCONNECT
                continue
            space = line.find(b" ")
            if space <= 0:
                yield CaptureError(line_no, line, "no space between receive time and frame")
                continue
            try:
                ts_recv = int(line[:space])
            except ValueError:
                yield CaptureError(line_no, line, "receive time is not an integer")
                continue
            yield ts_recv, line[space + 1 :]


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

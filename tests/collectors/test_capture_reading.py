"""read_capture: ISA-L's gzip and the standard library read the same items, whatever the block size."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from collectors import capture
from collectors.capture import CaptureError, CaptureWriter, read_capture

BINANCE = (
    Path(__file__).resolve().parents[3] / "shared" / "samples" / "binance" / "ethusdt_20240808.capture.gz"
)

LINES = [
    b'1723161254024619568 {"e":"trade","t":1}',
    b"",  # a disconnect
    b'1723161254024619569 {"a":1}\r',  # CRLF
    b"no-space-here",
    b" 17 {}",  # no receive time before the space
    b"12x {}",
    b'1723161254024619570 {"b":"x y"}',
]
EXPECTED = [
    (1723161254024619568, b'{"e":"trade","t":1}'),
    None,
    (1723161254024619569, b'{"a":1}'),
    CaptureError(4, b"no-space-here", "no space between receive time and frame"),
    CaptureError(5, b" 17 {}", "no space between receive time and frame"),
    CaptureError(6, b"12x {}", "receive time is not an integer"),
    (1723161254024619570, b'{"b":"x y"}'),
]


def _write(path: Path, trailing_newline: bool) -> None:
    body = b"\n".join(LINES) + (b"\n" if trailing_newline else b"")
    half = len(body) // 2
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as fh:  # two gzip members, as a collector appending to a file writes
            fh.write(body[:half])
        with gzip.open(path, "ab") as fh:
            fh.write(body[half:])
    else:
        path.write_bytes(body)


@pytest.mark.parametrize("name", ["c.capture", "c.capture.gz"])
@pytest.mark.parametrize("trailing_newline", [True, False])
@pytest.mark.parametrize("block", [1, 7, 1 << 22])
def test_items_do_not_depend_on_blocks_or_compression(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, trailing_newline: bool, block: int
) -> None:
    monkeypatch.setattr(capture, "READ_BLOCK", block)
    path = tmp_path / name
    _write(path, trailing_newline)
    assert list(read_capture(path)) == EXPECTED


def test_isal_and_zlib_read_the_recording_identically(monkeypatch: pytest.MonkeyPatch) -> None:
    import isal.igzip  # a dependency (pyproject): its absence is a failure, never a skip

    assert capture._gzip_reader is isal.igzip
    fast = list(read_capture(BINANCE))
    monkeypatch.setattr(capture, "_gzip_reader", gzip)
    assert list(read_capture(BINANCE)) == fast
    assert len(fast) > 30_000 and all(item.__class__ is tuple for item in fast)


def test_written_captures_read_back(tmp_path: Path) -> None:
    path = tmp_path / "w.capture.gz"
    with CaptureWriter(path) as w:
        w.write_frame(1, '{"a":1}')
        w.write_disconnect()
        w.write_frame(2, b'{"b":\n2}')
    assert list(read_capture(path)) == [(1, b'{"a":1}'), None, (2, b'{"b":\\n2}')]


def test_a_truncated_gzip_capture_raises_as_before(tmp_path: Path) -> None:
    path = tmp_path / "t.capture.gz"
    _write(path, True)
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(EOFError):
        list(read_capture(path))

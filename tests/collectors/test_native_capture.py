"""The compiled capture splitter (collectors/_capturenative.c) against the reference (parse_lines).

Every recording of ../shared/samples and hostile captures (no space, signs, underscores, huge and
negative receive times, CRLF, empty and ``#`` lines, a 10 MB line, binary garbage, NUL bytes, a
truncated gzip) give identical items (and line numbers in CaptureError), whatever the block size.
``make asan`` runs this file against the AddressSanitizer build of the extension.
The chunked replay loop of ``iter_units`` is held to the one-item-at-a-time loop it replaced. The
splitter's indexing twin (index_block: the items as a FrameBlock, frames held in place) reads every
one of these as the list does.
"""

from __future__ import annotations

import gzip
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors import capture
from collectors.capture import (
    CaptureError,
    CaptureItem,
    CaptureSubscription,
    ReplayStats,
    iter_units,
    read_capture,
)
from collectors.registry import get_dialect
from schemas import RecordBuffer

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"
RECORDINGS = sorted(p for p in SAMPLES.rglob("*") if ".capture" in p.name and p.is_file())
try:  # compared directly, also when TICKTAPE_PURE_PYTHON=1 makes the reference the active reader
    from collectors._capturenative import split_block as NATIVE
except ImportError:  # not built: the test below fails, the comparisons would compare nothing
    NATIVE = None

PROFILE = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _pure_python_env() -> bool:
    return os.environ.get("TICKTAPE_PURE_PYTHON", "") not in ("", "0")


def test_the_compiled_splitter_is_built_and_active() -> None:
    """Without the extension every comparison below would compare the reference with itself."""
    import collectors._capturenative as native

    assert NATIVE is native.split_block
    assert capture._split_block is (None if _pure_python_env() else native.split_block)
    asan = os.environ.get("TICKTAPE_ASAN_BUILD")
    if asan:  # make asan: the sanitized build must be the one loaded
        assert Path(native.__file__).parent.resolve() == Path(asan).resolve()


def _read(
    path: Path, meta: bool, split: Any, block: int, indexed: bool = False
) -> tuple[list[CaptureItem], str | None]:
    """Items (as far as they come) and the error that stopped the reading, if any. ``indexed``: read
    as FrameBlocks (index_block), each checked as a sequence on the way."""
    saved = capture._split_block, capture.READ_BLOCK
    capture._split_block, capture.READ_BLOCK = split, block
    items: list[CaptureItem] = []
    try:
        for chunk, specials in capture.read_capture_chunks(path, meta=meta, indexed=indexed):
            got = list(chunk)
            if indexed and split is not None:
                assert type(chunk).__name__ == "FrameBlock"
                _check_block(chunk, got, specials)
            items.extend(got)
    except Exception as exc:
        return items, f"{type(exc).__name__}: {exc}"
    finally:
        capture._split_block, capture.READ_BLOCK = saved
    return items, None


def _check_block(block: Any, items: list[CaptureItem], specials: list[int]) -> None:
    """A FrameBlock is the sequence of its items: length, indices from either end, slices, specials."""
    n = len(block)
    assert n == len(items)
    assert specials == [i for i, item in enumerate(items) if item.__class__ is not tuple]
    for i in {0, n // 2, n - 1} if n else set():
        assert block[i] == items[i] and block[i - n] == items[i]
    assert block[1:4] == items[1:4] and block[::-2] == items[::-2] and block[n:] == []
    for bad in (n, -n - 1):
        with pytest.raises(IndexError):
            block[bad]
    with pytest.raises(TypeError):
        block["0"]


def _assert_same(path: Path, blocks: tuple[int, ...] = (1 << 22,)) -> list[CaptureItem]:
    reference = _read(path, True, None, 1 << 22)
    for meta in (True, False):
        expected = reference if meta else _read(path, False, None, 1 << 22)
        for block in blocks:
            for indexed in (False, True):
                assert _read(path, meta, NATIVE, block, indexed) == expected, (
                    path.name,
                    meta,
                    block,
                    indexed,
                )
    return reference[0]


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_recording_reads_identically(path: Path) -> None:
    items = _assert_same(path, blocks=(4_093, 1 << 22))
    assert sum(item.__class__ is tuple for item in items) >= 10


HOSTILE = [
    b'1723161254024619568 {"e":"trade","t":1}',
    b"",  # a disconnect
    b'1723161254024619569 {"a":1}\r',  # CRLF
    b"\r",  # CRLF disconnect
    b'17 {"a":1}\r\r',  # only one carriage return is a line end
    b"no-space-here",
    b" 17 {}",  # no receive time before the space
    b"12x {}",
    b"-5 {}",  # negative: Python's int() reads it
    b"+5 {}",
    b"1_000 {}",  # int() accepts underscores
    b"\t12 {}",  # and surrounding whitespace
    b"12\t {}",
    b"9999999999999999999 {}",  # 19 digits: the largest the compiled path reads
    b"18446744073709551616 {}",  # 2**64
    b"123456789012345678901234567890 {}",  # huge
    b"00000000000000000000000000001 {}",  # leading zeros beyond 19 digits
    b"0 {}",
    b"5 ",  # an empty frame
    b"5  two spaces",
    b"# a comment",
    b"#",
    b'# subscription {"symbols": ["BTC-USDT", "ETH-USDT"]}',
    b"# subscription not json",
    b'# subscription {"symbols": [1]}',
    b"# subscriptio",
    b"1\x00 {}",
    b"7 frame with \x00 NUL and \xff\xfe bytes",
    b"\x00\x01\x02\xff",
    "\u0661\u0662 {}".encode(),  # Arabic-Indic digits: not ASCII
    b"8 " + b"x" * 10_000_000,  # a 10 MB frame
    b"9 last",
    b"1" * 5000 + b" {}",  # more digits than int() reads (sys.int_info.str_digits_check_threshold)
]


def _write(path: Path, body: bytes) -> None:
    if path.name.endswith(".gz"):
        half = len(body) // 2
        with gzip.open(path, "wb") as fh:  # two members, as a collector appending to a file writes
            fh.write(body[:half])
        with gzip.open(path, "ab") as fh:
            fh.write(body[half:])
    else:
        path.write_bytes(body)


@pytest.mark.parametrize("name", ["h.capture", "h.capture.gz"])
@pytest.mark.parametrize("trailing_newline", [True, False])
def test_hostile_captures_read_identically(tmp_path: Path, name: str, trailing_newline: bool) -> None:
    path = tmp_path / name
    _write(path, b"\n".join(HOSTILE) + (b"\n" if trailing_newline else b""))
    items = _assert_same(path, blocks=(1 << 16, 1 << 20, 1 << 22))  # small blocks: the next test
    errors = [item for item in items if isinstance(item, CaptureError)]
    assert [e.line_no for e in errors] == [6, 7, 8, 24, 25, 27, 29, 30, 33]
    assert CaptureSubscription(23, ("BTC-USDT", "ETH-USDT")) in items
    assert (-5, b"{}") in items and (1000, b"{}") in items and (2**64, b"{}") in items
    assert (8, b"x" * 10_000_000) in items


def test_short_hostile_lines_at_every_block_size(tmp_path: Path) -> None:
    path = tmp_path / "s.capture"
    small = [line for line in HOSTILE if len(line) < 1000]
    _write(path, b"\n".join(small))
    _assert_same(path, blocks=tuple(range(1, 40)))


@PROFILE
@given(
    st.lists(
        st.sampled_from([b"0", b"1", b"9", b" ", b"#", b"\r", b"\n", b"\x00", b"-", b"_", b"\t", b"{}"])
    ),
    st.integers(min_value=1, max_value=50),
    st.booleans(),
)
def test_random_bytes_read_identically(
    tmp_path_factory: Any, parts: list[bytes], block: int, meta: bool
) -> None:
    path = tmp_path_factory.mktemp("r") / "r.capture"
    path.write_bytes(b"".join(parts))
    expected = _read(path, meta, None, 1 << 22)
    assert _read(path, meta, NATIVE, block) == expected
    assert _read(path, meta, NATIVE, block, indexed=True) == expected


def test_binary_garbage_reads_identically(tmp_path: Path) -> None:
    rng = random.Random(18)
    path = tmp_path / "g.capture"
    path.write_bytes(bytes(rng.randrange(256) for _ in range(200_000)))
    _assert_same(path, blocks=(1_000, 1 << 22))


@pytest.mark.parametrize("cut", [12, 200, 5_000])
def test_a_truncated_gzip_gives_the_same_items_then_the_same_error(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "t.capture.gz"
    body = b"".join(b'%d {"n":%d,"pad":"%s"}\n' % (i, i, b"y" * (i % 97)) for i in range(20_000))
    with gzip.open(path, "wb") as fh:
        fh.write(body)
    path.write_bytes(path.read_bytes()[:-cut])
    for block in (4_096, 1 << 22):
        native = _read(path, True, NATIVE, block)
        assert native == _read(path, True, None, block)
        assert native[1] is not None and native[1].startswith("EOFError")


def test_a_gzip_with_garbage_after_it_gives_the_same_error(tmp_path: Path) -> None:
    path = tmp_path / "j.capture.gz"
    path.write_bytes(gzip.compress(b"1 {}\n2 {}\n") + b"not gzip at all")
    native = _read(path, True, NATIVE, 1 << 22)
    assert native == _read(path, True, None, 1 << 22)
    assert native[1] is not None


# --- the chunked replay loop against the one-item-at-a-time loop it replaced -------------------------


def _reference_units(
    items: list[CaptureItem],
    normaliser: Any,
    stats: ReplayStats,
    *,
    unit_lines: int,
    unit_rows: int,
    start_after: int,
    progress: Any,
) -> Iterator[tuple[int, int, RecordBuffer]]:
    """iter_units as it was before the chunked loop (an oracle kept for this test)."""
    buf = RecordBuffer()
    unit_first, line, frames = 1, 0, 0
    last_ts: int | None = None
    early: list[CaptureError] = []
    for item in items:
        line += 1
        if item.__class__ is tuple:
            ts, frame = item  # type: ignore[misc]
            for err in early:
                normaliser.parse_error(buf, ts, err.line, f"capture line {err.line_no}: {err.reason}")
            early.clear()
            last_ts = ts
            frames += 1
            normaliser.on_frame(ts, frame, buf)
        elif isinstance(item, CaptureSubscription):
            normaliser.subscribe(item.symbols)
        elif item is None:
            stats.disconnects += 1
            if last_ts is not None:
                normaliser.on_disconnect(last_ts, buf)
        else:
            assert isinstance(item, CaptureError)
            stats.capture_errors += 1
            if last_ts is None:
                early.append(item)
            else:
                normaliser.parse_error(buf, last_ts, item.line, f"capture line {item.line_no}: {item.reason}")
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
        if progress is not None and not line % capture.PROGRESS_EVERY_LINES:
            stats.lines, stats.frames = line, frames
            progress(stats)
    for err in early:
        normaliser.parse_error(buf, 0, err.line, f"capture line {err.line_no}: {err.reason}")
    stats.lines, stats.frames = line, frames
    stats.skipped_lines = min(start_after, line)
    if unit_first <= line and line > start_after:
        yield unit_first, line, buf


def _binance_capture(tmp_path: Path) -> Path:
    """The Binance recording with bad lines first (early errors), disconnects, a subscription line and
    bad lines in the middle."""
    lines = (SAMPLES / "binance" / "ethusdt_20240808.capture.gz").read_bytes()
    body = gzip.decompress(lines).split(b"\n")
    body = [
        b"bad first",
        b"x1 y",
        *body[:5000],
        b"",
        b"oops",
        *body[5000:9000],
        b"\r",
        b"",
        b'# subscription {"symbols": ["ETH-USDT"]}',
        b"12",
        *body[9000:20000],
    ]
    path = tmp_path / "b.capture"
    path.write_bytes(b"\n".join(body) + b"\n")
    return path


def _units(
    fn: Any, source: Any, **kw: Any
) -> tuple[list[tuple[int, int, dict[str, list[Any]]]], list[Any], Any]:
    normaliser = get_dialect("binance").new_normaliser()
    stats = ReplayStats()
    seen: list[tuple[int, int]] = []
    units = [
        (first, last, {ds: list(buf.rows(ds)) for ds in ("trades", "book", "bbo", "feed_events")})
        for first, last, buf in fn(
            source, normaliser, stats, progress=lambda s: seen.append((s.lines, s.frames)), **kw
        )
    ]
    stats.started = 0.0
    return units, seen, stats


@pytest.mark.parametrize(
    ("unit_lines", "unit_rows", "start_after"),
    [
        (1 << 62, 1 << 62, 0),
        (1_000, 1 << 62, 0),
        (777, 3_000, 0),
        (1_000, 500, 2_500),
        (1, 1, 5),
        (1 << 62, 1 << 62, 40_000),
        (0, 1 << 62, 0),
    ],
)
def test_chunked_loop_cuts_units_as_the_item_loop(
    tmp_path: Path, unit_lines: int, unit_rows: int, start_after: int
) -> None:
    path = _binance_capture(tmp_path)
    items = list(read_capture(path, meta=True))
    kw = {"unit_lines": unit_lines, "unit_rows": unit_rows, "start_after": start_after}
    expected = _units(_reference_units, items, **kw)
    assert expected[0] or start_after > len(items)
    assert _units(iter_units, path, **kw) == expected
    assert _units(iter_units, iter(items), **kw) == expected  # items from Python (the raw archive)


def test_a_reading_stopped_early_leaves_no_reader_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    path = tmp_path / "long.capture.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"".join(b'%d {"n":%d}\n' % (i, i) for i in range(50_000)))
    monkeypatch.setattr(capture, "READ_BLOCK", 1_000)  # many blocks: the reader is ahead, its queue full
    monkeypatch.setattr(capture, "_split_block", NATIVE)  # the reader thread serves the compiled splitter
    items = read_capture(path)
    assert next(items) == (0, b'{"n":0}')
    assert any(t.name == "capture-reader" for t in threading.enumerate())
    items.close()
    assert not any(t.name == "capture-reader" for t in threading.enumerate())
    assert len(list(read_capture(path))) == 50_000
    assert not any(t.name == "capture-reader" for t in threading.enumerate())

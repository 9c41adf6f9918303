"""Compiled book checksums and JSON depth guard (``collectors._booknative``) against their Python
references (issue 18).

- every shared recording of the checksum venues (OKX, Bitget, Bitfinex; Kraken spot has none in
  ``../shared`` and Bitfinex's carries no checksums, so for those also a capture of their simulator
  written by a real collector) through both
  implementations: every checksum a normaliser computes is computed by both and must be equal, and the
  normalisers' records and books must be identical;
- hypothesis: random books (prices and sizes as arbitrary wire strings: odd lengths, dots and zeros,
  non-ASCII, empty sides) through every rendering the venues use, in every order;
- hypothesis: JSON depth over arbitrary byte soup (brackets and backslashes inside strings, strings
  left open, invalid UTF-8) and over generated JSON values, against the reference and the true depth.

``make asan`` runs this file with the extension built under AddressSanitizer and UBSan.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors import book as engine
from collectors import checksum, events
from collectors.book import ASK, BID, L2Book
from collectors.events import MAX_JSON_DEPTH, ParseError, decode_json, json_too_deep_reference
from collectors.venues import kraken, okx
from collectors.venues.bitfinex import client as bitfinex
from collectors.venues.bitget import client as bitget
from tests.collectors.hostile import real_captures, simulator_capture
from tests.collectors.test_native_book import (
    assert_same_books,
    assert_same_records,
    implementation,
    items_of,
    replay_both,
)

PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

#: Each venue module that computes checksums, by exchange id.
VENUE_MODULES: dict[str, Any] = {
    "okx": okx,
    "bitget": bitget,
    "bitget-futures": bitget,
    "bitfinex": bitfinex,
    "kraken": kraken,
}


def test_the_compiled_functions_are_built() -> None:
    assert engine.NATIVE_ERROR is None, engine.NATIVE_ERROR
    assert callable(engine._booknative.book_crc32) and callable(engine._booknative.json_too_deep)
    with implementation("native"):
        assert events._native_too_deep is engine._booknative.json_too_deep
    with implementation("python"):
        assert events._native_too_deep is None


# -- recordings ---------------------------------------------------------------------------------------


@contextmanager
def both_checksums(module: Any) -> Iterator[list[int]]:
    """Every ``book_crc32`` call of ``module`` computed by the reference as well (must be equal);
    yields [calls, calls served by the compiled code]."""
    real = module.book_crc32
    counts = [0, 0]

    def spy(book: L2Book, depth: int, level_text: Callable[[str, str], str], **kw: Any) -> int:
        got = real(book, depth, level_text, **kw)
        ref = checksum.book_crc32_reference(book, depth, level_text, **kw)
        assert got == ref, f"checksum {got} (book_crc32) != {ref} (reference), native book: {book.native}"
        counts[0] += 1
        counts[1] += bool(book.native)
        return int(got)

    module.book_crc32 = spy
    try:
        yield counts
    finally:
        module.book_crc32 = real


def captures_of(exchange: str, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The venue's recordings; kraken (none in ../shared) and bitfinex (its recording was made without
    the checksum flag) also get a capture of their simulator, which sends checksums."""
    if exchange not in ("kraken", "bitfinex"):
        return real_captures(exchange)
    return [
        *real_captures(exchange),
        simulator_capture(exchange, tmp_path_factory.mktemp(f"sim-{exchange}"), 3.0),
    ]


@pytest.mark.parametrize("exchange", sorted(VENUE_MODULES))
def test_recordings_give_equal_checksums_records_and_books(
    exchange: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    paths = captures_of(exchange, tmp_path_factory)
    if exchange != "bitget-futures":
        assert paths, f"{exchange}: no recording"
    calls = [0, 0]
    for path in paths:
        items = items_of(path, None)
        with both_checksums(VENUE_MODULES[exchange]) as counts:
            n_py, out_py, n_c, out_c = replay_both(exchange, items)
        context = f"{exchange} <- {path.name}"
        assert_same_records(out_py, out_c, context)
        assert n_py.parse_errors == n_c.parse_errors, context
        assert_same_books(n_py, n_c, context)
        calls = [calls[0] + counts[0], calls[1] + counts[1]]
        for name in ("checksums_verified", "checksum_failures", "checksums_padded"):
            assert getattr(n_py, name, None) == getattr(n_c, name, None), f"{context}: {name}"
    if exchange != "bitget-futures" or paths:  # every capture here carries checksums that are verified
        assert calls[1] > 50, f"{exchange}: only {calls} checksums computed by the compiled code"
    assert calls[1] * 2 == calls[0], f"{exchange}: {calls}: half the calls are on the native books"


# -- random books ---------------------------------------------------------------------------------------

WIRE_TEXT = st.one_of(
    st.from_regex(r"\A0*[0-9]{0,9}(\.[0-9]{0,12})?\Z"),
    st.text(alphabet="0.123456789", max_size=14),
    st.text(max_size=8),  # anything, non-ASCII included
    st.text(alphabet="0.é€😀-e", max_size=10),
)
SIDE = st.lists(st.tuples(WIRE_TEXT, WIRE_TEXT), max_size=35)

#: (level_text, ask_text) of each venue's rendering, and the padded ones built per example.
RENDERINGS: list[tuple[Callable[[str, str], str], Callable[[str, str], str] | None]] = [
    (checksum.colon_level, None),
    (checksum.digits_level, None),
    (checksum.colon_level, checksum.colon_negated_level),
    (checksum.colon_level, checksum.colon_level),
    (checksum.digits_level, checksum.digits_level),
]


def make_book(bids: list[tuple[str, str]], asks: list[tuple[str, str]], native: bool) -> L2Book:
    with implementation("native" if native else "python"):
        book = L2Book()
    assert book.native is native
    for side, levels, sign in ((BID, bids, 1.0), (ASK, asks, -1.0)):
        for i, (p, s) in enumerate(levels):
            book.side(side)[1000.0 - sign * i] = (float(i + 1), p, s)
    return book


def outcome(fn: Callable[[], int]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except Exception as exc:  # the reference's error must be the compiled path's error
        return (type(exc).__name__, str(exc))


@PROFILE
@given(
    bids=SIDE,
    asks=SIDE,
    depth=st.integers(-2, 40),
    rendering=st.one_of(
        st.sampled_from(RENDERINGS),
        st.builds(lambda p, q: (checksum.PaddedDigits(p, q), None), st.integers(-3, 14), st.integers(-3, 14)),
    ),
    interleave=st.booleans(),
    separator=st.sampled_from(["", ":", "é", ", "]),
    asks_first=st.booleans(),
)
def test_random_books_give_the_reference_checksum(
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    depth: int,
    rendering: tuple[Callable[[str, str], str], Callable[[str, str], str] | None],
    interleave: bool,
    separator: str,
    asks_first: bool,
) -> None:
    level_text, ask_text = rendering
    kw: dict[str, Any] = {"interleave": interleave, "separator": separator, "asks_first": asks_first}
    if ask_text is not None:
        kw["ask_text"] = ask_text
    native, python = make_book(bids, asks, True), make_book(bids, asks, False)
    with implementation("native"):
        got = outcome(lambda: checksum.book_crc32(native, depth, level_text, **kw))
    ref = outcome(lambda: checksum.book_crc32_reference(python, depth, level_text, **kw))
    assert got == ref
    assert ref == outcome(lambda: checksum.book_crc32_reference(native, depth, level_text, **kw))
    with implementation("python"):
        assert ref == outcome(lambda: checksum.book_crc32(python, depth, level_text, **kw))


def test_odd_levels_run_the_reference() -> None:
    """Strings that do not encode, str subclasses and values that are not tuples: the reference's
    result or error, never another."""

    class Text(str):
        pass

    for value in [
        (1.0, "1.5\ud800", "2"),
        (1.0, Text("1.5"), "2"),
        [1.0, "1.5", "2"],
        (1.0, "1.5", 2),
    ]:
        for native in (True, False):
            book = make_book([("1", "2")], [("3", "4")], native)
            book.side(BID)[999.5] = value
            with implementation("native"):
                for level_text, ask_text in RENDERINGS:
                    got = outcome(partial(checksum.book_crc32, book, 25, level_text, ask_text=ask_text))
                    ref = outcome(
                        partial(checksum.book_crc32_reference, book, 25, level_text, ask_text=ask_text)
                    )
                    assert got == ref, (value, level_text)


def test_known_checksums() -> None:
    """Kraken's documented example rendering and OKX's signed form, through the compiled code."""
    book = make_book([("0.0005", "1.50000000"), ("10", "0.1")], [("0.05005", "0.00000500")], True)
    with implementation("native"):
        text = "5005500" + "5150000000" + "101"  # asks first, then bids; best first
        assert checksum.book_crc32(book, 10, checksum.digits_level) == checksum.zlib.crc32(text.encode())
        interleaved = "0.0005:1.50000000:0.05005:0.00000500:10:0.1"
        assert okx.okx_checksum(book) == checksum.to_signed32(checksum.zlib.crc32(interleaved.encode()))
        negated = "0.0005:1.50000000:0.05005:-0.00000500:10:0.1"
        assert checksum.book_crc32(
            book,
            25,
            checksum.colon_level,
            ask_text=checksum.colon_negated_level,
            interleave=True,
            separator=":",
        ) == checksum.zlib.crc32(negated.encode())
        padded = kraken.padded_checksum(book, 6, 9)
        text = "50050" + "5000" + "500" + "1500000000" + "10000000" + "100000000"
        assert padded == checksum.zlib.crc32(text.encode())


# -- JSON depth -----------------------------------------------------------------------------------------

SOUP = st.lists(
    st.sampled_from(
        [b"[", b"]", b"{", b"}", b'"', b"\\", b"\\\\", b'\\"', b",", b":", b"1", b" ", b"\xff", b"\xc3\xa9"]
    ),
    max_size=120,
).map(b"".join)


def native_too_deep(frame: bytes, limit: int) -> bool:
    return bool(engine._booknative.json_too_deep(frame, limit))


@PROFILE
@given(frame=SOUP, limit=st.integers(0, 12))
def test_depth_of_any_bytes_equals_the_reference(frame: bytes, limit: int) -> None:
    assert native_too_deep(frame, limit) is json_too_deep_reference(frame, limit)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


BRACKETY = st.text(alphabet="[]{}\"\\'é\x00 ab", max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.integers() | BRACKETY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(BRACKETY, inner, max_size=3),
    max_leaves=40,
)


@PROFILE
@given(value=JSON_VALUES, limit=st.integers(0, 10), ascii_only=st.booleans())
def test_depth_of_json_is_exact(value: Any, limit: int, ascii_only: bool) -> None:
    frame = json.dumps(value, ensure_ascii=ascii_only).encode()
    deep = _depth(value) > limit
    assert native_too_deep(frame, limit) is deep
    assert json_too_deep_reference(frame, limit) is deep
    for name in ("native", "python"):
        with implementation(name):
            if deep:
                with pytest.raises(ParseError, match="nested deeper"):
                    decode_json(frame, max_depth=limit)
            else:
                assert decode_json(frame, max_depth=limit) == orjson.loads(frame)


def test_depth_edge_cases() -> None:
    limit = MAX_JSON_DEPTH
    cases = [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":"' + b"[" * 500 + b'"}',
        b'["' + b"\\" * 99 + b'"' + b"[" * 100 + b'"]',  # an escaped quote: the brackets are in the string
        b'["' + b"\\" * 100 + b'"' + b"[" * 100 + b"]" * 100 + b"]",  # an escaped backslash: they are not
        b'"' + b"[" * 100,  # a string left open
        b"]" + b"[" * 100,  # a close before any open: malformed
        b"\xff\xfe" + b"[" * 70,
        b"[1," * 64 + b"]" * 64,
        b"[" * 65,
        b"",
        b"[" + b"[1,2]," * 5000 + b"[3]]",
    ]
    for frame in cases:
        assert native_too_deep(frame, limit) is json_too_deep_reference(frame, limit), frame[:40]
    assert native_too_deep(cases[0], limit) and not native_too_deep(cases[1], limit)
    assert not native_too_deep(cases[2], limit) and native_too_deep(cases[3], limit)
    assert native_too_deep(bytearray(cases[3]), limit) and native_too_deep(memoryview(cases[3]), limit)
    for frame in (cases[4], cases[5], cases[6]):
        for name in ("native", "python"):
            with implementation(name), pytest.raises(ParseError):
                decode_json(frame)

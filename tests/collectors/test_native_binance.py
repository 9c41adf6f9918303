"""The compiled Binance-family frame scanner and time flagger against the Python reference (issue 18).

``collectors._booknative.BinanceScanner`` takes the steady-state frames of ``binance``,
``binance-futures`` and ``binance-delivery`` (depth updates continuing a synced book, trades with new
ids, bookTickers) straight from their bytes; everything else is left to
``BinanceFamilyNormaliser.handle``. ``collectors._booknative.TimeFlags`` is ``TimeFlagger`` in C, the
state both paths move. Differential, everything compared (rows by ``repr`` and type, books, counters,
time-flag state):

- every Binance-family recording of ``../shared/samples`` and a simulator capture (a real collector
  on the simulator), with the scanner on, off, and under the pure-Python reference; with the
  recording's subscription, another one, and none;
- hypothesis: mutated frames (every scalar replaced by odd values and texts, keys reordered, dropped
  or repeated, escapes, whitespace, non-ASCII, truncation, extra keys) and mutated sequences (gaps,
  repeats, disconnects, late snapshots) through warmed normalisers with the scanner on and off;
- hypothesis: timestamp sequences through both flaggers (flags, errors and state after every call).

``make asan`` runs this file with the extension built under AddressSanitizer and UBSan.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors import book as engine
from collectors import capture
from collectors._capturenative import index_block
from collectors.base import Normaliser, TimeFlagger, new_time_flagger
from collectors.capture import CaptureSubscription, ReplayStats, iter_units
from collectors.events import ParseError
from collectors.registry import get_dialect
from collectors.venues.binance import BinanceFamilyNormaliser
from schemas import RecordBuffer
from tests.collectors.hostile import feed, read_items, real_captures, simulator_capture
from tests.collectors.test_native_book import assert_same_books, assert_same_records, books_in

EXCHANGES = ("binance", "binance-futures", "binance-delivery")
#: frames of each recording that warm the normalisers before mutated frames arrive
WARM_FRAMES = 2500
PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

Item = Any


@contextmanager
def scanner(on: bool, implementation: str = "native") -> Iterator[None]:
    """Normalisers made inside use ``implementation`` and have the frame scanner on or off."""
    previous_env = os.environ.get("TICKTAPE_NO_FRAME_SCAN")
    previous = engine.use_implementation(implementation)
    os.environ["TICKTAPE_NO_FRAME_SCAN"] = "" if on else "1"
    try:
        yield
    finally:
        engine.use_implementation(previous)
        if previous_env is None:
            del os.environ["TICKTAPE_NO_FRAME_SCAN"]
        else:
            os.environ["TICKTAPE_NO_FRAME_SCAN"] = previous_env


def make(
    exchange: str, on: bool, implementation: str = "native", symbols: Any = None
) -> BinanceFamilyNormaliser:
    with scanner(on, implementation):
        n = get_dialect(exchange).make_normaliser(symbols)
    assert isinstance(n, BinanceFamilyNormaliser)
    assert (n._scanner is not None) == (on and implementation == "native")
    return n


class Counting:
    """The frames a normaliser's scanner was offered and took (since this was made)."""

    def __init__(self, n: BinanceFamilyNormaliser) -> None:
        self.scanner = n._scanner
        self.start = (self.scanner.offered, self.scanner.taken)

    @property
    def offered(self) -> int:
        return int(self.scanner.offered) - self.start[0]

    @property
    def taken(self) -> int:
        return int(self.scanner.taken) - self.start[1]


def flagger_state(tf: Any) -> tuple[Any, ...]:
    return (
        tf.floor_ns,
        tf.skewed,
        tuple(tf.skew_last),
        list(tf._minima),
        tf._second,
        tf._second_min,
        tf.outdated_cutoff_ns,
        tf.max_skew_ns,
    )


def counters(n: Normaliser) -> dict[str, Any]:
    assert isinstance(n, BinanceFamilyNormaliser)
    return {
        "frames": n.frames,
        "parse_errors": n.parse_errors,
        "unsubscribed_rows": n.unsubscribed_rows,
        "crossed_bbo": n.crossed_bbo,
        "skew_reported": n._skew_reported,
        "snapshot_requests": sorted(n.snapshot_requests),
        "rotation": n.rotation_requested,
        "last_trade_id": dict(n.last_trade_id),
        "awaiting_first": sorted(n.awaiting_first),
        "symbols": dict(n.symbols),
        "time_flags": flagger_state(n.time_flags),
    }


def assert_same(a: Normaliser, out_a: RecordBuffer, b: Normaliser, out_b: RecordBuffer, context: str) -> None:
    assert_same_records(out_a, out_b, context)
    assert_same_books(a, b, context)
    assert counters(a) == counters(b), context


def run(n: Normaliser, items: list[Item]) -> RecordBuffer:
    out = RecordBuffer()
    for buf in feed(n, items):
        out.extend(buf)
    return out


@cache
def recording_items(exchange: str) -> list[Item]:
    items: list[Item] = []
    for path in real_captures(exchange):
        items += [None, *read_items(path)]
    assert items, f"{exchange}: no recording under ../shared/samples"
    return items


# -- built ----------------------------------------------------------------------------------------------


def test_the_scanner_and_the_compiled_flagger_are_built_and_chosen() -> None:
    assert engine.NATIVE_ERROR is None, engine.NATIVE_ERROR
    for exchange in EXCHANGES:
        on = make(exchange, True)
        assert type(on.time_flags).__name__ == "TimeFlags"
        make(exchange, False)
        py = make(exchange, True, "python")
        assert type(py.time_flags) is TimeFlagger
    asan = os.environ.get("TICKTAPE_ASAN_BUILD")
    if asan:  # make asan: the sanitized build must be the one loaded
        assert Path(engine._booknative.__file__).parent.resolve() == Path(asan).resolve()


# -- recordings and the simulator ------------------------------------------------------------------------


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_scan_recordings_identical_to_the_reference(exchange: str) -> None:
    """Every recording of the exchange: scanner on == scanner off == pure Python, and the scanner takes
    nearly every frame (only snapshots and the events buffered around them fall back)."""
    items = recording_items(exchange)
    on, off, py = make(exchange, True), make(exchange, False), make(exchange, True, "python")
    count = Counting(on)
    out_on, out_off, out_py = run(on, items), run(off, items), run(py, items)
    assert_same(off, out_off, on, out_on, f"{exchange}: scanner off vs on")
    assert_same(py, out_py, on, out_on, f"{exchange}: pure Python vs scanner")
    assert len(out_on.book) > 10_000 and out_on.trades and out_on.bbo
    assert count.taken >= count.offered - 50, (count.taken, count.offered)
    assert books_in(on)


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_scan_subscriptions_drop_the_same_rows(exchange: str) -> None:
    """With the recording's subscription, with another symbol's (every row dropped, counted, evented)."""
    items = [i for i in recording_items(exchange) if i is not None][:4000]
    symbol = make(exchange, False).normalise(orjson.loads(items[-1][1])["data"]["s"])
    for subscription in ((symbol,), ("ZZZ-USDT",)):
        sub = [CaptureSubscription(0, subscription), *items]
        on, off = make(exchange, True), make(exchange, False)
        out_on, out_off = run(on, sub), run(off, sub)
        assert_same(off, out_off, on, out_on, f"{exchange} subscribed {subscription}")
        if subscription != (symbol,):
            assert not out_on.book and not out_on.trades and on.unsubscribed_rows > 1000


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_scan_simulator_frames_identical(exchange: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    items = read_items(simulator_capture(exchange, tmp_path_factory.mktemp(f"sim-{exchange}")))
    on, off, py = make(exchange, True), make(exchange, False), make(exchange, True, "python")
    count = Counting(on)
    out_on, out_off, out_py = run(on, items), run(off, items), run(py, items)
    assert_same(off, out_off, on, out_on, f"{exchange} simulator: off vs on")
    assert_same(py, out_py, on, out_on, f"{exchange} simulator: python vs on")
    assert out_on.book and out_on.trades and out_on.bbo
    assert count.taken > count.offered // 2, (count.taken, count.offered)


# -- mutated frames ----------------------------------------------------------------------------------------

#: JSON texts put in place of one value (valid or not, plain or not)
ODD_TEXTS = [
    b'"1e2"',
    b'" 1"',
    b'"1 "',
    b'"1_0"',
    b'"+1"',
    b'"-1"',
    b'"-0"',
    b'"0"',
    b'"0.0"',
    b'"00.1"',
    b'".5"',
    b'"1."',
    b'"."',
    b'""',
    b'"\\u0031"',
    b'"\xef\xbc\x91"',
    b'"\xff"',
    b'"nan"',
    b'"inf"',
    b'"9999999999999999999999999999.5"',
    b'"0.000000000000000000000000001"',
    b'"123456789012345678901234567890"',
    b'"1000000000000"',
    b'"999999999999999"',
    b'"4.35"',
    b'"0.30000000000000004"',
    b"1",
    b"1.5",
    b"-0",
    b"0",
    b"-1",
    b"01",
    b"1e3",
    b"1E-3",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775808",
    b"18446744073709551616",
    b"999999999999999999",
    b"1000000000000000000",
    b"true",
    b"false",
    b"null",
    b"[]",
    b"{}",
    b'["1","2"]',
    b'[["1","2","3"]]',
    b'[["1"]]',
    b"[[1,2]]",
    b'[["1","2"],["x","1"]]',
    b'{"a":[1,{"b":null}]}',
    b'"serverShutdown"',
    b'"MARKET"',
    b'"INSURANCE_FUND"',
    b'"ETHUSDT"',
    b'"ETHUSD_PERP"',
    b'"BTCUSDT"',
]


def _value_span(frame: bytes, key: bytes) -> tuple[int, int] | None:
    """Start and end of the value of ``"key":`` in a compact frame (scalars and flat arrays)."""
    at = frame.find(b'"' + key + b'":')
    if at < 0:
        return None
    start = at + len(key) + 3
    depth, i, in_str = 0, start, False
    while i < len(frame):
        ch = frame[i : i + 1]
        if in_str:
            if ch == b"\\":
                i += 1
            elif ch == b'"':
                in_str = False
                if depth == 0:
                    return start, i + 1
        elif ch == b'"':
            in_str = True
        elif ch in b"[{":
            depth += 1
        elif ch in b"]}":
            if depth == 0:
                return start, i
            depth -= 1
            if depth == 0:
                return start, i + 1
        elif ch == b"," and depth == 0:
            return start, i
        i += 1
    return None


KEYS = [b"e", b"E", b"s", b"t", b"p", b"q", b"T", b"m", b"M", b"X", b"U", b"u", b"pu", b"b", b"a", b"B", b"A"]
KEYS += [b"stream", b"data"]


def _reorder(frame: bytes, rnd: random.Random) -> bytes:
    """Keys in another order; a depth update's levels reversed or shuffled (venues list them in price
    order, which the scanner's level search starts from, but must not rely on)."""
    msg = orjson.loads(frame)
    data = msg.get("data")
    if isinstance(data, dict):
        for side in ("b", "a"):
            levels = data.get(side)
            if isinstance(levels, list) and rnd.random() < 0.5:
                if rnd.random() < 0.5:
                    levels.reverse()
                else:
                    rnd.shuffle(levels)
    if isinstance(data, dict) and rnd.random() < 0.8:
        items = list(data.items())
        rnd.shuffle(items)
        msg["data"] = dict(items)
    if rnd.random() < 0.3:
        msg = dict(reversed(list(msg.items())))
    return orjson.dumps(msg)


@st.composite
def mutated_frame(draw: st.DrawFn, frames: list[bytes]) -> bytes:
    frame = draw(st.sampled_from(frames))
    how = draw(
        st.sampled_from(
            [
                "value",
                "value",
                "value",
                "reorder",
                "drop",
                "repeat",
                "escape",
                "space",
                "truncate",
                "extra",
                "byte",
            ]
        )
    )
    rnd = random.Random(draw(st.integers(0, 2**32)))
    if how == "value":
        for _ in range(draw(st.integers(1, 2))):
            span = _value_span(frame, draw(st.sampled_from(KEYS)))
            if span is not None:
                frame = frame[: span[0]] + draw(st.sampled_from(ODD_TEXTS)) + frame[span[1] :]
        return frame
    if how == "reorder":
        try:
            return _reorder(frame, rnd)
        except orjson.JSONDecodeError:
            return frame
    if how == "drop":
        key = draw(st.sampled_from(KEYS))
        at = frame.find(b'"' + key + b'":')
        span = _value_span(frame, key)
        if at < 0 or span is None:
            return frame
        end = span[1] + (1 if frame[span[1] : span[1] + 1] == b"," else 0)
        return frame[:at] + frame[end:]
    if how == "repeat":  # a key twice (orjson keeps the last)
        key = draw(st.sampled_from(KEYS[:-2]))
        at = frame.find(b'"data":{')
        value = draw(st.sampled_from(ODD_TEXTS))
        if at < 0:
            return frame
        at += len(b'"data":{')
        return frame[:at] + b'"' + key + b'":' + value + b"," + frame[at:]
    if how == "escape":  # one character of a string as a \u escape
        quotes = [i for i in range(len(frame)) if frame[i : i + 1] == b'"']
        if len(quotes) < 2:
            return frame
        i = rnd.choice(quotes[:-1]) + 1
        if frame[i : i + 1] in (b'"', b"\\", b""):
            return frame
        return frame[:i] + f"\\u{frame[i]:04x}".encode() + frame[i + 1 :]
    if how == "space":  # valid JSON whitespace between tokens
        out = bytearray()
        in_str = False
        for ch in frame:
            out.append(ch)
            if ch == 34:
                in_str = not in_str
            if not in_str and ch in b",:[]{}" and rnd.random() < 0.3:
                out += rnd.choice([b" ", b"\n", b"\t", b"\r\n", b"  "])
        return bytes(out)
    if how == "truncate":
        return frame[: draw(st.integers(0, max(0, len(frame) - 1)))]
    if how == "extra":
        extra = draw(
            st.sampled_from([b'"generated":true', b'"e":"serverShutdown"', b'"result":null', b'"x":[1]'])
        )
        if rnd.random() < 0.5:
            return b"{" + extra + b"," + frame[1:]
        at = frame.find(b'"data":{')
        if at < 0:
            return frame
        at += len(b'"data":{')
        return frame[:at] + extra + b"," + frame[at:]
    cut = draw(st.integers(0, len(frame) - 1))
    return frame[:cut] + bytes([draw(st.integers(0, 255))]) + frame[cut + 1 :]


def _shift_ids(frame: bytes, by: int) -> bytes:
    """A depth frame with its update ids moved (a gap, or an overlap when negative)."""
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return frame
    data = msg.get("data") if isinstance(msg, dict) else None
    if not isinstance(data, dict):
        return frame
    for key in ("U", "u", "pu"):
        if isinstance(data.get(key), int):
            data[key] += by
    return orjson.dumps(msg)


def warmed(
    exchange: str, keep: Callable[[bytes], bool]
) -> tuple[BinanceFamilyNormaliser, BinanceFamilyNormaliser, list[Item], Counting]:
    """Normalisers with the scanner on and off, warmed alike on the recording's first frames; the later
    frames ``keep`` takes; and a count of the frames the scanner takes from now on."""
    items = [i for i in recording_items(exchange) if i is not None]
    warm = items[:WARM_FRAMES]
    rest = [i for i in items[WARM_FRAMES:] if isinstance(i, tuple) and keep(i[1])]
    on, off = make(exchange, True), make(exchange, False)
    assert_same(off, run(off, warm), on, run(on, warm), f"{exchange} warm-up")
    return on, off, rest, Counting(on)


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_scan_mutated_frames_and_sequences_identical(exchange: str) -> None:
    items = [i for i in recording_items(exchange) if i is not None]
    frames = [i[1] for i in items if isinstance(i, tuple)]
    snapshots = [i for i in items if isinstance(i, tuple) and b"depthSnapshot" in i[1]]
    on, off, rest, count = warmed(exchange, lambda frame: True)
    pos = [0]

    @PROFILE
    @given(
        st.lists(mutated_frame(frames), min_size=0, max_size=3),
        st.sampled_from(["none", "none", "gap", "overlap", "repeat", "disconnect", "snapshot", "skew"]),
        st.integers(1, 6),
    )
    def check(bad: list[bytes], sequence: str, steps: int) -> None:
        start = pos[0] % max(1, len(rest) - 10)
        pos[0] += steps
        clean = rest[start : start + steps]
        ts = clean[0][0] if clean else 1
        seq: list[Item] = [(ts, f) for f in bad] + list(clean)
        if sequence == "gap" and clean:
            seq = [(ts, _shift_ids(clean[0][1], 5)), *clean[1:]]
        elif sequence == "overlap" and clean:
            seq = [(ts, _shift_ids(clean[0][1], -3)), *clean]
        elif sequence == "repeat":
            seq = seq + seq
        elif sequence == "disconnect":
            seq = [*seq, None, *snapshots[:1], *clean]
        elif sequence == "snapshot":
            seq = [*snapshots[:1], *seq]
        elif sequence == "skew":
            seq = [(t + 2 * 86_400 * 10**9, f) for t, f in seq]
        feed_both(off, on, seq, f"{exchange} {sequence} {bad!r}"[:3000])

    check()
    assert count.taken > 100, (count.taken, count.offered)


#: decimal texts for level sizes (below the size limit, so that the updates stay the scanner's): it reads
#: a decimal exactly when it has at most 19 digits and they make at most 2**53, else with float()'s own
#: routine; either must give float()'s value
_DECIMAL_TEXT = st.one_of(
    st.from_regex(r"\A[0-9]{1,3}\.[0-9]{0,12}\Z"),
    st.from_regex(r"\A0\.0{0,14}[1-9][0-9]{0,8}\Z"),
    st.from_regex(r"\A[0-9]{1,3}\.[0-9]{14,24}\Z"),
    st.from_regex(r"\A0{10,20}[1-9][0-9]{0,2}\Z"),
    st.sampled_from(
        [
            "0.9007199254740992",
            "0.9007199254740993",
            "900.7199254740991",
            "0.1234567890123456789",
            "0.12345678901234567890",
            "0.00000000000000000000001",
            "1.",
            ".5",
            "00012.5000",
            "0.1" + "0" * 30,
        ]
    ),
)


def _other_text(text: str) -> str:
    """The same decimal value written differently (one more trailing zero)."""
    return text + "0" if "." in text else text + ".0"


_EDITS = ("keep", "size_text", "price_text", "size", "zero", "twice", "twice_size", "twice_price")


def level_edits(levels: list[list[str]], edits: list[str], texts: list[str]) -> list[list[str]]:
    """The levels of one depth update, edited (level k by ``edits[k % len(edits)]``): kept, the same value
    in another text, a new size, a removal, repeated within the update (unchanged the second time, or
    equal in another text); and a new level next to the first when there is an odd number of edits."""
    out: list[list[str]] = []
    for k, (price, size) in enumerate(levels):
        how = edits[k % len(edits)]
        if how == "size_text":
            out.append([price, _other_text(size)])
        elif how == "price_text":
            out.append([_other_text(price), size])
        elif how == "size":
            out.append([price, texts[k % len(texts)]])
        elif how == "zero":
            out.append([price, "0.00000000"])
        elif how == "twice":  # the second is an unchanged level
            out += [[price, size], [price, size]]
        elif how == "twice_size":  # the same size again, in another text
            out += [[price, size], [price, _other_text(size)]]
        elif how == "twice_price":  # the same level again, its price in another text
            out += [[price, size], [_other_text(price), size]]
        else:
            out.append([price, size])
    if len(edits) % 2 and levels and "." in levels[0][0]:
        out.append([levels[0][0] + "1", texts[-1]])  # a new level next to the first one
    return out


@pytest.mark.parametrize("exchange", ["binance", "binance-futures"])
def test_scan_level_texts_identical(exchange: str) -> None:
    """Depth updates continuing the recording with their level texts edited (unchanged levels, equal
    values in other texts, long and inexact decimals, repeated levels): scanner on == off, rows, books
    (values with their texts) and counters."""
    # the book frames only (trades and bookTickers do not move the books): every step edits updates
    on, off, rest, count = warmed(
        exchange, lambda frame: b"@trade" not in frame and b"@bookTicker" not in frame
    )
    pos = [0]

    @PROFILE
    @given(
        st.lists(st.sampled_from(_EDITS), min_size=1, max_size=12),
        st.lists(_DECIMAL_TEXT, min_size=1, max_size=4),
        st.integers(1, 4),
    )
    def check(edits: list[str], texts: list[str], steps: int) -> None:
        start = pos[0] % max(1, len(rest) - 10)
        pos[0] += steps
        seq: list[Item] = []
        for ts, frame in rest[start : start + steps]:
            if b"@depth" in frame and b"depthSnapshot" not in frame:
                msg = orjson.loads(frame)
                for side in ("b", "a"):
                    msg["data"][side] = level_edits(msg["data"][side], edits, texts)
                frame = orjson.dumps(msg)
            seq.append((ts, frame))
        feed_both(off, on, seq, f"{exchange} {seq!r}"[:3000])

    check()
    assert count.taken > 200, (count.taken, count.offered)


#: level texts longer than the scanner holds without objects (collectors/_booknative.c, LAZY_TEXT)
_LONG_TEXTS = ["1." + "0" * 40, "0." + "0" * 35 + "1", "123.45" + "0" * 26]
_LEVEL_OPS = st.sampled_from(
    ["get", "contains", "getitem", "items", "values", "keys", "peek", "popitem", "pop", "del", "set", "set_int",
     "best", "top", "len", "repr", "clear"]
)  # fmt: skip


def _level_op(side: Any, op: str, index: int) -> Any:
    """One Levels API call on a book side; its outcome (value repr and types, or the error type)."""
    keys = side.keys()
    price = keys[index % len(keys)] if keys else 1.0
    try:
        if op == "get":
            got: Any = side.get(price, "absent")
        elif op == "contains":
            got = price in side
        elif op == "getitem":
            got = side[price]
        elif op in ("items", "values", "keys"):
            got = getattr(side, op)()
        elif op == "peek":
            got = side.peekitem(index % 3 - 1)
        elif op == "popitem":
            got = side.popitem(index % 3 - 1)
        elif op == "pop":
            got = side.pop(price)
        elif op == "del":
            del side[price]
            got = None
        elif op in ("set", "set_int"):
            key = int(price) if op == "set_int" and float(price).is_integer() else price
            side[key] = (float(index), f"{price}", f"{index}.0")
            got = None
        elif op == "best":
            got = side.best()
        elif op == "top":
            got = side.top(index % 4)
        elif op == "len":
            got = len(side)
        elif op == "clear":
            got = side.clear() if index % 7 == 0 else None
        else:
            got = repr(side)
    except Exception as exc:  # the error is what is compared
        return ("raised", type(exc).__name__)
    return (repr(got), type(got).__name__)


def test_scanned_levels_read_and_changed_between_updates() -> None:
    """The scanner holds the levels it sets without Python objects until they are read: Levels API calls
    (reads, sets with float and int keys, removals, pops, clear) between scanned depth updates, some with
    level texts too long to be held that way, answer as on the Python path, and the rows and books stay
    the same."""
    exchange = "binance"
    on, off, rest, count = warmed(exchange, lambda frame: b"@depth" in frame)
    pos = [0]

    @PROFILE
    @given(
        st.integers(1, 3),
        st.lists(st.tuples(st.sampled_from(["b", "a"]), _LEVEL_OPS, st.integers(0, 50)), max_size=6),
        st.lists(st.sampled_from(["keep", "long_size", "long_price"]), min_size=1, max_size=5),
    )
    def check(steps: int, ops: list[tuple[str, str, int]], texts: list[str]) -> None:
        start = pos[0] % max(1, len(rest) - 10)
        pos[0] += steps
        seq: list[Item] = []
        for k, (ts, frame) in enumerate(rest[start : start + steps]):
            msg = orjson.loads(frame)
            for side in ("b", "a"):
                levels = msg["data"][side]
                for i, level in enumerate(levels):
                    how = texts[(i + k) % len(texts)]
                    if how == "long_size" and float(level[1]) in (0.0, 1.0):
                        level[1] = _LONG_TEXTS[0] if float(level[1]) == 1.0 else "0." + "0" * 40
                    elif how == "long_price":
                        level[0] = level[0] + "0" * (33 - len(level[0])) if "." in level[0] else level[0]
            seq.append((ts, orjson.dumps(msg)))
        feed_both(off, on, seq, f"{exchange} {texts}")
        symbol = next(iter(off.books))
        for side_name, op, index in ops:
            a = getattr(off.books[symbol].book, "bids" if side_name == "b" else "asks")
            b = getattr(on.books[symbol].book, "bids" if side_name == "b" else "asks")
            assert _level_op(a, op, index) == _level_op(b, op, index), (side_name, op, index)
        assert_same_books(off, on, f"{exchange} {ops} {texts}")

    check()
    assert count.taken > 100, (count.taken, count.offered)


def feed_both(off: Normaliser, on: Normaliser, items: list[Item], context: str) -> None:
    """The same items through the scanner-off normaliser frame by frame (``on_frame``) and the
    scanner-on one in runs (``on_frames``, as a replay feeds it): the same rows, books and counters."""
    out_on, out_off = RecordBuffer(), RecordBuffer()
    feed_into(off, items, out_off)
    feed_runs(on, items, out_on, random.Random(len(items)))
    assert_same(off, out_off, on, out_on, context)


def feed_into(n: Normaliser, items: list[Item], out: RecordBuffer) -> None:
    last = 0
    for item in items:
        if item is None:
            n.on_disconnect(last, out)
        else:
            last = item[0]
            n.on_frame(item[0], item[1], out)


def feed_runs(n: Normaliser, items: list[Item], out: RecordBuffer, rnd: random.Random) -> None:
    """``items`` through ``on_frames`` in runs of random length (1-80) ending at every disconnect; a
    run whose frames fit capture lines goes as a FrameBlock (frames read in place) every other time."""
    last = 0
    i = 0
    while i < len(items):
        if items[i] is None:
            n.on_disconnect(last, out)
            i += 1
            continue
        stop = min(i + rnd.randint(1, 80), len(items))
        if None in items[i:stop]:
            stop = items.index(None, i)
        block = frame_block(items[i:stop]) if rnd.random() < 0.5 else None
        if block is not None:
            n.on_frames(block, 0, len(block), out)
        else:
            n.on_frames(items, i, stop, out)
        last = items[stop - 1][0]
        i = stop


def frame_block(pairs: list[Item]) -> Any:
    """The pairs as the FrameBlock their capture lines read into (collectors._capturenative.index_block),
    or None when a frame cannot be a capture line (a newline or carriage return in it, text)."""
    lines = []
    for ts, frame in pairs:
        if not isinstance(frame, bytes) or b"\n" in frame or b"\r" in frame or not 0 <= ts < 2**63:
            return None
        lines.append(b"%d %s" % (ts, frame))
    block, specials, _consumed, _lines = index_block(
        b"\n".join(lines) + b"\n",
        1,
        True,
        False,
        functools.partial(capture._line_item, meta=True),
        capture._SKIP,
    )
    assert not specials and len(block) == len(pairs) and block[0] == pairs[0]
    return block


def test_scan_frames_as_text_and_bytes_alike() -> None:
    """Frames given as str (as the live connection receives them) and as bytes give the same records."""
    items = [i for i in recording_items("binance") if i is not None][:3000]
    as_text = [(t, f.decode()) if isinstance(f, bytes) else (t, f) for t, f in items]
    a, b = make("binance", True), make("binance", False)
    out_a, out_b = RecordBuffer(), RecordBuffer()
    feed_into(a, as_text, out_a)
    feed_into(b, items, out_b)
    assert_same(b, out_b, a, out_a, "text vs bytes")


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_on_frames_runs_equal_frame_by_frame(exchange: str) -> None:
    """A recording in runs through the scanner's ``on_frames`` (slice bounds included) gives what the
    Python ``Normaliser.on_frames`` and frame-by-frame ``on_frame`` give: rows, books, counters."""
    items = recording_items(exchange)
    frame_by_frame, in_runs, reference = make(exchange, True), make(exchange, True), make(exchange, False)
    out_a, out_b, out_c = RecordBuffer(), RecordBuffer(), RecordBuffer()
    feed_into(frame_by_frame, items, out_a)
    feed_runs(in_runs, items, out_b, random.Random(7))
    feed_runs(reference, items, out_c, random.Random(7))
    assert Counting(in_runs).scanner.taken > len(items) // 2  # the scanner, not its fallback, did the work
    assert_same(frame_by_frame, out_a, in_runs, out_b, f"{exchange} runs")
    assert_same(reference, out_c, in_runs, out_b, f"{exchange} runs vs reference")
    for start, stop in [(-3, None), (5, 2), (len(items) + 5, len(items) + 9)]:
        frames = [i for i in items if i is not None]
        stop = len(frames) if stop is None else stop
        a, b = make(exchange, True), make(exchange, False)
        a.on_frames(frames, start, stop, out_a)
        b.on_frames(frames, start, stop, out_c)
        assert counters(a) == counters(b), (start, stop)


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_a_replay_reads_frames_in_place_as_it_reads_them_as_objects(exchange: str) -> None:
    """``iter_units`` over a capture file hands the scanner FrameBlocks (frames read where they lie in
    the decompressed block); over the same items as a list it hands it (ts_recv, frame) tuples: the
    same units, rows, books and counters, and the scanner does the work in both."""
    assert capture._index_block is not None
    for path in real_captures(exchange):
        in_place, as_objects = make(exchange, True), make(exchange, True)
        taken = Counting(in_place)
        units = list(iter_units(path, in_place, ReplayStats(), unit_lines=4_000, unit_rows=50_000))
        expected = list(
            iter_units(read_items(path), as_objects, ReplayStats(), unit_lines=4_000, unit_rows=50_000)
        )
        assert [(a, b) for a, b, _ in units] == [(a, b) for a, b, _ in expected]
        out_a, out_b = RecordBuffer(), RecordBuffer()
        for (_, _, buf), (_, _, ref) in zip(units, expected, strict=True):
            out_a.extend(buf)
            out_b.extend(ref)
        assert_same(as_objects, out_b, in_place, out_a, f"{exchange} {path.name}")
        assert taken.taken > taken.offered // 2 > 0


def test_on_frames_stops_at_an_item_that_is_not_a_pair() -> None:
    """A bad item raises TypeError as unpacking it would, after the frames before it were handled and
    counted; the normaliser goes on with the next call."""
    frames = [i for i in recording_items("binance") if i is not None][:400]
    for n in (make("binance", True), make("binance", False)):
        out = RecordBuffer()
        with pytest.raises((TypeError, ValueError)):
            n.on_frames([*frames[:300], (1, 2, 3), *frames[300:]], 0, 401, out)
        assert n.frames == 300
        n.on_frames(frames, 300, 400, out)
        assert n.frames == 400
    assert counters(make("binance", True)) == counters(make("binance", False))


# -- time flags ---------------------------------------------------------------------------------------------

SECOND = 1_000_000_000
RECV0 = 1_723_100_000 * SECOND
_LATENCY = st.one_of(
    st.integers(-3 * SECOND, 4 * SECOND),
    st.sampled_from([0, -1, 1, -60_000_000, 2_500_000_000, 2_500_000_001, 86_400 * SECOND, -86_400 * SECOND]),
    st.integers(-(10**15), 10**15),
)
_STEP = st.one_of(st.integers(0, 3 * SECOND), st.sampled_from([0, 1, SECOND, 10 * SECOND]))


@st.composite
def timestamp_calls(draw: st.DrawFn) -> list[tuple[Any, int, bool]]:
    recv = draw(st.sampled_from([RECV0, 0, 5, -3 * SECOND, 2**62, RECV0 - 2 * 86_400 * SECOND]))
    calls: list[tuple[Any, int, bool]] = []
    for _ in range(draw(st.integers(1, 60))):
        recv += draw(_STEP)
        kind = draw(st.sampled_from(["lat", "lat", "lat", "lat", "none", "edge"]))
        if kind == "none":
            ex: Any = None
        elif kind == "edge":
            ex = draw(st.sampled_from([2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 10**30, True, False, 0]))
        else:
            ex = recv - draw(_LATENCY)
            if not -(2**63) <= ex < 2**63:
                ex = 0
        calls.append((ex, recv, draw(st.booleans())))
    return calls


def _outcome(tf: Any, ex: Any, recv: int, history: bool) -> Any:
    try:
        return tf.flags(ex, recv, history)
    except ParseError as exc:
        return f"ParseError {exc}"


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(timestamp_calls(), st.sampled_from([2_500_000_000, 0, 1]), st.sampled_from([86_400 * SECOND, SECOND]))
def test_time_flags_identical_to_the_reference(
    calls: list[tuple[Any, int, bool]], cutoff: int, skew: int
) -> None:
    py = TimeFlagger(cutoff)
    c = engine._booknative.TimeFlags(cutoff, py.clock_tolerance_ns, skew)
    py.max_skew_ns = skew
    for ex, recv, history in calls:
        a, b = _outcome(py, ex, recv, history), _outcome(c, ex, recv, history)
        assert a == b, (ex, recv, history)
        assert flagger_state(py) == flagger_state(c), (ex, recv, history)


def test_time_flags_keyword_history_and_attributes() -> None:
    c = new_time_flagger(7)
    assert type(c).__name__ == "TimeFlags"
    assert c.flags(RECV0 - 10**12, RECV0, history=True) == TimeFlagger(7).flags(
        RECV0 - 10**12, RECV0, history=True
    )
    c.max_skew_ns = 5
    c.outdated_cutoff_ns = 9
    assert (c.max_skew_ns, c.outdated_cutoff_ns) == (5, 9)
    with pytest.raises(TypeError):
        c.flags(1)


def test_scan_leaks_no_memory() -> None:
    """Normalisers made, fed and dropped over and over: traced memory does not grow (a reference the
    scanner forgot to drop keeps its rows, levels or strings alive)."""
    import gc
    import tracemalloc

    items = [i for i in recording_items("binance-futures") if i is not None][:1500]

    def once() -> None:
        n = make("binance-futures", True)
        count = Counting(n)
        run(n, items)
        assert count.taken > 1000

    once()
    gc.collect()
    tracemalloc.start()
    try:
        once()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(4):
            once()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 200_000, grown


def test_a_subclass_that_changes_a_method_runs_the_python_path() -> None:
    """The scanner stands in for the class's own methods: a subclass (a changed parser) gets none
    unless it declares ``frame_scan_rule`` itself, and its change shows in every row."""
    from collectors.venues.binance import BinanceNormaliser

    class Tenfold(BinanceNormaliser):
        def emit_trade(self, out: RecordBuffer, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
            symbol, ts_exchange, ts_recv, trade_id, price, size, *rest = args
            super().emit_trade(out, symbol, ts_exchange, ts_recv, trade_id, price, size * 10, *rest, **kwargs)

    with scanner(True):
        changed, plain = Tenfold(), BinanceNormaliser()
    assert changed._scanner is None and plain._scanner is not None
    items = [i for i in recording_items("binance") if i is not None][:3000]
    out_changed, out_plain = run(changed, items), run(plain, items)
    assert out_changed.trades
    assert [r[6] for r in out_changed.trades] == [r[6] * 10 for r in out_plain.trades]

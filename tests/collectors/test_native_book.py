"""The compiled book engine (``collectors._booknative``) against the pure-Python reference (issue 18).

Differential: the same input goes through both implementations (selected per book with
``collectors.book.use_implementation``), and everything must be identical: every record table
(compared by ``repr``, so an int for a float or a lost ``-0.0`` counts), every error, and the final
state of every book a normaliser holds.

- every shared recording (``../shared/samples``) through every registered exchange's normaliser:
  the exchange's own recordings in full, the others' first frames (they are mostly refused, which
  must be refused alike);
- hypothesis: mutated frames of the real recordings (``hostile_frame`` of ``test_hostile``) thrown at
  synced books of both engines;
- hypothesis: random operation sequences straight against ``SyncedBook`` (snapshots, updates, parsed
  levels, full books, gaps, resets; levels of every odd kind: exponents, spaces, signs, NaN, numbers,
  booleans, short lists, generators) and against one side's level map (get/pop/popitem/peekitem/...).

``make asan`` runs this file with the extension built under AddressSanitizer and UBSan.
"""

from __future__ import annotations

import gc
import itertools
import math
import os
import sys
import tracemalloc
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors import book as engine
from collectors.base import Normaliser
from collectors.book import ASK, BID, L2Book, SyncedBook
from collectors.capture import CaptureError, CaptureItem, read_capture, replay_capture
from collectors.events import Limits, ParseError
from collectors.registry import exchange_ids, get_dialect
from schemas import RECORD_DATASETS, RecordBuffer
from tests.collectors.hostile import SAMPLES, feed, real_captures
from tests.collectors.test_hostile import hostile_frame

#: Frames of another exchange's recording put through a normaliser (it refuses nearly all of them).
FOREIGN_FRAMES = 250
#: Frames of a recording that warm the books up before the mutated frames.
WARM_FRAMES = 1500

PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def test_the_compiled_engine_is_built_and_active() -> None:
    """Without the extension every comparison below would compare the reference with itself."""
    assert engine.NATIVE_ERROR is None, f"collectors._booknative is not built: {engine.NATIVE_ERROR}"
    expected = "python" if _pure_python_env() else "native"
    assert expected == engine.IMPLEMENTATION
    with implementation("native"):
        assert L2Book().native
    with implementation("python"):
        assert not L2Book().native
    asan = os.environ.get("TICKTAPE_ASAN_BUILD")
    if asan:  # make asan: the sanitized build must be the one loaded
        assert Path(engine._booknative.__file__).parent.resolve() == Path(asan).resolve()


def _pure_python_env() -> bool:
    return os.environ.get("TICKTAPE_PURE_PYTHON", "") not in ("", "0")


class implementation:
    """Context: books created inside use ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.previous = ""

    def __enter__(self) -> None:
        self.previous = engine.use_implementation(self.name)

    def __exit__(self, *exc: object) -> None:
        engine.use_implementation(self.previous)


# -- comparing ------------------------------------------------------------------------------------


def assert_same_records(py: RecordBuffer, native: RecordBuffer, context: str) -> None:
    for ds in RECORD_DATASETS:
        a, b = py.rows(ds), native.rows(ds)
        if len(a) != len(b):
            raise AssertionError(f"{context}: {ds}: {len(a)} rows (python) != {len(b)} (native)")
        for i, (ra, rb) in enumerate(zip(a, b, strict=True)):
            if repr(ra) != repr(rb) or [type(x) for x in ra] != [type(x) for x in rb]:
                raise AssertionError(f"{context}: {ds} row {i}:\n python {ra!r}\n native {rb!r}")


def _side_state(levels: Any) -> list[tuple[Any, ...]]:
    return [(type(p).__name__, repr(p), repr(v)) for p, v in levels.items()]


def book_state(book: L2Book) -> tuple[Any, ...]:
    return (_side_state(book.bids), _side_state(book.asks), book.depth(BID), book.depth(ASK))


def synced_state(book: SyncedBook) -> tuple[Any, ...]:
    return (
        book.exchange,
        book.symbol,
        book.epoch,
        book.snapshots,
        book.synced,
        book.last_seq,
        book.maybe_bad,
        repr(book.pending),
        book_state(book.book),
        book.book.best_bid(),
        book.book.best_ask(),
        book.book.is_crossed(),
        book.book.top(BID, 5),
        book.book.top(ASK, 5),
    )


def books_in(obj: Any) -> list[tuple[str, Any]]:
    """Every L2Book/SyncedBook a normaliser holds (any attribute, dict or list, a few levels deep),
    in a stable order, with the path that reaches it."""
    found: list[tuple[str, Any]] = []
    seen: set[int] = set()

    def walk(x: Any, path: str, depth: int) -> None:
        if id(x) in seen or depth > 5:
            return
        seen.add(id(x))
        if isinstance(x, SyncedBook):
            found.append((path, synced_state(x)))
            return
        if isinstance(x, L2Book):
            found.append((path, book_state(x)))
            return
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{path}[{k!r}]", depth + 1)
        elif isinstance(x, list | tuple) and len(x) < 1000:
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]", depth + 1)
        elif type(x).__module__.startswith("collectors"):
            names = list(getattr(x, "__dict__", {}))
            for cls in type(x).__mro__:
                names += [n for n in getattr(cls, "__slots__", ()) if isinstance(n, str)]
            for name in sorted(set(names)):
                if hasattr(x, name):
                    walk(getattr(x, name), f"{path}.{name}", depth + 1)

    walk(obj, "normaliser", 0)
    return found


def assert_same_books(py: Normaliser, native: Normaliser, context: str) -> int:
    a, b = books_in(py), books_in(native)
    assert [p for p, _ in a] == [p for p, _ in b], context
    for (path, sa), (_, sb) in zip(a, b, strict=True):
        assert sa == sb, f"{context}: {path} differs"
    return len(a)


# -- every recording through every exchange ----------------------------------------------------------


@cache
def recordings() -> list[Path]:
    paths = sorted(SAMPLES.glob("*/*.capture.gz"))
    assert len(paths) >= 20, f"shared recordings missing under {SAMPLES}"
    return paths


@cache
def items_of(path: Path, limit: int | None) -> list[CaptureItem]:
    items: list[CaptureItem] = []
    frames = 0
    for item in read_capture(path, meta=True):
        if isinstance(item, CaptureError):
            continue
        items.append(item)
        if isinstance(item, tuple):
            frames += 1
            if limit is not None and frames >= limit:
                break
    return items


def replay_both(
    exchange: str, items: list[CaptureItem]
) -> tuple[Normaliser, RecordBuffer, Normaliser, RecordBuffer]:
    with implementation("python"):
        n_py = get_dialect(exchange).make_normaliser()
        out_py = replay_capture(n_py, items)
    with implementation("native"):
        n_c = get_dialect(exchange).make_normaliser()
        out_c = replay_capture(n_c, items)
    return n_py, out_py, n_c, out_c


@pytest.mark.parametrize("exchange", exchange_ids())
def test_every_recording_gives_identical_records_and_books(exchange: str) -> None:
    own = set(real_captures(exchange))
    book_rows = 0
    for path in recordings():
        items = items_of(path, None if path in own else FOREIGN_FRAMES)
        n_py, out_py, n_c, out_c = replay_both(exchange, items)
        context = f"{exchange} <- {path.parent.name}/{path.name}"
        assert_same_records(out_py, out_c, context)
        assert n_py.parse_errors == n_c.parse_errors, context
        assert_same_books(n_py, n_c, context)
        if path in own:
            book_rows += len(out_c.book)
            assert books_in(n_c), f"{context}: no book found in the normaliser"
    if exchange in ("binance", "binance-futures", "binance-delivery", "okx", "kraken-futures"):
        assert book_rows > 0, f"{exchange}: its recordings produced no book rows"


# -- mutated frames ---------------------------------------------------------------------------------


def _mutation_exchanges() -> list[str]:
    return [e for e in exchange_ids() if real_captures(e)]


@pytest.mark.parametrize("exchange", _mutation_exchanges())
def test_mutated_frames_give_identical_records_and_books(exchange: str) -> None:
    items: list[Any] = []
    for path in real_captures(exchange):
        items += [None, *items_of(path, WARM_FRAMES)]
    frames = [i[1] for i in items if isinstance(i, tuple)]
    warm, rest = items[: len(items) // 2], [i for i in items[len(items) // 2 :] if isinstance(i, tuple)][:200]
    with implementation("python"):
        n_py = get_dialect(exchange).make_normaliser()
        feed(n_py, warm)
    with implementation("native"):
        n_c = get_dialect(exchange).make_normaliser()
        feed(n_c, warm)
    assert_same_books(n_py, n_c, f"{exchange} warm-up")

    @PROFILE
    @given(st.lists(hostile_frame(frames), min_size=1, max_size=3), st.integers(0, max(0, len(rest) - 3)))
    def run(bad: list[bytes], at: int) -> None:
        ts = rest[at][0] if rest else 0
        sequence = [(ts, f) for f in bad] + list(rest[at : at + 3])
        out_py, out_c = RecordBuffer(), RecordBuffer()
        # books created on the way (a new symbol) keep the engine of their normaliser's run
        with implementation("python"):
            for t, f in sequence:
                n_py.on_frame(t, f, out_py)
        with implementation("native"):
            for t, f in sequence:
                n_c.on_frame(t, f, out_c)
        assert_same_records(out_py, out_c, f"{exchange} mutated {bad!r}"[:2000])
        assert_same_books(n_py, n_c, f"{exchange} mutated")

    run()


# -- random operations straight against the engine -----------------------------------------------------

_DIGITS = st.sampled_from(["100", "100.5", "101", "99.25", "0.001", "100.50", "1e2", "1E-3", "99.2500000"])
_ODD_TEXT = st.sampled_from(
    [
        "0",
        "0.0",
        "-0",
        "-1",
        " 100 ",
        "1_000",
        "nan",
        "inf",
        "-inf",
        "1e400",
        "",
        ".",
        "1.",
        ".5",
        "abc",
        "\uff11\uff10\uff10",  # fullwidth digits
        "1e12",
        "999999999999.99",
        "1000000000000000",
        "0.1234567890123456789012345",
        "12345678901234567890",
        "9007199254740993",
        "4.35",
        "0.30000000000000004",
    ]
)
_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 10**16),
    st.just(10**400),
    st.booleans(),
    st.none(),
    st.sampled_from([100.0, 100.5, 0.0, -0.0, 99.25]),
)
_PRICE = st.one_of(_DIGITS, _DIGITS, _DIGITS, _ODD_TEXT, _NUMBERS)
_SIZE = st.one_of(
    st.sampled_from(["0", "1", "2.5", "0.00000000", "3", "1e3", "0.1"]),
    st.sampled_from(["0", "1"]),
    _ODD_TEXT,
    _NUMBERS,
)


@st.composite
def a_level(draw: st.DrawFn) -> Any:
    shape = draw(st.sampled_from(["list", "list", "list", "tuple", "three", "short", "dict", "str", "none"]))
    p, s = draw(_PRICE), draw(_SIZE)
    if shape == "list":
        return [p, s]
    if shape == "tuple":
        return (p, s)
    if shape == "three":
        return [p, s, "extra"]
    if shape == "short":
        return [p]
    if shape == "dict":
        return {0: p, 1: s}
    if shape == "str":
        return "12"
    return None


@st.composite
def levels(draw: st.DrawFn) -> Any:
    good = draw(st.booleans())
    if good:  # mostly plain levels, so updates really change the books
        items: list[Any] = draw(
            st.lists(st.tuples(_DIGITS, st.sampled_from(["0", "1", "2.5", "3"])).map(list), max_size=6)
        )
    else:
        items = draw(st.lists(a_level(), max_size=5))
    kind = draw(st.sampled_from(["list", "list", "list", "tuple", "generator", "none"]))
    if kind == "tuple":
        return tuple(items)
    if kind == "generator":
        return ("gen", items)  # made into a fresh generator per engine
    if kind == "none":
        return None
    return items


def _fresh(x: Any) -> Any:
    if isinstance(x, tuple) and len(x) == 2 and x[0] == "gen":
        return (level for level in x[1])
    return x


_POSITION = st.one_of(
    st.integers(0, 100), st.none(), st.just(1 << 64), st.just(True), st.just(-(1 << 63)), st.just(1.5)
)

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("snapshot"), levels(), levels(), _POSITION),
        st.tuples(st.just("update"), levels(), levels(), _POSITION, st.sampled_from([0, 4, 32])),
        st.tuples(st.just("levels"), st.sampled_from([BID, ASK, "other"]), levels(), _POSITION),
        st.tuples(st.just("parsed"), st.sampled_from([BID, ASK]), levels(), _POSITION),
        st.tuples(st.just("parsed_odd"), st.sampled_from([BID, ASK]), _POSITION),
        st.tuples(st.just("full"), levels(), levels(), _POSITION, st.sampled_from([0, 4])),
        st.tuples(st.just("gap")),
        st.tuples(st.just("reset")),
        st.tuples(st.just("crossed")),
        st.tuples(st.just("limits"), st.sampled_from([1e12, 200.0, 101.0, 10**12, 5])),
    ),
    max_size=25,
)


def _outcome(call: Callable[[], Any]) -> str:
    try:
        result = call()
    except (ParseError, TypeError, ValueError, IndexError, KeyError, OverflowError, AttributeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return f"ok {result!r}"


def _parse_and_apply(book: SyncedBook, out: RecordBuffer, t: int, side: str, levels: Any, seq: Any) -> None:
    parsed = engine.parse_levels(levels, book.limits.max_price, book.limits.max_size)
    book.apply_parsed(out, t, t, side, parsed, seq)


def run_ops(ops: list[Any], book: SyncedBook) -> list[Any]:
    """The outcome of each operation, the rows of all of them and the final state."""
    out = RecordBuffer()
    outcomes: list[Any] = []
    ts = itertools.count(1_000)
    for op in ops:
        kind, args = op[0], op[1:]
        t = next(ts)
        if kind == "snapshot":
            b, a, seq = args
            outcomes.append(_outcome(partial(book.apply_snapshot, out, t, t, _fresh(b), _fresh(a), seq)))
        elif kind == "update":
            b, a, seq, extra = args
            outcomes.append(_outcome(partial(book.apply_update, out, t, t, _fresh(b), _fresh(a), seq, extra)))
        elif kind == "levels":
            side, lv, seq = args
            outcomes.append(_outcome(partial(book.apply_levels, out, None, t, side, _fresh(lv), seq)))
        elif kind == "parsed":
            side, lv, seq = args
            outcomes.append(_outcome(partial(_parse_and_apply, book, out, t, side, _fresh(lv), seq)))
        elif kind == "parsed_odd":
            side, seq = args
            odd = [(100, 1, "100", "1"), [101.0, 0.0, "101", "0"], (102.0, 2.0, "102", "2")]
            outcomes.append(_outcome(partial(book.apply_parsed, out, t, t, side, odd, seq)))
        elif kind == "full":
            b, a, seq, extra = args
            outcomes.append(
                _outcome(partial(book.apply_full_book, out, t, t, _fresh(b), _fresh(a), seq, extra))
            )
        elif kind == "gap":
            book.gap(out, t, "gap", {"why": "test"})
        elif kind == "reset":
            book.reset()
        elif kind == "crossed":
            outcomes.append(book.check_crossed(out, t, {}))
        elif kind == "limits":
            book.limits.max_price = args[0]
    return [outcomes, [(ds, repr(out.rows(ds))) for ds in RECORD_DATASETS], synced_state(book)]


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(OPS)
def test_random_operations_give_identical_rows_errors_and_books(ops: list[Any]) -> None:
    results = []
    for name in ("python", "native"):
        with implementation(name):
            book = SyncedBook("x", "BTC-USDT", Limits())
            assert book.book.native == (name == "native")
            results.append(run_ops(ops, book))
    assert results[0] == results[1]


MAP_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from([1.0, 2.0, 2.5, 3.0, 10.0, 0.5, 1, 7, 1e300])),
        st.tuples(st.just("del"), st.sampled_from([1.0, 2.0, 3.0, 4.0, 2, "x"])),
        st.tuples(st.just("pop"), st.sampled_from([1.0, 2.0, 9.0, "x", math.nan])),
        st.tuples(st.just("get"), st.sampled_from([1.0, 2, 9.0, "x", None, math.nan, 10**400])),
        st.tuples(st.just("popitem"), st.sampled_from([None, 0, -1, 1, -2, 5])),
        st.tuples(st.just("peekitem"), st.sampled_from([None, 0, -1, 1, -2, 5])),
        st.tuples(st.just("view"), st.sampled_from(["keys", "values", "items", "iter", "len", "bool"])),
        st.tuples(st.just("in"), st.sampled_from([1.0, 2, 3.0, "x"])),
        st.tuples(st.just("clear")),
    ),
    max_size=40,
)


def _listed(view: Callable[[], Any]) -> list[Any]:
    return list(view())


def map_outcomes(levels: Any, ops: list[Any]) -> list[str]:
    outcomes: list[str] = []
    counter = itertools.count()
    for op in ops:
        kind = op[0]
        if kind == "set":
            n = next(counter)
            outcomes.append(_outcome(partial(levels.__setitem__, op[1], (float(n), str(op[1]), str(n)))))
        elif kind == "del":
            outcomes.append(_outcome(partial(levels.__delitem__, op[1])))
        elif kind == "pop":
            outcomes.append(_outcome(partial(levels.pop, op[1], "default")))
            outcomes.append(_outcome(partial(levels.pop, op[1])))
        elif kind == "get":
            outcomes.append(_outcome(partial(levels.get, op[1])))
            outcomes.append(_outcome(partial(levels.__getitem__, op[1])))
        elif kind in ("popitem", "peekitem"):
            method = getattr(levels, kind)
            outcomes.append(_outcome(method if op[1] is None else partial(method, op[1])))
        elif kind == "view":
            what: dict[str, Callable[[], Any]] = {
                "keys": partial(_listed, levels.keys),
                "values": partial(_listed, levels.values),
                "items": partial(_listed, levels.items),
                "iter": partial(list, levels),
                "len": partial(len, levels),
                "bool": partial(bool, levels),
            }
            outcomes.append(_outcome(what[op[1]]))
        elif kind == "in":
            outcomes.append(_outcome(partial(levels.__contains__, op[1])))
        else:
            levels.clear()
    return outcomes


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(MAP_OPS, st.booleans())
def test_level_map_behaves_like_the_sorted_dict(ops: list[Any], bids: bool) -> None:
    with implementation("python"):
        ref = L2Book()
    with implementation("native"):
        nat = L2Book()
    side = BID if bids else ASK
    assert map_outcomes(ref.side(side), ops) == map_outcomes(nat.side(side), ops)
    assert book_state(ref) == book_state(nat)


def test_decimal_texts_parse_to_the_same_floats_as_float() -> None:
    """The compiled decimal fast path rounds exactly as ``float()`` (digits at the 2**53 edge, 22 and
    23 decimals, long mantissas)."""
    texts = [
        "9007199254740993",
        "9007199254740992.5",
        "900719925474099.3",
        "0.1",
        "0.7",
        "2.675",
        "0." + "1" * 22,
        "0." + "1" * 23,
        "123456789.123456789",
        "1." + "0" * 30 + "1",
        "0.000000000000000000001",
        "00000000000000000000000001.5",
        "4503599627370497.5",
    ]
    for x in range(1, 2000):
        texts.append(f"{x * 0.37:.{x % 12}f}")
    levels_in = [[t, "1"] for t in texts]
    got = engine._booknative.parse_levels(levels_in, math.inf, math.inf)
    assert got is not None
    for t, (price, _, p_str, _) in zip(texts, got, strict=True):
        assert price == float(t) and p_str is t, t


def test_rows_reach_a_row_store_that_is_not_a_list() -> None:
    """``out.book`` may become another row store with ``append`` (columns): rows still go through it."""

    class Rows(list[Any]):
        def append(self, row: Any) -> None:
            super().append(("seen", *row))

    results = []
    for name in ("python", "native"):
        with implementation(name):
            book = SyncedBook("x", "BTC-USDT")
            out = RecordBuffer()
            out.book = Rows()
            book.apply_snapshot(out, 1, 1, [["100", "1"]], [["101", "1"]], 5)
            book.apply_update(out, 2, 2, [["100", "0"], ["99", "2"]], [], 6)
            results.append(repr(list(out.book)))
    assert results[0] == results[1] and "'seen'" in results[0]


def test_no_reference_or_memory_is_leaked() -> None:
    """Every path of the compiled code (applied, refused, errors, the map API) gives back what it took:
    the refcounts of the wire strings return to where they were, and traced memory stays flat."""
    price, size, odd = "12345.5", "1.25", "1e400"
    good = [[price, size], [price + "1", size]]
    bad = [[[price, size], [odd, size]], [[price, None]], [(price,)], [["nan", size]], ([price, size], 5)]

    def cycle(book: SyncedBook, out: RecordBuffer) -> None:
        book.apply_snapshot(out, 1, 1, good, good, 1)
        book.apply_update(out, 2, 2, good, [[price, "0"]], 2)
        for levels in bad:
            for call in (
                partial(book.apply_update, out, 3, 3, levels, good, 3),
                partial(engine.parse_levels, levels, 1e12, 1e15),
            ):
                try:
                    call()
                except ParseError:
                    pass
        book.apply_parsed(out, 4, 4, BID, engine.parse_levels(good), 4)
        side = book.book.side(BID)
        side.items(), side.values(), list(side), side.top(1), side.peekitem(0), side.get(12345.5)
        side[1.0] = (1.0, "1", "1")
        side.popitem(), side.pop(12345.5, None)
        book.gap(out, 5, "gap", {})
        out.book.clear()
        out.feed_events.clear()

    with implementation("native"):
        book, out = SyncedBook("x", "BTC-USDT"), RecordBuffer()
        cycle(book, out)
        gc.collect()
        counts = [sys.getrefcount(x) for x in (price, size, odd)]
        tracemalloc.start()
        try:
            for _ in range(200):
                cycle(book, out)
            gc.collect()
            first = tracemalloc.get_traced_memory()[0]
            for _ in range(2000):
                cycle(book, out)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - first
        finally:
            tracemalloc.stop()
        assert [sys.getrefcount(x) for x in (price, size, odd)] == counts
        assert grown < 20_000, f"{grown} bytes more after 2000 cycles"

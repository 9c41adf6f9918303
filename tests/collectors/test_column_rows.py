"""Rows held as columns (``collectors._booknative.ColumnRows``, ``collectors.base.new_record_buffer``;
issue 18 part 2) against the lists of tuples they replace.

- every registered exchange, on its real recordings (``../shared/samples``) or, without one, on a
  capture of its simulator, replayed unit by unit (``collectors.capture.iter_units``, the loop of
  ``ticktape replay``) into plain buffers and into column buffers: the same rows (by ``repr`` and
  type), the same Arrow batches, the same books and counters;
- hypothesis: random sequences of list operations (append and extend of plain and odd rows, assignment
  at an index, slicing, deletion, insertion, sort, clear, ...) applied to a list and to a store side
  by side: the same rows, lengths, results and errors after every step;
- hypothesis: rows of every kind of value (nulls, non-ASCII text, int32/int64 bounds, -0.0, infinities)
  to Arrow through the columns, through the compiled conversion of a list, and through the reference;
- no reference leaks.

``make asan`` runs this file with the extension built under AddressSanitizer and UBSan.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import sys
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors import book as engine
from collectors.base import COLUMNAR_DATASETS, new_record_buffer
from collectors.capture import ReplayStats, iter_units
from collectors.registry import exchange_ids, get_dialect
from schemas import Flags, base_width, python_rows_to_arrow, rows_to_arrow
from streaming.base import arrow_tables
from streaming.codec import field_codes
from tests.collectors.hostile import read_items, real_captures, simulator_capture
from tests.collectors.test_native_book import assert_same_books, assert_same_records

PROFILE = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
#: lines per replay unit in the differential replays: units end (``RecordBuffer.take``) often
UNIT_LINES = 3_000
Item = Any


def store(dataset: str = "book") -> Any:
    return engine._booknative.ColumnRows(field_codes(dataset), base_width(dataset))


BOOK_ROW = (
    "binance",
    "BTC-USDT",
    1_700_000_000_000_000_000,
    1_700_000_000_001_000_000,
    "bid",
    65000.5,
    0.25,
    False,
    123456789,
    0,
    0,
)


# -- built ----------------------------------------------------------------------------------------------


def test_column_buffers_are_built_and_chosen() -> None:
    assert engine.IMPLEMENTATION == "native", engine.NATIVE_ERROR
    buf = new_record_buffer()
    for ds in COLUMNAR_DATASETS:
        rows = buf.rows(ds)
        assert type(rows).__name__ == "ColumnRows" and rows.columnar and rows.width == base_width(ds)
    assert type(buf.feed_events) is list
    taken = buf.take()
    assert type(taken.book).__name__ == "ColumnRows" and type(buf.book).__name__ == "ColumnRows"
    assert taken.book is not buf.book
    previous = engine.use_implementation("python")
    try:
        assert all(type(new_record_buffer().rows(ds)) is list for ds in COLUMNAR_DATASETS)
    finally:
        engine.use_implementation(previous)


def test_bad_specs_are_refused() -> None:
    cls = engine._booknative.ColumnRows
    with pytest.raises(ValueError, match="field code"):
        cls(b"\x01\x07", 2)
    with pytest.raises(ValueError, match="width"):
        cls(b"\x01\x03", 3)
    with pytest.raises(ValueError, match="nullable"):
        cls(b"\x01\x03", 1)  # the field past the width must be nullable
    with pytest.raises(TypeError):
        cls("book", 3)


# -- every exchange, replayed unit by unit ----------------------------------------------------------------


def _items(exchange: str, capdir: Any) -> list[Item]:
    items: list[Item] = []
    for path in real_captures(exchange):
        items += [None, *read_items(path)]
    return items or read_items(simulator_capture(exchange, capdir))


@pytest.fixture(scope="module")
def capdir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tmp_path_factory.mktemp("column-rows-captures")


@pytest.mark.parametrize("exchange", exchange_ids())
def test_replay_into_columns_identical_to_lists(exchange: str, capdir: Any) -> None:
    items = _items(exchange, capdir)
    plain_n, column_n = get_dialect(exchange).make_normaliser(), get_dialect(exchange).make_normaliser()
    plain = list(iter_units(items, plain_n, ReplayStats(), unit_lines=UNIT_LINES, unit_rows=50_000))
    columns = list(
        iter_units(
            items,
            column_n,
            ReplayStats(),
            unit_lines=UNIT_LINES,
            unit_rows=50_000,
            new_buffer=new_record_buffer,
        )
    )
    assert [(a, b) for a, b, _ in plain] == [(a, b) for a, b, _ in columns]
    market = 0
    for (first, last, a), (_, _, b) in zip(plain, columns, strict=True):
        context = f"{exchange} lines {first}-{last}"
        assert all(type(b.rows(ds)).__name__ == "ColumnRows" for ds in COLUMNAR_DATASETS), context
        assert_same_records(a, b, context)
        ta, tb = arrow_tables(a), arrow_tables(b)
        assert ta.keys() == tb.keys(), context
        for ds in ta:
            assert ta[ds].equals(tb[ds]), f"{context}: {ds}"
        market += sum(len(a.rows(ds)) for ds in COLUMNAR_DATASETS)
    assert market > 0, f"{exchange}: no market rows to compare"
    assert_same_books(plain_n, column_n, exchange)
    assert plain_n.frames == column_n.frames and plain_n.parse_errors == column_n.parse_errors


def test_the_binance_scanner_keeps_its_rows_in_columns() -> None:
    """The scanner and the book engine append cells to the columns: nothing turns them into lists."""
    (path,) = real_captures("binance")
    units = list(
        iter_units(
            read_items(path),
            get_dialect("binance").make_normaliser(),
            ReplayStats(),
            unit_lines=UNIT_LINES,
            unit_rows=50_000,
            new_buffer=new_record_buffer,
        )
    )
    assert len(units) > 3
    for _, _, buf in units:
        assert all(buf.rows(ds).columnar for ds in COLUMNAR_DATASETS)
        assert buf.book and buf.trades and buf.bbo


# -- list operations, side by side ---------------------------------------------------------------------------


class Odd(int):
    """An int subclass (a store keeps rows holding one as a list does)."""


def plain_rows() -> st.SearchStrategy[tuple[Any, ...]]:
    return st.builds(
        lambda sym, ts, price, size, seq, flags: (
            "binance",
            sym,
            ts,
            ts + 5,
            "ask",
            price,
            size,
            False,
            seq,
            0,
            flags,
        ),
        st.sampled_from(["BTC-USDT", "ETH-USDT", "Ǯ-USDT"]),
        st.integers(0, 2**62),
        st.floats(0, 1e9, allow_nan=False),
        st.floats(0, 1e6, allow_nan=False),
        st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
        st.integers(0, 127),
    )


def odd_rows() -> st.SearchStrategy[Any]:
    r = BOOK_ROW
    return st.sampled_from(
        [
            (*r[:5], math.nan, *r[6:]),
            (*r[:8], Odd(5), *r[9:]),
            (*r[:8], 2**63, *r[9:]),
            (*r[:10], Flags.SNAPSHOT),
            (*r[:5], 1, *r[6:]),  # an int price
            (*r[:2], None, *r[3:]),  # null exchange time: allowed, stays columnar
            (None, *r[1:]),  # null exchange: not nullable
            r[:10],
            (*r, "replica-a"),
            list(r),
            "not a row",
            (*r[:1], b"BTC", *r[2:]),
            (*r[:1], "\udcff", *r[2:]),  # a lone surrogate: not UTF-8
            (*r[:7], 1, *r[8:]),  # an int where a bool goes
        ]
    )


def rows() -> st.SearchStrategy[Any]:
    return st.one_of(plain_rows(), plain_rows(), odd_rows())


ops = st.one_of(
    st.tuples(st.just("append"), rows()),
    st.tuples(st.just("extend"), st.lists(rows(), max_size=4)),
    st.tuples(st.just("extend_store"), st.lists(plain_rows(), max_size=4)),
    st.tuples(st.just("extend_self"), st.none()),
    st.tuples(st.just("setitem"), st.tuples(st.integers(-6, 6), rows())),
    st.tuples(st.just("getitem"), st.integers(-6, 6)),
    st.tuples(
        st.just("slice"), st.tuples(st.integers(-6, 6), st.integers(-6, 6), st.sampled_from([1, 2, -1]))
    ),
    st.tuples(st.just("delitem"), st.integers(-3, 3)),
    st.tuples(st.just("delslice"), st.tuples(st.integers(0, 4), st.integers(0, 6))),
    st.tuples(st.just("insert"), st.tuples(st.integers(-3, 3), plain_rows())),
    st.tuples(st.just("pop"), st.none()),
    st.tuples(st.just("sort"), st.none()),
    st.tuples(st.just("clear"), st.none()),
    st.tuples(st.just("iadd"), st.lists(plain_rows(), max_size=3)),
    st.tuples(st.just("read"), st.none()),
    st.tuples(st.just("to_arrow"), st.none()),
)


def outcome(fn: Any) -> Any:
    try:
        result = fn()
    except Exception as exc:  # the error is what is compared
        return ("raised", type(exc))
    return ("ok", repr(result), [type(x) for x in result] if isinstance(result, tuple) else None)


def apply(target: Any, op: str, arg: Any) -> Any:
    if op == "append":
        return outcome(lambda: target.append(arg))
    if op == "extend":
        return outcome(lambda: target.extend(iter(arg)))
    if op == "extend_store":
        other = store()
        other.extend(arg)
        return outcome(lambda: target.extend(other))
    if op == "extend_self":
        return outcome(lambda: target.extend(target))
    if op == "setitem":
        i, row = arg

        def set_row() -> None:
            target[i] = row

        return outcome(set_row)
    if op == "getitem":
        return outcome(lambda: target[arg])
    if op == "slice":
        a, b, step = arg
        return outcome(lambda: target[a:b:step])
    if op == "delitem":

        def delete() -> None:
            del target[arg]

        return outcome(delete)
    if op == "delslice":

        def delete_slice() -> None:
            del target[arg[0] : arg[1]]

        return outcome(delete_slice)
    if op == "insert":
        return outcome(lambda: target.insert(*arg))
    if op == "pop":
        return outcome(lambda: target.pop())
    if op == "sort":
        return outcome(lambda: target.sort(key=repr))
    if op == "clear":
        return outcome(target.clear)
    if op == "iadd":

        def add() -> None:
            nonlocal target
            target += arg

        return outcome(add)
    assert op == "read"
    return (
        len(target),
        bool(target),
        repr(target),
        [repr(r) for r in target],
        BOOK_ROW in target,
        repr(target + [BOOK_ROW]),  # noqa: RUF005 - the store's own concatenation
        repr(list(reversed(target))),
    )


def same_batch(a: Any, b: Any) -> bool:
    """Equal batches, NaN equal to NaN (``RecordBatch.equals`` says a NaN differs from itself)."""
    return bool(a.schema.equals(b.schema)) and repr(a.to_pylist()) == repr(b.to_pylist())


def same(plain: list[Any], columns: Any) -> None:
    assert len(columns) == len(plain)
    assert columns == plain and plain == columns
    assert not columns != plain  # noqa: SIM202 - the store's own !=
    got = list(columns)
    assert [repr(r) for r in got] == [repr(r) for r in plain]
    for a, b in zip(plain, got, strict=True):
        if isinstance(a, tuple):
            assert [type(x) for x in a] == [type(x) for x in b]
    assert [repr(r) for r in columns.tolist()] == [repr(r) for r in plain]


@PROFILE
@given(st.lists(ops, max_size=30))
def test_list_operations_identical_to_a_list(steps: list[tuple[str, Any]]) -> None:
    """Also: a batch made from the store (its number columns are the store's own arrays, handed to
    Arrow without a copy) keeps its values whatever the store does afterwards."""
    plain: list[Any] = []
    columns = store()
    batches: list[tuple[Any, list[Any]]] = []
    for op, arg in steps:
        if op == "to_arrow":
            try:
                expected_batch = python_rows_to_arrow("book", list(plain))
            except (ValueError, TypeError, OverflowError):
                continue  # rows that do not convert (odd rows): the store raises as the list does
            batch = rows_to_arrow("book", columns)
            assert same_batch(batch, expected_batch)
            batches.append((batch, list(plain)))
            continue
        expected = apply(plain, op, arg)
        got = apply(columns, op, arg)
        assert got == expected, (op, arg)
        same(plain, columns)
        if columns.columnar:
            assert all(type(r) is tuple and len(r) == columns.width for r in plain)
        for batch, rows_then in batches:
            assert same_batch(batch, python_rows_to_arrow("book", rows_then)), (op, arg)


def test_odd_rows_turn_the_store_into_a_list_until_cleared() -> None:
    columns = store()
    columns.append(BOOK_ROW)
    assert columns.columnar and columns.to_columns() is not None
    columns.append((*BOOK_ROW[:8], Odd(7), *BOOK_ROW[9:]))
    assert not columns.columnar and columns.to_columns() is None
    assert type(columns[1][8]) is Odd and columns[0] == BOOK_ROW
    columns.clear()
    assert columns.columnar and len(columns) == 0
    columns.append(BOOK_ROW)
    columns.insert(0, BOOK_ROW)  # another list method: a list from now on
    assert not columns.columnar and columns == [BOOK_ROW, BOOK_ROW]


def test_rows_read_back_with_their_types_and_objects() -> None:
    columns = store()
    symbol = "".join(["BTC", "-USDT"])  # not interned: the very object comes back
    columns.append((BOOK_ROW[0], symbol, *BOOK_ROW[2:]))
    columns.append((*BOOK_ROW[:2], None, *BOOK_ROW[3:5], -0.0, math.inf, True, None, 3, 2**31 - 1))
    assert columns[0][1] is symbol
    row = columns[-1]
    assert row[2] is None and row[8] is None and row[7] is True
    assert math.copysign(1.0, row[5]) == -1.0 and row[6] == math.inf
    assert columns.columnar
    with pytest.raises(IndexError):
        columns[2]
    with pytest.raises(TypeError, match="indices"):
        columns["a"]
    with pytest.raises(AttributeError):
        columns.no_such_method  # noqa: B018
    assert columns.columnar
    with pytest.raises(TypeError):
        hash(columns)


def test_copies_and_pickles_are_lists_of_the_rows() -> None:
    columns = store()
    columns.extend([BOOK_ROW, BOOK_ROW])
    for other in (copy.copy(columns), copy.deepcopy(columns), pickle.loads(pickle.dumps(columns))):
        assert type(other) is list and other == [BOOK_ROW, BOOK_ROW]
    buf = new_record_buffer()
    buf.book.append(BOOK_ROW)
    more = new_record_buffer()
    more.extend(buf)
    more.extend(buf)
    assert more.book == [BOOK_ROW, BOOK_ROW] and more.book.columnar
    assert len(more) == 2 and more


# -- to Arrow ---------------------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
INT64 = st.integers(-(2**63), 2**63 - 1)
FLOAT = st.floats(allow_nan=False)


#: values of each field type (the compiled codec's codes: string 1, long 3, int 4, double 5, boolean 6)
CELLS: dict[int, st.SearchStrategy[Any]] = {
    1: TEXT,
    3: INT64,
    4: st.integers(-(2**31), 2**31 - 1),
    5: FLOAT,
    6: st.booleans(),
}


def dataset_rows(dataset: str) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """Rows of a dataset's base fields, any value of each field's type (None too where nullable)."""
    cells = [
        CELLS[code & 0x0F] | st.none() if code & 0x10 else CELLS[code & 0x0F] for code in field_codes(dataset)
    ]
    return st.lists(st.tuples(*cells[: base_width(dataset)]), max_size=20)


@pytest.mark.parametrize("dataset", COLUMNAR_DATASETS)
def test_columns_to_arrow_identical_to_rows(dataset: str) -> None:
    @PROFILE
    @given(dataset_rows(dataset))
    def check(rows: list[tuple[Any, ...]]) -> None:
        columns = store(dataset)
        columns.extend(rows)
        assert columns.columnar
        batch = rows_to_arrow(dataset, columns)
        assert batch.equals(rows_to_arrow(dataset, rows))
        assert batch.equals(python_rows_to_arrow(dataset, rows))
        assert batch.schema.field("replica").nullable and batch.column("replica").null_count == len(rows)

    check()


def test_batches_keep_their_values_while_the_store_changes() -> None:
    columns = store()
    rows = [(*BOOK_ROW[:5], float(i), 1.0, False, i, 0, i) for i in range(100)]
    columns.extend(rows)
    first = rows_to_arrow("book", columns)
    columns[5] = (*BOOK_ROW[:5], -1.0, 2.0, True, None, 9, 9)  # in place: the batch's arrays are copied first
    columns.extend(rows * 50)  # the arrays grow: they move, the batch's stay
    second = rows_to_arrow("book", columns)
    columns.clear()
    columns.extend([(*BOOK_ROW[:5], 7.0, 7.0, True, 7, 7, 7)] * 6000)  # new arrays: the old are the batches'
    third = rows_to_arrow("book", columns)
    expected = python_rows_to_arrow("book", rows)
    assert first.equals(expected)
    changed = [*rows[:5], (*BOOK_ROW[:5], -1.0, 2.0, True, None, 9, 9), *rows[6:], *rows * 50]
    assert second.equals(python_rows_to_arrow("book", changed))
    assert third.equals(python_rows_to_arrow("book", [(*BOOK_ROW[:5], 7.0, 7.0, True, 7, 7, 7)] * 6000))
    assert third.column("price").to_pylist() == [7.0] * 6000
    grown = columns.empty()
    grown.append(BOOK_ROW)
    assert grown == [BOOK_ROW] and len(grown) == 1


def test_a_store_that_became_a_list_converts_as_the_list() -> None:
    rows = [BOOK_ROW, (*BOOK_ROW[:10], Flags.SNAPSHOT), (*BOOK_ROW, "replica-b")]
    columns = store()
    columns.extend(rows)
    assert not columns.columnar
    assert rows_to_arrow("book", columns).equals(python_rows_to_arrow("book", rows))
    bad = store()
    bad.extend([BOOK_ROW, (*BOOK_ROW[:5], "not a price", *BOOK_ROW[6:])])
    with pytest.raises((ValueError, TypeError)):
        rows_to_arrow("book", bad)


# -- references -------------------------------------------------------------------------------------------


def test_no_reference_leaks() -> None:
    symbol = "".join(["LEAK", "-USDT"])
    before = sys.getrefcount(symbol)

    def churn() -> None:
        columns = store()
        for i in range(200):
            columns.append((BOOK_ROW[0], symbol, *BOOK_ROW[2:8], i, 0, 0))
        columns[3] = (BOOK_ROW[0], symbol, *BOOK_ROW[2:])
        columns.extend(columns)
        _ = columns[1:50], list(columns), columns.to_columns(), columns == [], repr(columns)[:10]
        other = columns.empty()
        other.extend(columns)
        other.clear()
        columns.append((*BOOK_ROW[:8], Odd(1), 0, 0))  # to a list, then dropped
        columns.clear()
        columns.append((BOOK_ROW[0], symbol, *BOOK_ROW[2:]))

    for _ in range(20):
        churn()
    assert sys.getrefcount(symbol) == before


def test_a_replay_keeps_freed_memory_and_gives_it_back() -> None:
    """``ticktape replay`` has glibc keep freed memory (the next unit's column arrays reuse the last
    one's pages) and restores the defaults after; elsewhere nothing changes (False)."""
    import platform

    from ticktape.commands.replay import reuse_freed_memory

    on = engine._booknative.keep_freed_memory(True)
    off = engine._booknative.keep_freed_memory(False)
    assert isinstance(on, bool) and on == off
    # glibc's own malloc takes the settings; AddressSanitizer's (make asan) answers False
    if platform.libc_ver()[0] == "glibc" and not os.environ.get("TICKTAPE_ASAN_BUILD"):
        assert on
    default_pool = pa.default_memory_pool().backend_name
    with reuse_freed_memory():
        columns = store()
        columns.extend([BOOK_ROW] * 10_000)
        assert rows_to_arrow("book", columns).num_rows == 10_000
        # Arrow allocates from the kept heap too, where glibc keeps it
        assert pa.default_memory_pool().backend_name == ("system" if on else default_pool)
    assert pa.default_memory_pool().backend_name == default_pool

"""The compiled row conversion and lake order (streaming/_avronative.c) against their references.

``rows_to_arrow`` with the compiled codec (``streaming.codec.rows_to_batch``) must give exactly the
batch of ``schemas.python_rows_to_arrow`` (same schema, values, nulls; doubles compared by their
bits) or decline (None) so that the reference converts, coerces or raises as it does:
``rows_to_arrow`` then returns or raises the same. ``storage.lake.sort_for_lake`` with the compiled
order must give the table of ``python_sort_for_lake``. Inputs: every dataset of every shared
recording replayed through its venue's normaliser, every schema with edge values, hypothesis rows,
and values of other types than their column's.

The compiled module is loaded directly (``codec.load_native_module``), so these tests also run with
``TICKTAPE_PURE_PYTHON=1``; ``make asan-codec`` runs them against the AddressSanitizer build.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import storage.lake as lake
from schemas import (
    DATASETS,
    avro_schema,
    base_width,
    field_names,
    python_rows_to_arrow,
    rows_to_arrow,
)
from streaming import codec
from streaming.base import arrow_tables, split_to_arrow
from tests.streaming.test_codec import EXAMPLES
from tests.streaming.test_native_codec import (
    FAST,
    INT64_MAX,
    INT64_MIN,
    RECORDINGS,
    assert_tables_equal,
    edge_rows,
    native,
    replayed,
)


@contextmanager
def using(module: Any) -> Iterator[None]:
    """The codec's paths switched to ``module`` (the compiled codec, or None: the reference)."""
    saved, codec._NATIVE[0] = codec._NATIVE[0], module
    try:
        yield
    finally:
        codec._NATIVE[0] = saved


def compiled_batch(dataset: str, rows: Any) -> pa.RecordBatch | None:
    with using(native()):
        return codec.rows_to_batch(dataset, rows)


def outcome(convert: Callable[[], Any]) -> Any:
    """What a conversion gives: its table, or the type and text of what it raised."""
    try:
        return pa.Table.from_batches([convert()])
    except Exception as exc:  # the reference's error, whatever it is, must be the same
        return (type(exc), str(exc))


def assert_converts_alike(dataset: str, rows: Any, *, taken: bool | None = None) -> None:
    """The compiled conversion gives the reference's table, or declines; ``rows_to_arrow`` with the
    compiled codec in use returns or raises exactly what the reference does."""
    want = outcome(lambda: python_rows_to_arrow(dataset, rows))
    got = compiled_batch(dataset, rows)
    if taken is not None:
        assert (got is not None) == taken
    if got is not None:
        assert isinstance(want, pa.Table), want
        assert_tables_equal(pa.Table.from_batches([got]), want)
        if not any(math.isnan(v) for r in rows for v in r if isinstance(v, float)):
            assert got.equals(want.to_batches()[0] if want.num_rows else got)
    with using(native()):
        through = outcome(lambda: rows_to_arrow(dataset, rows))
    if isinstance(want, pa.Table):
        assert isinstance(through, pa.Table), through
        assert_tables_equal(through, want)
    else:
        assert through == want


# ---------------------------------------------------------------------------------------------------
# Real rows: every dataset of every shared recording


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_arrow_recordings_convert_alike(path: Path):
    """Every row of every dataset, in one batch and cut into unit-sized pieces; the normalisers' rows
    are plain (every value of its column's type), so the compiled path takes all of them."""
    datasets = replayed(path)
    assert datasets, "the replay gave no rows"
    for dataset, rows in datasets.items():
        assert_converts_alike(dataset, rows, taken=True)
        assert_converts_alike(dataset, rows[: len(rows) // 3], taken=True)
        replica = [(*r, "zone-a") for r in rows[:500]]
        assert_converts_alike(dataset, replica, taken=True)
        assert_converts_alike(dataset, [*replica[:50], *rows[:50]], taken=True)


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_arrow_recordings_sort_for_the_lake_alike(path: Path):
    """Each dataset of the recording as the replay hands it to the lake writer, and interleaved with
    a copy under other symbols (a transport stream's mix), sorted like the reference."""
    datasets = replayed(path)
    for dataset, rows in datasets.items():
        table = pa.Table.from_batches([python_rows_to_arrow(dataset, rows)])
        others = [(r[0], f"Z{r[1]}" if r[1] else r[1], *r[2:]) for r in rows[::-1]]
        mixed = [x for pair in zip(rows, others, strict=True) for x in pair]
        for t in (table, pa.Table.from_batches([python_rows_to_arrow(dataset, mixed)])):
            assert_sorts_alike(t)


# ---------------------------------------------------------------------------------------------------
# Every schema, edge values


@pytest.mark.parametrize("replica", [False, True], ids=["single", "replica"])
@pytest.mark.parametrize("dataset", DATASETS)
def test_arrow_every_schema_with_edge_values(dataset, replica):
    """None in nullable fields, NaN, inf, -0.0, subnormals, int64 and int32 bounds, empty, non-ASCII
    and NUL strings, empty and binary bytes; rows of the base width and full ones."""
    if replica:
        rows = [(*EXAMPLES[dataset], "zone-a"), *edge_rows(dataset)]
    else:
        rows = [EXAMPLES[dataset], *(r[: base_width(dataset)] for r in edge_rows(dataset))]
    assert_converts_alike(dataset, rows, taken=True)
    assert_converts_alike(dataset, rows[:1], taken=True)
    assert_converts_alike(dataset, [], taken=True)
    assert_converts_alike(dataset, [*rows, *(r[: base_width(dataset)] for r in rows)], taken=True)


def test_arrow_nan_payloads_keep_their_bits():
    import struct

    doubles = [struct.unpack("<d", struct.pack("<Q", b))[0] for b in (0x7FF8000000000001, 0xFFF0000000000001)]
    rows = [(*EXAMPLES["bbo"][:4], d, -0.0, math.nan, 1.0, *EXAMPLES["bbo"][8:]) for d in doubles]
    got = compiled_batch("bbo", rows)
    assert got is not None
    bits = got.column("bid_price").view(pa.int64()).to_pylist()
    assert [b & 0xFFFFFFFFFFFFFFFF for b in bits] == [0x7FF8000000000001, 0xFFF0000000000001]
    assert_converts_alike("bbo", rows, taken=True)


# ---------------------------------------------------------------------------------------------------
# Values and rows the compiled path does not take


class Flag(enum.IntFlag):
    A = 16


class Text(str):
    pass


class Number(float):
    pass


class Row(tuple):  # type: ignore[type-arg]
    pass


def _field_kinds(dataset: str) -> list[tuple[str, bool]]:
    return [codec._field_type(f["type"]) for f in avro_schema(dataset)["fields"]]


#: Per Avro type: values of other types (or out of range) that the reference may accept (coerce)
#: or reject; the compiled path declines every one.
OTHER_VALUES: dict[str, list[Any]] = {
    "string": [Text("x"), b"bytes", 1, 1.5, True, "\udcff", "a\ud800b"],
    "long": [True, False, 1.0, 2.5, "1", 1 << 63, -(1 << 63) - 1, 1 << 64, Number(1.0)],
    "int": [True, 1.0, 1 << 31, -(1 << 31) - 1, 1 << 63, "1"],
    "double": [1, 0, True, Number(2.5), "1.5", 1 << 70, b"x"],
    "boolean": [1, 0, 1.0, "true", b"\x01"],
    "bytes": [bytearray(b"x"), "text", memoryview(b"x"), 1],
}


def _declined_cases() -> list[Any]:
    cases = []
    for dataset in DATASETS:
        for i, (avro_type, nullable) in enumerate(_field_kinds(dataset)):
            values = list(OTHER_VALUES[avro_type])
            if not nullable:
                values.append(None)
            cases.extend(
                pytest.param(dataset, i, v, id=f"{dataset}-{i}-{type(v).__name__}-{k}")
                for k, v in enumerate(values)
            )
    return cases


@pytest.mark.parametrize(("dataset", "index", "value"), _declined_cases())
def test_arrow_declined_values_convert_or_fail_like_the_reference(dataset, index, value):
    row = list(EXAMPLES[dataset])
    if index >= len(row):
        row.append(None)
    row[index] = value
    rows = [EXAMPLES[dataset], tuple(row), EXAMPLES[dataset]]
    assert_converts_alike(dataset, rows, taken=False)


def test_arrow_int_subclasses_are_taken_as_their_value():
    """IntFlag flags are ints to Python and to pyarrow: converted, with the same value."""
    row = (*EXAMPLES["book"][:-1], Flag.A)
    assert_converts_alike("book", [row, EXAMPLES["book"]], taken=True)


@pytest.mark.parametrize("dataset", ["trades", "book", "feed_events", "raw"])
def test_arrow_rows_of_other_shapes_are_declined(dataset):
    good = EXAMPLES[dataset]
    width = len(field_names(dataset))
    shapes: list[list[Any]] = [
        [good, list(good)],  # a list: the reference's column path takes it
        [good, Row(good)],
        [good, good[:-1]] if base_width(dataset) == width else [good, good[:-2]],
        [good, (*good, "zone-a", "extra")],
        [good, ()],
        [good, None],
        [good, "not a row"],
    ]
    for rows in shapes:
        assert_converts_alike(dataset, rows, taken=False)
    assert compiled_batch(dataset, tuple([good])) is None  # not a list


def test_arrow_bad_rows_become_the_same_events():
    """split_to_arrow and arrow_tables (replay, local log publisher) isolate the same bad rows and
    record the same bad_row events, compiled or not."""
    trade = EXAMPLES["trades"]
    rows = [trade, (*trade[:5], "1.5", *trade[6:]), trade, (*trade[:2], 1 << 64, *trade[3:]), trade]

    def run() -> tuple[Any, ...]:
        batch, bad = split_to_arrow("trades", rows)
        from schemas import RecordBuffer

        buf = RecordBuffer(trades=list(rows), book=[EXAMPLES["book"]])
        tables = arrow_tables(buf)
        events = tables["feed_events"].drop_columns(["ts_recv"])  # stamped with the clock
        return batch, bad, {k: v for k, v in tables.items() if k != "feed_events"}, events

    with using(None):
        want = run()
    with using(native()):
        got = run()
    assert got[0].equals(want[0]) and got[1] == want[1] and len(got[1]) == 2
    assert got[2].keys() == want[2].keys() and all(got[2][k].equals(want[2][k]) for k in got[2])
    assert got[3].equals(want[3])


# ---------------------------------------------------------------------------------------------------
# Hypothesis rows


def _value(avro_type: str) -> st.SearchStrategy[Any]:
    return {
        "string": st.text(max_size=12),
        "long": st.integers(INT64_MIN, INT64_MAX),
        "int": st.integers(-(2**31), 2**31 - 1),
        "double": st.floats(allow_nan=True, allow_infinity=True),
        "boolean": st.booleans(),
        "bytes": st.binary(max_size=20),
    }[avro_type]


def _odd(avro_type: str) -> st.SearchStrategy[Any]:
    """Now and then a value of another type (or out of range)."""
    return st.sampled_from(OTHER_VALUES[avro_type])


@st.composite
def dataset_rows(draw: st.DrawFn) -> tuple[str, list[tuple[Any, ...]]]:
    dataset = draw(st.sampled_from(DATASETS))
    kinds = _field_kinds(dataset)
    odd = draw(st.booleans()) and draw(st.booleans())
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        row = []
        for avro_type, nullable in kinds:
            options = [_value(avro_type)]
            if nullable:
                options.append(st.none())
            if odd:
                options.append(_odd(avro_type))
            row.append(draw(st.one_of(options)))
        if draw(st.booleans()):
            row = row[: base_width(dataset)]
        rows.append(tuple(row))
    return dataset, rows


@FAST
@given(dataset_rows())
def test_arrow_hypothesis_rows(case):
    dataset, rows = case
    assert_converts_alike(dataset, rows)


# ---------------------------------------------------------------------------------------------------
# Lake order


def assert_sorts_alike(table: pa.Table) -> None:
    want = lake.python_sort_for_lake(table)
    with using(native()):
        taken, order = codec.lake_order(table)
        got = lake.sort_for_lake(table)
    assert taken == (table.column("symbol").null_count == 0 and table.column("ts_recv").null_count == 0)
    assert_tables_equal(got, want)
    if taken and order is None:  # "in order already": the reference leaves it as it is too
        assert_tables_equal(want, table)


def _order_table(symbols: list[str | None], ts: list[int | None]) -> pa.Table:
    rows = [
        (*EXAMPLES["trades"][:1], s, 0, t, str(i), 1.0, 1.0, "buy", 0)
        for i, (s, t) in enumerate(zip(symbols, ts, strict=True))
    ]
    return pa.Table.from_batches([python_rows_to_arrow("trades", rows)])


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["BTC-USDT", "BTC", "B", "", "é", "ÉTH", "A\x00", "ETH-USDT"]), st.integers(-3, 3)
        ),
        max_size=60,
    )
)
def test_arrow_lake_order_hypothesis(pairs):
    table = _order_table([s for s, _ in pairs], [t for _, t in pairs])
    assert_sorts_alike(table)
    if table.num_rows > 3:
        assert_sorts_alike(table.slice(2))  # an array offset
        assert_sorts_alike(pa.concat_tables([table.slice(0, 2), table.slice(2)]))  # chunks


def test_arrow_lake_order_many_symbols_and_nulls():
    n = 5000
    symbols = [f"S{(i * 7919) % 1500}" for i in range(n)]
    ts = [(i * 104729) % 977 for i in range(n)]
    assert_sorts_alike(_order_table(symbols, ts))
    assert_sorts_alike(_order_table(sorted(symbols), sorted(ts)))
    with_null: list[str | None] = list(symbols)
    with_null[10] = None
    assert_sorts_alike(_order_table(with_null, ts))  # not taken: the reference sorts
    assert codec.lake_order(pa.table({"stream": ["a"], "seq": [1]})) == (False, None)
    with using(native()):
        empty = _order_table([], [])
        assert codec.lake_order(empty) == (True, None)
        assert codec.lake_order(pa.Table.from_batches([], schema=empty.schema)) == (True, None)


def test_arrow_lake_order_checks_its_buffers():
    module = native()
    with pytest.raises(ValueError):
        module.lake_order(3, b"\x00" * 8, b"", b"\x00" * 24, 0, 0)  # offsets for 1 row only
    with pytest.raises(ValueError):
        module.lake_order(1, b"\x00\x00\x00\x00\x09\x00\x00\x00", b"abc", b"\x00" * 8, 0, 0)
    assert module.lake_order(0, b"\x00" * 4, b"", b"", 0, 0) is None

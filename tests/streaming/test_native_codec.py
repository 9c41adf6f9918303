"""The compiled codec (streaming/_avronative.c) against the pure-Python reference (streaming/codec.py).

Whatever the compiled codec takes it must encode byte for byte like the reference, and decode to the
same columns; whatever it does not take it must refuse (None from the encoders, count -1 from the
decoder), so that the reference decides. Inputs: the rows of every shared recording replayed through
its venue's normaliser, every dataset's schema with edge values, hypothesis-generated rows, and
truncated, mutated and random message values. fastavro must read what is encoded.

The module under test is loaded directly (``codec.load_native_module``), so these tests also run with
``TICKTAPE_PURE_PYTHON=1``; ``make asan-codec`` runs them against the AddressSanitizer build.
"""

from __future__ import annotations

import enum
import functools
import math
import os
import struct
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.capture import replay_capture
from collectors.registry import exchange_ids, get_dialect
from schemas import (
    DATASETS,
    RECORD_DATASETS,
    arrow_schema,
    avro_schema,
    base_width,
    field_names,
    rows_to_arrow,
)
from streaming import codec
from streaming.kafka import group_by_key
from tests.streaming.test_codec import EXAMPLES, standard_decode

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"
RECORDINGS = sorted(
    p for ex in exchange_ids() for p in (SAMPLES / ex).glob("*.capture.gz") if (SAMPLES / ex).is_dir()
)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
#: Rows of each dataset and recording that also go through the slow reference paths (fastavro, the
#: Python decoder, one row at a time)
SUBSET = 4000
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def native() -> ModuleType:
    return codec.load_native_module()


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The codec module's paths switched to the compiled codec for one test."""
    module = native()
    monkeypatch.setattr(codec, "_NATIVE", [module])
    return module


def test_the_compiled_codec_is_built_and_selected_as_configured():
    """make install builds it: its absence fails here rather than silently testing nothing."""
    assert native().__name__ == "streaming._avronative"
    status = codec.native_status()
    if os.environ.get(codec.PURE_PYTHON_ENV, "") not in ("", "0"):
        assert status.startswith("pure Python") and codec._native() is None
    else:
        assert status.startswith("compiled") and codec._native() is not None


# ---------------------------------------------------------------------------------------------------
# Helpers: the reference, and table comparison that holds NaN bits


def schema_of(dataset: str, data: Any, columnar: bool = False) -> tuple[bytes, bytes]:
    """Field codes and header for rows (or columns) of this width: the base schema's without the
    replica field (a single collector's rows), the full one's with it."""
    return codec._native_schema(dataset, (data, columnar))


def encode_row(dataset: str, row: Any) -> bytes | None:
    return native().encode_row(*schema_of(dataset, [row]), row)


def encode_batch(dataset: str, rows: list[Any]) -> bytes | None:
    return native().encode_batch(*schema_of(dataset, rows), rows, False)


def encode_columns(dataset: str, rows: list[tuple[Any, ...]]) -> bytes | None:
    columns = (
        tuple(list(c) for c in zip(*rows, strict=True)) if rows else tuple([] for _ in field_names(dataset))
    )
    return native().encode_batch(*schema_of(dataset, columns, True), columns, True)


def keyed(dataset: str, rows: list[Any], max_bytes: int, ts: bool = True, columns: bool = False) -> Any:
    data: Any = rows
    if columns:
        data = tuple(list(c) for c in zip(*rows, strict=True))
    return native().encode_keyed(
        *schema_of(dataset, data, columns), data, columns, max_bytes, 3 if ts else -1
    )


def reference_keyed(dataset: str, rows: list[tuple[Any, ...]], max_bytes: int) -> list[Any]:
    """What streaming.kafka's reference path publishes: per key, encodings packed up to max_bytes."""
    enc = codec.python_encoder(dataset)
    out = []
    for key, group in group_by_key(rows).items():
        chunk: list[bytes] = []
        chunk_rows: list[tuple[Any, ...]] = []
        size = 0
        for row in group:
            data = enc(row)
            if chunk and size + len(data) > max_bytes:
                out.append((key, b"".join(chunk), len(chunk_rows), tuple(r[3] for r in chunk_rows)))
                chunk, chunk_rows, size = [], [], 0
            chunk.append(data)
            chunk_rows.append(row)
            size += len(data)
        if chunk:
            out.append((key, b"".join(chunk), len(chunk_rows), tuple(r[3] for r in chunk_rows)))
    return out


def column_values(table: pa.Table) -> list[list[Any]]:
    """Every column as Python values, doubles as their 64 bits (NaN payloads and -0.0 compared)."""
    out = []
    for col in table.combine_chunks().columns:
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if pa.types.is_floating(arr.type):
            arr = arr.view(pa.int64())
        elif pa.types.is_timestamp(arr.type):
            arr = arr.cast(pa.int64())
        out.append(arr.to_pylist())
    return out


def assert_tables_equal(got: pa.Table, want: pa.Table) -> None:
    assert got.schema.equals(want.schema)
    assert got.num_rows == want.num_rows
    assert column_values(got) == column_values(want)
    got.validate(full=True)


def reference_decode(dataset: str, values: list[bytes]) -> tuple[pa.Table, list[int]]:
    """The reference's view of values: rows of those that decode and fit the columns, -1 otherwise."""
    rows: list[tuple[Any, ...]] = []
    counts = []
    for value in values:
        try:
            got_dataset, got = codec.decode_message(value)
            if got_dataset != dataset:
                raise codec.CodecError("another dataset")
            rows_to_arrow(dataset, got)
        except (codec.CodecError, pa.ArrowException, OverflowError, TypeError, ValueError):
            counts.append(-1)
            continue
        rows.extend(got)
        counts.append(len(got))
    return pa.Table.from_batches([rows_to_arrow(dataset, rows)]), counts


def decode(dataset: str, values: list[bytes]) -> tuple[pa.Table, list[int]]:
    """The compiled decoder through codec.decode_columns (directly with TICKTAPE_PURE_PYTHON=1)."""
    return codec.decode_columns(dataset, values) if codec._native() else _decode_direct(dataset, values)


def assert_decodes_alike(dataset: str, values: list[bytes]) -> tuple[pa.Table, list[int]]:
    table, counts = decode(dataset, values)
    want_table, want_counts = reference_decode(dataset, values)
    assert counts == want_counts
    assert_tables_equal(table, want_table)
    return table, counts


def _decode_direct(dataset: str, values: list[bytes]) -> tuple[pa.Table, list[int]]:
    """codec.decode_columns with the compiled module in place although TICKTAPE_PURE_PYTHON is set."""
    saved, codec._NATIVE[0] = codec._NATIVE[0], native()
    try:
        return codec.decode_columns(dataset, values)
    finally:
        codec._NATIVE[0] = saved


def assert_encodes_alike(dataset: str, rows: list[tuple[Any, ...]]) -> bytes:
    want = codec.python_encode_rows(dataset, rows)
    assert encode_batch(dataset, rows) == want
    assert encode_columns(dataset, rows) == want
    assert b"".join(encode_row(dataset, r) or b"<refused>" for r in rows) == want
    return want


# ---------------------------------------------------------------------------------------------------
# Real rows: every shared recording


@functools.cache
def replayed(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    buf = replay_capture(get_dialect(path.parent.name).new_normaliser(), path)
    return {d: buf.rows(d) for d in RECORD_DATASETS if buf.rows(d)}


def test_there_are_recordings():
    assert len(RECORDINGS) >= 10, RECORDINGS


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recordings_encode_and_decode_alike(path: Path):
    """Every row of the recording through the batch paths; the slower reference paths (one row at a
    time, fastavro, the Python decoder) over the first SUBSET rows of each dataset."""
    datasets = replayed(path)
    assert datasets, "the replay gave no rows"
    for dataset, rows in datasets.items():
        want = codec.python_encode_rows(dataset, rows)
        assert encode_batch(dataset, rows) == want
        assert encode_columns(dataset, rows) == want
        parts = keyed(dataset, rows, 900_000)
        assert parts == reference_keyed(dataset, rows, 900_000)
        assert keyed(dataset, rows, 900_000, columns=True) == parts
        assert keyed(dataset, rows, 900_000, ts=False) == [(k, v, n, None) for k, v, n, _ in parts]
        # Decoded, every row is back: the table equals the one built from the rows themselves (in
        # key order, as the values hold them).
        table, counts = decode(dataset, [v for _, v, _, _ in parts])
        assert counts == [n for _, _, n, _ in parts]
        by_key = [r for group in group_by_key(rows).values() for r in group]
        assert_tables_equal(table, pa.Table.from_batches([rows_to_arrow(dataset, by_key)]))

        subset = rows[:SUBSET]
        assert_encodes_alike(dataset, subset)
        assert standard_decode(codec.encode_rows(dataset, subset)) == [
            (dataset, dict(zip(field_names(dataset)[: len(r)], r, strict=True))) for r in subset
        ]
        for max_bytes in (1, 700):
            assert keyed(dataset, subset, max_bytes) == reference_keyed(dataset, subset, max_bytes)
        values = [v for _, v, _, _ in keyed(dataset, subset, 4096)]
        assert_decodes_alike(dataset, [*values, want[: len(want) // 2]])


# ---------------------------------------------------------------------------------------------------
# Every schema, edge values


class Flag(enum.IntFlag):
    A = 1
    B = 64


def _edge_value(avro_type: str, k: int) -> Any:
    return {
        "string": ["", "é", "BTC-USDT", "日本語🚀", "\x00", "a" * 300][k % 6],
        "long": [0, -1, 1, INT64_MIN, INT64_MAX, 63, -64, 64, -65, 1 << 62][k % 10],
        "int": [0, -1, 2**31 - 1, -(2**31), 16, Flag.A | Flag.B][k % 6],
        "double": [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308][k % 7],
        "boolean": [True, False][k % 2],
        "bytes": [b"", bytes(range(256)), b"\x00" * 200][k % 3],
    }[avro_type]


def edge_rows(dataset: str, n: int = 40) -> list[tuple[Any, ...]]:
    rows = []
    for k in range(n):
        row = []
        for i, f in enumerate(avro_schema(dataset)["fields"]):
            avro_type, nullable = codec._field_type(f["type"])
            if nullable and (k + i) % 3 == 0:
                row.append(None)
            else:
                row.append(_edge_value(avro_type, k + i))
        rows.append(tuple(row))
    return rows


@pytest.mark.parametrize("replica", [False, True], ids=["single", "replica"])
@pytest.mark.parametrize("dataset", DATASETS)
def test_every_schema_with_edge_values(dataset, replica):
    """Rows of a single collector (the base schema, no replica field) and of a replica (full schema)."""
    if replica:
        rows = [(*EXAMPLES[dataset], "zone-a"), *edge_rows(dataset)]
    else:
        rows = [EXAMPLES[dataset], *(r[: base_width(dataset)] for r in edge_rows(dataset))]
    value = assert_encodes_alike(dataset, rows)
    decoded = standard_decode(value)
    assert len(decoded) == len(rows)
    for (name, rec), row in zip(decoded, rows, strict=True):
        assert name == dataset
        for got, want in zip(rec.values(), row, strict=True):
            assert (
                struct.pack("<d", got) == struct.pack("<d", want) if isinstance(want, float) else got == want
            )
    assert_decodes_alike(dataset, [value, value[:-1], value])
    assert_decodes_alike(dataset, [encode_row(dataset, r) for r in rows])  # type: ignore[misc]


def test_nan_payloads_and_negative_zero_keep_their_bits():
    doubles = [
        struct.unpack("<d", struct.pack("<Q", bits))[0] for bits in (0x7FF8000000000001, 0xFFF0000000000001)
    ]
    rows = [(*EXAMPLES["bbo"][:4], d, -0.0, math.nan, 1.0, *EXAMPLES["bbo"][8:]) for d in doubles]
    value = assert_encodes_alike("bbo", rows)
    table, _ = assert_decodes_alike("bbo", [value])
    bits = table.column("bid_price").combine_chunks().view(pa.int64()).to_pylist()
    assert [b & 0xFFFFFFFFFFFFFFFF for b in bits] == [0x7FF8000000000001, 0xFFF0000000000001]


def test_a_huge_batch():
    rows = replayed(RECORDINGS[0]).get("book") or edge_rows("book", 1000)
    many = (rows * (150_000 // len(rows) + 1))[:150_000]
    value = assert_encodes_alike("book", many)
    parts = keyed("book", many, 900_000)
    assert parts == reference_keyed("book", many, 900_000)
    assert all(len(v) <= 900_000 for _, v, _, _ in parts)
    table, counts = assert_decodes_alike("book", [v for _, v, _, _ in parts])
    assert table.num_rows == len(many) and sum(counts) == len(many)
    assert_decodes_alike("book", [value])


def test_a_record_larger_than_max_bytes_is_a_value_of_its_own():
    big = (*EXAMPLES["trades"][:4], "x" * 5000, *EXAMPLES["trades"][5:])
    rows = [EXAMPLES["trades"], big, EXAMPLES["trades"]]
    assert keyed("trades", rows, 1000) == reference_keyed("trades", rows, 1000)
    assert [n for _, _, n, _ in keyed("trades", rows, 1000)] == [1, 1, 1]


def test_keys_group_like_the_reference():
    t = EXAMPLES["trades"]
    rows = [
        t,
        ("okx", "BTC-USDT", *t[2:]),
        t,
        ("a|b", "c", *t[2:]),
        ("a", "b|c", *t[2:]),  # the same key bytes as the row before: one group, as in the reference
        ("okx", "", *t[2:]),
    ]
    ev = EXAMPLES["feed_events"]
    events = [ev, (ev[0], "ETH-USDT", *ev[2:]), ev]
    assert keyed("trades", rows, 900_000) == reference_keyed("trades", rows, 900_000)
    assert keyed("feed_events", events, 900_000) == reference_keyed("feed_events", events, 900_000)
    assert [k for k, _, _, _ in keyed("feed_events", events, 900_000)] == [b"kraken|", b"kraken|ETH-USDT"]


class ColumnRows:
    """Rows held as columns, as a columnar record buffer holds them (``cols``: a list per field)."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.cols = tuple(list(c) for c in zip(*rows, strict=True))

    def __iter__(self) -> Any:
        return zip(*self.cols, strict=True)

    def __len__(self) -> int:
        return len(self.cols[0])


def test_codec_takes_rows_or_a_buffers_columns(compiled):
    rows = replayed(RECORDINGS[0])["book"][:3000]
    want = codec.python_encode_rows("book", rows)
    assert codec.encode_rows("book", ColumnRows(rows)) == codec.encode_rows("book", rows) == want
    assert codec.encode_keyed("book", ColumnRows(rows), 5000, True) == reference_keyed("book", rows, 5000)
    assert codec.encode_keyed("book", tuple(rows), 5000) is None  # another sequence: the reference path
    ragged = ColumnRows(rows)
    ragged.cols[3].pop()
    assert codec.encode_keyed("book", ragged, 5000) is None


# ---------------------------------------------------------------------------------------------------
# What the compiled encoder refuses, the reference decides


_T = EXAMPLES["trades"]
REFUSED = [
    (*_T[:5], None, *_T[6:]),  # null in a non-null double
    (*_T[:3], True, *_T[4:]),  # bool as a long
    (*_T[:3], 1.5, *_T[4:]),  # float as a long
    (*_T[:3], 1 << 63, *_T[4:]),  # beyond a long
    (*_T[:3], -(1 << 63) - 1, *_T[4:]),
    (*_T[:4], 42, *_T[5:]),  # int as a string
    (*_T[:4], "\ud800", *_T[5:]),  # a lone surrogate
    (*_T[:5], "1.0", *_T[6:]),  # str as a double
    (*_T[:5], 1 << 2000, *_T[6:]),  # an int too big for a double
    _T[:-1],  # a field short
    (*_T, 0),  # a field more
    (b"binance", *_T[1:]),  # bytes as a string
]


@pytest.mark.parametrize("row", REFUSED, ids=range(len(REFUSED)))
def test_rows_the_reference_rejects_are_refused(row):
    with pytest.raises(codec.CodecError):
        codec.python_encoder("trades")(row)
    assert encode_row("trades", row) is None
    assert encode_batch("trades", [_T, row]) is None
    assert keyed("trades", [_T, row], 900_000) is None


def test_values_the_reference_accepts_in_other_types_encode_alike():
    class Price(float):
        pass

    rows = [
        (*_T[:5], 2, *_T[6:]),  # an int price
        (*_T[:5], True, *_T[6:]),  # struct.pack("<d", True) is 1.0
        (*_T[:5], Price(3.5), *_T[6:]),
        (*_T[:8], Flag.A | Flag.B),
        list(_T),  # a list: the reference unpacks it, the compiled codec leaves it to the reference
    ]
    for row in rows:
        want = codec.python_encoder("trades")(row)
        got = encode_row("trades", row)
        assert got is None or got == want
    assert encode_batch("trades", rows) in (None, codec.python_encode_rows("trades", rows))


def test_codec_paths_use_the_reference_for_refused_rows(compiled):
    codec.encoder.cache_clear()
    try:
        assert codec.encoder("trades")(_T) == codec.python_encoder("trades")(_T)
        with pytest.raises(codec.CodecError):
            codec.encoder("trades")(REFUSED[0])
        assert codec.encode_keyed("trades", [_T, REFUSED[0]], 1000) is None
        assert codec.encode_rows("trades", [_T, _T]) == codec.python_encode_rows("trades", [_T, _T])
    finally:
        codec.encoder.cache_clear()


# ---------------------------------------------------------------------------------------------------
# Hypothesis: rows of every schema


def _value_strategy(avro_type: str) -> st.SearchStrategy[Any]:
    return {
        "string": st.text(max_size=40),
        "long": st.integers(INT64_MIN, INT64_MAX),
        "int": st.integers(-(2**31), 2**31 - 1),
        "double": st.floats(allow_nan=True, allow_infinity=True),
        "boolean": st.booleans(),
        "bytes": st.binary(max_size=64),
    }[avro_type]


# A value of a wrong type now and then: the encoders must then agree to refuse (or agree on bytes).
_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 70), 1 << 70),
    st.floats(),
    st.text(max_size=5),
    st.binary(max_size=5),
)


@functools.cache
def _row_strategy(dataset: str, odd: bool) -> st.SearchStrategy[tuple[Any, ...]]:
    cells = []
    for f in avro_schema(dataset)["fields"]:
        avro_type, nullable = codec._field_type(f["type"])
        s = _value_strategy(avro_type)
        if nullable:
            s = st.one_of(st.none(), s)
        if odd:
            s = st.one_of(s, _ODD)
        cells.append(s)
    return st.tuples(*cells)


@FAST
@given(data=st.data(), dataset=st.sampled_from(DATASETS))
def test_hypothesis_rows_encode_and_decode_alike(data, dataset):
    rows = data.draw(st.lists(_row_strategy(dataset, False), min_size=1, max_size=30))
    value = assert_encodes_alike(dataset, rows)
    assert keyed(dataset, rows, 300) == reference_keyed(dataset, rows, 300)
    assert len(standard_decode(value)) == len(rows)
    assert_decodes_alike(dataset, [value, *(encode_row(dataset, r) for r in rows)])


@FAST
@given(data=st.data(), dataset=st.sampled_from(DATASETS))
def test_hypothesis_odd_rows_are_refused_or_encoded_alike(data, dataset):
    row = data.draw(_row_strategy(dataset, True))
    try:
        want: bytes | None = codec.python_encoder(dataset)(row)
    except codec.CodecError:
        want = None
    got = encode_row(dataset, row)
    assert got == want or (got is None and want is not None)
    batch = encode_batch(dataset, [row])
    assert batch == got


# ---------------------------------------------------------------------------------------------------
# Hostile values: truncated, mutated, random


def _value(dataset: str, replica: bool = False) -> bytes:
    """A message value of one schema: a single collector's rows (base width), or a replica's."""
    if replica:
        return codec.python_encode_rows(dataset, [(*EXAMPLES[dataset], "zone-a"), *edge_rows(dataset, 6)])
    rows = [EXAMPLES[dataset], *(r[: base_width(dataset)] for r in edge_rows(dataset, 6))]
    return codec.python_encode_rows(dataset, rows)


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_truncation_is_refused_like_the_reference(dataset):
    for value in (_value(dataset), _value(dataset, replica=True)):
        prefixes = [value[:n] for n in range(len(value) + 1)]
        assert_decodes_alike(dataset, prefixes)
    value = _value(dataset)
    assert_decodes_alike(dataset, [value + value[:n] for n in range(0, len(value), 7)])


@FAST
@given(
    dataset=st.sampled_from(DATASETS),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 10_000),
)
def test_mutated_values_decode_like_the_reference(dataset, flips, cut):
    value = bytearray(_value(dataset))
    for pos, byte in flips:
        value[HEADER_SKIP + pos % (len(value) - HEADER_SKIP)] = byte
    mutated = bytes(value)
    assert_decodes_alike(dataset, [mutated, mutated[: cut % (len(mutated) + 1)], _value(dataset)])


HEADER_SKIP = codec.HEADER_BYTES


@FAST
@given(dataset=st.sampled_from(DATASETS), body=st.binary(max_size=300), raw=st.binary(max_size=40))
def test_random_bytes_decode_like_the_reference(dataset, body, raw):
    assert_decodes_alike(dataset, [codec.header(dataset) + body, raw, codec.header(dataset) * 2 + body])


def test_numbers_that_do_not_fit_their_columns_are_left_to_the_reference():
    """A 10-byte varint beyond 64 bits, an Avro int beyond 32 bits, an overlong varint."""
    ts = _T[3]
    good = codec.python_encode_rows("trades", [_T])
    beyond = good.replace(codec._long(ts), b"\xfe" + b"\xff" * 8 + b"\x7f", 1)
    wide_flags = codec.python_encode_rows("trades", [(*_T[:8], 1 << 40)])
    overlong = good.replace(codec._long(ts), b"\xff" * 10 + b"\x01", 1)
    ten_bytes_ok = good.replace(codec._long(ts), b"\x80" * 9 + b"\x01", 1)  # 2**63 zigzagged: INT64_MIN
    _, counts = assert_decodes_alike("trades", [good, beyond, wide_flags, overlong, ten_bytes_ok])
    assert counts == [1, -1, -1, -1, 1]


def test_the_decoder_never_raises_on_garbage_and_keeps_other_values():
    values = [b"", b"\xc3", b"\xc3\x01" + b"\x00" * 8, codec.header("book"), _value("book"), b"\xff" * 64]
    _, counts = assert_decodes_alike("book", values)
    assert counts[:4] == [-1, -1, -1, -1] and counts[4] > 0 and counts[5] == -1
    with pytest.raises(TypeError):
        native().decode_values(codec._spec("book"), codec.header("book"), [None])
    with pytest.raises(ValueError):
        native().decode_values(b"\x09", codec.header("book"), [])


# ---------------------------------------------------------------------------------------------------
# consume_values: the consumers' batches are the same either way


def _messages() -> list[tuple[int, bytes | None, bytes | None]]:
    t = codec.python_encode_rows("trades", [EXAMPLES["trades"]] * 3)
    b = codec.python_encode_rows("book", edge_rows("book", 5))
    ev = codec.python_encode_rows("feed_events", [EXAMPLES["feed_events"]])
    beyond = t.replace(codec._long(_T[3]), b"\xfe" + b"\xff" * 8 + b"\x7f", 1)
    key = b"binance|ETH-USDT"
    return [
        (10, key, t),
        (11, key, t),  # a producer retry: no rows
        (12, key, t[:-2]),  # truncated
        (13, key, t + b),  # mixes datasets
        (14, key, b),
        (15, key, b),  # retry of another dataset
        (16, None, None),
        (17, key, ev),
        (18, key, beyond),  # decodes, does not fit: a decode_error event
        (19, key, beyond),  # its retry: no rows, no event
        (20, key, t),  # not a retry: 11 was dropped, 10 is in the window, so this is one
        (21, b"other|X", t),
        (22, key, b"garbage"),
        (23, key, b),
    ]


def _error_row(messages: list[Any], i: int, exc: codec.CodecError) -> tuple[Any, ...]:
    position, key, value = messages[i]
    return codec.decode_error_row("kafka.t.0", position, key, value or b"", exc, 1_000 + i, "trades")


def _batches(consume: Any, messages: list[Any], window: int = 8192) -> tuple[list[Any], int]:
    recent = codec.RecentMessages(window)
    batches, dups = consume("kafka.t.0", messages, recent, functools.partial(_error_row, messages))
    out = []
    for b in batches:
        values = column_values(b.table)
        if b.dataset == "feed_events":
            # The event of a value that does not fit its columns is stamped with the time it was made.
            values = [
                v if f != "ts_recv" else None for f, v in zip(b.table.column_names, values, strict=True)
            ]
        out.append((b.stream, b.first, b.last, b.dataset, b.table.schema, values))
    return out, dups


@pytest.mark.parametrize("window", [8192, 1])
def test_consume_values_gives_the_same_batches(compiled, window):
    messages = _messages()
    got = _batches(codec._consume_native, messages, window)
    want = _batches(codec._consume_python, messages, window)
    assert got == want
    batches, dups = got
    assert dups >= 3
    kinds = [b[3] for b in batches]
    assert "feed_events" in kinds and "book" in kinds and "trades" in kinds
    # every position is covered once, in order
    assert [p for b in batches for p in range(b[1], b[2] + 1)] == [m[0] for m in messages]


@FAST
@given(picks=st.lists(st.tuples(st.integers(0, 13), st.integers(0, 12)), min_size=1, max_size=25))
def test_consume_values_random_sequences(picks):
    module = native()
    base = _messages()
    messages = []
    for n, (i, cut) in enumerate(picks):
        _, key, value = base[i]
        if value is not None and cut:
            value = value[: len(value) - cut] if cut % 2 else value + value[:cut]
        messages.append((100 + n, key, value))
    saved = codec._NATIVE[0]
    codec._NATIVE[0] = module
    try:
        got = _batches(codec._consume_native, messages)
    finally:
        codec._NATIVE[0] = saved
    assert got == _batches(codec._consume_python, messages)


def test_decode_columns_splits_large_inputs(compiled, monkeypatch):
    monkeypatch.setattr(codec, "_DECODE_CALL_BYTES", 200)
    values = [_value("book")] * 5 + [b"bad"] + [_value("book")] * 3
    table, counts = assert_decodes_alike("book", values)
    assert counts.count(-1) == 1 and table.num_rows == sum(c for c in counts if c > 0)
    empty, none = codec.decode_columns("book", [])
    assert empty.num_rows == 0 and none == [] and empty.schema.equals(arrow_schema("book"))

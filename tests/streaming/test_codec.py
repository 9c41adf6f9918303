"""The wire encoding: a standard client with only fastavro and the .avsc files decodes it."""

from __future__ import annotations

import functools
import io
import json
import math
import struct
from pathlib import Path

import fastavro
import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import DATASETS, RECORD_DATASETS, field_names
from streaming import codec

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"

TRADE = (
    "binance",
    "ETH-USDT",
    1723075200123000000,
    1723075200124567000,
    "3702218123",
    2678.12,
    0.0123,
    "buy",
    0,
)
BOOK = ("binance", "ETH-USDT", None, 1723075200124567000, "ask", 2678.13, 0.0, True, 47982347234, 3, 16)
BBO = ("okx", "BTC-USDT-PERP", 1, 2, 61000.5, None, 61000.6, 3.0, None, 33)
EVENT = ("kraken", None, "connection", 1723075200124567000, "disconnect", '{"reason":"ping timeout é"}')
QUALITY = ("binance", None, "all", 2, 1, 2, 300, 0.01, None, -1.27, 0.5, 0.1, 0.0, 0, 0, 97.5, "OK")
INSTRUMENT = (
    "deribit", "BTC-27DEC26-100000-C", "BTC-27DEC26-100000-C", "option", "BTC", "USD", "BTC",
    0.0005, 0.1, 1.0, 1798358400000000000, 100000.0, "call", "trading", 1723075200124567000,
)  # fmt: skip
FUNDING = ("binance-futures", "BTC-USDT-PERP", 1, 2, 0.0001, None, 1723104000000000000, 8)
MARK = ("bybit", "BTC-USDT-PERP", 1, 2, 61000.5, 61001.25, 0)
OPEN_INTEREST = ("okx", "BTC-USDT-PERP", 1, 2, 123456.0, None, 0)
LIQUIDATION = ("binance-futures", "ETH-USDT-PERP", 1, 2, None, "sell", 2600.5, 1.25, 0)
EXAMPLES = {
    "trades": TRADE,
    "book": BOOK,
    "bbo": BBO,
    "feed_events": EVENT,
    "quality": QUALITY,
    "instruments": INSTRUMENT,
    "funding": FUNDING,
    "mark_price": MARK,
    "open_interest": OPEN_INTEREST,
    "liquidations": LIQUIDATION,
    # a raw archive batch: its blob is bytes, with every byte value (a standard client must read it)
    "raw": (
        "binance",
        "binance-0@1764892800000000000",
        3,
        1723075200124567000,
        1723075200224567000,
        2,
        256,
        "zstd",
        "0.1.0+ab12",
        bytes(range(256)),
    ),
}


@functools.cache
def _schemas_by_fingerprint() -> dict[bytes, tuple[str, dict]]:
    by_fp = {}
    for path in SCHEMA_DIR.glob("*.avsc"):
        schema = json.loads(path.read_text())
        # records without a replica are written with the schema minus its trailing replica field
        base = {**schema, "fields": [f for f in schema["fields"] if f["name"] != "replica"]}
        for version in (schema, base):
            fp = bytes.fromhex(fastavro_fingerprint(to_parsing_canonical_form(version), "CRC-64-AVRO"))
            by_fp[fp] = (path.stem, fastavro.parse_schema(version))
    return by_fp


def standard_decode(value: bytes) -> list[tuple[str, dict]]:
    """What a client outside ticktape does, using nothing but fastavro and the .avsc files."""
    by_fp = _schemas_by_fingerprint()
    stream = io.BytesIO(value)
    out = []
    while stream.tell() < len(value):
        assert stream.read(2) == b"\xc3\x01"
        name, schema = by_fp[stream.read(8)]
        out.append((name, fastavro.schemaless_reader(stream, schema)))
    return out


def test_fingerprints_match_fastavro_and_spec():
    for dataset in DATASETS:
        schema = json.loads((SCHEMA_DIR / f"{dataset}.avsc").read_text())
        canonical = to_parsing_canonical_form(schema)
        assert codec.canonical_form(dataset) == canonical
        assert codec.header(dataset) == b"\xc3\x01" + bytes.fromhex(
            fastavro_fingerprint(canonical, "CRC-64-AVRO")
        )
    # Avro spec reference value: the fingerprint of the empty input is the CRC's initial value.
    assert codec.crc64_avro(b"") == 0xC15D213AA4D7A795
    assert len({codec.header(d) for d in DATASETS}) == len(DATASETS)


@pytest.mark.parametrize("dataset", DATASETS)
def test_standard_client_decodes_every_dataset(dataset):
    row = EXAMPLES[dataset]
    with_replica = (*row, "replica-a")
    value = codec.encode_rows(dataset, [row, row, with_replica])
    decoded = standard_decode(value)
    assert decoded == [(dataset, dict(zip(field_names(dataset)[:-1], row, strict=True)))] * 2 + [
        (dataset, dict(zip(field_names(dataset), with_replica, strict=True)))
    ]
    assert codec.decode(value) == [(dataset, row), (dataset, row), (dataset, with_replica)]
    assert codec.decode_message(value) == (dataset, [row, row, with_replica])


def test_records_without_a_replica_keep_the_schema_they_had_before_it():
    for dataset, row in EXAMPLES.items():
        schema = json.loads((SCHEMA_DIR / f"{dataset}.avsc").read_text())
        assert schema["fields"][-1] == {**schema["fields"][-1], "name": "replica", "default": None}
        before = {**schema, "fields": schema["fields"][:-1]}
        header = b"\xc3\x01" + bytes.fromhex(
            fastavro_fingerprint(to_parsing_canonical_form(before), "CRC-64-AVRO")
        )
        assert codec.header(dataset, base=True) == header != codec.header(dataset)
        assert codec.encoder(dataset)(row).startswith(header)
        assert codec.encoder(dataset)((*row, None)).startswith(codec.header(dataset))


def test_fastavro_encoding_is_byte_identical():
    for dataset, row in EXAMPLES.items():
        schema = json.loads((SCHEMA_DIR / f"{dataset}.avsc").read_text())
        base = {**schema, "fields": schema["fields"][:-1]}
        for version, values, head in (
            (base, row, codec.header(dataset, base=True)),
            (schema, (*row, "b"), codec.header(dataset)),
        ):
            body = io.BytesIO()
            names = [f["name"] for f in version["fields"]]
            fastavro.schemaless_writer(
                body, fastavro.parse_schema(version), dict(zip(names, values, strict=True))
            )
            assert codec.encoder(dataset)(values) == head + body.getvalue()


def test_mixed_datasets_in_one_value_keep_order():
    value = b"".join(codec.encoder(d)(EXAMPLES[d]) for d in ("book", "trades", "book", "feed_events"))
    assert [d for d, _ in codec.decode(value)] == ["book", "trades", "book", "feed_events"]
    assert [d for d, _ in standard_decode(value)] == ["book", "trades", "book", "feed_events"]
    # A ticktape message holds one dataset: a mixed value is rejected as a message.
    with pytest.raises(codec.CodecError, match="mixes datasets"):
        codec.decode_message(value)
    assert codec.decode_message(codec.encode_rows("book", [BOOK, BOOK])) == ("book", [BOOK, BOOK])


@pytest.mark.parametrize(
    ("dataset", "bad_row"),
    [
        ("trades", (*TRADE[:5], None, *TRADE[6:])),  # null price
        ("trades", (*TRADE[:3], None, *TRADE[4:])),  # null ts_recv
        ("book", (*BOOK[:7], None, *BOOK[8:])),  # null is_snapshot
        ("trades", (*TRADE[:3], 1 << 64, *TRADE[4:])),  # beyond a long
        ("trades", TRADE[:-1]),  # a field short
    ],
)
def test_rows_that_do_not_fit_raise_codec_error(dataset, bad_row):
    with pytest.raises(codec.CodecError):
        codec.encoder(dataset)(bad_row)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\xc3\x01" + b"\x00" * 8 + b"\x02",  # unknown fingerprint
        b"garbage that is not avro at all",
        codec.encode_rows("trades", [TRADE])[:-3],  # truncated
        codec.encode_rows("trades", [TRADE]) + b"\xc3",  # trailing junk
        codec.header("book") + b"\x0e",  # string length past the end
    ],
)
def test_invalid_values_raise_codec_error(value):
    # Alone, and after a valid record: a value is rejected as a whole, never half-used.
    for candidate in {value, codec.encode_rows("trades", [TRADE]) + value} - {
        codec.encode_rows("trades", [TRADE])
    }:
        with pytest.raises(codec.CodecError):
            codec.decode_message(candidate)


def test_decode_error_row_keeps_value_and_rejects_unsafe_ids():
    row = codec.decode_error_row(
        "kafka.t.0", 7, b"../etc|../../x", b"\x00\x01", ValueError("bad"), 5, "trades"
    )
    assert row[:5] == ("unknown", None, "trades", 5, "decode_error")
    detail = json.loads(row[5])
    assert detail["value_b64"] == "AAE=" and detail["position"] == "7" and detail["stream"] == "kafka.t.0"
    ok = codec.decode_error_row("k", 1, b"binance|ETH-USDT", b"", ValueError("x"), 5, "book")
    assert ok[:2] == ("binance", "ETH-USDT")


def test_split_encoded_never_splits_a_record():
    records = [codec.encoder("trades")(TRADE)] * 10
    size = len(records[0])
    values = codec.split_encoded(records, size * 3 + 1)
    assert [len(v) for v in values] == [size * 3] * 3 + [size]
    assert b"".join(values) == b"".join(records)


_longs = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
_doubles = st.floats(allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    exchange=st.text(max_size=20),
    ts=st.one_of(st.none(), _longs),
    recv=_longs,
    trade_id=st.text(max_size=50),
    price=_doubles,
    size=_doubles,
    side=st.one_of(st.none(), st.sampled_from(["buy", "sell"])),
    flags=st.integers(min_value=-(1 << 31), max_value=(1 << 31) - 1),
)
def test_roundtrip_property(exchange, ts, recv, trade_id, price, size, side, flags):
    row = (exchange, "X-Y", ts, recv, trade_id, price, size, side, flags)
    value = codec.encode_rows("trades", [row])
    assert codec.decode(value) == [("trades", row)]
    assert standard_decode(value) == [("trades", dict(zip(field_names("trades")[:-1], row, strict=True)))]


def test_nan_and_infinity_survive():
    row = (*BBO[:4], math.inf, -0.0, math.nan, 1.0, *BBO[8:])
    ((_, back),) = codec.decode(codec.encode_rows("bbo", [row]))
    assert (
        back[4] == math.inf and struct.pack("<d", back[5]) == struct.pack("<d", -0.0) and math.isnan(back[6])
    )


def test_record_datasets_are_all_encodable():
    assert set(RECORD_DATASETS) <= set(EXAMPLES)


def test_runs_to_batches_give_disjoint_ranges():
    items = [
        (10, "trades", [TRADE]),
        (11, "trades", [TRADE, TRADE]),
        (12, "feed_events", [EVENT]),
        (15, "trades", [TRADE]),
    ]
    batches = codec.runs_to_batches("kafka.x.0", items)
    assert [(b.dataset, b.first, b.last, b.table.num_rows) for b in batches] == [
        ("trades", 10, 11, 3),
        ("feed_events", 12, 12, 1),
        ("trades", 15, 15, 1),
    ]
    assert codec.runs_to_batches("s", []) == []


def test_recent_messages_window_and_reset():
    recent = codec.RecentMessages(window=3)
    assert not recent.repeated(b"k", b"v1")
    assert recent.repeated(b"k", b"v1")
    assert not recent.repeated(b"other", b"v1")  # same value, another key: not a retry
    for v in (b"v2", b"v3", b"v4"):
        assert not recent.repeated(b"k", v)
    assert not recent.repeated(b"k", b"v1")  # fell out of the window
    recent.reset()
    assert not recent.repeated(b"k", b"v4")


def test_runs_without_rows_still_cover_their_positions():
    items = [(5, "trades", [TRADE]), (6, "trades", []), (7, "book", []), (8, "book", [BOOK])]
    batches = codec.runs_to_batches("kafka.x.0", items)
    assert [(b.dataset, b.first, b.last, b.table.num_rows) for b in batches] == [
        ("trades", 5, 6, 1),
        ("book", 7, 8, 1),
    ]
    (only,) = codec.runs_to_batches("kafka.x.0", [(0, "bbo", [])])
    assert (only.first, only.last, only.table.num_rows) == (0, 0, 0)


def test_a_long_beyond_64_bits_becomes_a_decode_error_event_not_a_crash_loop():
    """A 10-byte varint decodes to a Python int Arrow cannot hold: that message alone is evented."""
    ts = 1_723_161_254_024_619_568
    good = ("okx", "BTC-USDT", ts - 5, ts, "1", 1.0, 1.0, "buy", 0)
    value = codec.encode_rows("trades", [good])
    hostile = value.replace(codec._long(ts - 5), b"\xfe" + b"\xff" * 8 + b"\x7f", 1)
    dataset, rows = codec.decode_message(hostile)
    assert dataset == "trades" and rows[0][2] > 2**63
    items = [(10, "trades", [good]), (11, "trades", rows), (12, "trades", [good])]
    batches = codec.runs_to_batches("kafka.t.0", items)
    assert [(b.dataset, b.first, b.last, b.table.num_rows) for b in batches] == [
        ("trades", 10, 10, 1),
        ("feed_events", 11, 11, 1),
        ("trades", 12, 12, 1),
    ]
    event = batches[1].table.to_pylist()[0]
    assert event["kind"] == "decode_error" and json.loads(event["detail"])["position"] == "11"

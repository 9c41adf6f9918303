"""Issue 12: a row that cannot be encoded never poisons a batch. It becomes a ``bad_row`` feed event and
the rest is published: local log (Arrow), Kafka and Kinesis (Avro codec), and ``ticktape replay``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.capture import read_capture
from collectors.registry import get_dialect
from schemas import RecordBuffer, arrow_to_rows
from streaming import codec, open_consumer, open_publisher
from streaming.base import PublisherStats, arrow_tables, bad_row_event, split_to_arrow
from streaming.kafka import _encode_parts

SAMPLE = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "samples"
    / "binance"
    / "ethusdt_20240808.capture.gz"
)


def real_records(frames: int = 400) -> RecordBuffer:
    """Records of the real Binance recording."""
    normaliser = get_dialect("binance").make_normaliser()
    out = RecordBuffer()
    for n, item in enumerate(read_capture(SAMPLE)):
        if isinstance(item, tuple):
            normaliser.on_frame(item[0], item[1], out)
        if n >= frames:
            break
    assert out.trades and out.book and out.bbo
    return out


def poison(records: RecordBuffer) -> list[tuple[str, tuple[Any, ...]]]:
    """Replaces a few rows by the values the issue measured: a seq beyond 64 bits, a boolean seq, a
    timestamp beyond int64; returns (dataset, bad row)."""
    bbo, book, trades = records.bbo, records.book, records.trades
    bad = [
        ("bbo", (*bbo[3][:8], 18446744073709551615, bbo[3][9])),
        ("bbo", (*bbo[5][:8], True, bbo[5][9])),
        ("book", (*book[7][:8], 1 << 64, *book[7][9:])),
        ("trades", (*trades[0][:2], 1 << 70, *trades[0][3:])),
    ]
    for ds, row in bad:
        rows = records.rows(ds)
        rows.insert(len(rows) // 2, row)
    return bad


def test_split_to_arrow_keeps_every_good_row_in_order_and_names_the_bad_ones() -> None:
    records = real_records()
    good_bbo = list(records.bbo)
    bad = poison(records)
    batch, rejected = split_to_arrow("bbo", records.bbo)
    assert batch is not None and arrow_to_rows(batch) == good_bbo
    assert [r for r, _ in rejected] == [row for ds, row in bad if ds == "bbo"]
    assert all("int" in why.lower() or "bool" in why.lower() for _, why in rejected)


def test_bad_row_event_always_encodes_even_when_every_cell_is_hostile() -> None:
    event = bad_row_event("trades", ("../x", True, None, 1 << 80, float("nan")), OverflowError("too big"))
    assert event[:5][0] == "unknown" and event[1] is None and event[2] == "trades" and event[4] == "bad_row"
    codec.encode_rows("feed_events", [event])
    detail = orjson.loads(event[5])
    assert (
        detail["dataset"] == "trades"
        and "OverflowError" in detail["error"]
        and "1208925819614629174706176" in detail["row"]
    )


def test_arrow_tables_turn_bad_rows_into_feed_events() -> None:
    records = real_records()
    sizes = {ds: len(records.rows(ds)) for ds in ("trades", "book", "bbo", "feed_events")}
    bad = poison(records)
    tables = arrow_tables(records)
    for ds in ("trades", "book", "bbo"):
        assert tables[ds].num_rows == sizes[ds]
    events = arrow_to_rows(tables["feed_events"])
    bad_rows = [e for e in events if e[4] == "bad_row"]
    assert len(events) == sizes["feed_events"] + len(bad)
    assert sorted(orjson.loads(e[5])["dataset"] for e in bad_rows) == sorted(ds for ds, _ in bad)


@pytest.mark.parametrize(
    ("value", "dataset", "index"),
    [(True, "bbo", 8), (1.0, "bbo", 8), (1 << 64, "bbo", 8), (False, "book", 9), (1 << 1100, "trades", 5)],
)
def test_codec_refuses_what_a_column_cannot_hold(value: Any, dataset: str, index: int) -> None:
    records = real_records(100)
    row = list(records.rows(dataset)[0])
    row[index] = value
    with pytest.raises(codec.CodecError):
        codec.encoder(dataset)(tuple(row))
    # the real row still encodes, and a Flags value (an int subclass) is a long
    codec.encoder(dataset)(records.rows(dataset)[0])


def test_kafka_encoding_publishes_the_good_rows_and_events_the_bad_ones() -> None:
    records = real_records()
    good = list(records.bbo)
    bad = poison(records)
    events: list[tuple[Any, ...]] = []
    stats = PublisherStats(extra={"encode_errors": 0})
    parts = _encode_parts("bbo", codec.encoder("bbo"), records.bbo, 1 << 20, stats, events)
    assert [r for _, rows in parts for r in rows] == good
    assert [codec.decode_message(v)[1] for v, _ in parts] == [rows for _, rows in parts]
    assert stats.extra["encode_errors"] == len(events) == sum(1 for ds, _ in bad if ds == "bbo")
    assert all(e[4] == "bad_row" and e[1] == "ETH-USDT" for e in events)


def test_local_publisher_writes_the_rest_of_a_poisoned_batch_and_the_bad_rows_as_events(
    tmp_path: Path,
) -> None:
    records = real_records()
    expected = {ds: list(records.rows(ds)) for ds in ("trades", "book", "bbo", "feed_events")}
    bad = poison(records)

    async def main() -> dict[str, list[tuple[Any, ...]]]:
        pub = open_publisher("local", log_dir=tmp_path / "log")
        await pub.start()
        await pub.publish(records)
        await pub.close()  # raised (and re-queued forever) before: OverflowError / ArrowTypeError
        assert pub.stats.extra["bad_rows"] == len(bad)
        con = open_consumer("local", log_dir=tmp_path / "log")
        await con.start()
        got: dict[str, list[tuple[Any, ...]]] = {}
        while batches := await con.poll(0.2):
            for b in batches:
                got.setdefault(b.dataset, []).extend(arrow_to_rows(b.table))
        await con.close()
        return got

    got = asyncio.run(main())
    for ds in ("trades", "book", "bbo"):
        assert got[ds] == expected[ds]
    assert got["feed_events"][: len(expected["feed_events"])] == expected["feed_events"]
    extra = got["feed_events"][len(expected["feed_events"]) :]
    assert sorted(orjson.loads(e[5])["dataset"] for e in extra) == sorted(ds for ds, _ in bad)

"""The raw archive on the collector side (issue 17): batches of capture lines published as ``raw``
rows replay, stream by stream, to exactly the records the live run gave."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import random
from collections import Counter
from pathlib import Path

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from collectors.capture import read_capture
from collectors.raw import (
    RAW_MAX_BLOB_BYTES,
    RawRecorder,
    RawSettings,
    decompress,
    iter_batch_lines,
    parser_version,
)
from collectors.registry import get_dialect
from schemas import SCHEMA_DIR
from streaming import codec
from tests.collectors.test_connection import FAST, running
from ticktape.raw import replay_stream

SAMPLE = (
    Path(__file__).resolve().parents[3] / "shared" / "samples" / "binance" / "ethusdt_20240808.capture.gz"
)


def test_batches_hold_the_capture_lines_exactly() -> None:
    """A real recording through small batches: the blobs concatenate to the capture's own lines."""
    rec = RawRecorder("binance", "binance-0@1", "test", RawSettings(batch_bytes=4096, batch_s=3600))
    rows = []
    expected = []
    for item in read_capture(SAMPLE):
        if item is None:
            row = rec.disconnect(0)
            expected.append(b"")
        else:
            assert isinstance(item, tuple)
            row = rec.frame(*item)
            expected.append(b"%d %s" % item)
        if row is not None:
            rows.extend(row)
    last = rec.close()
    assert last is not None
    rows.extend(last)
    assert len(rows) > 100
    assert [r[2] for r in rows] == list(range(len(rows)))
    assert sum(r[5] for r in rows) == sum(1 for line in expected if line)
    assert list(iter_batch_lines(rows)) == expected
    # compressed well below the uncompressed size
    assert sum(len(r[9]) for r in rows) * 4 < sum(r[6] for r in rows)


def test_a_standard_avro_client_reads_a_raw_record() -> None:
    rec = RawRecorder("binance", "binance-0@7", "v+abc", RawSettings())
    rec.frame(123, '{"e":"trade"}')
    rows = rec.close()
    assert rows is not None
    (row,) = rows
    value = codec.encode_rows("raw", [row])
    schema = json.loads((SCHEMA_DIR / "raw.avsc").read_text())
    # a record without a replica is written with the schema minus its last field (schemas/README.md)
    base = {**schema, "fields": schema["fields"][:-1]}
    (version,) = [
        v
        for v in (schema, base)
        if bytes.fromhex(fingerprint(to_parsing_canonical_form(v), "CRC-64-AVRO")) == value[2:10]
    ]
    record = fastavro.schemaless_reader(io.BytesIO(value[10:]), fastavro.parse_schema(version))
    assert record["stream"] == "binance-0@7" and record["ts_recv"] == 123 and record["frames"] == 1
    assert decompress(record["compression"], record["data"], record["size"]) == b'123 {"e":"trade"}\n'


def test_disconnect_marker_needs_a_frame_first() -> None:
    rec = RawRecorder("x", "s@1", "p", RawSettings())
    assert rec.disconnect(5) is None
    rec.frame(10, "a")
    rows = rec.disconnect(11)
    assert rows is not None and decompress("zstd", rows[0][9], rows[0][6]) == b"10 a\n\n"
    assert rec.disconnect(12) is None


def test_a_batch_too_large_for_one_message_is_cut_at_lines() -> None:
    """Frames that compress badly (base64 of random bytes, as MEXC's protobuf is stored) past the
    transport's message cap: the batch becomes several rows, each below it, the lines intact."""
    rng = random.Random(7)
    rec = RawRecorder("mexc", "mexc-0@1", "p", RawSettings(batch_bytes=4 * 1024 * 1024, batch_s=3600))
    frames = [b"b64:" + base64.b64encode(rng.randbytes(200_000)) for _ in range(12)]
    rows = []
    for i, frame in enumerate(frames):
        rows.extend(rec.frame(1_000 + i, frame) or [])
    rows.extend(rec.close() or [])
    assert len(rows) > 1 and all(len(r[9]) <= RAW_MAX_BLOB_BYTES for r in rows)
    assert [r[2] for r in rows] == list(range(len(rows)))
    assert sum(r[5] for r in rows) == len(frames)
    assert rows[0][3] == 1_000 and rows[-1][4] == 1_011
    assert list(iter_batch_lines(rows)) == [b"%d %s" % (1_000 + i, f) for i, f in enumerate(frames)]


def test_parser_version_names_the_normaliser_source() -> None:
    normaliser = get_dialect("binance").new_normaliser()

    class Changed(type(normaliser)):  # type: ignore[misc]
        pass

    here = parser_version(type(normaliser))
    assert here == parser_version(type(get_dialect("binance").new_normaliser()))
    assert parser_version(Changed) != here  # this test module's source joins the hash


async def test_live_run_equals_replay_of_its_raw_records() -> None:
    settings = dataclasses.replace(FAST, raw=RawSettings(batch_bytes=16 * 1024, batch_s=0.3))
    async with running(settings=settings) as run:
        await run.until(lambda: run.count("trades", "ETH-USDT") > 20 and run.count("book", "BTC-USDT") > 50)
        run.sim.faults.drop_updates["BTCUSDT"] = 1
        await run.until(lambda: len(run.events("resync", "BTC-USDT")) >= 1)
        await run.sim.disconnect_all()
        await run.until(
            lambda: run.collector.stats.connects >= 2 and len(run.events("resync", "ETH-USDT")) >= 1
        )
        await run.until(lambda: run.collector.stats.raw_batches >= 3)
    raw = run.got.raw
    streams = Counter(r[1] for r in raw)
    assert len(streams) == 1 and len(raw) >= 3
    assert [r[2] for r in raw] == list(range(len(raw)))  # per stream, in order, none lost
    assert all(r[8] == parser_version(type(get_dialect("binance").new_normaliser())) for r in raw)
    replayed = replay_stream(get_dialect("binance").new_normaliser(), raw)
    assert replayed.trades == run.got.trades
    assert replayed.book == run.got.book
    assert replayed.bbo == run.got.bbo
    normaliser_events = [e for e in run.got.feed_events if e[2] != "connection"]
    assert replayed.feed_events == normaliser_events
    assert {e[4] for e in normaliser_events} >= {"gap", "resync"}
    assert run.collector.stats.raw_bytes < run.collector.stats.raw_uncompressed_bytes

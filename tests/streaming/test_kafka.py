"""Kafka transport against a real Kafka-protocol broker (tansu)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import RECORD_DATASETS, RecordBuffer, arrow_to_rows
from streaming import codec, open_consumer, open_publisher
from streaming.kafka import DeliveryError, KafkaConsumer, KafkaPublisher, KafkaSettings, parse_stream_id
from tests.support.services import tansu_broker

T0 = 1723075200_000_000_000


def make_records(n_frames: int, symbols=("ETH-USDT", "BTC-USDT", "SOL-USDT")) -> RecordBuffer:
    """Frames of several symbols interleaved: trades, book changes, bbo, an event."""
    buf = RecordBuffer()
    for i in range(n_frames):
        sym = symbols[i % len(symbols)]
        ts = T0 + i * 1_000_000
        buf.trades.append(("binance", sym, ts - 5, ts, str(i), 100.0 + i, 0.5, "buy" if i % 2 else "sell", 0))
        for j in range(3):
            buf.book.append(
                ("binance", sym, ts - 5, ts, "bid" if j % 2 else "ask", 99.0 + j, float(i), False, i, 0, 0)
            )
        buf.bbo.append(("binance", sym, None, ts, 99.0, 1.0, 101.0, 2.0, i, 0))
        if i % 50 == 0:
            buf.feed_events.append(("binance", None, "connection", ts, "connect", "{}"))
    return buf


def settings_for(broker, **kw) -> KafkaSettings:
    return KafkaSettings(
        bootstrap=broker.address, topic_prefix=f"t{uuid.uuid4().hex[:10]}", partitions=3, **kw
    )


async def consume_all(consumer, expected_rows: int, idle_polls: int = 3):
    got: dict[str, list] = defaultdict(list)
    batches = []
    idle = 0
    while idle < idle_polls:
        polled = await consumer.poll(1.0)
        if not polled and sum(len(v) for v in got.values()) >= expected_rows:
            idle += 1
        for b in polled:
            batches.append(b)
            got[b.dataset].extend(arrow_to_rows(b.table))
    return got, batches


def by_key(rows):
    out = defaultdict(list)
    for r in rows:
        out[(r[0], r[1])].append(r)
    return out


async def test_round_trip_keys_and_per_key_order(kafka_broker):
    settings = settings_for(kafka_broker, linger_ms=2)
    records = make_records(600)
    expected = {d: list(records.rows(d)) for d in ("trades", "book", "bbo", "feed_events")}
    pub = KafkaPublisher(settings)
    await pub.start()
    # Several publish calls, like a collector publishing frame after frame.
    for start in range(0, 600, 100):
        part = RecordBuffer()
        for d in expected:
            part.rows(d).extend(
                r for r in expected[d] if start * 1_000_000 <= r[3] - T0 < (start + 100) * 1_000_000
            )
        await pub.publish(part)
        assert len(part) == 0  # the publisher took the rows
    await pub.flush()
    assert pub.stats.published_rows == sum(len(v) for v in expected.values())
    assert pub.stats.errors == 0 and pub.stats.dropped_rows == 0
    await pub.close()

    consumer = KafkaConsumer(settings, group_id=None)
    await consumer.start()
    assert sorted(consumer.streams()) == sorted(
        f"kafka.{settings.topic(d)}.{p}" for d in RECORD_DATASETS for p in range(3)
    )
    got, batches = await consume_all(consumer, sum(len(v) for v in expected.values()))
    await consumer.close()
    for d, rows in expected.items():
        assert sorted(got[d]) == sorted(rows), d
        # Per exchange|symbol, the order is the order of publishing.
        assert by_key(got[d]) == by_key(rows), d
    for b in batches:
        tp = parse_stream_id(b.stream)
        assert tp.topic == settings.topic(b.dataset) and b.first <= b.last

    # The raw messages: key exchange|symbol, one key per message, values decodable on their own.
    raw = AIOKafkaConsumer(
        settings.topic("book"),
        bootstrap_servers=kafka_broker.address,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await raw.start()
    try:
        seen = 0
        partitions_of_key = defaultdict(set)
        while seen < len(expected["book"]):
            for tp, msgs in (await raw.getmany(timeout_ms=2000)).items():
                for m in msgs:
                    rows = [row for _, row in codec.decode(m.value)]
                    assert {f"{r[0]}|{r[1]}".encode() for r in rows} == {m.key}
                    partitions_of_key[m.key].add(tp.partition)
                    seen += len(rows)
        assert seen == len(expected["book"])
        assert all(len(p) == 1 for p in partitions_of_key.values())
    finally:
        await raw.stop()


async def test_factory_branch_and_idempotence_fallback(kafka_broker):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    pub = open_publisher("kafka", bootstrap=kafka_broker.address, topic_prefix=prefix, policy="block")
    assert isinstance(pub, KafkaPublisher)
    await pub.start()
    # tansu 0.6 rejects aiokafka's InitProducerId: 'auto' falls back, and says so in the stats.
    assert pub.stats.extra["idempotent"] == 0
    await pub.publish(make_records(10))
    await pub.close()
    assert pub.stats.published_rows == 10 * 5 + 1

    strict = KafkaPublisher(
        KafkaSettings(bootstrap=kafka_broker.address, topic_prefix=prefix, idempotence="on")
    )
    with pytest.raises(DeliveryError, match="idempotent"):
        await strict.start()

    consumer = open_consumer(
        "kafka", bootstrap=kafka_broker.address, topic_prefix=prefix, group=f"g-{prefix}"
    )
    assert isinstance(consumer, KafkaConsumer)
    await consumer.start()
    got, _ = await consume_all(consumer, 51, idle_polls=1)
    await consumer.close()
    assert sum(len(v) for v in got.values()) == 51


async def test_group_commits_and_resume(kafka_broker):
    settings = settings_for(kafka_broker)
    pub = KafkaPublisher(settings)
    await pub.start()
    await pub.publish(make_records(30))
    await pub.close()

    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(settings, group_id=group, datasets=["trades"])
    await consumer.start()
    assert consumer.streams()  # assigned before the first poll: the sink can seek first
    got, batches = await consume_all(consumer, 30, idle_polls=1)
    assert len(got["trades"]) == 30
    # A group member that never joins can read the group's committed offsets.
    probe = AIOKafkaConsumer(bootstrap_servers=kafka_broker.address, group_id=group, enable_auto_commit=False)
    await probe.start()
    try:
        last = {parse_stream_id(b.stream): b.last for b in batches}
        assert [await probe.committed(tp) for tp in last] == [None] * len(last)  # not before the sink says so
        for b in batches:
            await consumer.commit(b.stream, b.last)
        assert {tp: await probe.committed(tp) for tp in last} == {tp: off + 1 for tp, off in last.items()}
    finally:
        await probe.stop()

    # seek rewinds a stream to a sink's resume position.
    await consumer.seek(batches[0].stream, batches[0].first)
    got2, _ = await consume_all(consumer, 1, idle_polls=1)
    with pytest.raises(ValueError, match="not assigned"):
        await consumer.seek("kafka.other.0", 0)
    await consumer.close()
    assert got2["trades"] == arrow_to_rows(batches[0].table)


async def test_undecodable_message_becomes_feed_event(kafka_broker):
    settings = settings_for(kafka_broker)
    pub = KafkaPublisher(settings)
    await pub.start()
    await pub.close()  # topics exist
    raw = AIOKafkaProducer(bootstrap_servers=kafka_broker.address)
    await raw.start()
    good = codec.encode_rows("trades", [("okx", "BTC-USDT", None, T0, "1", 1.0, 1.0, None, 0)])
    await raw.send_and_wait(settings.topic("trades"), b"not avro", key=b"okx|BTC-USDT", partition=0)
    await raw.send_and_wait(settings.topic("trades"), good, key=b"okx|BTC-USDT", partition=0)
    await raw.stop()

    consumer = KafkaConsumer(settings, group_id=None, datasets=["trades"])
    await consumer.start()
    got, batches = await consume_all(consumer, 2, idle_polls=1)
    await consumer.close()
    assert len(got["trades"]) == 1
    (event,) = got["feed_events"]
    assert event[0] == "okx" and event[4] == "decode_error" and event[2] == "trades"
    assert json.loads(event[5])["value_b64"] == "bm90IGF2cm8="
    assert consumer.decode_errors == 1
    # Each position belongs to exactly one batch: nothing is skipped or read twice by the sink.
    assert [(b.dataset, b.first, b.last) for b in batches] == [("feed_events", 0, 0), ("trades", 1, 1)]


async def test_delivery_failure_is_surfaced():
    with tansu_broker() as broker:
        settings = KafkaSettings(
            bootstrap=broker.address, topic_prefix="fail", request_timeout_ms=1500, idempotence="off"
        )
        pub = KafkaPublisher(settings)
        await pub.start()
        await pub.publish(make_records(5))
        await pub.flush()
    # The broker is gone: the next messages cannot be acknowledged.
    await pub.publish(make_records(5))
    with pytest.raises(DeliveryError, match="rows were not delivered"):
        await asyncio.wait_for(pub.flush(), 60)
    assert pub.stats.errors > 0 and pub.stats.published_rows == 26
    await asyncio.wait_for(pub.close(), 60)  # the failure was reported once, by flush


async def test_rebalance_splits_partitions_between_members(kafka_broker):
    settings = settings_for(kafka_broker)
    pub = KafkaPublisher(settings)
    await pub.start()
    await pub.publish(make_records(60, symbols=tuple(f"S{i}-USDT" for i in range(12))))
    await pub.close()
    group = f"g-{uuid.uuid4().hex[:8]}"
    fast = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 300}
    first = KafkaConsumer(settings, group_id=group, datasets=["trades"], **fast)
    await first.start()
    assert len(first.streams()) == 3
    second = KafkaConsumer(settings, group_id=group, datasets=["trades"], **fast)
    start_second = asyncio.create_task(second.start())
    # The first member keeps polling (heartbeats, rejoin) while the second joins.
    got_first: list = []
    while not start_second.done():
        for b in await first.poll(0.2):
            got_first.extend(arrow_to_rows(b.table))
    await start_second
    for _ in range(20):
        await first.poll(0.2)
        if len(first.streams()) + len(second.streams()) == 3 and second.streams():
            break
    a, b = set(first.streams()), set(second.streams())
    await first.close()
    await second.close()
    assert a and b and not a & b and len(a | b) == 3


async def test_producer_retry_duplicates_are_dropped_but_covered(kafka_broker):
    settings = settings_for(kafka_broker)
    pub = KafkaPublisher(settings)
    await pub.start()
    await pub.close()  # topics exist
    first = codec.encode_rows("trades", [("okx", "BTC-USDT", None, T0, "1", 1.0, 1.0, None, 0)])
    second = codec.encode_rows("trades", [("okx", "BTC-USDT", None, T0 + 1, "2", 1.0, 1.0, None, 0)])
    raw = AIOKafkaProducer(bootstrap_servers=kafka_broker.address)
    await raw.start()
    # What a non-idempotent producer does when an acknowledgement is lost: the same value again.
    for value in (first, first, second, second):
        await raw.send_and_wait(settings.topic("trades"), value, key=b"okx|BTC-USDT", partition=1)
    await raw.stop()

    consumer = KafkaConsumer(settings, group_id=None, datasets=["trades"])
    await consumer.start()
    got, batches = await consume_all(consumer, 2, idle_polls=1)
    assert [r[4] for r in got["trades"]] == ["1", "2"] and consumer.duplicates_dropped == 2
    assert (batches[0].first, batches[-1].last) == (0, 3)  # every offset covered, nothing re-read later
    # A seek re-reads on purpose: the same messages are data again, not retries.
    await consumer.seek(batches[0].stream, 0)
    again, _ = await consume_all(consumer, 2, idle_polls=1)
    await consumer.close()
    assert [r[4] for r in again["trades"]] == ["1", "2"]


@pytest.mark.parametrize("compression", ["zstd", "lz4", "gzip", "snappy"])
async def test_compressed_batches_round_trip(kafka_broker, compression):
    settings = settings_for(kafka_broker, compression=compression, linger_ms=20)
    records = make_records(200)
    expected = {d: list(records.rows(d)) for d in ("trades", "book", "bbo", "feed_events")}
    pub = KafkaPublisher(settings)
    await pub.start()
    await pub.publish(records)
    await pub.close()
    consumer = KafkaConsumer(settings, group_id=None)
    await consumer.start()
    got, _ = await consume_all(consumer, sum(len(v) for v in expected.values()), idle_polls=1)
    await consumer.close()
    for d, rows in expected.items():
        assert by_key(got[d]) == by_key(rows), d


@pytest.mark.parametrize("policy", ["block", "drop-oldest"])
async def test_bounded_queue_blocks_or_drops_and_counts(kafka_broker, policy):
    settings = settings_for(kafka_broker, queue_max_messages=4, queue_policy=policy)
    symbols = tuple(f"S{i}-USDT" for i in range(40))
    records = make_records(400, symbols=symbols)
    total = len(records)
    pub = KafkaPublisher(settings)
    await pub.start()
    await pub.publish(records)  # 160 messages (40 keys x 4 datasets) into a queue of 4
    await pub.close()
    assert pub.stats.published_rows + pub.stats.dropped_rows == total
    if policy == "block":
        assert pub.stats.dropped_rows == 0
    else:
        assert pub.stats.dropped_rows > 0
    consumer = KafkaConsumer(settings, group_id=None)
    await consumer.start()
    got, _ = await consume_all(consumer, pub.stats.published_rows, idle_polls=1)
    await consumer.close()
    assert sum(len(v) for v in got.values()) == pub.stats.published_rows


async def test_producer_compresses_with_zstd_unless_configured_otherwise(kafka_broker):
    """The documented default (zstd) lives in the producer settings; "none" from the file turns it off."""
    from streaming import open_publisher

    default = KafkaPublisher(settings_for(kafka_broker))
    off = open_publisher("kafka", bootstrap=kafka_broker.address, compression="none")
    for pub in (default, off):
        await pub.start()
    try:
        assert default._producer is not None and off._producer._compression_type is None
        assert default._producer._compression_type == "zstd"
        records = make_records(50)
        await default.publish(records)
    finally:
        for pub in (default, off):
            await pub.close()


def test_no_linger_by_default_in_the_settings_and_the_configuration():
    """A row is sent as soon as the producer is idle: batching comes from the request in flight.

    aiokafka's linger runs per partition from each batch's creation, so with a linger the batches of
    the 18 partitions of a paced collector fell due one after another, each behind the request in
    flight (bench/RESULTS.md, "Receive to ack p99"). The configuration's default must be the same.
    """
    from ticktape.config import load_config

    assert KafkaSettings().linger_ms == 0
    assert load_config(None, {}).transport.kafka.linger_ms == KafkaSettings().linger_ms


async def test_each_key_goes_to_the_default_partitioners_partition(kafka_broker):
    """The publisher picks a key's partition once (then reuses it); it must be the partition aiokafka's
    default partitioner (murmur2 of the key) gives, so placement is what every Kafka client expects."""
    from aiokafka.partitioner import DefaultPartitioner

    settings = settings_for(kafka_broker)
    symbols = tuple(f"C{i}-USDT" for i in range(12))
    pub = KafkaPublisher(settings)
    await pub.start()
    for _ in range(3):  # the cached choice is used from the second publish on
        await pub.publish(make_records(48, symbols))
    await pub.close()
    consumer = AIOKafkaConsumer(
        settings.topic("book"), bootstrap_servers=kafka_broker.address, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        seen: dict[bytes, set[int]] = defaultdict(set)
        messages = 0
        for _ in range(50):
            fetched = await consumer.getmany(timeout_ms=500)
            for tp, batch in fetched.items():
                for m in batch:
                    seen[m.key].add(tp.partition)
                    messages += 1
            if messages and not fetched:
                break
    finally:
        await consumer.stop()
    assert set(seen) == {f"binance|{s}".encode() for s in symbols}
    choose = DefaultPartitioner()
    for key, partitions in seen.items():
        assert partitions == {choose(key, [0, 1, 2], None)}
    assert len(set().union(*seen.values())) > 1  # the keys spread over the partitions
    assert messages >= 3 * len(symbols)


@pytest.mark.parametrize("compiled", [True, False])
async def test_delivery_listener_gets_each_rows_receive_time(kafka_broker, monkeypatch, compiled):
    """A delivery listener gets the acknowledged rows' ts_recv, wherever the dataset holds it (the
    instruments' receive time is not field 3), from the compiled encoder and from the reference."""
    from tests.streaming.test_codec import EXAMPLES

    if not compiled:
        monkeypatch.setattr(codec, "_native", lambda: None)  # the reference encoder, row by row
    records = make_records(20)
    instrument = EXAMPLES["instruments"]
    ts_at = codec.ts_recv_field("instruments")
    assert ts_at != 3 and isinstance(instrument[ts_at], int)
    records.instruments.append(instrument)
    expected = {
        d: sorted(r[codec.ts_recv_field(d)] for r in records.rows(d))
        for d in ("trades", "book", "bbo", "feed_events", "instruments")
    }
    delivered: dict[str, list[int]] = defaultdict(list)

    def listener(dataset: str, ts_recv, acked_ns: int) -> None:
        assert all(isinstance(t, int) for t in ts_recv)
        delivered[dataset].extend(ts_recv)

    pub = KafkaPublisher(settings_for(kafka_broker), on_delivery=listener)
    await pub.start()
    await pub.publish(records)
    await pub.flush()
    await pub.close()
    assert {d: sorted(v) for d, v in delivered.items()} == expected

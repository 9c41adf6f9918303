"""Kinesis transport against moto in server mode."""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections import Counter, defaultdict

import boto3
import pytest

from schemas import RecordBuffer, arrow_to_rows, rows_to_arrow
from storage.lake import parse_sink_file_name, sink_file_name
from storage.sink import UnitWriter, last_committed
from streaming import codec, open_consumer, open_publisher
from streaming.kinesis import (
    DeliveryError,
    KinesisConsumer,
    KinesisPublisher,
    KinesisSettings,
    ShardLimiter,
    backoff_delay,
    hash_key,
    parse_stream_id,
)
from tests.streaming.test_kafka import by_key, make_records


def client_for(moto):
    return boto3.client("kinesis", endpoint_url=moto.url, region_name="us-east-1")


def new_stream(moto, shards=2) -> str:
    name = f"s{uuid.uuid4().hex[:10]}"
    client_for(moto).create_stream(StreamName=name, ShardCount=shards)
    return name


def settings_for(moto, name, **kw) -> KinesisSettings:
    kw.setdefault("linger_ms", 5)
    kw.setdefault("backoff_base_s", 0.01)
    kw.setdefault("backoff_cap_s", 0.05)
    return KinesisSettings(stream_name=name, endpoint_url=moto.url, region="us-east-1", **kw)


def expected_rows(records: RecordBuffer) -> dict[str, list]:
    return {d: list(records.rows(d)) for d in ("trades", "book", "bbo", "feed_events")}


async def consume_all(consumer, expected: int):
    got: dict[str, list] = defaultdict(list)
    batches = []
    total = 0
    for _ in range(200):
        polled = await consumer.poll(0.5)
        for b in polled:
            batches.append(b)
            got[b.dataset].extend(arrow_to_rows(b.table))
            total += b.table.num_rows
        if total >= expected and not polled:
            break
    return got, batches


async def publish_in_parts(pub, records: RecordBuffer, parts: int = 5):
    expected = expected_rows(records)
    n = max(len(v) for v in expected.values())
    step = -(-n // parts)
    for start in range(0, n, step):
        part = RecordBuffer()
        for d, rows in expected.items():
            part.rows(d).extend(rows[start : start + step])
        await pub.publish(part)


def assert_same(got, expected):
    for d, rows in expected.items():
        assert Counter(got[d]) == Counter(rows), d  # nothing lost, nothing duplicated
        assert by_key(got[d]) == by_key(rows), d  # per exchange|symbol, publishing order


async def test_round_trip_and_aggregation(moto):
    name = new_stream(moto)
    records = make_records(900)
    expected = expected_rows(records)
    total = sum(len(v) for v in expected.values())
    pub = open_publisher("kinesis", stream_name=name, endpoint_url=moto.url, policy="block")
    assert isinstance(pub, KinesisPublisher)
    await pub.start()
    await publish_in_parts(pub, records)
    await pub.close()
    assert pub.stats.published_rows == total and pub.stats.errors == 0
    # Many frames per Kinesis record: far fewer records than rows.
    assert pub.stats.extra["kinesis_records"] <= 5 * 3 * 4

    consumer = open_consumer("kinesis", stream_name=name, endpoint_url=moto.url)
    assert isinstance(consumer, KinesisConsumer)
    await consumer.start()
    assert consumer.streams() == [f"kinesis.{name}.shardId-00000000000{i}" for i in range(2)]
    got, batches = await consume_all(consumer, total)
    await consumer.close()
    assert_same(got, expected)
    # Batches of a shard: disjoint increasing ranges of real sequence numbers.
    last = {}
    for b in batches:
        assert parse_stream_id(b.stream) == (name, b.stream.rsplit(".", 1)[1])
        assert b.first <= b.last and b.first > last.get(b.stream, -1)
        last[b.stream] = b.last


async def test_records_respect_size_limit_and_resume_after_seek(moto):
    name = new_stream(moto, shards=1)
    client = client_for(moto)
    records = make_records(400, symbols=("ETH-USDT",))
    expected = expected_rows(records)
    pub = KinesisPublisher(settings_for(moto, name, max_record_bytes=4096), client=client)
    await pub.start()
    await pub.publish(records)
    await pub.close()
    shard = client.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    it = client.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    raw = client.get_records(ShardIterator=it["ShardIterator"], Limit=10000)["Records"]
    assert len(raw) == pub.stats.extra["kinesis_records"] > 4
    for r in raw:
        assert len(r["Data"]) + len(r["PartitionKey"]) <= 4096
        _, rows = codec.decode_message(r["Data"])
        assert r["PartitionKey"] in ("binance|ETH-USDT", "binance|") and rows

    consumer = KinesisConsumer(settings_for(moto, name), client=client)
    await consumer.start()
    got, batches = await consume_all(consumer, sum(len(v) for v in expected.values()))
    assert_same(got, expected)
    # A sink resuming after a commit: seek to last committed + 1 gives exactly the rest.
    cut = batches[len(batches) // 2]
    await consumer.seek(cut.stream, cut.last + 1)
    rest, rest_batches = await consume_all(consumer, 1)
    assert rest_batches[0].first > cut.last
    assert sum(len(v) for v in rest.values()) == sum(b.table.num_rows for b in batches if b.first > cut.last)
    await consumer.seek(cut.stream, 0)  # from the oldest record
    again, _ = await consume_all(consumer, 1)
    assert sum(len(v) for v in again.values()) == sum(len(v) for v in expected.values())


class FlakyClient:
    """A real moto client that fails entries at random (1 in ``fail_every``), and the first whole calls.

    Failed entries are not written (as Kinesis does); the publisher must retry exactly those.
    """

    def __init__(self, real, fail_every: int = 3, throttle_calls: int = 2, seed: int = 7):
        self.real = real
        self.fail_every = fail_every
        self.rng = random.Random(seed)
        self.throttle_calls = throttle_calls
        self.calls = 0
        self.failed_entries = 0
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.real, name)

    def put_records(self, StreamName, Records):
        with self.lock:
            self.calls += 1
            call = self.calls
        if call <= self.throttle_calls:
            raise self.real.exceptions.ProvisionedThroughputExceededException(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                "PutRecords",
            )
        with self.lock:
            keep = [i for i in range(len(Records)) if self.rng.randrange(self.fail_every)]
        written = (
            self.real.put_records(StreamName=StreamName, Records=[Records[i] for i in keep]) if keep else None
        )
        results = []
        it = iter(written["Records"] if written else [])
        for i in range(len(Records)):
            if i in keep:
                results.append(next(it))
            else:
                self.failed_entries += 1
                code = "ProvisionedThroughputExceededException" if i % 2 else "InternalFailure"
                results.append({"ErrorCode": code, "ErrorMessage": "injected"})
        return {"FailedRecordCount": len(Records) - len(keep), "Records": results}


async def test_failed_entries_are_retried_without_loss_or_duplicates(moto):
    name = new_stream(moto)
    flaky = FlakyClient(client_for(moto))
    records = make_records(600, symbols=tuple(f"S{i}-USDT" for i in range(25)))
    expected = expected_rows(records)
    total = sum(len(v) for v in expected.values())
    pub = KinesisPublisher(settings_for(moto, name), client=flaky)
    await pub.start()
    await publish_in_parts(pub, records, parts=6)
    await pub.close()
    assert flaky.failed_entries > 10 and pub.stats.extra["retried_entries"] >= flaky.failed_entries
    assert pub.stats.extra["throttled"] >= 2
    assert pub.stats.published_rows == total and pub.stats.errors == 0

    consumer = KinesisConsumer(settings_for(moto, name), client=client_for(moto))
    await consumer.start()
    got, _ = await consume_all(consumer, total)
    await consumer.close()
    assert_same(got, expected)


class RejectingClient(FlakyClient):
    def put_records(self, StreamName, Records):
        return {
            "FailedRecordCount": len(Records),
            "Records": [{"ErrorCode": "AccessDeniedException", "ErrorMessage": "no"} for _ in Records],
        }


async def test_final_failures_are_surfaced(moto):
    name = new_stream(moto, shards=1)
    pub = KinesisPublisher(settings_for(moto, name), client=RejectingClient(client_for(moto)))
    await pub.start()
    await pub.publish(make_records(20))
    with pytest.raises(DeliveryError, match="rows were not delivered"):
        await pub.flush()
    assert pub.stats.errors > 0 and pub.stats.published_rows == 0
    await pub.close()

    missing = KinesisPublisher(settings_for(moto, "no-such-stream"), client=client_for(moto))
    with pytest.raises(Exception, match="ResourceNotFound"):
        await missing.start()


async def test_checkpoints_and_undecodable_records(moto, tmp_path):
    name = new_stream(moto, shards=1)
    client = client_for(moto)
    client.put_record(StreamName=name, Data=b"not avro", PartitionKey="okx|BTC-USDT")
    pub = KinesisPublisher(settings_for(moto, name), client=client)
    await pub.start()
    await pub.publish(make_records(10))
    await pub.close()

    consumer = KinesisConsumer(settings_for(moto, name), client=client, checkpoint_dir=tmp_path)
    await consumer.start()
    got, batches = await consume_all(consumer, 51 + 1)
    (event,) = got["feed_events"][:1]
    assert event[0] == "okx" and event[4] == "decode_error" and consumer.decode_errors == 1
    assert batches[0].dataset == "feed_events" and batches[0].first == batches[0].last
    await consumer.commit(batches[0].stream, batches[0].last)
    await consumer.close()

    # A new consumer with the same checkpoint directory continues after the checkpoint.
    again = KinesisConsumer(settings_for(moto, name), client=client, checkpoint_dir=tmp_path)
    await again.start()
    got2, batches2 = await consume_all(again, 51)
    await again.close()
    assert "feed_events" not in got2 or all(e[4] != "decode_error" for e in got2["feed_events"])
    assert sum(len(v) for v in got2.values()) == 51
    assert batches2[0].first > batches[0].last


def test_backoff_has_full_jitter_and_a_cap():
    delays = [backoff_delay(10, 0.1, 2.0) for _ in range(2000)]
    assert max(delays) <= 2.0 and min(delays) >= 0.0
    assert min(delays) < 0.2 and max(delays) > 1.8  # spread over the whole range, not clustered


def test_shard_limiter_maps_keys_like_kinesis_and_enforces_budgets():
    half = 2**127
    shards = [
        {
            "ShardId": "shardId-0",
            "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(half - 1)},
            "SequenceNumberRange": {"StartingSequenceNumber": "1"},
        },
        {
            "ShardId": "shardId-1",
            "HashKeyRange": {"StartingHashKey": str(half), "EndingHashKey": str(2**128 - 1)},
            "SequenceNumberRange": {"StartingSequenceNumber": "1"},
        },
        # A closed parent: never a write target.
        {
            "ShardId": "shardId-old",
            "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(2**128 - 1)},
            "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"},
        },
    ]
    limiter = ShardLimiter(shards, records_per_s=3, bytes_per_s=1000)
    keys = [f"binance|S{i}-USDT" for i in range(50)]
    for key in keys:
        assert limiter.shard_of(key) == ("shardId-0" if hash_key(key) < half else "shardId-1")
    assert {limiter.shard_of(k) for k in keys} == {"shardId-0", "shardId-1"}
    now = 1000.0
    limiter.records["shardId-0"].stamp = limiter.bytes["shardId-0"].stamp = now
    assert [limiter.try_take("shardId-0", 10, now) for _ in range(4)] == [True, True, True, False]
    assert limiter.try_take("shardId-0", 10, now + 0.34)  # a third of a second refills one record
    limiter.records["shardId-1"].stamp = limiter.bytes["shardId-1"].stamp = now
    assert limiter.try_take("shardId-1", 900, now) and not limiter.try_take("shardId-1", 900, now)


async def test_aggregates_grow_while_a_shard_has_no_budget(moto):
    name = new_stream(moto, shards=1)
    # 4 records/s for the shard: rows published over ~1.5 s (60 records without the limit) travel in few.
    pub = KinesisPublisher(settings_for(moto, name, shard_records_per_s=4), client=client_for(moto))
    await pub.start()
    records = make_records(300, symbols=("ETH-USDT",))
    expected = expected_rows(records)
    for i in range(15):
        part = RecordBuffer()
        for d, rows in expected.items():
            step = -(-len(rows) // 15)
            part.rows(d).extend(rows[i * step : (i + 1) * step])
        await pub.publish(part)
        await asyncio.sleep(0.1)
    await pub.close()
    assert pub.stats.published_rows == sum(len(v) for v in expected.values())
    assert pub.stats.extra["kinesis_records"] <= 4 * 3 + 8  # ~4/s over the run, plus the 1 s burst
    consumer = KinesisConsumer(settings_for(moto, name), client=client_for(moto))
    await consumer.start()
    got, _ = await consume_all(consumer, pub.stats.published_rows)
    await consumer.close()
    assert_same(got, expected)


class LostResponseClient(FlakyClient):
    """Kinesis stores the records but the response is lost (a timeout): the publisher sends them again."""

    def put_records(self, StreamName, Records):
        with self.lock:
            self.calls += 1
            call = self.calls
        response = self.real.put_records(StreamName=StreamName, Records=Records)
        if call % 3 == 1:
            self.failed_entries += len(Records)
            raise OSError("connection reset after the request was sent")
        return response


async def test_records_written_twice_reach_the_sink_once(moto):
    name = new_stream(moto)
    lossy = LostResponseClient(client_for(moto))
    records = make_records(300, symbols=tuple(f"S{i}-USDT" for i in range(6)))
    expected = expected_rows(records)
    pub = KinesisPublisher(settings_for(moto, name), client=lossy)
    await pub.start()
    await publish_in_parts(pub, records, parts=4)
    await pub.close()
    assert lossy.failed_entries > 0 and pub.stats.errors == 0

    consumer = KinesisConsumer(settings_for(moto, name), client=client_for(moto))
    await consumer.start()
    got, _ = await consume_all(consumer, sum(len(v) for v in expected.values()))
    await consumer.close()
    assert consumer.duplicates_dropped == lossy.failed_entries
    assert_same(got, expected)


# A real Kinesis sequence number: 56 digits, far beyond 64 bits.
BIG_SEQ = 49590338271490256608559692538361571095921575989136588898


async def test_real_sized_sequence_numbers_fit_lake_names_markers_and_checkpoints(moto, tmp_path):
    name = new_stream(moto, shards=1)
    stream = f"kinesis.{name}.shardId-000000000000"
    file_name = sink_file_name(stream, BIG_SEQ, BIG_SEQ + 10**20)
    assert len(file_name) < 255 and parse_sink_file_name(file_name) == (stream, BIG_SEQ, BIG_SEQ + 10**20)
    lake = tmp_path / "lake"
    trades = rows_to_arrow("trades", make_records(3).trades)
    UnitWriter(lake).write_unit(stream, BIG_SEQ, BIG_SEQ + 5, {"trades": trades})
    assert last_committed(lake, stream) == BIG_SEQ + 5  # exact, not rounded through a float or int64

    consumer = KinesisConsumer(
        settings_for(moto, name), client=client_for(moto), checkpoint_dir=tmp_path / "cp"
    )
    await consumer.start()
    await consumer.commit(stream, BIG_SEQ + 5)
    await consumer.seek(stream, BIG_SEQ + 6)
    assert consumer._shards[stream].start == ("AFTER_SEQUENCE_NUMBER", BIG_SEQ + 5)
    again = KinesisConsumer(settings_for(moto, name), client=client_for(moto), checkpoint_dir=tmp_path / "cp")
    await again.start()
    assert again._shards[stream].start == ("AFTER_SEQUENCE_NUMBER", BIG_SEQ + 5)


@pytest.mark.parametrize("policy", ["block", "drop-oldest"])
async def test_bounded_queue_blocks_or_drops_and_counts(moto, policy):
    name = new_stream(moto, shards=1)
    records = make_records(400, symbols=tuple(f"S{i}-USDT" for i in range(40)))
    total = len(records)
    pub = KinesisPublisher(
        settings_for(moto, name, queue_max_bytes=2000, queue_policy=policy), client=client_for(moto)
    )
    await pub.start()
    await publish_in_parts(pub, records, parts=10)
    await pub.close()
    assert pub.stats.published_rows + pub.stats.dropped_rows == total
    assert (pub.stats.dropped_rows == 0) == (policy == "block")
    consumer = KinesisConsumer(settings_for(moto, name), client=client_for(moto))
    await consumer.start()
    got, _ = await consume_all(consumer, pub.stats.published_rows)
    await consumer.close()
    assert sum(len(v) for v in got.values()) == pub.stats.published_rows


async def test_close_stops_the_sender_even_when_cancelled_as_it_wakes(moto):
    """The cause of the suite's 300 s hangs: on Python 3.11 ``asyncio.wait_for`` swallows a cancel
    that arrives in the same loop step as the event it waits for, so the sender never stopped and
    ``close()`` waited for it forever. Reproduced here deterministically: a long tick parks the
    sender, the wake-up and the cancel land together."""
    name = new_stream(moto, shards=1)
    pub = KinesisPublisher(settings_for(moto, name, linger_ms=2000), client=client_for(moto))
    await pub.start()
    for _ in range(20):
        await asyncio.sleep(0.01)
        pub._wake.set()
        await asyncio.sleep(0)  # the event's waiter completes; the sender has not resumed yet
    await asyncio.wait_for(pub.close(), 5)
    assert pub._sender is not None and pub._sender.cancelled()


def test_the_moto_fixture_sequences_concurrent_puts_like_kinesis(moto):
    """moto's own server gives two PutRecords calls racing on one shard the same sequence number and
    keeps one record (tests/support/moto_serial_kinesis.py): our fixture must not, or a publisher with
    calls in flight loses records in tests that real Kinesis never loses."""
    name = new_stream(moto, shards=1)
    threads, calls, per_call = 8, 40, 20

    def put_many(t: int) -> None:
        client = client_for(moto)
        for i in range(calls):
            records = [{"Data": f"{t}-{i}-{j}".encode(), "PartitionKey": "k"} for j in range(per_call)]
            client.put_records(StreamName=name, Records=records)

    workers = [threading.Thread(target=put_many, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    client = client_for(moto)
    shard = client.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    iterator = client.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    it, seen = iterator["ShardIterator"], []
    while True:
        got = client.get_records(ShardIterator=it, Limit=10_000)
        if not got["Records"]:
            break
        seen += [r["Data"] for r in got["Records"]]
        it = got["NextShardIterator"]
    assert len(seen) == len(set(seen)) == threads * calls * per_call


def test_the_moto_fixture_serialises_kinesis_requests_only():
    """The middleware behind the fixture: Kinesis requests never overlap, others (S3) still do."""
    from tests.support.moto_serial_kinesis import SerialKinesis

    active: Counter[str] = Counter()
    most: Counter[str] = Counter()
    lock = threading.Lock()

    def app(environ, start_response):
        kind = "kinesis" if environ.get("HTTP_X_AMZ_TARGET") else "s3"
        with lock:
            active[kind] += 1
            most[kind] = max(most[kind], active[kind])
        threading.Event().wait(0.05)
        with lock:
            active[kind] -= 1
        start_response("200 OK", [])
        return [b"ok"]

    wsgi = SerialKinesis(app)
    requests = [{"HTTP_X_AMZ_TARGET": "Kinesis_20131202.PutRecords"}, {}] * 6
    workers = [threading.Thread(target=wsgi, args=(env, lambda *a: None)) for env in requests]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert most["kinesis"] == 1 and most["s3"] > 1

"""End to end through Kinesis (moto server): replay a real capture into a stream, then `ticktape sink`
in another process gives exactly the lake that the direct replay gives; with entries failing inside
the publisher's batches, nothing is lost or duplicated."""

from __future__ import annotations

import uuid

import boto3
import pytest

from collectors.capture import read_capture
from collectors.registry import get_dialect
from schemas import RecordBuffer
from storage.lake import dataset_files, parse_sink_file_name
from streaming.kinesis import KinesisPublisher, KinesisSettings
from tests.streaming.test_kafka_e2e import SAMPLE, assert_same_lake, run
from tests.streaming.test_kafka_e2e import direct_lake as direct_lake  # the module-scoped fixture
from tests.streaming.test_kinesis import FlakyClient

pytestmark = pytest.mark.slow


def make_stream(moto, shards: int) -> str:
    name = f"e2e{uuid.uuid4().hex[:8]}"
    boto3.client("kinesis", endpoint_url=moto.url, region_name="us-east-1").create_stream(
        StreamName=name, ShardCount=shards
    )
    return name


def kinesis_args(moto, name: str) -> list[str]:
    return ["--transport", "kinesis", "--kinesis-stream", name, "--endpoint-url", moto.url]


def test_replay_into_kinesis_then_sink_gives_the_direct_lake(moto, samples, direct_lake, tmp_path):
    name = make_stream(moto, shards=2)
    out = run(
        ["replay", "--exchange", SAMPLE[0], "--input", str(samples / SAMPLE[1]), *kinesis_args(moto, name)]
    )
    assert "errors 0" in out.stdout and "dropped rows 0" in out.stdout
    lake = tmp_path / "lake"
    run(["sink", *kinesis_args(moto, name), "--lake", str(lake), "--until-idle", "10"])
    assert_same_lake(direct_lake, lake)
    for f in dataset_files(lake, "trades"):
        stream, first, last = parse_sink_file_name(f.name)
        assert stream.startswith(f"kinesis.{name}.shardId-") and 0 < first <= last


async def test_failed_entries_lose_and_duplicate_nothing_in_the_lake(moto, samples, direct_lake, tmp_path):
    name = make_stream(moto, shards=2)
    flaky = FlakyClient(boto3.client("kinesis", endpoint_url=moto.url, region_name="us-east-1"), fail_every=3)
    settings = KinesisSettings(
        stream_name=name,
        endpoint_url=moto.url,
        region="us-east-1",
        # Small records: many entries per call, so that failures hit the middle of batches.
        max_record_bytes=16 * 1024,
        backoff_base_s=0.01,
        backoff_cap_s=0.05,
        shard_bytes_per_s=0,  # no client-side limiter here: the CLI test above runs with it
    )
    pub = KinesisPublisher(settings, client=flaky)
    await pub.start()
    normaliser = get_dialect(SAMPLE[0]).new_normaliser()
    buf = RecordBuffer()
    for i, item in enumerate(read_capture(samples / SAMPLE[1])):
        assert isinstance(item, tuple)
        normaliser.on_frame(item[0], item[1], buf)
        if i % 2000 == 1999:
            await pub.publish(buf)
    await pub.publish(buf)
    await pub.close()
    assert flaky.failed_entries > 50 and pub.stats.errors == 0 and pub.stats.dropped_rows == 0

    lake = tmp_path / "lake"
    run(["sink", *kinesis_args(moto, name), "--lake", str(lake), "--until-idle", "5"])
    assert_same_lake(direct_lake, lake)

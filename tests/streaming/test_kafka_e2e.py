"""End to end through Kafka: replay a real capture into a real broker (tansu), then `ticktape sink` in
another process gives exactly the lake that the direct replay gives."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from schemas import RECORD_DATASETS, arrow_schema, arrow_to_rows
from storage.lake import dataset_files, parse_sink_file_name
from streaming import codec

TICKTAPE = [sys.executable, "-m", "ticktape.cli"]
SAMPLE = ("binance", "binance/ethusdt_20240808.capture.gz")

pytestmark = pytest.mark.slow


def run(argv: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*TICKTAPE, *argv], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv[0]} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc


def lake_content(lake: Path) -> dict[tuple[str, str, str], dict[tuple, list[tuple]]]:
    """Per (dataset, exchange=, date=) partition and per (exchange, symbol): the rows in lake order.

    Files are read in stream position order; a symbol's rows are then put in ts_recv order with a
    stable sort, so rows with equal receive times keep the order in which the sink wrote them.
    Where the files were cut (stream names, positions) is not content and is not compared.
    """
    out: dict[tuple[str, str, str], dict[tuple, list[tuple]]] = {}
    for dataset in RECORD_DATASETS:
        files = dataset_files(lake, dataset)
        parsed = [parse_sink_file_name(f.name) for f in files]
        assert all(parsed), "only sink files expected"
        order = sorted(range(len(files)), key=lambda i: (str(files[i].parent), parsed[i][0], parsed[i][1]))
        ts_recv = list(arrow_schema(dataset).names).index("ts_recv")
        for i in order:
            f = files[i]
            part = (dataset, f.parent.parent.name, f.parent.name)
            groups = out.setdefault(part, defaultdict(list))
            for row in arrow_to_rows(pq.read_table(f, schema=arrow_schema(dataset))):
                groups[(row[0], row[1])].append(row)
        for part, groups in out.items():
            if part[0] == dataset:
                for key in groups:
                    groups[key].sort(key=lambda r: r[ts_recv])
    return {part: dict(groups) for part, groups in out.items()}


def assert_same_lake(direct: Path, via: Path) -> None:
    a, b = lake_content(direct), lake_content(via)
    assert sorted(a) == sorted(b)
    for part in a:
        assert a[part].keys() == b[part].keys(), part
        for key in a[part]:
            assert len(a[part][key]) == len(b[part][key]), (part, key)
            assert a[part][key] == b[part][key], (part, key)
    assert sum(len(rows) for groups in a.values() for rows in groups.values()) > 100_000


@pytest.fixture(scope="module")
def direct_lake(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("direct")
    run(["replay", "--exchange", SAMPLE[0], "--input", str(samples / SAMPLE[1]), "--lake", str(lake)])
    return lake


def test_replay_into_kafka_then_sink_gives_the_direct_lake(kafka_broker, samples, direct_lake, tmp_path):
    prefix = f"e2e{uuid.uuid4().hex[:8]}"
    kafka = ["--transport", "kafka", "--kafka-bootstrap", kafka_broker.address, "--topic-prefix", prefix]
    out = run(["replay", "--exchange", SAMPLE[0], "--input", str(samples / SAMPLE[1]), *kafka]).stdout
    assert "errors 0" in out and "dropped rows 0" in out
    lake = tmp_path / "lake"
    run(["sink", *kafka, "--lake", str(lake), "--until-idle", "10"])
    assert_same_lake(direct_lake, lake)
    # Every lake file of the Kafka run names its topic-partition stream and offsets.
    for f in dataset_files(lake, "book"):
        stream, first, last = parse_sink_file_name(f.name)
        assert stream.startswith(f"kafka.{prefix}.book.") and 0 <= first <= last

    # A second sink run over the same lake adds nothing (it resumes after its commit markers).
    before = sorted(p.name for p in lake.rglob("*.parquet"))
    run(["sink", *kafka, "--lake", str(lake), "--until-idle", "3"])
    assert sorted(p.name for p in lake.rglob("*.parquet")) == before


async def test_raw_topic_messages_decode_with_fastavro_only(kafka_broker, samples):
    """A consumer outside ticktape: aiokafka + fastavro + the .avsc files (tests/streaming/test_codec)."""
    from aiokafka import AIOKafkaConsumer

    from tests.streaming.test_codec import standard_decode

    prefix = f"raw{uuid.uuid4().hex[:8]}"
    kafka = ["--transport", "kafka", "--kafka-bootstrap", kafka_broker.address, "--topic-prefix", prefix]
    run(["replay", "--exchange", SAMPLE[0], "--input", str(samples / SAMPLE[1]), *kafka])
    consumer = AIOKafkaConsumer(
        f"{prefix}.trades", bootstrap_servers=kafka_broker.address, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        decoded = []
        while len(decoded) < 6106:
            for messages in (await consumer.getmany(timeout_ms=5000)).values():
                for m in messages:
                    records = standard_decode(m.value)
                    assert {f"{r['exchange']}|{r['symbol']}" for _, r in records} == {m.key.decode()}
                    decoded.extend(records)
    finally:
        await consumer.stop()
    assert len(decoded) == 6106 and {d for d, _ in decoded} == {"trades"}
    assert decoded[0][1]["symbol"] == "ETH-USDT" and decoded[0][1]["price"] > 0
    assert codec.decode(m.value)  # and ticktape's own decoder agrees on the last one

"""Kinesis transport (boto3): aggregated records, ``PutRecords`` with per-entry retries, per-shard reads.

Publisher: rows are encoded per ``schemas/README.md`` and appended to an *aggregate* per
(``exchange|symbol``, dataset): one Kinesis record of at most 1 MiB holding many frames. A sender task
sends aggregates with ``PutRecords`` (at most 500 entries and 5 MiB per call), at most one entry per
aggregate key in flight so that a retried entry can never overtake a later one of the same key.
Failed entries (``ProvisionedThroughputExceededException``, ``InternalFailure``) are retried with
exponential backoff and full jitter; whole-call throttling likewise. A token bucket per shard (from
the shard hash-key ranges) keeps each shard under its 1,000 records/s and 1 MiB/s write limits; while
a shard has no budget its aggregates keep growing, which is what keeps the record limit from being
the bottleneck. boto3 blocks, so every call runs in a worker thread, never on the event loop.

Consumer: one stream per shard (``kinesis.<stream>.<shard id>``); positions are Kinesis sequence
numbers (integers of up to ~56 digits, kept exactly as Python ints). Each Kinesis record holds one
dataset, so consecutive records of one dataset become one batch. Checkpoints: the sink's commit
markers (it seeks each shard), plus optionally a checkpoint file per shard for other consumers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from schemas import RECORD_DATASETS, RecordBuffer
from streaming import codec
from streaming.base import QUEUE_POLICIES, ConsumedBatch, Consumer, PublisherStats, bad_row_event
from streaming.delivery import DeliveryError, SenderPublisher

log = logging.getLogger(__name__)

#: Kinesis limits (https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html).
MAX_RECORD_BYTES = 1 << 20  # data + partition key of one record
MAX_CALL_RECORDS = 500
MAX_CALL_BYTES = 5 << 20
SHARD_WRITE_RECORDS_PER_S = 1000
SHARD_WRITE_BYTES_PER_S = 1 << 20
SHARD_READ_CALLS_PER_S = 5
SHARD_READ_BYTES_PER_S = 2 << 20

#: Entry and call errors worth retrying; anything else fails the entries (surfaced by flush).
RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "InternalFailure",
        "ServiceUnavailable",
        "ThrottlingException",
        "LimitExceededException",
        "KMSThrottlingException",
        "RequestTimeout",
        "InternalServerError",
    }
)

_STREAM_RE = re.compile(r"^kinesis\.(?P<name>[A-Za-z0-9._-]+)\.(?P<shard>shardId-[0-9]+)$")

# Delivery listener: (dataset, ts_recv of each row in the record, ack time in ns).
DeliveryListener = Callable[[str, Sequence[int], int], None]


@dataclass
class KinesisSettings:
    """Stream, endpoint and batching settings of the Kinesis transport."""

    stream_name: str
    region: str | None = None
    endpoint_url: str | None = None
    #: How long rows may wait to be aggregated before their record may be sent.
    linger_ms: int = 50
    max_record_bytes: int = MAX_RECORD_BYTES
    max_call_records: int = MAX_CALL_RECORDS
    max_call_bytes: int = MAX_CALL_BYTES
    #: PutRecords calls in flight at once (each in a worker thread).
    max_concurrent_calls: int = 4
    #: Attempts per record before the failure is surfaced.
    max_attempts: int = 12
    backoff_base_s: float = 0.1
    backoff_cap_s: float = 5.0
    #: Bytes waiting to be sent; ``queue_policy`` decides what happens beyond.
    queue_max_bytes: int = 64 << 20
    queue_policy: str = "block"
    #: Client-side per-shard write limits (0 disables the limiter).
    shard_records_per_s: int = SHARD_WRITE_RECORDS_PER_S
    shard_bytes_per_s: int = SHARD_WRITE_BYTES_PER_S
    #: Creates the stream with ``shard_count`` shards when missing (development and tests).
    create_stream: bool = False
    shard_count: int = 1

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", self.stream_name):
            raise ValueError(f"invalid Kinesis stream name {self.stream_name!r}")
        if self.queue_policy not in QUEUE_POLICIES:
            raise ValueError(f"queue_policy must be one of {QUEUE_POLICIES}, got {self.queue_policy!r}")
        if not 0 < self.max_call_records <= MAX_CALL_RECORDS or not 0 < self.max_call_bytes <= MAX_CALL_BYTES:
            raise ValueError("PutRecords allows at most 500 records and 5 MiB per call")
        if not 1024 <= self.max_record_bytes <= MAX_RECORD_BYTES:
            raise ValueError("max_record_bytes must be between 1 KiB and 1 MiB")

    def client(self) -> Any:
        """A boto3 Kinesis client (thread-safe for concurrent calls)."""
        region = (
            self.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        )
        # Retries are ours (per entry, with jitter); botocore's own would retry whole calls blindly.
        config = Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=16)
        return boto3.client("kinesis", region_name=region, endpoint_url=self.endpoint_url, config=config)


def stream_id(stream_name: str, shard_id: str) -> str:
    """The stream id of a shard, safe in file names: ``kinesis.<stream>.<shard id>``."""
    return f"kinesis.{stream_name}.{shard_id}"


def parse_stream_id(stream: str) -> tuple[str, str]:
    """``(stream name, shard id)`` of a stream id."""
    m = _STREAM_RE.match(stream)
    if m is None:
        raise ValueError(f"not a kinesis stream id: {stream!r}")
    return m["name"], m["shard"]


def hash_key(partition_key: str) -> int:
    """The 128-bit hash key Kinesis derives from a partition key (MD5, big-endian)."""
    return int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0.0, min(cap_s, base_s * (2**attempt)))


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore error ('' for connection-level errors)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_retryable(exc: BaseException) -> bool:
    """Throttling, server-side and connection errors are retried; the rest are final."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in RETRYABLE_CODES or status >= 500
    return isinstance(exc, BotoCoreError | OSError)


class _Bucket:
    """Token bucket with a one-second burst."""

    __slots__ = ("level", "rate", "stamp")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.level = rate
        self.stamp = time.monotonic()

    def available(self, now: float) -> float:
        self.level = min(self.rate, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.level


class ShardLimiter:
    """Per-shard write budgets (records/s and bytes/s), keyed by hash-key range."""

    def __init__(self, shards: list[dict[str, Any]], records_per_s: int, bytes_per_s: int) -> None:
        open_shards = [s for s in shards if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})]
        self.ranges = sorted(
            (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]), s["ShardId"])
            for s in open_shards
        )
        self.records = {sid: _Bucket(records_per_s) for _, _, sid in self.ranges}
        self.bytes = {sid: _Bucket(bytes_per_s) for _, _, sid in self.ranges}
        self._shard_of: dict[str, str | None] = {}

    def shard_of(self, partition_key: str) -> str | None:
        """The open shard a partition key maps to (None when unknown)."""
        if partition_key in self._shard_of:
            return self._shard_of[partition_key]
        h = hash_key(partition_key)
        found = next((sid for lo, hi, sid in self.ranges if lo <= h <= hi), None)
        self._shard_of[partition_key] = found
        return found

    def try_take(self, shard: str | None, size: int, now: float) -> bool:
        """Takes one record of ``size`` bytes from the shard's budget if both buckets allow it."""
        if shard is None or shard not in self.records:
            return True
        rec, byt = self.records[shard], self.bytes[shard]
        # A record bigger than one second of budget still goes once the bucket is full.
        if rec.available(now) < 1 or byt.available(now) < min(size, byt.rate):
            return False
        rec.level -= 1
        byt.level -= size
        return True


@dataclass
class _Aggregate:
    """Encoded records of one key and dataset, becoming one Kinesis record."""

    key: str
    dataset: str
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    rows: int = 0
    born: float = 0.0
    ts_recv: list[int] = field(default_factory=list)
    attempts: int = 0
    not_before: float = 0.0
    data: bytes | None = None  # set when sealed


_AggKey = tuple[str, str]


class KinesisPublisher(SenderPublisher):
    """Publishes records to a Kinesis stream (see the module docstring)."""

    transport = "Kinesis"

    def __init__(
        self,
        settings: KinesisSettings,
        client: Any = None,
        on_delivery: DeliveryListener | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self._client = client
        self.on_delivery = on_delivery
        self.stats = PublisherStats(
            extra={
                "kinesis_records": 0,
                "put_calls": 0,
                "retried_entries": 0,
                "throttled": 0,
                "encode_errors": 0,
            }
        )
        # Per aggregate key: sealed records waiting (in order), then the open one being filled.
        self._sealed: dict[_AggKey, collections.deque[_Aggregate]] = {}
        self._open: dict[_AggKey, _Aggregate] = {}
        self._inflight_keys: set[_AggKey] = set()
        self._pending_bytes = 0
        self._calls: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._limiter: ShardLimiter | None = None
        self._flushing = 0

    async def start(self) -> None:
        """Checks the stream (creating it if configured), loads the shard map, starts the sender."""
        if self._client is None:
            self._client = await asyncio.to_thread(self.settings.client)
        shards = await asyncio.to_thread(_prepare_stream, self._client, self.settings)
        s = self.settings
        if s.shard_records_per_s > 0 and s.shard_bytes_per_s > 0:
            self._limiter = ShardLimiter(shards, s.shard_records_per_s, s.shard_bytes_per_s)
        self._sender = asyncio.create_task(self._send_loop(), name="kinesis-sender")

    async def publish(self, records: RecordBuffer) -> None:
        """Encodes rows into the aggregates of their key; blocks or drops when the queue is full."""
        self._check_open()
        self._raise_failure()
        s = self.settings
        now = time.monotonic()
        track = self.on_delivery is not None
        for dataset in RECORD_DATASETS:
            rows = records.rows(dataset)
            if not rows:
                continue
            enc = codec.encoder(dataset)
            ts_field = codec.ts_recv_field(dataset)
            last_pair: tuple[Any, Any] | None = None
            agg: _Aggregate | None = None
            key = ""
            for row in rows:
                try:
                    data = enc(row)
                except codec.CodecError as exc:
                    self.stats.extra["encode_errors"] += 1
                    self.stats.errors += 1
                    log.error("a %s row does not encode (published as a bad_row event): %s", dataset, exc)
                    if dataset != "feed_events":  # feed_events come after the market data: encoded below
                        records.feed_events.append(bad_row_event(dataset, row, exc))
                    continue
                pair = (row[0], row[1])
                if pair != last_pair or agg is None:
                    key = f"{row[0]}|{row[1] or ''}"
                    last_pair = pair
                    agg = self._open.get((key, dataset))
                limit = s.max_record_bytes - len(key.encode())
                if agg is not None and agg.size + len(data) > limit:
                    self._seal((key, dataset))
                    agg = None
                if agg is None:
                    agg = self._open[(key, dataset)] = _Aggregate(key, dataset, born=now)
                agg.parts.append(data)
                agg.size += len(data)
                agg.rows += 1
                self._pending_bytes += len(data)
                if track:
                    agg.ts_recv.append(row[ts_field])
        records.clear()
        self._wake.set()
        await self._wait_for_space()

    def _seal(self, akey: _AggKey) -> None:
        agg = self._open.pop(akey, None)
        if agg is None or not agg.parts:
            return
        agg.data = b"".join(agg.parts)
        agg.parts = []
        self._sealed.setdefault(akey, collections.deque()).append(agg)

    async def _wait_for_space(self) -> None:
        s = self.settings
        while self._pending_bytes > s.queue_max_bytes:
            if s.queue_policy == "drop-oldest":
                if not self._drop_oldest():
                    break
                continue
            self._space.clear()
            self._wake.set()
            await self._space.wait()
            self._raise_failure()
        self.stats.queue_depth = self._pending_bytes

    def _drop_oldest(self) -> bool:
        """Drops the oldest aggregate that is not being sent (counted). False if none can go."""
        candidates = [(q[0].born, k) for k, q in self._sealed.items() if q and k not in self._inflight_keys]
        candidates += [(a.born, k) for k, a in self._open.items() if k not in self._sealed]
        if not candidates:
            return False
        _, akey = min(candidates)
        queue = self._sealed.get(akey)
        agg = queue.popleft() if queue else self._open.pop(akey)
        if queue is not None and not queue:
            del self._sealed[akey]
        self.stats.dropped_rows += agg.rows
        self._pending_bytes -= agg.size
        return True

    def _seal_due(self, now: float, everything: bool) -> None:
        linger = self.settings.linger_ms / 1000
        for akey, agg in list(self._open.items()):
            if everything or now - agg.born >= linger:
                # An aggregate keeps filling while an earlier one of its key is still queued.
                if akey in self._sealed and not everything:
                    continue
                self._seal(akey)

    def _next_call(self, now: float) -> list[_Aggregate]:
        """Picks entries for one PutRecords call: one per key, within call and shard limits."""
        s = self.settings
        batch: list[_Aggregate] = []
        size = 0
        for akey, queue in self._sealed.items():
            if akey in self._inflight_keys or not queue:
                continue
            agg = queue[0]
            if agg.not_before > now:
                continue
            assert agg.data is not None
            entry_size = len(agg.data) + len(agg.key.encode())
            if batch and size + entry_size > s.max_call_bytes:
                continue
            if self._limiter is not None and not self._limiter.try_take(
                self._limiter.shard_of(agg.key), entry_size, now
            ):
                continue
            batch.append(agg)
            size += entry_size
            if len(batch) >= s.max_call_records:
                break
        for agg in batch:
            self._inflight_keys.add((agg.key, agg.dataset))
        return batch

    async def _send_loop(self) -> None:
        s = self.settings
        sem = asyncio.Semaphore(s.max_concurrent_calls)
        tick = max(0.001, s.linger_ms / 1000 / 2)
        while True:
            now = time.monotonic()
            self._seal_due(now, everything=self._flushing > 0)
            await sem.acquire()
            batch = self._next_call(time.monotonic())
            if not batch:
                sem.release()
                self._wake.clear()
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that arrives just as the
                # event is set, and close() would wait forever for a sender that never stops.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(tick):
                        await self._wake.wait()
                continue
            task = asyncio.create_task(self._put(batch, sem))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _put(self, batch: list[_Aggregate], sem: asyncio.Semaphore) -> None:
        s = self.settings
        entries = [{"Data": agg.data, "PartitionKey": agg.key} for agg in batch]
        try:
            self.stats.extra["put_calls"] += 1
            response = await asyncio.to_thread(
                self._client.put_records, StreamName=s.stream_name, Records=entries
            )
        except (ClientError, BotoCoreError, OSError) as exc:
            if error_code(exc) == "ProvisionedThroughputExceededException":
                self.stats.extra["throttled"] += 1
            for agg in batch:
                self._retry_or_fail(agg, exc, retryable=is_retryable(exc))
        except Exception as exc:
            # Not an AWS or network error (a bug, a client wrapper): failing beats retrying forever.
            for agg in batch:
                self._retry_or_fail(agg, exc, retryable=False)
        else:
            ack = time.time_ns()
            results = response.get("Records", [])
            if len(results) != len(batch):
                exc2 = DeliveryError(f"PutRecords answered {len(results)} results for {len(batch)} entries")
                for agg in batch:
                    self._retry_or_fail(agg, exc2, retryable=True)
            else:
                for agg, result in zip(batch, results, strict=True):
                    code = result.get("ErrorCode")
                    if code:
                        if code == "ProvisionedThroughputExceededException":
                            self.stats.extra["throttled"] += 1
                        err = DeliveryError(f"{code}: {result.get('ErrorMessage', '')}")
                        self._retry_or_fail(agg, err, retryable=code in RETRYABLE_CODES)
                    else:
                        self._delivered(agg, ack)
        finally:
            for agg in batch:
                self._inflight_keys.discard((agg.key, agg.dataset))
            sem.release()
            self._wake.set()

    def _done_with(self, agg: _Aggregate) -> None:
        akey = (agg.key, agg.dataset)
        queue = self._sealed.get(akey)
        if queue and queue[0] is agg:
            queue.popleft()
            if not queue:
                del self._sealed[akey]
        self._pending_bytes -= agg.size
        self.stats.queue_depth = self._pending_bytes
        if self._pending_bytes <= self.settings.queue_max_bytes:
            self._space.set()

    def _delivered(self, agg: _Aggregate, ack_ns: int) -> None:
        self._done_with(agg)
        self.stats.published_rows += agg.rows
        self.stats.extra["kinesis_records"] += 1
        if self.on_delivery is not None:
            self.on_delivery(agg.dataset, agg.ts_recv, ack_ns)

    def _retry_or_fail(self, agg: _Aggregate, exc: BaseException, retryable: bool) -> None:
        s = self.settings
        agg.attempts += 1
        if retryable and agg.attempts < s.max_attempts:
            self.stats.extra["retried_entries"] += 1
            agg.not_before = time.monotonic() + backoff_delay(agg.attempts, s.backoff_base_s, s.backoff_cap_s)
            return  # stays first in its key's queue: order within the key is kept
        self._done_with(agg)
        self._latch_failure(agg.rows, exc)
        log.error(
            "kinesis delivery failed after %d attempt(s): %d %s rows for key %r: %r",
            agg.attempts,
            agg.rows,
            agg.dataset,
            agg.key,
            exc,
        )

    async def flush(self) -> None:
        """Sends everything aggregated so far; raises :class:`DeliveryError` if some rows failed."""
        self._flushing += 1
        try:
            while self._open or self._sealed or self._calls:
                if self._sender is None or self._sender.done():
                    self._raise_sender_stopped(len(self._open) + sum(len(q) for q in self._sealed.values()))
                self._wake.set()
                await asyncio.sleep(0.005)
        finally:
            self._flushing -= 1
        self._raise_failure()

    async def _release(self) -> None:
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)


def _prepare_stream(client: Any, settings: KinesisSettings) -> list[dict[str, Any]]:
    """Waits for the stream to be ACTIVE (creating it if configured) and returns its shards."""
    name = settings.stream_name
    try:
        status = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException" or not settings.create_stream:
            raise
        log.info("creating kinesis stream %s with %d shard(s)", name, settings.shard_count)
        client.create_stream(StreamName=name, ShardCount=settings.shard_count)
        status = "CREATING"
    deadline = time.monotonic() + 120
    while status not in ("ACTIVE", "UPDATING"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"kinesis stream {name} is still {status}")
        time.sleep(0.5)
        status = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
    return list_shards(client, name)


def list_shards(client: Any, stream_name: str) -> list[dict[str, Any]]:
    """Every shard of a stream (following pagination)."""
    shards: list[dict[str, Any]] = []
    response = client.list_shards(StreamName=stream_name)
    shards.extend(response["Shards"])
    while response.get("NextToken"):
        response = client.list_shards(NextToken=response["NextToken"])
        shards.extend(response["Shards"])
    return shards


@dataclass
class _Shard:
    shard_id: str
    stream: str
    iterator: str | None = None
    #: Last sequence number read (None: nothing read yet).
    last_seq: int | None = None
    next_call: float = 0.0
    closed: bool = False
    millis_behind: int = 0
    start: tuple[str, int | None] = ("TRIM_HORIZON", None)
    recent: codec.RecentMessages = field(default_factory=codec.RecentMessages)


class KinesisConsumer(Consumer):
    """Reads every shard of a stream (or the given ones), one stream id per shard."""

    def __init__(
        self,
        settings: KinesisSettings,
        client: Any = None,
        shard_ids: Sequence[str] | None = None,
        checkpoint_dir: str | Path | None = None,
        max_records_per_call: int = 10_000,
        start_at: str = "TRIM_HORIZON",
    ) -> None:
        if start_at not in ("TRIM_HORIZON", "LATEST"):
            raise ValueError("start_at must be TRIM_HORIZON or LATEST")
        self.settings = settings
        self._client = client
        self.shard_ids = list(shard_ids) if shard_ids is not None else None
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.max_records_per_call = max_records_per_call
        self.start_at = start_at
        self._shards: dict[str, _Shard] = {}
        self.decode_errors = 0
        self.consumed_records = 0
        self.duplicates_dropped = 0

    async def start(self) -> None:
        """Lists the shards; each starts at its checkpoint (if any) or at ``start_at``."""
        if self._client is None:
            self._client = await asyncio.to_thread(self.settings.client)
        await self._discover()

    async def _discover(self) -> None:
        shards = await asyncio.to_thread(list_shards, self._client, self.settings.stream_name)
        known = {s.shard_id for s in self._shards.values()}
        for info in shards:
            sid = info["ShardId"]
            if sid in known or (self.shard_ids is not None and sid not in self.shard_ids):
                continue
            parent = info.get("ParentShardId")
            parent_stream = stream_id(self.settings.stream_name, parent) if parent else None
            if parent_stream in self._shards and not self._shards[parent_stream].closed:
                continue  # a child is read once its parent is drained: keeps per-key order
            stream = stream_id(self.settings.stream_name, sid)
            shard = _Shard(sid, stream)
            checkpoint = self._read_checkpoint(stream)
            if checkpoint is not None:
                shard.start = ("AFTER_SEQUENCE_NUMBER", checkpoint)
                shard.last_seq = checkpoint
            elif known:
                shard.start = ("TRIM_HORIZON", None)  # a child born while running: read it whole
            else:
                shard.start = (self.start_at, None)
            self._shards[stream] = shard

    def streams(self) -> list[str]:
        """Stream ids of the shards being read."""
        return sorted(self._shards)

    async def seek(self, stream: str, next_position: int) -> None:
        """Continues a shard after sequence number ``next_position - 1`` (0: from the oldest record)."""
        shard = self._shards.get(stream)
        if shard is None:
            raise ValueError(f"stream {stream} is not read by this consumer")
        if next_position <= 0:
            shard.start, shard.last_seq = ("TRIM_HORIZON", None), None
        else:
            # Positions are sequence numbers; the sink resumes at last committed + 1, and the record
            # after the last committed one is exactly AFTER_SEQUENCE_NUMBER of it.
            shard.start, shard.last_seq = ("AFTER_SEQUENCE_NUMBER", next_position - 1), next_position - 1
        shard.iterator = None
        shard.closed = False
        shard.recent.reset()  # re-reading on purpose: not producer retries

    def _iterator(self, shard: _Shard) -> str:
        kind, seq = shard.start
        if shard.last_seq is not None:
            kind, seq = "AFTER_SEQUENCE_NUMBER", shard.last_seq
        kwargs: dict[str, Any] = {
            "StreamName": self.settings.stream_name,
            "ShardId": shard.shard_id,
            "ShardIteratorType": kind,
        }
        if seq is not None:
            kwargs["StartingSequenceNumber"] = str(seq)
        return str(self._client.get_shard_iterator(**kwargs)["ShardIterator"])

    def _read(self, shard: _Shard) -> list[dict[str, Any]]:
        """One GetRecords call (in a worker thread). Handles expired iterators."""
        if shard.iterator is None:
            shard.iterator = self._iterator(shard)
        try:
            response = self._client.get_records(ShardIterator=shard.iterator, Limit=self.max_records_per_call)
        except ClientError as exc:
            if error_code(exc) != "ExpiredIteratorException":
                raise
            shard.iterator = self._iterator(shard)
            response = self._client.get_records(ShardIterator=shard.iterator, Limit=self.max_records_per_call)
        shard.iterator = response.get("NextShardIterator")
        shard.millis_behind = int(response.get("MillisBehindLatest", 0))
        if shard.iterator is None:
            shard.closed = True
        records: list[dict[str, Any]] = response.get("Records", [])
        return records

    async def poll(self, timeout_s: float) -> list[ConsumedBatch]:
        """Reads the shards (each at most 5 calls/s and 2 MiB/s) until data comes or ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            batches: list[ConsumedBatch] = []
            discover = False
            for shard in list(self._shards.values()):
                now = time.monotonic()
                if shard.closed or shard.next_call > now:
                    continue
                try:
                    records = await asyncio.to_thread(self._read, shard)
                except ClientError as exc:
                    if not is_retryable(exc):
                        raise
                    shard.next_call = time.monotonic() + 1.0
                    log.warning("kinesis %s: %s, backing off", shard.stream, error_code(exc))
                    continue
                size = sum(len(r["Data"]) for r in records)
                shard.next_call = now + max(1 / SHARD_READ_CALLS_PER_S, size / SHARD_READ_BYTES_PER_S)
                if shard.closed:
                    discover = True
                if records:
                    batches.extend(self._to_batches(shard, records))
            if discover:
                await self._discover()
            if batches:
                return batches
            now = time.monotonic()
            if now >= deadline:
                return []
            waits = [s.next_call for s in self._shards.values() if not s.closed]
            wake = min(waits) if waits else deadline
            await asyncio.sleep(max(0.005, min(wake, deadline) - now))

    def _to_batches(self, shard: _Shard, records: list[dict[str, Any]]) -> list[ConsumedBatch]:
        self.consumed_records += len(records)

        def on_error(i: int, exc: codec.CodecError) -> tuple[Any, ...]:
            r = records[i]
            seq = int(r["SequenceNumber"])
            self.decode_errors += 1
            log.warning("undecodable kinesis record %s in %s: %s", seq, shard.stream, exc)
            arrived = r.get("ApproximateArrivalTimestamp")
            ts = int(arrived.timestamp() * 1e9) if arrived is not None else time.time_ns()
            return codec.decode_error_row(
                shard.stream, seq, r.get("PartitionKey"), r["Data"], exc, ts, "kinesis"
            )

        # A record written twice (a PutRecords call that timed out after Kinesis stored it, then
        # retried) gives no rows; its position stays covered.
        messages = [(int(r["SequenceNumber"]), r.get("PartitionKey"), r["Data"]) for r in records]
        batches, duplicates = codec.consume_values(shard.stream, messages, shard.recent, on_error)
        self.duplicates_dropped += duplicates
        shard.last_seq = int(records[-1]["SequenceNumber"])
        return batches

    def lag_ms(self) -> dict[str, int]:
        """MillisBehindLatest per stream, from the last read."""
        return {s.stream: s.millis_behind for s in self._shards.values()}

    def _checkpoint_path(self, stream: str) -> Path | None:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / f"{stream}.json"

    def _read_checkpoint(self, stream: str) -> int | None:
        path = self._checkpoint_path(stream)
        if path is None or not path.exists():
            return None
        return int(json.loads(path.read_text())["sequence_number"])

    async def commit(self, stream: str, last_position: int) -> None:
        """Records a checkpoint for the shard (when a checkpoint directory is configured)."""
        path = self._checkpoint_path(stream)
        if path is None:
            return
        await asyncio.to_thread(_write_checkpoint, path, stream, last_position)

    async def close(self) -> None:
        """Nothing to release: boto3 clients hold no open streams."""
        self._shards.clear()


def _write_checkpoint(path: Path, stream: str, last_position: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # Sequence numbers exceed 64 bits: stored as a decimal string so every JSON reader keeps them exact.
    data = json.dumps({"stream": stream, "sequence_number": str(last_position)}).encode()
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)

"""Kafka transport (aiokafka): one topic per dataset, key ``exchange|symbol``, values per
``schemas/README.md`` (Avro single-object encodings, several records of one key per message).

Publisher: ``publish`` encodes on the caller's task and queues messages in a bounded queue; one sender
task hands them to aiokafka (``acks=all``, idempotent where the broker supports it). Every delivery
future is watched: a failure is counted, logged, and raised by the next ``publish``/``flush``.

Consumer: per topic-partition streams (``kafka.<topic>.<partition>``) whose positions are Kafka
offsets. Offsets are committed only when the sink says data is durable; the sink's own markers stay
the source of truth, the group offset is where a fresh consumer of the group starts.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    TopicAlreadyExistsError,
    UnknownError,
    UnsupportedVersionError,
)
from aiokafka.partitioner import DefaultPartitioner

from schemas import RECORD_DATASETS, RecordBuffer
from streaming import codec
from streaming.base import (
    KAFKA_DEFAULT_COMPRESSION,
    QUEUE_POLICIES,
    ConsumedBatch,
    Consumer,
    PublisherStats,
    bad_row_event,
)
from streaming.codec import Row
from streaming.delivery import DeliveryError, SenderPublisher

log = logging.getLogger(__name__)

IDEMPOTENCE_MODES = ("auto", "on", "off")
COMPRESSION_TYPES = (None, "gzip", "snappy", "lz4", "zstd")
_STREAM_RE = re.compile(r"^kafka\.(?P<topic>[A-Za-z0-9._-]+)\.(?P<partition>\d+)$")

# Delivery listener: (dataset, ts_recv of each row in the message, ack time in ns).
DeliveryListener = Callable[[str, Sequence[int], int], None]


@dataclass
class KafkaSettings:
    """Connection and producer settings shared by :class:`KafkaPublisher` and :class:`KafkaConsumer`."""

    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "ticktape"
    client_id: str = "ticktape"
    #: ``auto`` tries the idempotent producer and falls back (logged) when the broker rejects it.
    idempotence: str = "auto"
    #: No linger: aiokafka keeps one produce request in flight per broker and gathers every batch that
    #: arrives meanwhile into the next one, so batching comes from the round trip itself. A linger is
    #: per partition and starts with each partition's batch: with 18 partitions the batches fell due
    #: one after another, each waiting for the request in flight (receive-to-ack p50 4.3-5.2 ms ->
    #: 3.2-3.6 ms at 20k events/s, bench/RESULTS.md "Receive to ack p99").
    linger_ms: int = 0
    #: producer compression: ``"none"``/None for none; zstd unless configured
    compression: str | None = KAFKA_DEFAULT_COMPRESSION
    #: Largest message value; several records of one key are packed up to this size.
    max_message_bytes: int = 900_000
    #: Producer batch per partition (aiokafka's default of 16 KiB is small for market data).
    max_batch_bytes: int = 1 << 20
    request_timeout_ms: int = 30_000
    #: Messages waiting for the sender task; ``queue_policy`` says what happens when it is full.
    queue_max_messages: int = 10_000
    queue_policy: str = "block"
    #: Topics are created with this many partitions when missing (``create_topics``).
    partitions: int = 6
    replication_factor: int = 1
    create_topics: bool = True
    #: Passed to aiokafka as is (security_protocol, sasl_mechanism, ssl_context, ...).
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # "ticktape." and "ticktape" both mean topics ticktape.<dataset>.
        self.topic_prefix = self.topic_prefix.rstrip(".")
        if self.idempotence not in IDEMPOTENCE_MODES:
            raise ValueError(f"idempotence must be one of {IDEMPOTENCE_MODES}, got {self.idempotence!r}")
        if self.compression == "none":
            self.compression = None
        if self.compression not in COMPRESSION_TYPES:
            raise ValueError(f"compression must be one of {COMPRESSION_TYPES}, got {self.compression!r}")
        if self.queue_policy not in QUEUE_POLICIES:
            raise ValueError(f"queue_policy must be one of {QUEUE_POLICIES}, got {self.queue_policy!r}")
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.topic_prefix):
            raise ValueError(f"topic prefix {self.topic_prefix!r} may only hold [A-Za-z0-9._-]")
        if self.max_message_bytes <= 0 or self.queue_max_messages <= 0:
            raise ValueError("max_message_bytes and queue_max_messages must be positive")

    def topic(self, dataset: str) -> str:
        """The topic of a dataset: ``<prefix>.<dataset>``."""
        return f"{self.topic_prefix}.{dataset}"


def stream_id(topic: str, partition: int) -> str:
    """The stream id of a topic-partition, safe in file names: ``kafka.<topic>.<partition>``."""
    return f"kafka.{topic}.{partition}"


def parse_stream_id(stream: str) -> TopicPartition:
    """Inverse of :func:`stream_id`."""
    m = _STREAM_RE.match(stream)
    if m is None:
        raise ValueError(f"not a kafka stream id: {stream!r}")
    return TopicPartition(m["topic"], int(m["partition"]))


def group_by_key(rows: list[tuple[Any, ...]]) -> dict[bytes, list[tuple[Any, ...]]]:
    """Rows grouped by their ``exchange|symbol`` key (insertion order kept within and across keys)."""
    groups: dict[bytes, list[tuple[Any, ...]]] = {}
    last_key: tuple[Any, Any] | None = None
    current: list[tuple[Any, ...]] = []
    for row in rows:
        k = (row[0], row[1])
        # Frames of one symbol come in runs: avoid re-hashing the key for every row of the run.
        if k != last_key:
            key = f"{row[0]}|{row[1] or ''}".encode()
            current = groups.setdefault(key, [])
            last_key = k
        current.append(row)
    return groups


_PUBLISH_ORDER = (*(d for d in RECORD_DATASETS if d != "feed_events"), "feed_events")


@dataclass(slots=True)
class _Message:
    topic: str
    dataset: str
    key: bytes
    value: bytes
    rows: int
    ts_recv: tuple[int, ...]


class KafkaPublisher(SenderPublisher):
    """Publishes records to ``<prefix>.<dataset>`` topics with key ``exchange|symbol``."""

    transport = "Kafka"

    def __init__(self, settings: KafkaSettings, on_delivery: DeliveryListener | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.stats = PublisherStats(extra={"messages": 0, "bytes": 0, "encode_errors": 0, "idempotent": 0})
        self.on_delivery = on_delivery
        self._producer: AIOKafkaProducer | None = None
        self._queue: collections.deque[_Message] = collections.deque()
        self._queue_event = asyncio.Event()  # set when the queue has messages
        self._space_event = asyncio.Event()  # set when the queue has room
        self._space_event.set()
        self._inflight: set[asyncio.Future[Any]] = set()

    async def start(self) -> None:
        """Creates missing topics (if enabled) and starts the producer and the sender task."""
        s = self.settings
        if s.create_topics:
            await ensure_topics(s, [s.topic(d) for d in RECORD_DATASETS])
        if s.idempotence == "off":
            self._producer = await self._start_producer(False)
        else:
            try:
                self._producer = await self._start_producer(True)
                self.stats.extra["idempotent"] = 1
            except (UnknownError, UnsupportedVersionError, ClusterAuthorizationFailedError) as exc:
                if s.idempotence == "on":
                    raise DeliveryError(
                        f"broker {s.bootstrap} rejected the idempotent producer ({exc!r}); "
                        "use idempotence 'auto' or 'off' for this broker"
                    ) from exc
                log.warning(
                    "broker %s rejected the idempotent producer (%r): publishing without idempotence; "
                    "producer retries may duplicate messages (the sink tolerates this)",
                    s.bootstrap,
                    exc,
                )
                self._producer = await self._start_producer(False)
        self._sender = asyncio.create_task(self._send_loop(), name="kafka-sender")

    async def _start_producer(self, idempotent: bool) -> AIOKafkaProducer:
        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap,
            client_id=s.client_id,
            acks="all",
            enable_idempotence=idempotent,
            linger_ms=s.linger_ms,
            compression_type=s.compression,
            max_batch_size=max(s.max_batch_bytes, s.max_message_bytes + 1024),
            max_request_size=max(1 << 20, s.max_message_bytes + 64 * 1024),
            request_timeout_ms=s.request_timeout_ms,
            **s.extra,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def publish(self, records: RecordBuffer) -> None:
        """Encodes and queues the records (one message per key and dataset, split at the size cap)."""
        self._check_open()
        self._raise_failure()
        s = self.settings
        track = self.on_delivery is not None
        # feed_events last: the bad_row events of the other datasets' rows go out with them.
        for dataset in _PUBLISH_ORDER:
            rows = records.rows(dataset)
            if not rows:
                continue
            topic = s.topic(dataset)
            keyed = codec.encode_keyed(dataset, rows, s.max_message_bytes, track)
            if keyed is not None:
                # The compiled codec: grouped, encoded and packed in one call.
                for key, value, count, ts in keyed:
                    await self._enqueue(_Message(topic, dataset, key, value, count, ts or ()))
                continue
            enc = codec.encoder(dataset)
            ts_field = codec.ts_recv_field(dataset)
            for key, group in group_by_key(rows).items():
                for part in _encode_parts(
                    dataset, enc, group, s.max_message_bytes, self.stats, records.feed_events
                ):
                    value, part_rows = part
                    msg = _Message(
                        topic,
                        dataset,
                        key,
                        value,
                        len(part_rows),
                        tuple(r[ts_field] for r in part_rows) if track else (),
                    )
                    await self._enqueue(msg)
        records.clear()

    async def _enqueue(self, msg: _Message) -> None:
        s = self.settings
        while len(self._queue) >= s.queue_max_messages:
            if s.queue_policy == "drop-oldest":
                dropped = self._queue.popleft()
                self.stats.dropped_rows += dropped.rows
                continue
            self._space_event.clear()
            await self._space_event.wait()
            self._raise_failure()
        self._queue.append(msg)
        self.stats.queue_depth = len(self._queue)
        self._queue_event.set()

    async def _send_loop(self) -> None:
        producer = self._producer
        assert producer is not None
        partition_of = self._partitions(producer)
        while True:
            if not self._queue:
                self._queue_event.clear()
                await self._queue_event.wait()
                continue
            msg = self._queue.popleft()
            self.stats.queue_depth = len(self._queue)
            self._space_event.set()
            try:
                fut = await producer.send(msg.topic, msg.value, key=msg.key, partition=partition_of(msg))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._record_failure(msg, exc)
                continue
            self._inflight.add(fut)
            fut.add_done_callback(lambda f, m=msg: self._on_done(f, m))

    def _partitions(self, producer: AIOKafkaProducer) -> Callable[[_Message], int | None]:
        """The partition of a message's key, computed once per topic, key and partition count.

        The same choice as aiokafka's default partitioner (murmur2 of the key over the topic's
        partitions, as listed by the producer's metadata), which the producer otherwise recomputes in
        Python for every message. None (the producer chooses) before the topic's metadata is known,
        and always when a custom ``partitioner`` is configured in ``extra``.
        """
        if "partitioner" in self.settings.extra:
            return lambda msg: None
        cluster = producer.client.cluster
        choose = DefaultPartitioner()
        known: dict[tuple[str, bytes], tuple[int, int]] = {}

        def partition_of(msg: _Message) -> int | None:
            parts = cluster.partitions_for_topic(msg.topic)
            if not parts:
                return None
            hit = known.get((msg.topic, msg.key))
            if hit is not None and hit[0] == len(parts):
                return hit[1]
            partition: int = choose(msg.key, list(parts), None)
            known[(msg.topic, msg.key)] = (len(parts), partition)
            return partition

        return partition_of

    def _on_done(self, fut: asyncio.Future[Any], msg: _Message) -> None:
        self._inflight.discard(fut)
        if fut.cancelled():
            self._record_failure(msg, asyncio.CancelledError("delivery cancelled"))
            return
        exc = fut.exception()
        if exc is not None:
            self._record_failure(msg, exc)
            return
        self.stats.published_rows += msg.rows
        self.stats.extra["messages"] += 1
        self.stats.extra["bytes"] += len(msg.value)
        if self.on_delivery is not None:
            self.on_delivery(msg.dataset, msg.ts_recv, time.time_ns())

    def _record_failure(self, msg: _Message, exc: BaseException) -> None:
        self._latch_failure(msg.rows, exc)
        log.error("kafka delivery failed: %d %s rows for key %r: %r", msg.rows, msg.dataset, msg.key, exc)

    async def flush(self) -> None:
        """Waits until every queued message is acknowledged; raises :class:`DeliveryError` on failures."""
        while self._queue or self._inflight:
            if self._queue and (self._sender is None or self._sender.done()):
                self._raise_sender_stopped(len(self._queue))
            if self._inflight:
                await asyncio.wait(list(self._inflight))
            else:
                await asyncio.sleep(0.001)
        self._raise_failure()

    async def _release(self) -> None:
        if self._producer is not None:
            await self._producer.stop()


def _encode_parts(
    dataset: str,
    enc: codec.Encoder,
    rows: list[tuple[Any, ...]],
    max_bytes: int,
    stats: PublisherStats,
    events: list[tuple[Any, ...]],
) -> list[tuple[bytes, list[tuple[Any, ...]]]]:
    """Encodes the rows of one key into values of at most ``max_bytes`` (with the rows of each); a row
    that does not encode is appended to ``events`` as a ``bad_row`` feed event instead."""
    parts: list[tuple[bytes, list[tuple[Any, ...]]]] = []
    chunk: list[bytes] = []
    chunk_rows: list[tuple[Any, ...]] = []
    size = 0
    for row in rows:
        try:
            data = enc(row)
        except codec.CodecError as exc:
            # A normaliser bug, not bad exchange input (that became a feed event upstream): counted
            # and logged loudly, and it never takes the other rows of the batch down with it.
            stats.extra["encode_errors"] += 1
            stats.errors += 1
            log.error("a %s row does not encode (published as a bad_row event): %s", dataset, exc)
            if dataset != "feed_events":
                events.append(bad_row_event(dataset, row, exc))
            continue
        if chunk and size + len(data) > max_bytes:
            parts.append((b"".join(chunk), chunk_rows))
            chunk, chunk_rows, size = [], [], 0
        chunk.append(data)
        chunk_rows.append(row)
        size += len(data)
    if chunk:
        parts.append((b"".join(chunk), chunk_rows))
    return parts


async def ensure_topics(settings: KafkaSettings, topics: Sequence[str]) -> None:
    """Creates the topics that do not exist yet (an existing topic is left as it is)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        client_id=f"{settings.client_id}-admin",
        request_timeout_ms=settings.request_timeout_ms,
        **{k: v for k, v in settings.extra.items() if k.startswith(("security", "sasl", "ssl"))},
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return
        new = [NewTopic(t, settings.partitions, settings.replication_factor) for t in missing]
        try:
            await admin.create_topics(new)
            log.info("created kafka topics %s with %d partitions", missing, settings.partitions)
        except TopicAlreadyExistsError:
            pass  # another process created them first
    finally:
        await admin.close()


class _Rebalance(ConsumerRebalanceListener):
    """Tracks assignment changes so that ``poll`` can hold back data of newly assigned partitions."""

    def __init__(self, owner: KafkaConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """Forgets revoked partitions: their data will be read by their new owner from its commit."""
        for tp in revoked:
            self.owner._new.discard(tp)
            self.owner._recent.pop(tp, None)
        if revoked and self.owner.on_revoke is not None:
            await self.owner.on_revoke(sorted(stream_id(tp.topic, tp.partition) for tp in revoked))
        if revoked:
            log.info(
                "kafka partitions revoked: %s", sorted(stream_id(tp.topic, tp.partition) for tp in revoked)
            )

    async def on_partitions_assigned(self, assigned: Any) -> None:
        """Marks new partitions: the sink gets one poll to see them in ``streams()`` and seek."""
        self.owner._new.update(assigned)
        if assigned:
            log.info(
                "kafka partitions assigned: %s", sorted(stream_id(tp.topic, tp.partition) for tp in assigned)
            )


class KafkaConsumer(Consumer):
    """Consumes the dataset topics, as a member of ``group_id`` or (``group_id=None``) alone.

    With a group, partitions are balanced across the members and the rebalance listener tracks
    them: a newly assigned partition appears in :meth:`streams` one poll before its data does, so the
    sink can :meth:`seek` it to its resume position. Without a group, every partition of every topic
    is read by this consumer.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str | None = "ticktape-sink",
        datasets: Sequence[str] = RECORD_DATASETS,
        max_records: int = 5000,
        assignment_timeout_s: float = 30.0,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        dedupe_window: int = 8192,
    ) -> None:
        self.settings = settings
        self.group_id = group_id
        self.topics = [settings.topic(d) for d in datasets]
        self._dataset_of_topic = {settings.topic(d): d for d in datasets}
        self.max_records = max_records
        self.assignment_timeout_s = assignment_timeout_s
        # A member that dies without leaving holds its partitions until its session times out.
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._new: set[TopicPartition] = set()
        self._recent: dict[TopicPartition, codec.RecentMessages] = {}
        self.dedupe_window = dedupe_window
        #: Awaited with the stream ids of revoked partitions before they move to another member: a
        #: sink sets it to write and commit what it holds of them (else both members would write it).
        self.on_revoke: Callable[[list[str]], Awaitable[None]] | None = None
        self.decode_errors = 0
        self.consumed_messages = 0
        self.duplicates_dropped = 0

    async def start(self) -> None:
        """Connects; returns once partitions are assigned (so that the sink can seek them first)."""
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            client_id=s.client_id,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=s.request_timeout_ms,
            max_partition_fetch_bytes=max(1 << 20, s.max_message_bytes + 64 * 1024),
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            **s.extra,
        )
        await consumer.start()
        self._consumer = consumer
        try:
            if self.group_id is None:
                await self._assign_all(consumer)
            else:
                consumer.subscribe(self.topics, listener=_Rebalance(self))
                deadline = time.monotonic() + self.assignment_timeout_s
                while not consumer.assignment() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                if not consumer.assignment():
                    log.warning(
                        "no kafka partitions assigned after %.0fs (more members than partitions?)",
                        self.assignment_timeout_s,
                    )
                # The initial assignment is visible to the sink before its first poll.
                self._new.clear()
        except BaseException:
            await consumer.stop()
            self._consumer = None
            raise

    async def _assign_all(self, consumer: AIOKafkaConsumer) -> None:
        if self.settings.create_topics:
            await ensure_topics(self.settings, self.topics)
        deadline = time.monotonic() + self.assignment_timeout_s
        tps: list[TopicPartition] = []
        while True:
            await consumer._client.force_metadata_update()
            tps = []
            missing = []
            for topic in self.topics:
                parts = consumer.partitions_for_topic(topic)
                if not parts:
                    missing.append(topic)
                    continue
                tps.extend(TopicPartition(topic, p) for p in sorted(parts))
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        if missing:
            raise KafkaError(f"topics not found on {self.settings.bootstrap}: {missing}")
        consumer.assign(tps)

    def _require(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("KafkaConsumer is not started")
        return self._consumer

    def streams(self) -> list[str]:
        """Stream ids of the assigned topic-partitions."""
        consumer = self._require()
        return sorted(stream_id(tp.topic, tp.partition) for tp in consumer.assignment())

    async def seek(self, stream: str, next_position: int) -> None:
        """Continues a topic-partition at offset ``next_position``."""
        consumer = self._require()
        tp = parse_stream_id(stream)
        if tp not in consumer.assignment():
            raise ValueError(f"stream {stream} is not assigned to this consumer")
        consumer.seek(tp, next_position)
        self._new.discard(tp)
        self._recent.pop(tp, None)  # re-reading on purpose: not producer retries

    async def poll(self, timeout_s: float) -> list[ConsumedBatch]:
        """Fetches messages and returns one batch per topic-partition and dataset.

        A message that does not decode becomes a ``decode_error`` feed event in the same position
        range (the value is kept, base64), so positions stay covered and nothing crashes.
        """
        consumer = self._require()
        fetched = await consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=self.max_records)
        batches: list[ConsumedBatch] = []
        for tp, messages in fetched.items():
            if not messages:
                continue
            if tp in self._new:
                # Assigned during this poll: rewind, and let the sink seek it before data flows.
                consumer.seek(tp, messages[0].offset)
                self._new.discard(tp)
                continue
            stream = stream_id(tp.topic, tp.partition)
            recent = self._recent.get(tp)
            if recent is None:
                recent = self._recent[tp] = codec.RecentMessages(self.dedupe_window)
            self.consumed_messages += len(messages)
            on_error = functools.partial(self._error_row, tp, stream, messages)
            decoded, duplicates = codec.consume_values(
                stream, [(m.offset, m.key, m.value) for m in messages], recent, on_error
            )
            # A producer retry gives no rows, but its position stays covered by a batch.
            self.duplicates_dropped += duplicates
            batches.extend(decoded)
        return batches

    def _error_row(
        self, tp: TopicPartition, stream: str, messages: list[Any], i: int, exc: codec.CodecError
    ) -> Row:
        """The ``decode_error`` event of message ``i`` of a poll (counted and logged)."""
        m = messages[i]
        self.decode_errors += 1
        log.warning("undecodable message at %s offset %d: %s", stream, m.offset, exc)
        channel = self._dataset_of_topic.get(tp.topic, tp.topic)
        return codec.decode_error_row(
            stream, m.offset, m.key, m.value or b"", exc, m.timestamp * 1_000_000, channel
        )

    async def commit(self, stream: str, last_position: int) -> None:
        """Commits ``last_position + 1`` for the group (no-op without a group)."""
        consumer = self._require()
        if self.group_id is None:
            return
        tp = parse_stream_id(stream)
        try:
            await consumer.commit({tp: last_position + 1})
        except KafkaError as exc:
            # After a rebalance the partition belongs to another member; the lake's markers decide
            # where that member resumes, so a lost group commit costs a re-read, never data.
            log.warning("kafka commit of %s at %d failed: %r", stream, last_position, exc)

    async def close(self) -> None:
        """Leaves the group and closes connections."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

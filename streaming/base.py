"""The transport interface: how collectors publish records and how sinks consume them.

Every transport (``local``, ``kafka``, ``kinesis``) implements :class:`Publisher` and :class:`Consumer`.
Positions are per *stream*: one ordered position space (the local log, one Kafka topic-partition, one
Kinesis shard). A stream id is safe as part of a file name (``[A-Za-z0-9._-]``), and a sink's lake file
names carry ``<stream>-<first>-<last>``, which is what makes the sink exactly-once.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import pyarrow as pa

from schemas import RecordBuffer

#: What a publisher does when its bounded queue is full.
QUEUE_POLICIES = ("block", "drop-oldest")
#: Kafka producer compression unless configured (documented in README, "Configuration"): zstd packs
#: market data 3-5x at little CPU; "none" turns it off. Declared here, beside the other transport
#: constants, so the configuration can show it without importing the Kafka client.
KAFKA_DEFAULT_COMPRESSION = "zstd"


@dataclass(frozen=True, slots=True)
class ConsumedBatch:
    """Records of one dataset read from one stream, covering positions ``first..last`` inclusive.

    Positions are integers that increase along the stream (log entry numbers, Kafka offsets, or
    Kinesis sequence numbers). ``table`` uses ``schemas.arrow_schema(dataset)``.
    """

    stream: str
    first: int
    last: int
    dataset: str
    table: pa.Table


@dataclass
class PublisherStats:
    """Counters every publisher keeps (exported as metrics)."""

    published_rows: int = 0
    dropped_rows: int = 0
    queue_depth: int = 0
    errors: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Publisher(abc.ABC):
    """Publishes collector output. ``publish`` takes ownership of the buffer's rows."""

    stats: PublisherStats

    async def start(self) -> None:
        """Connects / opens resources."""

    @abc.abstractmethod
    async def publish(self, records: RecordBuffer) -> None:
        """Queues records for delivery; blocks or drops (counted) when the bounded queue is full."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Returns when everything published so far is durable (fsynced, or acknowledged by the broker).

        Raises when delivery failed: failures are never silently dropped.
        """

    async def close(self) -> None:
        """Flushes and releases resources."""
        await self.flush()


class Consumer(abc.ABC):
    """Reads what publishers wrote, stream by stream, from a position the sink chooses."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connects / opens resources."""

    @abc.abstractmethod
    def streams(self) -> list[str]:
        """The streams currently assigned to this consumer."""

    @abc.abstractmethod
    async def seek(self, stream: str, next_position: int) -> None:
        """Continues ``stream`` at ``next_position`` (the sink resumes after its last commit marker)."""

    @abc.abstractmethod
    async def poll(self, timeout_s: float) -> list[ConsumedBatch]:
        """Returns batches available now (waiting up to ``timeout_s`` for the first); [] when idle."""

    async def commit(self, stream: str, last_position: int) -> None:
        """Tells the transport that positions up to ``last_position`` are durable in the lake."""

    async def close(self) -> None:
        """Releases resources."""

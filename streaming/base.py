"""The transport interface: how collectors publish records and how sinks consume them.

Every transport (``local``, ``kafka``, ``kinesis``) implements :class:`Publisher` and :class:`Consumer`.
Positions are per *stream*: one ordered position space (the local log, one Kafka topic-partition, one
Kinesis shard). A stream id is safe as part of a file name (``[A-Za-z0-9._-]``), and a sink's lake file
names carry ``<stream>-<first>-<last>``, which is what makes the sink exactly-once.

Nothing poisons a stream: a row that cannot be encoded (a value that does not fit its column) is
taken out of its batch by :func:`split_to_arrow` (or the codec's per-row encoder) and published as a
``bad_row`` feed event (:func:`bad_row_event`) instead; the rest of the batch is published.
"""

from __future__ import annotations

import abc
import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from schemas import RECORD_DATASETS, RecordBuffer, rows_to_arrow

#: What converting a row that does not fit its schema can raise (Arrow, or Python's int conversion).
CONVERT_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError)
#: Longest ``repr`` of a bad row kept in its event.
MAX_KEPT_ROW_CHARS = 2000
_SAFE_EXCHANGE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_SAFE_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{0,63}$")
_INT64 = range(-(1 << 63), 1 << 63)


def bad_row_event(dataset: str, row: Any, error: BaseException | str) -> tuple[Any, ...]:
    """A ``feed_events`` row (kind ``bad_row``, channel = the dataset) standing for a row that could not
    be encoded; it always encodes itself: unsafe exchange, symbol or receive time are replaced."""
    cells = row if isinstance(row, tuple | list) else ()
    exchange = cells[0] if len(cells) > 0 else None
    symbol = cells[1] if len(cells) > 1 else None
    ts_recv = cells[3] if len(cells) > 3 else None
    if not (isinstance(exchange, str) and _SAFE_EXCHANGE.match(exchange)):
        exchange = "unknown"
    if not (isinstance(symbol, str) and _SAFE_SYMBOL.match(symbol) and ".." not in symbol):
        symbol = None
    if ts_recv.__class__ is not int or ts_recv not in _INT64:
        ts_recv = time.time_ns()
    reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    detail = {"dataset": dataset, "error": reason[:500], "row": repr(row)[:MAX_KEPT_ROW_CHARS]}
    return (exchange, symbol, dataset, ts_recv, "bad_row", orjson.dumps(detail).decode())


def split_to_arrow(
    dataset: str, rows: list[tuple[Any, ...]]
) -> tuple[pa.RecordBatch | None, list[tuple[tuple[Any, ...], str]]]:
    """``rows`` as one record batch, leaving out (and returning with their error) the rows that do not
    fit the schema. The good path is one :func:`~schemas.rows_to_arrow`; a failing batch is bisected,
    so isolating a few bad rows costs a few conversions per bad row, not one per row."""
    try:
        return rows_to_arrow(dataset, rows), []
    except CONVERT_ERRORS:
        pass
    good: list[tuple[Any, ...]] = []
    bad: list[tuple[tuple[Any, ...], str]] = []
    pending = [(0, len(rows))]
    while pending:
        lo, hi = pending.pop()
        part = rows[lo:hi]
        try:
            rows_to_arrow(dataset, part)
        except CONVERT_ERRORS as exc:
            if hi - lo == 1:
                bad.append((rows[lo], f"{type(exc).__name__}: {exc}"))
            else:
                mid = (lo + hi) // 2
                pending.append((mid, hi))
                pending.append((lo, mid))  # popped first: rows keep their order
            continue
        good.extend(part)
    return (rows_to_arrow(dataset, good) if good else None), bad


def arrow_tables(records: RecordBuffer) -> dict[str, pa.RecordBatch]:
    """Every dataset of ``records`` as a record batch; rows that do not fit become ``bad_row`` events."""
    tables: dict[str, pa.RecordBatch] = {}
    events: list[tuple[Any, ...]] = []
    for dataset in (*(d for d in RECORD_DATASETS if d != "feed_events"), "feed_events"):
        rows = records.rows(dataset)
        if dataset == "feed_events" and events:
            rows = [*rows, *events]
        if not rows:
            continue
        batch, bad = split_to_arrow(dataset, rows)
        if dataset == "feed_events" and bad:
            extra = rows_to_arrow(dataset, [bad_row_event(dataset, row, err) for row, err in bad])
            batch = extra if batch is None else pa.concat_batches([batch, extra])
        else:
            events.extend(bad_row_event(dataset, row, err) for row, err in bad)
        if batch is not None:
            tables[dataset] = batch
    return tables


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

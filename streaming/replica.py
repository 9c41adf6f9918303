"""Collector replicas (issue 17): records that name the replica which produced them.

Several collectors may capture the same venue and symbols (one per availability zone) and publish to
the same transport; the sink then arbitrates them into one copy (``storage/arbitrate.py``). Every
record schema ends with a nullable ``replica`` string (``schemas.REPLICA_FIELD``, default null, so
records and lake files written before it still read). A collector started with ``--replica NAME``
publishes through a :class:`ReplicaPublisher`, which appends ``NAME`` to every row; a collector
without a replica publishes base rows exactly as before (on Kafka and Kinesis with the schema
fingerprint they always had, in the local log without the column).

Deployment: the replicas of a venue must publish to the same stream of positions for each key, so
that the sink sees both copies of a record in one ordered stream: one local log (replicas in one
process: a local log has a single writer), or the same Kafka topics with the same partition count
(key ``exchange|symbol`` -> the same partition), or the same Kinesis stream (same partition key ->
the same shard). Replicas that publish to different topics, clusters or logs are not arbitrated:
each stream's sink sees one replica and passes its rows through, so the lake holds both copies.
"""

from __future__ import annotations

import re

from schemas import RECORD_DATASETS, RecordBuffer, base_width

from .base import Publisher, PublisherStats

#: A replica name: lower-case letters, digits and '-', 1-32 characters (it becomes a label value).
REPLICA_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")


def check_replica_name(name: str) -> str:
    """``name`` if it is a valid replica name, else ``ValueError`` saying what is allowed."""
    if not isinstance(name, str) or not REPLICA_NAME.match(name):
        raise ValueError(
            f"invalid replica name {name!r}: lower-case letters, digits and '-', 1-32 characters"
        )
    return name


def stamp_replica(records: RecordBuffer, replica: str) -> RecordBuffer:
    """Appends ``replica`` to every base row of ``records`` (in place; rows that already carry a
    replica are kept as they are) and returns ``records``."""
    suffix = (replica,)
    for dataset in RECORD_DATASETS:
        rows = records.rows(dataset)
        if rows:
            width = base_width(dataset)
            setattr(records, dataset, [r + suffix if len(r) == width else r for r in rows])
    return records


class ReplicaPublisher(Publisher):
    """Publishes through ``inner`` with every row stamped with ``replica``.

    Several replicas of one process (one local log) share ``inner``: this wrapper only stamps, and
    leaves starting, flushing and closing ``inner`` to its owner.
    """

    def __init__(self, inner: Publisher, replica: str) -> None:
        self.inner = inner
        self.replica = check_replica_name(replica)
        #: the shared publisher's counters (one object: the metrics read the same numbers)
        self.stats: PublisherStats = inner.stats

    async def publish(self, records: RecordBuffer) -> None:
        await self.inner.publish(stamp_replica(records, self.replica))

    async def flush(self) -> None:
        await self.inner.flush()

    async def close(self) -> None:
        """Flushes ``inner`` (its owner closes it)."""
        await self.inner.flush()

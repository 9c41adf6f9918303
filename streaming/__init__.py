"""Transports between collectors and the sink (DESIGN.md, "Transports").

:func:`open_publisher` and :func:`open_consumer` pick a transport by name and pass it keyword options;
each branch takes the options it understands and ignores options meant for other transports, so a
command line can hand over everything it parsed.
"""

from __future__ import annotations

from typing import Any

from .base import Consumer, Publisher

#: Transport names, the default first.
TRANSPORTS: tuple[str, ...] = ("local", "kafka", "kinesis")


def _unknown(transport: str) -> ValueError:
    return ValueError(f"unknown transport {transport!r}; known: {', '.join(TRANSPORTS)}")


def _local_log_dir(options: dict[str, Any]) -> Any:
    log_dir = options.get("log_dir")
    if not log_dir:
        raise ValueError("the local transport needs a log directory (log_dir, --log DIR)")
    return log_dir


def _pick(options: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: options[k] for k in names if options.get(k) is not None}


def _kafka_settings(options: dict[str, Any]) -> Any:
    from .kafka import KafkaSettings

    if not options.get("bootstrap"):
        raise ValueError(
            "the kafka transport needs bootstrap servers (bootstrap, --kafka-bootstrap HOST:PORT)"
        )
    picked = _pick(
        options,
        (
            "bootstrap",
            "topic_prefix",
            "idempotence",
            "linger_ms",
            "compression",
            "max_message_bytes",
            "queue_max_messages",
            "partitions",
            "request_timeout_ms",
            "client_id",
            "extra",
        ),
    )
    if options.get("policy") is not None:
        picked["queue_policy"] = options["policy"]
    return KafkaSettings(**picked)


def _kinesis_settings(options: dict[str, Any]) -> Any:
    from .kinesis import KinesisSettings

    if not options.get("stream_name"):
        raise ValueError("the kinesis transport needs a stream name (stream_name, --kinesis-stream NAME)")
    picked = _pick(
        options,
        (
            "stream_name",
            "region",
            "endpoint_url",
            "linger_ms",
            "max_record_bytes",
            "max_attempts",
            "queue_max_bytes",
            "create_stream",
            "shard_count",
        ),
    )
    if options.get("policy") is not None:
        picked["queue_policy"] = options["policy"]
    return KinesisSettings(**picked)


def open_publisher(transport: str = "local", **options: Any) -> Publisher:
    """A publisher for ``transport``. Call ``await publisher.start()`` before use.

    local: ``log_dir`` (required), ``queue_rows``, ``policy`` (block | drop-oldest),
    ``flush_interval_s``, ``batch_rows``, ``fsync`` (always | batch | never), ``segment_bytes``,
    ``keep_segments`` (retention: newest segments always kept; None keeps everything).
    kafka: ``bootstrap`` (required), ``topic_prefix``, ``idempotence`` (auto | on | off), ``linger_ms``,
    ``compression``, ``max_message_bytes``, ``queue_max_messages``, ``policy``, ``partitions``.
    kinesis: ``stream_name`` (required), ``endpoint_url``, ``region``, ``linger_ms``, ``max_record_bytes``,
    ``max_attempts``, ``queue_max_bytes``, ``policy``, ``create_stream``, ``shard_count``.
    """
    if transport == "local":
        from .local import LocalPublisher

        picked = _pick(
            options,
            (
                "queue_rows",
                "policy",
                "flush_interval_s",
                "batch_rows",
                "fsync",
                "segment_bytes",
                "keep_segments",
            ),
        )
        return LocalPublisher(_local_log_dir(options), **picked)
    if transport == "kafka":
        from .kafka import KafkaPublisher

        return KafkaPublisher(_kafka_settings(options))
    if transport == "kinesis":
        from .kinesis import KinesisPublisher

        return KinesisPublisher(_kinesis_settings(options))
    raise _unknown(transport)


def open_consumer(transport: str = "local", **options: Any) -> Consumer:
    """A consumer for ``transport``. Call ``await consumer.start()`` before use.

    local: ``log_dir`` (required), ``stream`` (default ``local``), ``group``, ``poll_interval_s``,
    ``skip_corrupt``.
    kafka: ``bootstrap`` (required), ``topic_prefix``, ``group`` (default ``ticktape-sink``), ``max_records``.
    kinesis: ``stream_name`` (required), ``endpoint_url``, ``region``, ``checkpoint_dir``, ``start_at``.
    """
    if transport == "local":
        from .local import LocalConsumer

        picked = _pick(
            options,
            ("stream", "group", "poll_interval_s", "max_poll_entries", "max_poll_bytes", "skip_corrupt"),
        )
        return LocalConsumer(_local_log_dir(options), **picked)
    if transport == "kafka":
        from .kafka import KafkaConsumer

        picked = _pick(options, ("max_records",))
        return KafkaConsumer(
            _kafka_settings(options), group_id=options.get("group") or "ticktape-sink", **picked
        )
    if transport == "kinesis":
        from .kinesis import KinesisConsumer

        picked = _pick(options, ("checkpoint_dir", "max_records_per_call", "start_at"))
        return KinesisConsumer(_kinesis_settings(options), **picked)
    raise _unknown(transport)


__all__ = ["TRANSPORTS", "Consumer", "Publisher", "open_consumer", "open_publisher"]

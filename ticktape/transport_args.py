"""Command-line options shared by every command that publishes to or consumes from a transport.

``add_transport_args(parser)`` adds them; ``publisher_from_args(args)`` / ``consumer_from_args(args)``
turn the parsed namespace into a :class:`streaming.base.Publisher` / :class:`streaming.base.Consumer`
through the factories in :mod:`streaming`. Missing or contradictory options raise
:class:`TransportArgsError` with a message meant for the user.
"""

from __future__ import annotations

import argparse
from typing import Any

from streaming import TRANSPORTS, open_consumer, open_publisher
from streaming.base import QUEUE_POLICIES, Consumer, Publisher
from streaming.local import FSYNC_POLICIES


class TransportArgsError(ValueError):
    """The transport options given on the command line cannot work together."""


def add_transport_args(parser: argparse.ArgumentParser, *, default: str | None = "local") -> None:
    """Adds ``--transport`` and the options of each transport to ``parser``."""
    group = parser.add_argument_group("transport")
    group.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default=default,
        help=f"transport between collectors and the sink (default {default})",
    )
    group.add_argument("--log", metavar="DIR", help="local transport: the log directory")
    group.add_argument(
        "--fsync",
        choices=FSYNC_POLICIES,
        default="batch",
        help="local transport: fsync after every entry, every written batch (default), or only on close",
    )
    group.add_argument(
        "--kafka-bootstrap", metavar="HOST:PORT", help="kafka: bootstrap servers, comma-separated"
    )
    group.add_argument("--topic-prefix", metavar="PREFIX", help="kafka: prefix of the per-dataset topics")
    group.add_argument("--kinesis-stream", metavar="NAME", help="kinesis: the stream name")
    group.add_argument(
        "--endpoint-url", metavar="URL", help="kinesis: AWS-compatible endpoint (moto, LocalStack)"
    )
    group.add_argument(
        "--queue-policy",
        choices=QUEUE_POLICIES,
        default="block",
        help="what a publisher does when its bounded queue is full (default block; drops are counted)",
    )


def transport_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword options for :func:`streaming.open_publisher` / :func:`streaming.open_consumer`."""
    transport = getattr(args, "transport", None) or "local"
    if transport not in TRANSPORTS:
        raise TransportArgsError(f"unknown transport {transport!r}; known: {', '.join(TRANSPORTS)}")
    options: dict[str, Any] = {
        "log_dir": getattr(args, "log", None),
        "fsync": getattr(args, "fsync", None),
        "bootstrap": getattr(args, "kafka_bootstrap", None),
        "topic_prefix": getattr(args, "topic_prefix", None),
        "stream_name": getattr(args, "kinesis_stream", None),
        "endpoint_url": getattr(args, "endpoint_url", None),
        "policy": getattr(args, "queue_policy", None),
    }
    config = getattr(args, "config_obj", None)
    if config is not None:  # settings that only the configuration file and the environment carry
        options.update(config.transport_settings(transport))
    required = {
        "local": ("log_dir", "--log DIR"),
        "kafka": ("bootstrap", "--kafka-bootstrap HOST:PORT"),
        "kinesis": ("stream_name", "--kinesis-stream NAME"),
    }[transport]
    if not options[required[0]]:
        raise TransportArgsError(f"--transport {transport} needs {required[1]}")
    return {k: v for k, v in options.items() if v is not None}


def publisher_from_args(args: argparse.Namespace, **overrides: Any) -> Publisher:
    """A (not yet started) publisher for the transport chosen on the command line."""
    options = {**transport_options(args), **overrides}
    try:
        return open_publisher(args.transport or "local", **options)
    except ValueError as exc:
        raise TransportArgsError(str(exc)) from exc


def consumer_from_args(args: argparse.Namespace, **overrides: Any) -> Consumer:
    """A (not yet started) consumer for the transport chosen on the command line."""
    options = {**transport_options(args), **overrides}
    try:
        return open_consumer(args.transport or "local", **options)
    except ValueError as exc:
        raise TransportArgsError(str(exc)) from exc

"""``ticktape collect``: live capture of one exchange, or of a configured group of exchanges, into a
transport (and optionally raw captures)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.base import DEFAULT_RECYCLE_AFTER_S, DEFAULT_STALE_AFTER_S
from collectors.connection import ConnectionSettings
from collectors.instruments import DEFAULT_INSTRUMENTS_REFRESH_S, UnknownSymbolError, is_pattern
from collectors.raw import RawSettings
from collectors.registry import exchange_ids, get_dialect
from streaming.replica import ReplicaPublisher, check_replica_name
from ticktape.config import dialect_options_of, enable_config, quality_config_of
from ticktape.runtime import (
    build_collector,
    parse_channels,
    parse_list,
    quality_rows_publisher,
    stop_event_on_signals,
    wait_or_timeout,
)
from ticktape.transport_args import TransportArgsError, add_transport_args, publisher_from_args

log = logging.getLogger("ticktape.collect")


def register(sub: Any) -> None:
    """Adds ``collect`` to the command line."""
    p: argparse.ArgumentParser = sub.add_parser(
        "collect",
        help="capture an exchange's live market data",
        description="Connects to an exchange's websocket, normalises trades, book and bbo, and publishes them.",
    )
    p.add_argument("--exchange", required=True, help=f"exchange id ({', '.join(exchange_ids())})")
    p.add_argument(
        "--symbols",
        required=True,
        help="comma-separated symbols, native or normalised (BTCUSDT or BTC-USDT); 'all' or globs "
        "('BTC-*', '*-PERP') resolve against the venue's instruments",
    )
    p.add_argument("--channels", default="", help="comma-separated channels: trades,book,bbo (default all)")
    p.add_argument("--ws-url", help="websocket base URL (simulators, testnets, proxies)")
    p.add_argument("--rest-url", help="REST base URL for snapshots")
    p.add_argument(
        "--replica",
        metavar="NAME",
        help="this collector is one replica of several capturing the same venue and symbols: its "
        "records carry NAME and the sink keeps one copy (README, 'Replicas'; default: none)",
    )
    p.add_argument(
        "--max-connection-age",
        type=float,
        metavar="SECONDS",
        help="rotate each connection at this age (make-before-break; 0: never; default: the exchange's own, "
        "23 h where the venue closes at 24 h)",
    )
    p.add_argument(
        "--instruments-refresh-s",
        type=float,
        default=DEFAULT_INSTRUMENTS_REFRESH_S,
        metavar="SECONDS",
        help="fetch each venue's instruments this often (0: only at start); 'all' and glob symbols "
        "follow new listings and delistings",
    )
    p.add_argument(
        "--capture",
        metavar="FILE",
        help="also write every received frame to this raw capture (.gz to compress)",
    )
    p.add_argument(
        "--raw",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="publish every received frame as the raw dataset (the raw archive; default off)",
    )
    p.add_argument(
        "--raw-batch-bytes",
        type=int,
        default=RawSettings.batch_bytes,
        help="raw archive: uncompressed bytes per batch (default %(default)s)",
    )
    p.add_argument(
        "--raw-batch-s",
        type=float,
        default=RawSettings.batch_s,
        help="raw archive: the longest a frame waits in a batch, seconds (default %(default)s)",
    )
    p.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: until SIGTERM/SIGINT)"
    )
    p.add_argument("--port", type=int, help="serve /metrics, /api/quality and the dashboard on this port")
    p.add_argument("--host", default="127.0.0.1", help="address of the HTTP server (default 127.0.0.1)")
    p.add_argument(
        "--stale-book-s",
        type=float,
        default=DEFAULT_STALE_AFTER_S["book"],
        help="book/bbo silence before a channel is stale",
    )
    p.add_argument(
        "--stale-trades-s",
        type=float,
        default=DEFAULT_STALE_AFTER_S["trades"],
        help="minimum trade silence before stale",
    )
    p.add_argument(
        "--recycle-after-s",
        type=float,
        default=DEFAULT_RECYCLE_AFTER_S,
        help="recycle a connection stale this long (0: never)",
    )
    add_transport_args(p)
    p.set_defaults(func=run)
    enable_config(p, "collect")


@dataclass(frozen=True)
class CollectorSpec:
    """One exchange this process collects."""

    dialect: Any
    symbols: list[str]
    channels: tuple[str, ...]
    ws_url: str | None
    rest_url: str | None
    capture: str | None
    replica: str | None = None


def _capture_path(capture: str | None, exchange: str, many: bool) -> str | None:
    """The raw capture of one exchange: the given path, or with the exchange id inserted when several run."""
    if capture is None or not many:
        return capture
    path = Path(capture)
    stem, dot, ext = path.name.partition(".")
    return str(path.with_name(f"{stem}.{exchange}{dot}{ext}"))


def _replica_of(args: argparse.Namespace, configured: str | None) -> str | None:
    """A collector's replica: ``--replica`` (every collector of the process), else its entry's."""
    replica = getattr(args, "replica", None) or configured
    return check_replica_name(replica) if replica else None


def _specs(args: argparse.Namespace) -> list[CollectorSpec]:
    """What to collect: a configured collector group (several exchanges), else the flags' one exchange."""
    group = getattr(args, "group_collectors", None)
    if group and len(group) > 1:
        return [
            CollectorSpec(
                get_dialect(c.exchange, dialect_options_of(args)),
                list(c.symbols),
                parse_channels(",".join(c.channels)),
                c.ws_url,
                c.rest_url,
                _capture_path(
                    args.capture, ".".join(filter(None, (c.exchange, _replica_of(args, c.replica)))), True
                ),
                _replica_of(args, c.replica),
            )
            for c in group
        ]
    symbols = parse_list(args.symbols)
    if not symbols:
        raise ValueError("--symbols is empty")
    return [
        CollectorSpec(
            get_dialect(args.exchange, dialect_options_of(args)),
            symbols,
            parse_channels(args.channels),
            args.ws_url,
            args.rest_url,
            args.capture,
            _replica_of(args, group[0].replica if group else None),
        )
    ]


def run(args: argparse.Namespace) -> int:
    """Runs the collectors until the duration ends or a signal arrives."""
    try:
        specs = _specs(args)
        for spec in specs:  # a symbol the venue cannot serve as named is an error before connecting
            for symbol in spec.symbols:
                if not is_pattern(symbol):
                    spec.dialect.native_symbol(symbol)
        publisher = publisher_from_args(args)
    except (ValueError, TransportArgsError) as exc:
        print(f"ticktape collect: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_collect(args, specs, publisher, connection_settings_of(args)))


def connection_settings_of(args: argparse.Namespace) -> ConnectionSettings:
    """The connection settings the command resolved (``[thresholds]`` staleness, ``[collect]`` rotation)."""
    return ConnectionSettings(
        # the configured market channels over the defaults of every channel (derivatives included)
        stale_after_s={
            **DEFAULT_STALE_AFTER_S,
            "book": args.stale_book_s,
            "bbo": args.stale_book_s,
            "trades": args.stale_trades_s,
        },
        recycle_after_s=args.recycle_after_s,
        max_connection_age_s=args.max_connection_age,
        instruments_refresh_s=args.instruments_refresh_s,
        raw=RawSettings(args.raw_batch_bytes, args.raw_batch_s) if getattr(args, "raw", False) else None,
    )


async def _collect(
    args: argparse.Namespace,
    specs: list[CollectorSpec],
    publisher: Any,
    settings: ConnectionSettings,
) -> int:
    stop = asyncio.Event()
    stop_event_on_signals(stop)
    await publisher.start()
    observers = []
    tracker = None
    if args.port is not None:
        from quality.live import QualityTracker

        tracker = QualityTracker(quality_config_of(args))
        tracker.expect([spec.dialect.exchange_id for spec in specs])
        observers.append(tracker.observe)
    collectors = [
        build_collector(
            spec.dialect,
            spec.symbols,
            ReplicaPublisher(publisher, spec.replica) if spec.replica else publisher,
            channels=spec.channels,
            ws_url=spec.ws_url,
            rest_url=spec.rest_url,
            capture=spec.capture,
            settings=settings,
            observers=observers,
        )
        for spec in specs
    ]
    server = None
    replicas = sorted({spec.replica or "" for spec in specs})
    if tracker is not None:
        from quality.server import QualityServer
        from ticktape.metrics import pipeline_registry

        replica_of = {c: spec.replica for c, spec in zip(collectors, specs, strict=True) if spec.replica}
        registry = pipeline_registry(collectors, publisher, args.transport or "local", replicas=replica_of)

        server = QualityServer(
            tracker,
            host=args.host,
            port=args.port,
            registry=registry,
            # the process's quality rows carry its replica when all its collectors are one replica
            on_rows=quality_rows_publisher(
                ReplicaPublisher(publisher, replicas[0]) if len(replicas) == 1 and replicas[0] else publisher
            ),
            health=lambda: [p for c in collectors for p in c.problems()],
        )
        await server.start()
    for collector, spec in zip(collectors, specs, strict=True):
        try:
            await collector.start()
        except UnknownSymbolError as exc:  # a symbol the venue does not list: say which, and stop
            print(f"ticktape collect: {exc}", file=sys.stderr)
            for started in collectors[: collectors.index(collector)]:
                await started.stop()
            await publisher.close()
            if server is not None:
                await server.stop()
            return 2
        log.info(
            "collecting %s %s (%s)", collector.exchange, ",".join(collector.symbols), ",".join(spec.channels)
        )
    try:
        await wait_or_timeout(stop, args.duration)
    finally:
        for collector in collectors:
            await collector.stop()
        await publisher.close()
        if server is not None:
            await server.stop()
    silent = []
    for collector in collectors:
        s = collector.stats
        print(
            f"{collector.exchange}: {s.frames} frames, {collector.published_rows} rows published, "
            f"{s.connects} connects, {s.snapshots_fetched} snapshots, {s.dropped_rows} rows dropped",
            file=sys.stderr,
        )
        if s.frames == 0:
            silent.append(f"{collector.exchange} ({s.connects} connects)")
    if silent and args.duration is not None:
        # A bounded run that never received a frame did not do its job: say so, exit non-zero.
        print(
            f"ticktape collect: no frame received in {args.duration:g} s from {', '.join(silent)}; "
            "check the network, DNS and --ws-url (the log above names each connection error)",
            file=sys.stderr,
        )
        return 1
    return 0

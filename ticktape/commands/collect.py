"""``ticktape collect``: live capture of one exchange into a transport (and optionally a raw capture)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from collectors.connection import ConnectionSettings
from collectors.registry import exchange_ids, get_dialect
from schemas import RecordBuffer
from ticktape.config import enable_config, quality_config_of
from ticktape.runtime import (
    build_collector,
    parse_channels,
    parse_list,
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
        "--symbols", required=True, help="comma-separated symbols, native or normalised (BTCUSDT or BTC-USDT)"
    )
    p.add_argument("--channels", default="", help="comma-separated channels: trades,book,bbo (default all)")
    p.add_argument("--ws-url", help="websocket base URL (simulators, testnets, proxies)")
    p.add_argument("--rest-url", help="REST base URL for snapshots")
    p.add_argument(
        "--capture",
        metavar="FILE",
        help="also write every received frame to this raw capture (.gz to compress)",
    )
    p.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: until SIGTERM/SIGINT)"
    )
    p.add_argument("--port", type=int, help="serve /metrics, /api/quality and the dashboard on this port")
    p.add_argument("--host", default="127.0.0.1", help="address of the HTTP server (default 127.0.0.1)")
    p.add_argument(
        "--stale-book-s", type=float, default=5.0, help="book/bbo silence before a channel is stale"
    )
    p.add_argument("--stale-trades-s", type=float, default=60.0, help="minimum trade silence before stale")
    p.add_argument(
        "--recycle-after-s", type=float, default=30.0, help="recycle a connection stale this long (0: never)"
    )
    add_transport_args(p)
    p.set_defaults(func=run)
    enable_config(p, "collect")


def run(args: argparse.Namespace) -> int:
    """Runs the collector until the duration ends or a signal arrives."""
    try:
        dialect = get_dialect(args.exchange)
        channels = parse_channels(args.channels)
        symbols = parse_list(args.symbols)
        if not symbols:
            raise ValueError("--symbols is empty")
        publisher = publisher_from_args(args)
    except (ValueError, TransportArgsError) as exc:
        print(f"ticktape collect: {exc}", file=sys.stderr)
        return 2
    settings = ConnectionSettings(
        stale_after_s={"book": args.stale_book_s, "bbo": args.stale_book_s, "trades": args.stale_trades_s},
        recycle_after_s=args.recycle_after_s,
    )
    return asyncio.run(_collect(args, dialect, symbols, channels, publisher, settings))


async def _collect(
    args: argparse.Namespace,
    dialect: Any,
    symbols: list[str],
    channels: tuple[str, ...],
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
        tracker.expect([dialect.exchange_id])
        observers.append(tracker.observe)
    collector = build_collector(
        dialect,
        symbols,
        publisher,
        channels=channels,
        ws_url=args.ws_url,
        rest_url=args.rest_url,
        capture=args.capture,
        settings=settings,
        observers=observers,
    )
    server = None
    if tracker is not None:
        from quality.server import QualityServer
        from ticktape.metrics import pipeline_registry

        registry = pipeline_registry([collector], publisher, args.transport or "local")

        async def publish_quality(rows: list[tuple[Any, ...]]) -> None:
            # the quality dataset: one row per exchange/channel/symbol each second, beside the data
            if rows:
                await publisher.publish(RecordBuffer(quality=list(rows)))

        server = QualityServer(
            tracker, host=args.host, port=args.port, registry=registry, on_rows=publish_quality
        )
        await server.start()
    await collector.start()
    log.info("collecting %s %s (%s)", dialect.exchange_id, ",".join(collector.symbols), ",".join(channels))
    try:
        await wait_or_timeout(stop, args.duration)
    finally:
        await collector.stop()
        await publisher.close()
        if server is not None:
            await server.stop()
    s = collector.stats
    print(
        f"{dialect.exchange_id}: {s.frames} frames, {collector.published_rows} rows published, "
        f"{s.connects} connects, {s.snapshots_fetched} snapshots, {s.dropped_rows} rows dropped",
        file=sys.stderr,
    )
    return 0

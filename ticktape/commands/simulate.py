"""``ticktape simulate``: run exchange simulators on loopback (for trying collectors without internet)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from collectors.registry import exchange_ids, get_dialect
from collectors.simulator import ExchangeSimulator, SimulatorConfig
from ticktape.config import enable_config
from ticktape.runtime import parse_list, stop_event_on_signals, wait_or_timeout


def register(sub: Any) -> None:
    """Adds ``simulate`` to the command line."""
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="run simulated exchanges on loopback",
        description="Serves simulated exchanges (websocket + REST, each in its own dialect) on 127.0.0.1.",
    )
    p.add_argument(
        "--exchange", default="binance", help=f"comma-separated exchange ids ({', '.join(exchange_ids())})"
    )
    p.add_argument("--symbols", default="", help="comma-separated native symbols (default: two per exchange)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--port",
        type=int,
        default=0,
        help="port of the first exchange (next ones follow); 0 picks free ports",
    )
    p.add_argument("--rate", type=float, default=20.0, help="market steps per second per symbol")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.set_defaults(func=run)
    enable_config(p, "simulate")


def run(args: argparse.Namespace) -> int:
    """Runs the simulators until a signal or the duration."""
    try:
        dialects = [get_dialect(x) for x in parse_list(args.exchange)]
    except ValueError as exc:
        print(f"ticktape simulate: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_simulate(args, dialects))


async def _simulate(args: argparse.Namespace, dialects: list[Any]) -> int:
    stop = asyncio.Event()
    stop_event_on_signals(stop)
    sims: list[ExchangeSimulator] = []
    for i, dialect in enumerate(dialects):
        symbols = tuple(parse_list(args.symbols)) or default_symbols(dialect.exchange_id)
        port = args.port + i if args.port else 0
        sim = dialect.simulator(
            SimulatorConfig(symbols=symbols, host=args.host, port=port, rate_hz=args.rate)
        )
        await sim.start()
        sims.append(sim)
        print(
            f"{dialect.exchange_id}: ws {sim.ws_url} rest {sim.rest_url} symbols {','.join(symbols)}",
            flush=True,
        )
    try:
        await wait_or_timeout(stop, args.duration)
    finally:
        for sim in sims:
            await sim.stop()
    return 0


def default_symbols(exchange_id: str) -> tuple[str, ...]:
    """Demo symbols of an exchange (native names): the dialect's ``demo_symbols``."""
    return get_dialect(exchange_id).demo_symbols

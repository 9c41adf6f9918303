"""Process wiring shared by the long-running roles: signal handling and collector construction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from collectors.backoff import RestBudget
from collectors.base import CHANNELS, DERIVATIVE_CHANNELS, ExchangeDialect
from collectors.connection import Collector, ConnectionSettings
from schemas import RecordBuffer
from storage.arbitrate import ArbitrationOptions
from streaming.base import Publisher

log = logging.getLogger(__name__)


def stop_event_on_signals(stop: asyncio.Event) -> None:
    """Sets ``stop`` on SIGTERM or SIGINT (graceful shutdown: flush, commit, exit 0)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def wait_or_timeout(stop: asyncio.Event, duration_s: float | None) -> None:
    """Returns when ``stop`` is set or after ``duration_s`` (None: only on ``stop``)."""
    if duration_s is None:
        await stop.wait()
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=duration_s)


def parse_list(text: str | None) -> list[str]:
    """``"a,b, c"`` -> ``["a", "b", "c"]``."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def parse_channels(text: str | None) -> tuple[str, ...]:
    """Channels from a comma list (all when empty); ``ValueError`` naming unknown ones."""
    channels = tuple(parse_list(text)) or CHANNELS
    known = (*CHANNELS, *DERIVATIVE_CHANNELS)
    unknown = [c for c in channels if c not in known]
    if unknown:
        raise ValueError(f"unknown channel(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return channels


def quality_rows_publisher(publisher: Publisher) -> Callable[[list[tuple[Any, ...]]], Awaitable[None]]:
    """The quality server's ``on_rows``: publishes the tracker's per-second ``quality`` rows beside the data."""

    async def publish_quality(rows: list[tuple[Any, ...]]) -> None:
        if rows:
            await publisher.publish(RecordBuffer(quality=list(rows)))

    return publish_quality


def arbitration_options() -> ArbitrationOptions:
    """How sinks arbitrate replicas: the defaults, with the venues whose book sequence counts a
    connection's messages (``ExchangeDialect.gap_scope == "connection"``) followed by leader instead."""
    from collectors.registry import exchange_ids, get_dialect

    return ArbitrationOptions(
        connection_sequenced=frozenset(x for x in exchange_ids() if get_dialect(x).gap_scope == "connection")
    )


def build_collector(
    dialect: ExchangeDialect,
    symbols: Sequence[str],
    publisher: Publisher,
    *,
    channels: Sequence[str] | None = None,
    ws_url: str | None = None,
    rest_url: str | None = None,
    capture: str | Path | None = None,
    settings: ConnectionSettings | None = None,
    budget: RestBudget | None = None,
    observers: Sequence[Callable[[RecordBuffer], None]] = (),
) -> Collector:
    """A collector for one exchange publishing through ``publisher`` (``channels`` None: all it offers)."""

    return Collector(
        dialect,
        symbols,
        publisher.publish,
        channels=channels,
        ws_url=ws_url,
        rest_url=rest_url,
        settings=settings,
        capture_path=capture,
        budget=budget,
        observers=observers,
    )

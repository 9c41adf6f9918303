"""A Binance feed that sends real recorded frames, pre-rendered, at a set rate with little CPU.

For benchmarks of the collector: on the 2 cores, the synthetic simulator (``collectors/simulator.py``)
spends ~15 µs of Python per frame rendering and sending, and competes with the collector it feeds.
:class:`RecordedFeed` is the Binance simulator (its URL subscription, ``exchangeInfo`` and depth
endpoint) with the market replaced by the real recording of ``../shared/samples/binance``:

- every symbol asked for gets its own copy of the recording (``ETHUSDT`` renamed; the ids of a copy
  are those of the recording: sequences are per symbol), interleaved frame by frame across symbols,
  so one pass carries ``symbols x`` the recording's events (16 symbols: ~2.2 M events);
- the frames are websocket frames built once (server frames are not masked, RFC 6455 section 5.1),
  held in one buffer and written to the socket in slices: no Python work per frame except the
  exchange times (``E``, ``T``), rewritten in place to the send time (NumPy, per slice) so that
  latencies and time flags are those of a live feed, not of 2024;
- the REST depth snapshot is the recorded one (the recording's own ``depthSnapshot`` line). The
  frames up to it (the prologue) are sent first; the timed part starts once every symbol's snapshot
  was fetched, so the collector's books are synced the way they were when the sample was recorded;
- ``frames_per_s`` paces the sending; 0 sends as fast as the collector reads (at most
  ``HIGH_WATER_BYTES`` unread in the socket's send buffer): the collector's own limit.

Every session receives the same stream: the feed assumes clients subscribed to trades, depth and
bookTicker of every symbol (what ``ticktape collect --exchange binance`` does).
"""

from __future__ import annotations

import asyncio
import gzip
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.common import BINANCE_SAMPLE
from collectors.base import ExchangeDialect
from collectors.simulator import SimulatorConfig
from collectors.venues.binance import BinanceSimulator

#: Symbol of the recording, renamed per copy.
RECORDED_SYMBOL = "ETHUSDT"
#: Unread bytes the socket may hold before an unpaced feed waits for the collector.
HIGH_WATER_BYTES = 2 << 20
#: Seconds between two slices of a paced feed.
TICK_S = 0.002
#: Exchange times rewritten at send time: 13-digit milliseconds after ``"E":`` and ``"T":``.
_TIMES = re.compile(rb'"[ET]":(\d{13})[,}]')


@dataclass
class Recording:
    """The recording, split into the prologue (frames before its snapshot), the snapshot, the rest."""

    prologue: list[bytes]
    snapshot: dict[str, Any]
    frames: list[bytes]
    #: receive times of the recording (prologue, snapshot, frames), for normalising it offline
    recv_ns: list[int]


def load_recording(path: Path = BINANCE_SAMPLE) -> Recording:
    """The frames of a Binance capture of one symbol (receive times dropped; disconnects must not occur)."""
    with gzip.open(path, "rb") as fh:
        lines = [line.rstrip(b"\n") for line in fh]
    if any(not line for line in lines):
        raise ValueError(f"{path}: the recording holds a disconnect; the feed needs one continuous stream")
    recv_ns = [int(line.split(b" ", 1)[0]) for line in lines]
    frames = [line.split(b" ", 1)[1] for line in lines]
    at = next(i for i, f in enumerate(frames) if b"@depthSnapshot" in f[:60])
    snapshot = orjson.loads(frames[at])["data"]
    return Recording(frames[:at], snapshot, frames[at + 1 :], recv_ns)


def expected_rows(rec: Recording) -> np.ndarray:
    """Data rows (trades, book, bbo) one symbol yields: ``[n]`` after the prologue, the snapshot and
    the first ``n`` frames, normalised offline by the Binance normaliser in the collectors' order."""
    from collectors.registry import get_dialect
    from collectors.venues.binance import snapshot_frame
    from schemas import RecordBuffer

    norm = get_dialect("binance").make_normaliser((RECORDED_SYMBOL,))
    out = RecordBuffer()
    times = iter(rec.recv_ns)
    for frame in rec.prologue:
        norm.on_frame(next(times), frame, out)
    norm.on_frame(next(times), snapshot_frame(RECORDED_SYMBOL, orjson.dumps(rec.snapshot)), out)
    counts = np.zeros(len(rec.frames) + 1, dtype=np.int64)
    counts[0] = len(out.trades) + len(out.book) + len(out.bbo)
    for i, frame in enumerate(rec.frames, 1):
        norm.on_frame(next(times), frame, out)
        counts[i] = len(out.trades) + len(out.book) + len(out.bbo)
    if out.feed_events:
        raise ValueError(f"the recording normalises with feed events: {out.feed_events[:3]}")
    return counts


def ws_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented websocket text frame (server to client)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 1 << 16:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


class FrameBlock:
    """Websocket frames in one buffer: slice ``i..j`` is ``view[starts[i]:starts[j]]``; the offsets of
    their 13-digit exchange times are ``times[tstarts[i]:tstarts[j]]``."""

    def __init__(self, payloads: list[bytes]) -> None:
        framed = [ws_frame(p) for p in payloads]
        sizes = np.fromiter((len(f) for f in framed), dtype=np.int64, count=len(framed))
        self.starts = np.zeros(len(framed) + 1, dtype=np.int64)
        np.cumsum(sizes, out=self.starts[1:])
        self.buffer = bytearray(b"".join(framed))
        times: list[int] = []
        counts = np.zeros(len(framed) + 1, dtype=np.int64)
        for i, (frame, payload) in enumerate(zip(framed, payloads, strict=True)):
            head = len(frame) - len(payload)
            base = int(self.starts[i]) + head
            found = [base + m.start(1) for m in _TIMES.finditer(payload)]
            times.extend(found)
            counts[i + 1] = len(found)
        self.tstarts = np.cumsum(counts)
        self.times = np.asarray(times, dtype=np.int64)
        self.array = np.frombuffer(self.buffer, dtype=np.uint8)
        self.view = memoryview(self.buffer)
        self._digits = np.arange(13, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def slice(self, i: int, j: int, now_ms: int) -> memoryview:
        """Frames ``i..j`` with their exchange times set to ``now_ms``."""
        pos = self.times[self.tstarts[i] : self.tstarts[j]]
        if len(pos):
            digits = np.frombuffer(str(now_ms).encode(), dtype=np.uint8)
            self.array[pos[:, None] + self._digits] = digits
        return self.view[self.starts[i] : self.starts[j]]


def rename(frame: bytes, native: str) -> bytes:
    """The frame with the recorded symbol replaced by ``native`` (stream name and ``s`` field)."""
    if native == RECORDED_SYMBOL:
        return frame
    return frame.replace(b"ethusdt@", native.lower().encode() + b"@", 1).replace(
        b'"s":"ETHUSDT"', b'"s":"' + native.encode() + b'"', 1
    )


class RecordedFeed(BinanceSimulator):
    """The Binance simulator serving the recording (see the module docstring)."""

    def __init__(
        self,
        dialect: ExchangeDialect,
        config: SimulatorConfig,
        frames_per_s: float,
        seconds: float,
        recording: Recording | None = None,
    ) -> None:
        super().__init__(dialect, config)
        rec = recording or load_recording()
        self.recording = rec
        self.frames_per_s = frames_per_s
        self.seconds = seconds
        symbols = config.symbols
        self.prologue = FrameBlock([rename(f, s) for f in rec.prologue for s in symbols])
        self.block = FrameBlock([rename(f, s) for f in rec.frames for s in symbols])
        self.snapshots_served: set[str] = set()
        #: frames of the timed part sent, and when it started and ended (monotonic seconds)
        self.sent = 0
        self.started_at: float | None = None
        self.ended_at: float | None = None
        #: set when the timed part starts (every snapshot served) and when it ends
        self.running = asyncio.Event()
        self.done = asyncio.Event()
        #: largest number of bytes a paced feed found unread in the socket (the collector behind)
        self.max_backlog_bytes = 0

    def snapshot_body(self, symbol: str, limit: int) -> dict[str, Any]:
        """The recorded snapshot (every copy's ids are the recording's)."""
        self.snapshots_served.add(symbol)
        return self.recording.snapshot

    def frames_sent_per_symbol(self) -> int:
        """Frames of the recording each symbol received: prologue plus its share of the timed part."""
        return len(self.recording.prologue) + self.sent // len(self.config.symbols)

    async def _market_loop(self) -> None:
        while not self.sessions:
            await asyncio.sleep(0.01)
        session = next(iter(self.sessions))
        transport = session.request.transport
        assert transport is not None
        transport.write(self.prologue.slice(0, len(self.prologue), time.time_ns() // 1_000_000))
        self.frames_sent += len(self.prologue)
        wanted = set(self.config.symbols)
        deadline = time.monotonic() + 60
        while not wanted <= self.snapshots_served:
            if time.monotonic() > deadline:
                raise RuntimeError(f"snapshots never fetched for {sorted(wanted - self.snapshots_served)}")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the snapshots' answers are on their way back
        block, total = self.block, len(self.block)
        # whole rounds of every symbol: each symbol gets the same number of frames
        per_round = len(self.config.symbols)
        self.started_at = t0 = time.monotonic()
        self.running.set()
        try:
            while self.sent < total and time.monotonic() - t0 < self.seconds:
                if session not in self.sessions or transport.is_closing():
                    raise RuntimeError("the collector's connection closed during the feed")
                backlog = transport.get_write_buffer_size()
                if self.frames_per_s > 0:
                    self.max_backlog_bytes = max(self.max_backlog_bytes, backlog)
                    due = min(total, int((time.monotonic() - t0) * self.frames_per_s))
                    due -= due % per_round
                    if due > self.sent:
                        self._write(transport, block, due)
                    await asyncio.sleep(TICK_S)
                    continue
                if backlog < HIGH_WATER_BYTES:
                    due = min(total, self.sent + 64 * per_round)
                    self._write(transport, block, due)
                    await asyncio.sleep(0)
                else:
                    await asyncio.sleep(0.001)
        finally:
            self.ended_at = time.monotonic()
            self.done.set()

    def _write(self, transport: Any, block: FrameBlock, due: int) -> None:
        transport.write(block.slice(self.sent, due, time.time_ns() // 1_000_000))
        self.frames_sent += due - self.sent
        self.sent = due


def make_feed(symbols: tuple[str, ...], frames_per_s: float, seconds: float) -> RecordedFeed:
    """A recorded Binance feed for ``symbols`` (native names)."""
    from collectors.registry import get_dialect

    return RecordedFeed(
        get_dialect("binance"),
        SimulatorConfig(symbols=symbols, rate_hz=1.0, enforce_limits=False),
        frames_per_s,
        seconds,
    )

"""The connection lifecycle shared by every exchange: connect, subscribe, receive, normalise, publish.

One :class:`Collector` runs one exchange: it splits the subscription across connections according to
the exchange's per-connection limit, runs a :class:`FeedConnection` for each, and moves their records
through one bounded queue (policy ``block`` or ``drop-oldest``, drops counted and recorded) to a
sink callback (the transport publisher, after the quality observers have seen them).

Per connection:
- ``ts_recv`` is taken the moment a frame is read, before any parsing; frames the websocket library
  has already received (a burst) are normalised into one record buffer and emitted together (one
  emit, one queue put for up to :data:`BURST_FRAMES` frames);
- every frame (and every injected REST snapshot, and every disconnect) can be written to a raw
  capture, in exactly the order the normaliser saw it, so a replay gives the live run's records;
  with ``settings.raw`` the same lines are also published, in compressed batches, as the ``raw``
  dataset (the raw archive, :mod:`collectors.raw`);
- reconnects use capped exponential backoff with full jitter, reset after a healthy period, and each
  one emits ``disconnect`` / ``connect`` feed events; all subscriptions are renewed;
- liveness: websocket pings with a pong timeout, plus the exchange's application ping when it has one;
- staleness: a watchdog per channel (book, bbo, trades; trades adaptive to the symbol's own pace)
  that counts only data, never heartbeats; a stale channel is reported (``stale`` event) and, after
  ``recycle_after_s``, the connection is recycled;
- REST snapshots go through the exchange's :class:`~collectors.backoff.RestBudget`; 429/418 and
  ``Retry-After`` pause every request of that exchange;
- pacing: every connect and every frame sent waits for the venue's limits
  (:class:`~collectors.pacing.Pacer`, declared on the dialect); the time waited is in the stats;
- planned rotation (make-before-break) at the dialect's rotation age (before a venue's forced
  disconnect, e.g. Binance's 24 h) or ``max_connection_age_s``, and at once when the venue announces
  a shutdown (the normaliser sets ``rotation_requested``).

The first collector started in a process freezes the objects alive then (``gc.freeze``,
https://docs.python.org/3/library/gc.html#gc.freeze, checked 2026-12-06): the garbage collector's full
collections then skip the imported modules, which made 30-70 ms pauses on the receive path.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import logging
import operator
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from schemas import RecordBuffer

from .backoff import Backoff, RestBudget
from .base import (
    CHANNELS,
    DEFAULT_RECYCLE_AFTER_S,
    DEFAULT_STALE_AFTER_S,
    DERIVATIVE_CHANNELS,
    EVENT_CHANNELS,
    ExchangeDialect,
    Normaliser,
    Subscription,
)
from .capture import CaptureWriter
from .dedupe import RecentTradeIds
from .events import emit_event
from .instruments import (
    DEFAULT_INSTRUMENTS_REFRESH_S,
    InstrumentBook,
    UnknownSymbolError,
    is_pattern,
    matches,
    resolve_symbols,
)
from .pacing import ConnectionPacing, Pacer
from .raw import RawRecorder, RawSettings, parser_version

log = logging.getLogger(__name__)
#: The websocket library's own logger. Its DEBUG output prints the handshake's request path, query
#: string included, which carries a per-connection token on some venues (KuCoin): kept at INFO.
_wire_log = logging.getLogger(f"{__name__}.wire")
_wire_log.setLevel(logging.INFO)

RecordSink = Callable[[RecordBuffer], Awaitable[None]]

#: Trade ids per symbol a connection remembers for a rotation handover (more than any venue replays)
ROTATION_TRADE_IDS = 1_000
#: Share of the exchange's REST budget that one connection's polls (REST-only channels) may use
POLL_BUDGET_SHARE = 0.25
#: Most frames normalised into one record buffer before it is emitted (a burst already received)
BURST_FRAMES = 128
#: Longest wait for a successor's books to join the old connection's at a matching update id
HANDOVER_ALIGN_S = 2.0


@dataclass
class ConnectionSettings:
    """Tunables of the connection lifecycle (every one has a config key in ticktape's configuration)."""

    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    open_timeout_s: float = 10.0
    max_frame_bytes: int = 8 * 1024 * 1024
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    healthy_after_s: float = 30.0
    #: seconds without data before a channel is stale, per channel (trades adapt, see below)
    stale_after_s: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STALE_AFTER_S))
    #: a quiet symbol's trades are stale only after this many times its usual gap between trades
    trades_stale_factor: float = 20.0
    #: recycle the connection when a channel has been stale this long (0 disables)
    recycle_after_s: float = DEFAULT_RECYCLE_AFTER_S
    #: planned make-before-break rotation at this connection age (0 disables); None: the dialect's
    #: own default (:meth:`ExchangeDialect.rotation_age_s`, e.g. 23 h where the venue drops at 24 h)
    max_connection_age_s: float | None = None
    #: wait for the venue's connection and message limits (the dialect's ``limits``)
    pacing: bool = True
    #: bounded queue between connections and the publisher, in frames' records (the batch of a burst
    #: of n frames counts n)
    queue_max_batches: int = 10_000
    queue_policy: str = "block"  # or "drop-oldest"
    #: frames per capture flush (the capture is also flushed at every disconnect and at the end)
    capture_flush_frames: int = 1000
    watchdog_interval_s: float = 1.0
    #: seconds between two fetches of the venue's instruments (0: only at start)
    instruments_refresh_s: float = DEFAULT_INSTRUMENTS_REFRESH_S
    #: with only explicit symbols, the longest the start waits for the instruments fetch before opening
    #: connections (Gemini's takes one request per symbol, minutes at its rate); the named symbols are
    #: then checked when the fetch ends. Patterns always wait: they need the list.
    instruments_start_wait_s: float = 15.0
    #: publish every received frame as the ``raw`` dataset in batches closed by these limits (None: off)
    raw: RawSettings | None = None
    #: at the first collector start of a process, move every object alive then (imported modules,
    #: configuration) out of the garbage collector's reach (``gc.freeze``): a full collection no
    #: longer walks them (measured 68 ms pauses in a collector at 20k events/s: the p99 of
    #: receive-to-broker-acknowledgement; bench/RESULTS.md, "Collector loop")
    freeze_gc_at_start: bool = True


@dataclass
class ConnectionStats:
    """Counters of one collector (all its connections): exported as metrics."""

    frames: int = 0
    bytes: int = 0
    connects: int = 0
    disconnects: int = 0
    #: the latest reconnect delays (bounded: a long-lived collector must not grow without limit)
    reconnect_delays: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    snapshots_fetched: int = 0
    snapshot_errors: int = 0
    #: REST polls of channels a venue offers only over REST (e.g. Binance futures' open interest)
    polls_fetched: int = 0
    poll_errors: int = 0
    stale_events: int = 0
    recycles: int = 0
    #: snapshot or resubscription requests for symbols outside the subscription, ignored
    ignored_requests: int = 0
    dropped_batches: int = 0
    dropped_rows: int = 0
    queue_depth: int = 0
    max_queue_depth: int = 0
    #: seconds spent waiting for the venue's limits (connects, messages), and how many waits
    pacing_wait_s: float = 0.0
    pacing_waits: int = 0
    #: rotations asked for by the venue (e.g. Binance ``serverShutdown``)
    shutdown_rotations: int = 0
    #: instrument fetches that succeeded / failed, and symbols subscribed or dropped while running
    instrument_fetches: int = 0
    instrument_errors: int = 0
    listings_subscribed: int = 0
    delistings_unsubscribed: int = 0
    #: raw archive: batches published, their compressed and uncompressed bytes
    raw_batches: int = 0
    raw_bytes: int = 0
    raw_uncompressed_bytes: int = 0


class OutputQueue:
    """The bounded queue between connections and the publisher, with an explicit full policy.

    The bound counts frames: a batch holding the records of a burst of ``n`` frames counts ``n``
    (``put(batch, frames=n)``), so ``max_batches`` bounds the same amount of data whether frames come
    one by one or in bursts.
    """

    def __init__(self, max_batches: int, policy: str, stats: ConnectionStats, exchange: str) -> None:
        if policy not in ("block", "drop-oldest"):
            raise ValueError(f"queue policy must be 'block' or 'drop-oldest', not {policy!r}")
        self.max_batches = max_batches
        self.policy = policy
        self.stats = stats
        self.exchange = exchange
        self._items: deque[tuple[RecordBuffer, int]] = deque()
        self._size = 0  # frames' batches queued (a burst counts its frames)
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()
        self._dropped_since_report = 0

    def __len__(self) -> int:
        return self._size

    async def put(self, batch: RecordBuffer, frames: int = 1) -> None:
        """Adds a batch (the records of ``frames`` frames); waits (block) or drops the oldest batches
        (drop-oldest) while it does not fit. A batch larger than the whole bound goes in alone."""
        while self._items and self._size + frames > self.max_batches:
            if self.policy == "drop-oldest":
                dropped, weight = self._items.popleft()
                self._size -= weight
                rows = len(dropped)
                self.stats.dropped_batches += 1
                self.stats.dropped_rows += rows
                self._dropped_since_report += rows
                continue
            self._not_full.clear()
            await self._not_full.wait()
        self._items.append((batch, frames))
        self._size += frames
        depth = self._size
        self.stats.queue_depth = depth
        self.stats.max_queue_depth = max(self.stats.max_queue_depth, depth)
        self._not_empty.set()

    def put_unbounded(self, batch: RecordBuffer) -> None:
        """Queues a batch without waiting, ignoring the bound (a one-off rotation handover)."""
        self._items.append((batch, 1))
        self._size += 1
        self._not_empty.set()

    async def get_all(self) -> RecordBuffer:
        """Waits for at least one batch, then returns every queued batch merged into one."""
        while not self._items:
            self._not_empty.clear()
            await self._not_empty.wait()
        merged = self._items.popleft()[0]
        while self._items:
            merged.extend(self._items.popleft()[0])
        self._size = 0
        self.stats.queue_depth = 0
        self._not_full.set()
        if self._dropped_since_report:
            emit_event(
                merged,
                self.exchange,
                None,
                "connection",
                time.time_ns(),
                "dropped",
                {"rows": self._dropped_since_report, "reason": "output queue full (drop-oldest)"},
            )
            self._dropped_since_report = 0
        return merged

    def drain_nowait(self) -> RecordBuffer:
        """Everything queued now (possibly empty), without waiting."""
        merged = RecordBuffer()
        while self._items:
            merged.extend(self._items.popleft()[0])
        self._size = 0
        self.stats.queue_depth = 0
        self._not_full.set()
        return merged


class HandoverLog:
    """What a connection published while its successor was syncing: trade ids and bbo positions."""

    __slots__ = ("bbo", "trades")

    def __init__(self) -> None:
        self.trades: dict[str, set[str]] = {}
        self.bbo: dict[str, tuple[int, int]] = {}

    def record(self, out: RecordBuffer) -> None:
        """Notes published trades and the latest bbo position per symbol."""
        for r in out.trades:
            self.trades.setdefault(r[1], set()).add(r[4])
        for r in out.bbo:
            key = _bbo_key(r)
            if key > self.bbo.get(r[1], (-1, -1)):
                self.bbo[r[1]] = key


class ChannelWatchdog:
    """Tracks when each channel of a connection last carried data, and decides staleness.

    Trades are adaptive: a symbol that trades once a minute is not stale after 60 s; the threshold is
    ``max(stale_after_s['trades'], factor * mean gap between its trades)``.
    """

    def __init__(self, settings: ConnectionSettings, channels: Sequence[str]) -> None:
        self.settings = settings
        self.channels = tuple(channels)
        now = time.monotonic()
        # Market channels are watched from the start. Derivatives channels from their first row: a
        # venue serves them for its derivatives only (OKX: none for spot instruments), so a channel
        # that never carried data here is not a dead feed. Event channels (liquidations) are quiet
        # whenever nothing happens: never stale.
        self.last_data: dict[str, float] = dict.fromkeys((c for c in self.channels if c in CHANNELS), now)
        self._derivatives = frozenset(self.channels) & (frozenset(DERIVATIVE_CHANNELS) - set(EVENT_CHANNELS))
        self.trade_gap_ewma: float | None = None
        self.stale_since: dict[str, float] = {}

    def saw(self, records: RecordBuffer, now: float) -> None:
        """Notes the channels that carried data in these records."""
        if records.book and "book" in self.last_data:
            self.last_data["book"] = now
        if records.bbo and "bbo" in self.last_data:
            self.last_data["bbo"] = now
        if records.trades and "trades" in self.last_data:
            gap = now - self.last_data["trades"]
            self.trade_gap_ewma = (
                gap if self.trade_gap_ewma is None else 0.9 * self.trade_gap_ewma + 0.1 * gap
            )
            self.last_data["trades"] = now
        derivatives = self._derivatives
        if derivatives:
            if records.mark_price and "mark" in derivatives:
                self.last_data["mark"] = now
            if records.funding and "funding" in derivatives:
                self.last_data["funding"] = now
            if records.open_interest and "open_interest" in derivatives:
                self.last_data["open_interest"] = now

    def threshold(self, channel: str) -> float:
        """Seconds of silence after which ``channel`` is stale."""
        base = self.settings.stale_after_s.get(channel) or DEFAULT_STALE_AFTER_S.get(channel, 30.0)
        if channel == "trades" and self.trade_gap_ewma is not None:
            return max(base, self.settings.trades_stale_factor * self.trade_gap_ewma)
        return base

    def check(self, now: float) -> tuple[list[tuple[str, float]], list[str], bool]:
        """Returns (newly stale channels with their age, channels fresh again, recycle now?)."""
        newly: list[tuple[str, float]] = []
        recovered: list[str] = []
        recycle = False
        for channel, last in self.last_data.items():
            age = now - last
            if age > self.threshold(channel):
                if channel not in self.stale_since:
                    self.stale_since[channel] = now
                    newly.append((channel, age))
                elif (
                    self.settings.recycle_after_s > 0
                    and now - self.stale_since[channel] >= self.settings.recycle_after_s
                ):
                    recycle = True
            elif channel in self.stale_since:
                del self.stale_since[channel]
                recovered.append(channel)
        return newly, recovered, recycle

    def reset(self) -> None:
        """Starts the clocks afresh (after a reconnect)."""
        now = time.monotonic()
        for channel in self.last_data:
            self.last_data[channel] = now
        self.stale_since.clear()


class FeedConnection:
    """One websocket connection carrying one subscription, reconnecting until stopped."""

    def __init__(
        self,
        dialect: ExchangeDialect,
        subscription: Subscription,
        ws_url: str,
        rest_url: str | None,
        output: OutputQueue,
        stats: ConnectionStats,
        settings: ConnectionSettings,
        budget: RestBudget,
        http: aiohttp.ClientSession,
        capture_path: Path | None = None,
        name: str = "conn0",
        on_rotation_due: Callable[[FeedConnection], None] | None = None,
        shadow: bool = False,
        pacer: Pacer | None = None,
        session: int = 0,
    ) -> None:
        self.dialect = dialect
        self.exchange = dialect.exchange_id
        self.subscription = subscription
        self.ws_url = ws_url
        self.rest_url = rest_url
        self.output = output
        self.stats = stats
        self.settings = settings
        self.budget = budget
        self.http = http
        self.name = name
        # Configured with the run's sanity bounds; rows of symbols outside the subscription are dropped.
        self.normaliser: Normaliser = dialect.make_normaliser(subscription.symbols)
        self.capture = CaptureWriter(capture_path) if capture_path is not None else None
        self.raw = (
            RawRecorder(
                self.exchange, f"{name}@{session}", parser_version(type(self.normaliser)), settings.raw
            )
            if settings.raw is not None
            else None
        )
        self.backoff = Backoff(settings.backoff_base_s, settings.backoff_cap_s, settings.healthy_after_s)
        self.watchdog = ChannelWatchdog(settings, subscription.channels)
        self.connected = asyncio.Event()
        self._ws: Any = None
        self._fetching: dict[str, asyncio.Task[None]] = {}
        self._recycle_reason: str | None = None
        self._stop = asyncio.Event()
        self._closing: set[asyncio.Task[None]] = set()
        # Planned rotation (make-before-break): a successor runs in "shadow" mode, holding its records
        # until every book is synced; then it goes "live" and the predecessor is "retired".
        self.mode = "shadow" if shadow else "live"
        self.held = RecordBuffer()
        self.ready = asyncio.Event()
        self._snapshotted: set[str] = set()
        #: per symbol: added to the epoch of this connection's book rows (set at a rotation handover)
        self.epoch_offsets: dict[str, int] = {}
        #: per symbol: the last book row this connection emitted, epoch offset applied (rotation only)
        self.last_book: dict[str, tuple[Any, ...]] = {}
        #: trade ids this connection published lately (rotation only): a successor that receives
        #: trades replayed on subscribe (OKX, Coinbase, Kraken...) must not publish them again
        self.published_trades = RecentTradeIds(ROTATION_TRADE_IDS) if settings.max_connection_age_s else None
        self.on_rotation_due = on_rotation_due
        self.handover_log: HandoverLog | None = None
        # Dialect hook for compressed/encoded frames: only called when the dialect overrides it.
        overridden = type(dialect).decode_binary is not ExchangeDialect.decode_binary
        self._decode: Callable[[bytes], bytes] | None = dialect.decode_binary if overridden else None
        # Requests paced at the dialect's request_interval_s (venues limiting requests per connection).
        self._outbox: deque[str] = deque()
        self._pacer: asyncio.Task[None] | None = None
        self._last_request = 0.0
        self.pacer = pacer or Pacer(dialect.limits, enabled=settings.pacing)
        self.pacing: ConnectionPacing = self.pacer.connection_windows()
        self._connect_slot: list[float] | None = None
        #: the last unexpected error that ended a session (None once a new session is up): unhealthy
        self.failure: str | None = None
        self.failures = 0
        #: natives whose snapshot/resubscription requests were checked against the subscription
        self._requestable: set[str] = set()

    # -- records ---------------------------------------------------------------------------------
    async def _emit(self, out: RecordBuffer, frames: int = 1) -> None:
        """Publishes ``out`` (the records of ``frames`` frames) as this connection's mode says."""
        if not out:
            return
        self.watchdog.saw(out, time.monotonic())
        # Epoch bookkeeping only matters to planned rotation: connections without it skip the work.
        if out.book and self.settings.max_connection_age_s:
            offsets = self.epoch_offsets
            if offsets:
                out.book = [(*r[:9], r[9] + offsets.get(r[1], 0), r[10]) for r in out.book]
            # in C: the last row of each symbol wins
            self.last_book.update(zip(map(_ROW_SYMBOL, out.book), out.book, strict=True))
        if self.mode == "live":
            if self.published_trades is not None and out.trades:
                seen = self.published_trades.seen
                for r in out.trades:
                    seen(r[1], r[4])
            if self.handover_log is not None:
                self.handover_log.record(out)
            await self.output.put(out, frames)
        elif self.mode == "shadow":
            self.held.extend(out)
            self._check_ready(out)
        else:  # retired: its data is superseded by the successor; connection events still count
            events = [e for e in out.feed_events if e[2] == "connection"]
            if events:
                await self.output.put(RecordBuffer(feed_events=events))

    def _count_raw(self, rows: list[tuple[Any, ...]]) -> RecordBuffer:
        for row in rows:
            self.stats.raw_batches += 1
            self.stats.raw_bytes += len(row[-1])
            self.stats.raw_uncompressed_bytes += row[6]
        return RecordBuffer(raw=rows)

    async def _publish_raw(self, rows: list[tuple[Any, ...]]) -> None:
        """Queues a closed raw batch (whatever the mode: the archive keeps every received frame)."""
        await self.output.put(self._count_raw(rows))

    def _check_ready(self, out: RecordBuffer) -> None:
        if self.ready.is_set():
            return
        if "book" in self.subscription.channels:
            self._snapshotted.update(r[1] for r in out.book if r[7])
            if len(self._snapshotted) < len(self.subscription.symbols):
                return
        elif not (out.trades or out.bbo or out.funding or out.mark_price or out.open_interest):
            return
        self.ready.set()

    def _event(
        self, kind: str, detail: dict[str, Any], symbol: str | None = None, channel: str = "connection"
    ) -> RecordBuffer:
        out = RecordBuffer()
        emit_event(
            out, self.exchange, symbol, channel, time.time_ns(), kind, {"connection": self.name, **detail}
        )
        return out

    async def _process(self, ts_recv: int, frame: str | bytes) -> None:
        """Captures and normalises one frame, publishes its records, and serves the normaliser's requests."""
        out = RecordBuffer()
        await self._normalise(ts_recv, frame, out)
        await self._emit(out)
        await self._serve_requests()

    async def _normalise(self, ts_recv: int, frame: str | bytes, out: RecordBuffer, held: int = 0) -> bool:
        """Captures one frame and normalises it into ``out``, which holds the rows of ``held`` earlier
        frames. True when those rows were emitted first (``out`` was emptied before this frame).

        A closed raw-archive batch is queued at once; the rows already in ``out`` are emitted first, so
        that nothing that can run while the queue waits (a REST snapshot) sees them out of order.
        """
        emitted = False
        if self.capture is not None:
            self.capture.write_frame(ts_recv, frame)
            if self.capture.frames % self.settings.capture_flush_frames == 0:
                self.capture.flush()
        if self.raw is not None:
            batch = self.raw.frame(ts_recv, frame)
            if batch is not None:
                if out:
                    await self._emit(out.take(), max(1, held))
                    emitted = True
                await self._publish_raw(batch)
        self.normaliser.on_frame(ts_recv, frame, out)
        return emitted

    async def _serve_requests(self) -> None:
        """Sends the normaliser's replies and serves its requests (snapshots, resubscriptions,
        rotation, reconnect) raised by the frames normalised since the last call."""
        replies = self.normaliser.replies
        if replies:
            if self._ws is not None:
                while replies:
                    await self._ws.send(replies.popleft())
            else:
                replies.clear()
        if self.normaliser.snapshot_requests:
            self._ignore_unsubscribed(self.normaliser.snapshot_requests)
            self._start_snapshot_fetches()
        if self.normaliser.resubscribe_requests and self._ws is not None:
            self._ignore_unsubscribed(self.normaliser.resubscribe_requests)
            natives = sorted(self.normaliser.resubscribe_requests)
            self.normaliser.resubscribe_requests.clear()
            frames = self.dialect.resubscribe_frames(natives, self.subscription)
            if self.dialect.request_interval_s > 0:
                self._outbox.extend(frames)
                if self._outbox and (self._pacer is None or self._pacer.done()):
                    self._pacer = asyncio.create_task(self._send_paced(self._ws), name=f"pacer-{self.name}")
            else:
                for text in frames:
                    await self._send(self._ws, text, subscribe=True)
        if self.normaliser.rotation_requested:
            self.normaliser.rotation_requested = False
            self._rotate_now("server_shutdown")
        if self.normaliser.reconnect_request is not None:
            reason, self.normaliser.reconnect_request = self.normaliser.reconnect_request, None
            self.recycle(reason)

    def _must_serve(self) -> bool:
        """True when the normaliser asked for something that must not wait for the rest of a burst."""
        n = self.normaliser
        return bool(n.replies or n.resubscribe_requests or n.rotation_requested) or (
            n.reconnect_request is not None
        )

    async def _receive(self, ws: Any) -> None:
        """Reads frames until the connection closes (``ConnectionClosed``).

        Frames the websocket library has already buffered (a burst) are normalised into one record
        buffer and emitted together, at most :data:`BURST_FRAMES` at a time; each frame keeps its own
        ``ts_recv``, taken when it is read. A burst ends early when the normaliser asks for a reply,
        resubscription, rotation or reconnect, so those are served after the frame that asked.
        """
        decode = self._decode
        stats = self.stats
        ready = _message_ready(ws)
        recv = ws.recv
        # a burst never outweighs the output queue's bound (it counts the frames of a batch)
        limit = max(1, min(BURST_FRAMES, self.output.max_batches))
        while True:
            frame = await recv(decode=False)
            out = RecordBuffer()
            n = held = 0  # frames of this burst; of them, frames whose rows are in ``out``
            while True:
                ts_recv = time.time_ns()
                stats.frames += 1
                stats.bytes += len(frame)
                if decode is not None:
                    frame = decode(frame)
                if await self._normalise(ts_recv, frame, out, held):
                    held = 0
                n += 1
                held += 1
                if n >= limit or not ready() or self._must_serve():
                    break
                frame = await recv(decode=False)  # buffered: returns without waiting
            await self._emit(out, held)
            await self._serve_requests()

    async def _send_paced(self, ws: Any) -> None:
        """Sends the queued requests, at least ``request_interval_s`` apart."""
        interval = self.dialect.request_interval_s
        with contextlib.suppress(ConnectionClosed):
            while self._outbox:
                wait = self._last_request + interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                self._last_request = time.monotonic()
                await ws.send(self._outbox.popleft())

    def _stop_pacer(self) -> None:
        self._outbox.clear()
        if self._pacer is not None:
            self._pacer.cancel()
            self._pacer = None

    async def _send(self, ws: Any, text: str, subscribe: bool = False) -> None:
        """Sends one frame once the venue's message limits allow it (the wait is counted)."""
        waited = await self.pacing.message(subscribe)
        if waited:
            self._count_wait(waited)
        await ws.send(text)

    def _mark_opened(self) -> None:
        """The handshake is over: the connection counts against the venue's rate from now."""
        if self._connect_slot is not None:
            self.pacer.opened(self._connect_slot)
            self._connect_slot = None

    def _count_wait(self, waited: float) -> None:
        self.stats.pacing_wait_s += waited
        self.stats.pacing_waits += 1

    def _rotate_now(self, reason: str) -> None:
        """Rotates this connection now: make-before-break when the collector manages it, else a
        reconnect (the venue is about to close this connection anyway)."""
        if self.mode != "live":
            return
        self.stats.shutdown_rotations += 1
        if self.on_rotation_due is not None and self.settings.max_connection_age_s:
            callback, self.on_rotation_due = self.on_rotation_due, None  # once per connection
            callback(self)
        else:
            self.recycle("rotation")

    def _ignore_unsubscribed(self, requests: set[str]) -> None:
        """Drops requests (REST snapshots, resubscriptions) for symbols this connection never subscribed
        to: a hostile feed must not spend the REST budget or subscribe us to its symbols."""
        subscribed = self.normaliser.subscribed
        if subscribed is None:
            return
        for native in list(requests):
            if native in self._requestable:
                continue
            try:
                ours = self.dialect.normalise_symbol(self.dialect.request_symbol(native)) in subscribed
            except ValueError:
                ours = False
            if ours:
                self._requestable.add(native)
            else:
                requests.discard(native)
                self.stats.ignored_requests += 1

    # -- REST snapshots --------------------------------------------------------------------------
    def _start_snapshot_fetches(self) -> None:
        if self.rest_url is None:
            return
        for native in list(self.normaliser.snapshot_requests):
            if native not in self._fetching:
                self._fetching[native] = asyncio.create_task(
                    self._fetch_snapshot(native), name=f"snapshot-{native}"
                )

    async def _fetch_snapshot(self, native: str) -> None:
        assert self.rest_url is not None
        attempt = 0
        try:
            while not self._stop.is_set():
                await self.budget.acquire(self.dialect.snapshot_request_weight(native))
                try:
                    frame = await self.dialect.fetch_snapshot(self.http, self.rest_url, native)
                except aiohttp.ClientResponseError as exc:
                    self.stats.snapshot_errors += 1
                    retry_after = _retry_after_s(exc.headers, default=min(60.0, 2.0**attempt))
                    if exc.status in (418, 429):
                        self.budget.back_off(retry_after)
                    await self._emit(
                        self._event(
                            "rest_error",
                            {"status": exc.status, "retry_after_s": retry_after, "symbol": native},
                            channel="book",
                        )
                    )
                    attempt += 1
                    await asyncio.sleep(0 if exc.status in (418, 429) else retry_after)
                    continue
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.stats.snapshot_errors += 1
                    await self._emit(
                        self._event("rest_error", {"error": str(exc)[:200], "symbol": native}, channel="book")
                    )
                    attempt += 1
                    await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
                    continue
                if native not in self.normaliser.snapshot_requests:
                    return  # no longer needed (e.g. reset by a disconnect and not yet re-requested)
                self.stats.snapshots_fetched += 1
                await self._process(time.time_ns(), frame)
                return
        finally:
            self._fetching.pop(native, None)

    # -- REST polls (channels a venue offers only over REST) ---------------------------------------
    def poll_interval(self, polls: Sequence[tuple[str, str]]) -> float:
        """Seconds between two rounds of this connection's polls: the dialect's interval, longer when
        a round would spend more than :data:`POLL_BUDGET_SHARE` of the REST budget per window."""
        weight = sum(self.dialect.poll_request_weight(c, k) for c, k in polls)
        share = max(1.0, self.budget.limit * POLL_BUDGET_SHARE)
        return max(self.dialect.poll_interval_s, self.budget.window_s * weight / share)

    async def _poll_loop(self, polls: Sequence[tuple[str, str]]) -> None:
        """Polls each ``(channel, key)`` once per round while the socket is up; every answer is a
        generated frame, captured and normalised in stream order (so replay equals live)."""
        assert self.rest_url is not None
        interval = self.poll_interval(polls)
        while True:
            started = time.monotonic()
            for channel, key in polls:
                await self.budget.acquire(self.dialect.poll_request_weight(channel, key))
                try:
                    frame = await self.dialect.fetch_poll(self.http, self.rest_url, channel, key)
                except aiohttp.ClientResponseError as exc:
                    self.stats.poll_errors += 1
                    retry_after = _retry_after_s(exc.headers, default=interval)
                    if exc.status in (418, 429):
                        self.budget.back_off(retry_after)
                    detail = {"status": exc.status, "retry_after_s": retry_after, "symbol": key}
                    await self._emit(self._event("rest_error", detail, channel=channel))
                    continue
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.stats.poll_errors += 1
                    detail = {"error": str(exc)[:200], "symbol": key}
                    await self._emit(self._event("rest_error", detail, channel=channel))
                    continue
                self.stats.polls_fetched += 1
                # shielded: once captured, a frame's records are published even if the socket closes
                await asyncio.shield(self._process(time.time_ns(), frame))
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    def _cancel_fetches(self) -> None:
        for task in self._fetching.values():
            task.cancel()
        self._fetching.clear()

    # -- lifecycle -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Asks the connection to close and not reconnect."""
        self._stop.set()
        self._close_socket(1000, "stopped")

    def recycle(self, reason: str) -> None:
        """Closes the current socket so that the connection reconnects (stale feed, rotation)."""
        self._recycle_reason = reason
        self._close_socket(1000, reason[:100])

    def _close_socket(self, code: int, reason: str) -> None:
        if self._ws is not None:
            task = asyncio.ensure_future(self._ws.close(code=code, reason=reason))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def run(self) -> None:
        """Connects and reconnects until :meth:`stop`."""
        url = ""
        if self.capture is not None and self.normaliser.subscribed is not None:
            self.capture.write_subscription(self.normaliser.subscribed)
        try:
            while not self._stop.is_set():
                waited, self._connect_slot = await self.pacer.connect()
                if waited:
                    self._count_wait(waited)
                started = time.monotonic()
                close_detail: dict[str, Any] = {}
                try:
                    url = await self._prepare_url()
                    await self._session(url)
                except ConnectionClosed as exc:
                    close = exc.sent if exc.sent is not None and exc.rcvd is None else exc.rcvd
                    close_detail = {
                        "close_code": close.code if close is not None else None,
                        "error": str(exc)[:200],
                    }
                except (OSError, InvalidHandshake, TimeoutError, aiohttp.ClientError) as exc:
                    close_detail = {"error": f"{type(exc).__name__}: {_redact(str(exc))[:200]}"}
                    if not self.connected.is_set():
                        # Said on the console: DNS, refused, TLS or handshake failures (retried).
                        log.warning(
                            "%s: cannot connect to %s: %s; retrying with backoff",
                            self.exchange,
                            _redact(url).split("?", 1)[0],
                            close_detail["error"],
                        )
                except InvalidURI as exc:
                    raise ValueError(
                        f"{self.exchange}: invalid websocket URL {_redact(url)!r}: {_redact(str(exc))}"
                    ) from exc
                except Exception as exc:  # a bug must not end the connection for good
                    # Restarted like any lost connection (with backoff); unhealthy until a session is up.
                    log.exception("%s: connection %s failed; restarting it", self.exchange, self.name)
                    self.failures += 1
                    self.failure = f"{type(exc).__name__}: {_redact(str(exc))[:200]}"
                    close_detail = {"error": self.failure, "task_failed": True}
                finally:
                    self._mark_opened()  # a failed handshake still reached the venue
                    self._ws = None
                    self.connected.clear()
                    self._cancel_fetches()
                try:
                    await self._on_closed(started, close_detail)
                except Exception as exc:  # e.g. the capture's disk is full: reconnect, never stop
                    log.exception("%s: connection %s failed while closing", self.exchange, self.name)
                    self.failures += 1
                    self.failure = f"{type(exc).__name__}: {str(exc)[:200]}"
                if self._stop.is_set():
                    break
                self.backoff.connected_for(time.monotonic() - started)
                delay = 0.0 if self._recycle_reason == "rotation" else self.backoff.next_delay()
                self._recycle_reason = None
                self.stats.reconnect_delays.append(delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
        finally:
            self._cancel_fetches()
            if self.capture is not None:
                self.capture.close()
            if self.raw is not None:
                last = self.raw.close()
                if last is not None:
                    self.output.put_unbounded(self._count_raw(last))

    async def _prepare_url(self) -> str:
        """The dialect's URL for this attempt (a REST call for venues with per-connection tokens)."""
        try:
            return await self.dialect.prepare_connection(
                self.http, self.rest_url, self.ws_url, self.subscription
            )
        except aiohttp.ClientResponseError as exc:
            if exc.status in (418, 429):
                self.budget.back_off(_retry_after_s(exc.headers, default=1.0))
            raise
        except ValueError as exc:  # a malformed answer: a failed attempt, retried with backoff
            raise aiohttp.ClientError(f"connection preparation failed: {exc}") from exc

    async def _session(self, url: str) -> None:
        settings = self.settings
        async with websockets.connect(
            url,
            ping_interval=settings.ping_interval_s,
            ping_timeout=settings.ping_timeout_s,
            open_timeout=settings.open_timeout_s,
            max_size=settings.max_frame_bytes,
            max_queue=4096,
            compression=None,
            additional_headers=self.dialect.ws_headers,
            logger=_wire_log,
        ) as ws:
            self._mark_opened()
            self._ws = ws
            if self._stop.is_set():
                return  # stopped during the handshake, when there was no socket to close: close it now
            self.stats.connects += 1
            self.watchdog.reset()
            await self._emit(
                self._event("connect", {"url": _redact(url), "symbols": len(self.subscription.symbols)})
            )
            if self.dialect.subscribe_delay_s > 0:
                await asyncio.sleep(self.dialect.subscribe_delay_s)
            for text in self.dialect.subscribe_frames(self.subscription):
                await self._send(ws, text, subscribe=True)
            self.failure = None  # connected and subscribed again: healthy
            self.connected.set()
            tasks = [asyncio.create_task(self._watch(ws), name=f"watchdog-{self.name}")]
            if self.dialect.app_ping is not None:
                tasks.append(asyncio.create_task(self._app_ping(ws), name=f"ping-{self.name}"))
            polls = self.dialect.rest_polls(self.subscription) if self.rest_url is not None else []
            if polls:
                tasks.append(asyncio.create_task(self._poll_loop(polls), name=f"poll-{self.name}"))
            try:
                await self._receive(ws)
            finally:
                self._stop_pacer()
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _on_closed(self, started: float, detail: dict[str, Any]) -> None:
        ts = time.time_ns()
        out = RecordBuffer()
        if self.capture is not None:
            self.capture.write_disconnect()
            self.capture.flush()
        if self.raw is not None:
            batch = self.raw.disconnect(ts)
            if batch is not None:
                await self._publish_raw(batch)
        self.normaliser.on_disconnect(ts, out)
        if self.stats.connects or detail:
            self.stats.disconnects += 1
            reason = self._recycle_reason or ("stopped" if self._stop.is_set() else "closed")
            emit_event(
                out,
                self.exchange,
                None,
                "connection",
                ts,
                "disconnect",
                {
                    "connection": self.name,
                    "reason": reason,
                    "up_s": round(time.monotonic() - started, 3),
                    **detail,
                },
            )
        await self._emit(out)

    async def _watch(self, ws: Any) -> None:
        settings = self.settings
        opened = time.monotonic()
        while True:
            await asyncio.sleep(settings.watchdog_interval_s)
            now = time.monotonic()
            if self.raw is not None:
                batch = self.raw.due(time.time_ns())
                if batch is not None:
                    await self._publish_raw(batch)
            newly, recovered, recycle = self.watchdog.check(now)
            for channel, age in newly:
                self.stats.stale_events += 1
                await self._emit(
                    self._event(
                        "stale",
                        {
                            "silent_s": round(age, 3),
                            "threshold_s": round(self.watchdog.threshold(channel), 3),
                        },
                        channel=channel,
                    )
                )
            for channel in recovered:
                await self._emit(self._event("fresh", {}, channel=channel))
            if recycle:
                self.stats.recycles += 1
                self.recycle("stale")
                return
            max_age = settings.max_connection_age_s
            if max_age and now - opened >= max_age:
                if self.on_rotation_due is not None and self.mode == "live":
                    callback, self.on_rotation_due = self.on_rotation_due, None  # once per connection
                    callback(self)  # the collector opens a successor, then retires us
                    return
                self.recycle("rotation")
                return

    async def _app_ping(self, ws: Any) -> None:
        assert self.dialect.app_ping is not None
        text, interval = self.dialect.app_ping
        while True:
            await asyncio.sleep(interval)
            await self._send(ws, text)


_frozen = False


def _freeze_startup_objects() -> None:
    """``gc.freeze()`` once per process, after a collection (garbage is not frozen with the rest).

    Python documents freezing the objects of start-up so that collections skip them
    (https://docs.python.org/3/library/gc.html#gc.freeze, checked 2026-12-06); they stay alive, as
    modules and configuration do anyway.
    """
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def _message_ready(ws: Any) -> Callable[[], bool]:
    """A test of ``ws``: does it hold a whole message already received and not yet read?

    Reads the frame queue of the websockets library's assembler (``recv_messages.frames.queue``,
    websockets 13 and later): when its last frame is final, every message in it is complete, so
    ``recv`` returns at once. Another connection object answers False, which makes every frame a
    burst of its own (a fragmented message too: its rest may still be on the way).
    """
    queue = getattr(getattr(getattr(ws, "recv_messages", None), "frames", None), "queue", None)
    if not isinstance(queue, deque):
        return lambda: False

    def ready() -> bool:
        return bool(queue) and getattr(queue[-1], "fin", False) is True

    return ready


#: the symbol of a record row
_ROW_SYMBOL = operator.itemgetter(1)


def _bbo_key(row: tuple[Any, ...]) -> tuple[int, int]:
    """Order of bbo rows of one symbol across connections: the exchange's sequence, else its time."""
    seq = row[8]
    if seq is not None:
        return (0, seq)
    ts = row[2]
    return (1, ts if ts is not None else row[3])


def _retry_after_s(headers: Any, default: float) -> float:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else default
    except (TypeError, ValueError):
        return default


def _redact(url: str) -> str:
    """A URL safe for logs and events (query strings may carry tokens on some venues)."""
    return url.split("?", 1)[0]


def split_subscription(
    dialect: ExchangeDialect, symbols: Sequence[str], channels: Sequence[str]
) -> list[Subscription]:
    """Splits symbols across connections so that each stays within the exchange's stream limit, and
    channels that the venue routes to different endpoints onto different connections."""
    subs: list[Subscription] = []
    for group in dialect.channel_groups(channels):
        per_symbol = dialect.streams_per_symbol(group)
        if per_symbol == 0:  # one subscription serves every symbol: one connection
            subs.append(Subscription(tuple(symbols), tuple(group)))
            continue
        per_conn = max(1, dialect.max_streams_per_connection // per_symbol)
        subs.extend(
            Subscription(tuple(symbols[i : i + per_conn]), tuple(group))
            for i in range(0, len(symbols), per_conn)
        )
    return subs


class Collector:
    """One exchange's collector: its connections, the output queue and the publishing loop."""

    def __init__(
        self,
        dialect: ExchangeDialect,
        symbols: Sequence[str],
        sink: RecordSink,
        *,
        channels: Sequence[str] | None = None,
        ws_url: str | None = None,
        rest_url: str | None = None,
        settings: ConnectionSettings | None = None,
        capture_path: str | Path | None = None,
        budget: RestBudget | None = None,
        observers: Sequence[Callable[[RecordBuffer], None]] = (),
    ) -> None:
        if channels is None:
            channels = dialect.channels  # everything the venue offers
        unknown = set(channels) - set(CHANNELS) - set(DERIVATIVE_CHANNELS)
        if unknown:
            known = ", ".join((*CHANNELS, *DERIVATIVE_CHANNELS))
            raise ValueError(f"unknown channels {', '.join(sorted(unknown))}; known: {known}")
        offered = [c for c in channels if c in dialect.channels]
        if not offered:
            raise ValueError(
                f"{dialect.exchange_id} offers none of {', '.join(channels)}; it offers: {', '.join(dialect.channels)}"
            )
        if len(offered) < len(channels):
            # "all channels" of a configuration means what each venue has (gemini has no bbo stream)
            log.info(
                "%s does not offer %s: collecting %s",
                dialect.exchange_id,
                ", ".join(c for c in channels if c not in offered),
                ", ".join(offered),
            )
        channels = offered
        if not symbols:
            raise ValueError(f"{dialect.exchange_id}: no symbols to collect")
        self.dialect = dialect
        self.exchange = dialect.exchange_id
        #: what the user asked for: explicit symbols, ``all`` and glob patterns (resolved at start)
        self.requested = list(symbols)
        self.patterns = [s for s in symbols if is_pattern(s)]
        if self.patterns and not dialect.instruments_paths():
            raise ValueError(
                f"{dialect.exchange_id} has no instruments endpoint here: list its symbols explicitly "
                f"instead of {', '.join(self.patterns)}"
            )
        self.symbols = [dialect.native_symbol(s) for s in symbols if not is_pattern(s)]
        #: native symbols the user named (never unsubscribed by a delisting)
        self.explicit = set(self.symbols)
        self.instruments_url = rest_url or dialect.instruments_rest_url or dialect.default_rest_url
        self.instruments = InstrumentBook()
        self.channels = tuple(channels)
        self.sink = sink
        self.ws_url = ws_url or dialect.default_ws_url
        self.rest_url = rest_url or dialect.default_rest_url
        settings = settings or ConnectionSettings()
        if settings.max_connection_age_s is None:  # the venue's own default (rotate before its cut-off)
            settings = dataclasses.replace(settings, max_connection_age_s=dialect.rotation_age_s())
        self.settings = settings
        self.pacer = Pacer(dialect.limits, enabled=settings.pacing)
        self.capture_path = Path(capture_path) if capture_path is not None else None
        self.budget = budget or RestBudget()
        self.observers = list(observers)
        self.stats = ConnectionStats()
        self.output = OutputQueue(
            self.settings.queue_max_batches, self.settings.queue_policy, self.stats, self.exchange
        )
        self.connections: list[FeedConnection] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None
        self.published_rows = 0
        #: connection tasks that ended with an error (name -> error): the collector is unhealthy
        self.dead: dict[str, str] = {}
        self.rotations = 0
        self._rotation_tasks: set[asyncio.Task[None]] = set()
        self._instruments_task: asyncio.Task[None] | None = None
        #: the start's instruments fetch when the start did not wait for it (explicit symbols only)
        self._late_fetch: asyncio.Task[bool] | None = None
        #: names this process's raw streams (``<connection>@<session>``): unique across restarts
        self.session = time.time_ns()

    def _capture_for(self, index: int, count: int, generation: int = 0) -> Path | None:
        if self.capture_path is None:
            return None
        if count == 1 and generation == 0:
            return self.capture_path
        # one capture per connection: a disconnect line must only reset that connection's books
        name = self.capture_path.name
        stem, dot, ext = name.partition(".")
        suffix = f".conn{index}" + (f".gen{generation}" if generation else "")
        return self.capture_path.with_name(f"{stem}{suffix}{dot}{ext}")

    def _new_connection(
        self, index: int, sub: Subscription, count: int, generation: int, shadow: bool
    ) -> FeedConnection:
        assert self._http is not None
        return FeedConnection(
            self.dialect,
            sub,
            self.ws_url,
            self.rest_url,
            self.output,
            self.stats,
            self.settings,
            self.budget,
            self._http,
            self._capture_for(index, count, generation),
            name=f"{self.exchange}-{index}" + (f"-g{generation}" if generation else ""),
            on_rotation_due=self._rotation_due,
            shadow=shadow,
            pacer=self.pacer,
            session=self.session,
        )

    def _rotation_due(self, old: FeedConnection) -> None:
        task = asyncio.create_task(self._rotate(old), name=f"rotate-{old.name}")
        self._rotation_tasks.add(task)
        task.add_done_callback(self._rotation_tasks.discard)

    async def _rotate(self, old: FeedConnection) -> None:
        """Planned rotation: open a successor, wait until its books are synced, hand over, close ``old``.

        Nothing is lost and nothing is doubled: the successor's held trades are de-duplicated against
        what ``old`` published, its bbo rows continue after ``old``'s last sequence, and its books
        continue at a matching update id where the venue allows it, else enter as a resync
        (:meth:`_handover`).
        """
        await self._rotate_to(old, old.subscription)

    async def _rotate_to(self, old: FeedConnection, subscription: Subscription) -> None:
        """Make-before-break replacement of ``old`` by a connection carrying ``subscription`` (the same
        one for a rotation; fewer symbols when some were delisted)."""
        index = self.connections.index(old)
        generation = self.rotations + 1
        old.handover_log = HandoverLog()
        new = self._new_connection(index, subscription, len(self.connections), generation, shadow=True)
        task = asyncio.create_task(new.run(), name=f"conn-{new.name}")
        try:
            await asyncio.wait_for(new.ready.wait(), timeout=max(30.0, self.settings.open_timeout_s * 3))
        except TimeoutError:
            log.warning(
                "%s: successor of %s never synced; keeping the old connection", self.exchange, old.name
            )
            new.stop()
            await asyncio.gather(task, return_exceptions=True)
            old.handover_log = None
            old.on_rotation_due = self._rotation_due
            old.recycle("rotation")
            return
        if self.dialect.book_handover_by_seq:
            # Both connections carry the same update ids: wait (briefly) until each book of the
            # successor has joined what ``old`` published, so that the handover needs no resync.
            deadline = time.monotonic() + HANDOVER_ALIGN_S
            while not self._aligned(old, new) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        handover = self._handover(old, new)
        old.mode = "retired"
        new.mode = "live"
        self.output.put_unbounded(handover)
        self.connections[index] = new
        self._tasks.append(task)
        self.rotations += 1
        old.stop()

    @staticmethod
    def _book_tails(held: RecordBuffer) -> dict[str, list[tuple[Any, ...]]]:
        """Per symbol: the held book rows from its last snapshot on."""
        tails: dict[str, list[tuple[Any, ...]]] = {}
        for row in held.book:
            rows = tails.setdefault(row[1], [])
            if row[7] and rows and not rows[-1][7]:
                rows.clear()  # a later snapshot (the successor resynced): start from it
            rows.append(row)
        return tails

    @staticmethod
    def _joins(rows: list[tuple[Any, ...]], last: tuple[Any, ...] | None) -> bool:
        """True when a successor's rows (snapshot first) can continue ``last`` (the old connection's
        last book row) exactly: its snapshot is at or before that update and it has applied updates
        up to it or beyond."""
        if last is None or last[8] is None or not rows or not rows[0][7] or rows[0][8] is None:
            return False
        newest = max((r[8] for r in rows if r[8] is not None), default=None)
        return newest is not None and rows[0][8] <= last[8] <= newest

    def _aligned(self, old: FeedConnection, new: FeedConnection) -> bool:
        tails = self._book_tails(new.held)
        return all(self._joins(rows, old.last_book.get(symbol)) for symbol, rows in tails.items())

    def _handover(self, old: FeedConnection, new: FeedConnection) -> RecordBuffer:
        """The successor's held records, continuing what ``old`` published.

        Books: where the venue's book sequence is the same on every connection
        (``dialect.book_handover_by_seq``, e.g. Binance's update ids), the successor's book continues
        ``old``'s at the first update after ``old``'s last one, in ``old``'s epoch: no snapshot rows,
        no resync, the book continuous. That needs the successor's snapshot at or before ``old``'s
        last update and the successor already past it; otherwise (or on other venues) the book
        enters as a resync (its snapshot rows, the next epoch, a ``resync`` event, reason ``rotation``).

        The lake orders a symbol's book rows by receive time, so a handed-over row never carries a
        ``ts_recv`` before the old connection's last book row of its symbol: the successor, held while
        it synced, may have received an update (or its snapshot) a few milliseconds before the old
        connection received the one before it, and that row takes the old row's ``ts_recv``
        (otherwise the lake would apply it before its predecessor: a wrong book). Rows received after
        the handover are later than anything the old connection published.
        """
        held = new.held
        new.held = RecordBuffer()
        out = RecordBuffer(feed_events=list(held.feed_events))
        tails = self._book_tails(held)
        ts = time.time_ns()
        by_seq = self.dialect.book_handover_by_seq
        for symbol, rows in tails.items():
            if not rows[0][7]:
                continue  # no snapshot held for it (should not happen once ready): nothing to hand over
            snap_epoch = rows[0][9]
            last = old.last_book.get(symbol)
            floor = last[3] if last is not None else 0
            continues = by_seq and last is not None and self._joins(rows, last)
            if continues:
                assert last is not None
                offset = last[9] - snap_epoch  # the successor's epoch becomes old's
                rows = [r for r in rows if not r[7] and r[8] > last[8]]
            else:  # a resync into the epoch after old's
                base = (
                    last[9] + 1
                    if last is not None
                    else max((r[9] for r in old.last_book.values()), default=-1) + 1
                )
                offset = base - snap_epoch
            new.epoch_offsets[symbol] = new.epoch_offsets.get(symbol, 0) + offset
            out.book.extend((*r[:3], max(r[3], floor), *r[4:9], r[9] + offset, r[10]) for r in rows)
            if not continues:
                emit_event(
                    out,
                    self.exchange,
                    symbol,
                    "book",
                    ts,
                    "resync",
                    {"reason": "rotation", "connection": new.name},
                )
        published = old.handover_log or HandoverLog()
        recent = old.published_trades
        out.trades = [
            r
            for r in held.trades
            if r[4] not in published.trades.get(r[1], ())
            and not (recent is not None and recent.seen(r[1], r[4]))
        ]
        out.bbo = [r for r in held.bbo if _bbo_key(r) > published.bbo.get(r[1], (-1, -1))]
        return out

    async def start(self) -> None:
        """Fetches the venue's instruments and resolves the symbols asked for, then opens every
        connection and the publishing loop.

        Raises :class:`~collectors.instruments.UnknownSymbolError` (a ValueError naming close matches)
        when an explicit symbol is not listed by the venue. When the instruments endpoint fails, the
        collector runs on the explicit symbols (an ``instruments_error`` event says so) and the
        patterns are resolved at the next successful fetch. With explicit symbols only, the start waits
        for the fetch at most ``instruments_start_wait_s``; a slower fetch goes on in the background and
        a name it does not list is then an ``unknown_symbol`` event.
        """
        fetch: asyncio.Task[bool] | None = None
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            if self.dialect.instruments_paths() and self.instruments_url:
                fetch = asyncio.create_task(self.refresh_instruments(), name=f"instruments-{self.exchange}")
                wait = None if self.patterns else self.settings.instruments_start_wait_s
                done, _ = await asyncio.wait({fetch}, timeout=wait)
                if not done:
                    log.warning(
                        "%s: instruments still loading after %.0f s: starting on the %d symbol(s) named; "
                        "they are checked when the list arrives",
                        self.exchange,
                        wait,
                        len(self.symbols),
                    )
                    self._late_fetch = fetch
                elif fetch.result():
                    self._resolve_at_start()
        except BaseException:
            if fetch is not None and self._late_fetch is None:
                fetch.cancel()
            await self._http.close()
            raise
        if self.settings.freeze_gc_at_start:
            _freeze_startup_objects()
        subs = split_subscription(self.dialect, self.symbols, self.channels)
        for i, sub in enumerate(subs):
            conn = self._new_connection(i, sub, len(subs), 0, shadow=False)
            self.connections.append(conn)
            task = asyncio.create_task(conn.run(), name=f"conn-{conn.name}")
            task.add_done_callback(functools.partial(self._task_ended, conn.name))
            self._tasks.append(task)
        self._publisher = asyncio.create_task(self._publish_loop(), name=f"publish-{self.exchange}")
        if self._late_fetch is not None or (
            self.instruments_url
            and self.dialect.instruments_paths()
            and self.settings.instruments_refresh_s > 0
        ):
            self._instruments_task = asyncio.create_task(
                self._instruments_loop(), name=f"instruments-{self.exchange}"
            )

    # -- instruments -------------------------------------------------------------------------------
    def _resolve_at_start(self) -> None:
        """The symbols asked for, against the fetched list (UnknownSymbolError for a name not listed)."""
        listed = self.instruments.current.values()
        self.symbols = resolve_symbols(self.dialect, self.requested, listed)
        named = [name for name in self.requested if not is_pattern(name)]
        self.explicit = set(resolve_symbols(self.dialect, named, listed))
        if self.patterns and not self.symbols:
            log.warning("%s: %s match no trading instrument yet", self.exchange, self.patterns)

    async def _check_named_late(self, fetch: asyncio.Task[bool]) -> None:
        """After a start that did not wait for the instruments: names the venue does not list are an
        error in the log and an ``unknown_symbol`` event each (their connections stay: the venue
        answers them with its own error, and a listing may still come)."""
        if not await fetch:
            return
        try:
            resolve_symbols(self.dialect, self.requested, self.instruments.current.values())
        except UnknownSymbolError as exc:
            log.error("%s", exc)
            out = RecordBuffer()
            for name, close in exc.missing.items():
                emit_event(
                    out,
                    self.exchange,
                    None,
                    "instruments",
                    time.time_ns(),
                    "unknown_symbol",
                    {"requested": name, "close_matches": close},
                )
            self.output.put_unbounded(out)

    async def _instruments_loop(self) -> None:
        if self._late_fetch is not None:
            await self._check_named_late(self._late_fetch)
        if self.settings.instruments_refresh_s <= 0:
            return
        while True:
            await asyncio.sleep(self.settings.instruments_refresh_s)
            if await self.refresh_instruments() and self.patterns:
                await self._follow_listings()

    async def refresh_instruments(self) -> bool:
        """Fetches the venue's instruments (within its REST budget) and queues the ``instruments`` rows
        that changed since the last fetch, with a ``listing``/``delisting`` event per symbol that
        started/stopped trading. False (and an ``instruments_error`` event) when the fetch failed."""
        assert self._http is not None and self.instruments_url is not None
        out = RecordBuffer()
        try:
            fetched = await self.dialect.fetch_instruments(
                self._http, self.instruments_url, self.budget.acquire
            )
            if not fetched:
                raise ValueError("the venue listed no instrument")
        except aiohttp.ClientResponseError as exc:
            if exc.status in (418, 429):
                self.budget.back_off(_retry_after_s(exc.headers, default=60.0))
            return await self._instruments_failed(f"HTTP {exc.status}: {exc.message}")
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError, IndexError) as exc:
            return await self._instruments_failed(f"{type(exc).__name__}: {exc}")
        ts = time.time_ns()
        rows, listed, delisted = self.instruments.update(fetched, ts)
        self.stats.instrument_fetches += 1
        out.instruments.extend(r.row() for r in rows)
        for kind, natives in (("listing", listed), ("delisting", delisted)):
            for native in natives:
                inst = self.instruments.current[native]
                emit_event(
                    out,
                    self.exchange,
                    inst.symbol,
                    "instruments",
                    ts,
                    kind,
                    {"native_symbol": native, "kind": inst.kind, "status": inst.status},
                )
        if len(out):
            self.output.put_unbounded(out)
        return True

    async def _instruments_failed(self, reason: str) -> bool:
        self.stats.instrument_errors += 1
        log.warning("%s: instruments fetch failed: %s", self.exchange, reason)
        out = RecordBuffer()
        emit_event(
            out,
            self.exchange,
            None,
            "instruments",
            time.time_ns(),
            "instruments_error",
            {"reason": reason, "following": self.patterns, "symbols": len(self.symbols)},
        )
        self.output.put_unbounded(out)
        return False

    async def _follow_listings(self) -> None:
        """Subscribes trading instruments the patterns match that are not collected yet (new
        connections, split within the venue's limits), and drops delisted ones the patterns brought in
        (a make-before-break replacement of their connection, or its end when nothing is left on it)."""
        current = self.instruments.current
        have = set(self.symbols)
        new = [
            n
            for n, inst in current.items()
            if inst.trading and n not in have and any(matches(p, inst) for p in self.patterns)
        ]
        gone = {
            n for n in self.symbols if n not in self.explicit and not (n in current and current[n].trading)
        }
        if new:
            for sub in split_subscription(self.dialect, new, self.channels):
                index = len(self.connections)
                conn = self._new_connection(index, sub, index + 1 if index else 2, 0, shadow=False)
                self.connections.append(conn)
                self._tasks.append(asyncio.create_task(conn.run(), name=f"conn-{conn.name}"))
            self.symbols.extend(new)
            self.stats.listings_subscribed += len(new)
            log.info("%s: subscribed %d new listing(s): %s", self.exchange, len(new), ", ".join(new))
        if gone:
            for conn in list(self.connections):
                if not gone.intersection(conn.subscription.symbols):
                    continue
                keep = tuple(s for s in conn.subscription.symbols if s not in gone)
                if keep:
                    await self._rotate_to(conn, Subscription(keep, conn.subscription.channels))
                else:
                    self.connections.remove(conn)
                    conn.stop()
            self.symbols = [s for s in self.symbols if s not in gone]
            self.stats.delistings_unsubscribed += len(gone)
            log.info(
                "%s: unsubscribed %d delisting(s): %s", self.exchange, len(gone), ", ".join(sorted(gone))
            )

    def _task_ended(self, name: str, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.dead[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
            log.error("%s: connection %s stopped for good: %s", self.exchange, name, self.dead[name])

    def problems(self) -> list[str]:
        """Why this collector is unhealthy right now (empty when healthy): connections restarting after
        an unexpected error, connection tasks that ended, a publishing loop that stopped."""
        found = [
            f"{self.exchange} {c.name}: restarting after {c.failure}" for c in self.connections if c.failure
        ]
        found += [f"{self.exchange} {name}: stopped: {error}" for name, error in self.dead.items()]
        publisher = getattr(self, "_publisher", None)
        if publisher is not None and publisher.done() and not publisher.cancelled():
            found.append(f"{self.exchange}: publishing stopped: {publisher.exception()!r}")
        return found

    async def _deliver(self, batch: RecordBuffer) -> None:
        for observe in self.observers:
            observe(batch)
        self.published_rows += len(batch)
        await self.sink(batch)

    async def _publish_loop(self) -> None:
        while True:
            batch = await self.output.get_all()
            await self._deliver(batch)

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        """Waits until every connection is open and subscribed."""
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in self.connections)), timeout_s)

    async def stop(self) -> None:
        """Closes the connections, then publishes everything still queued (nothing is lost)."""
        for rotation in list(self._rotation_tasks):
            rotation.cancel()
        if self._instruments_task is not None:
            self._instruments_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._instruments_task
        for conn in self.connections:
            conn.stop()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
        self._publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._publisher
        rest = self.output.drain_nowait()
        if len(rest):
            await self._deliver(rest)
        if self._http is not None:
            await self._http.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Runs until ``stop`` is set, then stops cleanly."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

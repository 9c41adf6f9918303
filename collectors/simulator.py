"""The simulator side shared by every exchange dialect: a synthetic market and a loopback server.

:class:`MarketModel` is a deterministic (seeded) L2 market per symbol: a random-walk mid, levels on
both sides, trades that consume the top level, and an update id that increases with every change.
:class:`ExchangeSimulator` serves it over a real websocket (aiohttp) plus REST routes, on 127.0.0.1.
Each exchange module subclasses it to render the market in its own dialect (frames, subscriptions,
snapshots, heartbeats). :class:`Faults` is the fault-injection panel tests and ``ticktape demo`` use.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sortedcontainers import SortedDict

if TYPE_CHECKING:
    from aiohttp import web

    from .base import ExchangeDialect

# aiohttp is imported where a simulator serves (``start``, its handlers), not with this module: every
# venue module imports it, and a replay or a query never serves (~0.2 s of start-up, bench/RESULTS.md).

log = logging.getLogger(__name__)


@dataclass
class SimulatorConfig:
    """How a simulator runs: its symbols (native names), market pace and server address."""

    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    host: str = "127.0.0.1"
    port: int = 0
    #: market steps per second per symbol (each step is one book update, maybe trades)
    rate_hz: float = 20.0
    seed: int = 7
    book_levels: int = 25
    trade_probability: float = 0.35
    #: frames queued per client before the simulator drops it as a slow consumer (as exchanges do)
    client_queue_frames: int = 50_000
    heartbeat_interval_s: float = 1.0
    #: enforce the dialect's documented limits (``ExchangeDialect.limits``) as the venue does
    enforce_limits: bool = True
    #: close every connection this many seconds after it opened (a venue's forced disconnect; 0: never)
    max_connection_age_s: float = 0.0


@dataclass
class Faults:
    """Faults to inject, changed at run time by tests and by ``ticktape demo --incident``.

    Per-symbol counters (``drop_updates`` etc.) are decremented each time the fault fires.
    """

    ts_lag_ns: int = 0  # exchange timestamps fall this far behind while frames keep flowing
    silent: bool = False  # the socket stays open but nothing is sent
    heartbeats_only: bool = False  # only heartbeats (no data)
    drop_updates: dict[str, int] = field(default_factory=dict)
    duplicate_updates: dict[str, int] = field(default_factory=dict)
    reorder_updates: dict[str, int] = field(default_factory=dict)
    corrupt_checksums: dict[str, int] = field(default_factory=dict)
    malformed_frames: int = 0
    oversized_frames: int = 0
    oversized_bytes: int = 32 * 1024 * 1024
    invalid_utf8_frames: int = 0
    rest_429: int = 0  # next N REST snapshot calls answer 429 with Retry-After
    rest_418: int = 0
    retry_after_s: float = 1.0
    refuse_connections: bool = False  # new websocket connections are closed at once
    instruments_errors: int = 0  # next N instruments (reference data) calls answer 503

    @staticmethod
    def take(counters: dict[str, int], symbol: str) -> bool:
        """True (and one less pending) when a per-symbol fault should fire now."""
        n = counters.get(symbol, 0)
        if n <= 0:
            return False
        counters[symbol] = n - 1
        return True


@dataclass(slots=True)
class SimTrade:
    """A synthetic trade (taker ``side`` is ``buy`` or ``sell``)."""

    trade_id: int
    price: str
    size: str
    side: str


@dataclass(slots=True)
class MarketStep:
    """What changed in one symbol's market at one instant.

    ``first_update_id..update_id`` are the book update ids this step consumed (one per level change).
    ``bids``/``asks`` hold ``(price_str, size_str)`` with size ``"0..."`` for a removed level.
    """

    symbol: str
    ts_ns: int
    first_update_id: int
    update_id: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    trades: list[SimTrade]
    model: MarketModel
    corrupt_checksum: bool = False


def _start_price(symbol: str) -> float:
    upper = symbol.upper()
    for prefix, price in (
        ("BTC", 65_000.0),
        ("XBT", 65_000.0),
        ("ETH", 3_200.0),
        ("SOL", 150.0),
        ("BNB", 580.0),
    ):
        if upper.startswith(prefix):
            return price
    return 10.0 + zlib.crc32(upper.encode()) % 90


class MarketModel:
    """A deterministic synthetic L2 market for one symbol, in integer ticks and lots."""

    def __init__(self, symbol: str, seed: int, levels: int = 25, trade_probability: float = 0.35) -> None:
        self.symbol = symbol
        self.rng = random.Random(seed * 1_000_003 + zlib.crc32(symbol.encode()))
        start = _start_price(symbol)
        # Tick 0.01 for prices above 100, else 0.0001, so every symbol has a plausible spread.
        self.price_decimals = 2 if start >= 100 else 4
        self.size_decimals = 4
        self.tick = 10**-self.price_decimals
        self.mid = round(start / self.tick)
        self.levels = levels
        self.trade_probability = trade_probability
        self.bids: SortedDict = SortedDict()  # ticks -> lots
        self.asks: SortedDict = SortedDict()
        self.update_id = 1_000_000 + self.rng.randrange(1_000_000)
        self.trade_id = 5_000_000 + self.rng.randrange(1_000_000)
        for k in range(levels):
            self.bids[self.mid - 1 - k] = self._random_lots()
            self.asks[self.mid + 1 + k] = self._random_lots()

    def _random_lots(self) -> int:
        return self.rng.randrange(1, 50_000)

    def price_str(self, ticks: int) -> str:
        """Price string of a tick count, in this market's decimals."""
        return f"{ticks * self.tick:.{self.price_decimals}f}"

    def size_str(self, lots: int) -> str:
        """Size string of a lot count."""
        return f"{lots / 10**self.size_decimals:.{self.size_decimals}f}"

    def _set(self, side: SortedDict, ticks: int, lots: int, changes: dict[int, int]) -> None:
        if lots <= 0:
            if ticks in side:
                del side[ticks]
                changes[ticks] = 0
        else:
            side[ticks] = lots
            changes[ticks] = lots

    def step(self, ts_ns: int) -> MarketStep:
        """Advances the market by one event."""
        rng = self.rng
        bid_changes: dict[int, int] = {}
        ask_changes: dict[int, int] = {}
        trades: list[SimTrade] = []
        move = rng.random()
        if move < 0.15:
            self.mid += 1 if rng.random() < 0.5 else -1
            # keep bids strictly below and asks strictly above the mid
            for t in [t for t in self.bids if t >= self.mid]:
                self._set(self.bids, t, 0, bid_changes)
            for t in [t for t in self.asks if t <= self.mid]:
                self._set(self.asks, t, 0, ask_changes)
        if rng.random() < self.trade_probability:
            side = "buy" if rng.random() < 0.5 else "sell"
            book, changes = (self.asks, ask_changes) if side == "buy" else (self.bids, bid_changes)
            if book:
                idx = 0 if side == "buy" else -1
                ticks, lots = book.peekitem(idx)
                size = min(lots, max(1, rng.randrange(1, 20_000)))
                self.trade_id += 1
                trades.append(SimTrade(self.trade_id, self.price_str(ticks), self.size_str(size), side))
                self._set(book, ticks, lots - size, changes)
        for _ in range(rng.randrange(1, 4)):
            if rng.random() < 0.5:
                ticks = self.mid - 1 - rng.randrange(self.levels)
                self._set(self.bids, ticks, 0 if rng.random() < 0.2 else self._random_lots(), bid_changes)
            else:
                ticks = self.mid + 1 + rng.randrange(self.levels)
                self._set(self.asks, ticks, 0 if rng.random() < 0.2 else self._random_lots(), ask_changes)
        # keep both sides populated and bounded
        if not self.bids:
            self._set(self.bids, self.mid - 1, self._random_lots(), bid_changes)
        if not self.asks:
            self._set(self.asks, self.mid + 1, self._random_lots(), ask_changes)
        for t in [t for t in self.bids if t < self.mid - 1 - 2 * self.levels]:
            self._set(self.bids, t, 0, bid_changes)
        for t in [t for t in self.asks if t > self.mid + 1 + 2 * self.levels]:
            self._set(self.asks, t, 0, ask_changes)
        n_changes = max(1, len(bid_changes) + len(ask_changes))
        first = self.update_id + 1
        self.update_id += n_changes
        return MarketStep(
            symbol=self.symbol,
            ts_ns=ts_ns,
            first_update_id=first,
            update_id=self.update_id,
            bids=[
                (self.price_str(t), self.size_str(v)) for t, v in sorted(bid_changes.items(), reverse=True)
            ],
            asks=[(self.price_str(t), self.size_str(v)) for t, v in sorted(ask_changes.items())],
            trades=trades,
            model=self,
        )

    def top(self, depth: int | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Current levels, best first: ``(bids, asks)`` as wire strings."""
        bids = list(reversed(self.bids.items()))
        asks = list(self.asks.items())
        if depth is not None:
            bids, asks = bids[:depth], asks[:depth]
        return (
            [(self.price_str(t), self.size_str(v)) for t, v in bids],
            [(self.price_str(t), self.size_str(v)) for t, v in asks],
        )

    def best(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """Best bid and ask as wire strings."""
        bt, bv = self.bids.peekitem(-1)
        at, av = self.asks.peekitem(0)
        return (self.price_str(bt), self.size_str(bv)), (self.price_str(at), self.size_str(av))


@dataclass(eq=False)
class ClientSession:
    """One connected client: its websocket, subscriptions and bounded send queue."""

    ws: web.WebSocketResponse
    request: web.Request
    queue: asyncio.Queue[str | bytes | None]
    subscriptions: set[tuple[str, str]] = field(default_factory=set)  # (channel, native symbol)
    state: dict[str, Any] = field(default_factory=dict)  # per-connection dialect state (sequence numbers...)
    held: dict[str, list[str]] = field(default_factory=dict)  # symbol -> frames held back (reorder fault)

    def subscribed(self, channel: str, symbol: str) -> bool:
        """True when the client subscribed ``channel`` for ``symbol``."""
        return (channel, symbol) in self.subscriptions


class ExchangeSimulator(abc.ABC):
    """A loopback exchange speaking one dialect. Subclasses render the market and parse subscriptions."""

    #: websocket paths the dialect connects to
    ws_paths: tuple[str, ...] = ("/ws",)
    #: True when the streams count sizes in whole model lots (contracts): the instruments then list a
    #: lot of 1 and a contract of one model lot (``10**-size_decimals`` base units)
    sizes_in_lots: bool = False

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        self.dialect = dialect
        self.config = config
        self.faults = Faults()
        self.markets = {
            s: MarketModel(s, config.seed, config.book_levels, config.trade_probability)
            for s in config.symbols
        }
        self.sessions: set[ClientSession] = set()
        self.connections_total = 0
        #: limit breaches the simulator saw (and answered as the venue does), by limit
        self.limit_violations: dict[str, int] = {"connections": 0, "messages": 0, "subscriptions": 0}
        self._connect_times: deque[float] = deque()
        self._ip_message_times: deque[float] = deque()
        self.rest_requests = 0
        self.instrument_requests = 0
        self.frames_sent = 0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port = config.port

    # -- dialect hooks -------------------------------------------------------------------------
    async def on_open(self, session: ClientSession) -> None:
        """Called when a client connects (URL-subscribed dialects fill ``session.subscriptions`` here)."""

    async def on_message(self, session: ClientSession, text: str) -> None:
        """Called for every text frame the client sends (subscribe requests, pings)."""

    @abc.abstractmethod
    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        """This session's frames for a market step: ``(trade_frames, book_frames, bbo_frames)``."""

    def refuse_connection(self) -> web.StreamResponse:
        """The venue's answer to a connection above its connection rate (HTTP 429 by default)."""
        from aiohttp import web

        return web.json_response({"error": "too many connection attempts (simulated)"}, status=429)

    async def on_message_limit(self, session: ClientSession) -> None:
        """The venue's answer to a client above its message rate: close (1008, "Too many requests")."""
        await session.ws.close(code=1008, message=b"Too many requests")

    def subscribe_request(self, session: ClientSession, count: int) -> bool:
        """Checks a subscribe request of ``count`` topics against the dialect's per-message and per-hour
        limits; False (counted) when the venue would refuse it. Dialects call it from ``on_message``."""
        limits = self.dialect.limits
        if not self.config.enforce_limits:
            return True
        if limits.subscriptions_per_message and count > limits.subscriptions_per_message:
            self.limit_violations["subscriptions"] += 1
            return False
        if limits.subscribe_requests_per_hour:
            times: deque[float] = session.state.setdefault("subscribe_times", deque())
            if not _fits(times, limits.subscribe_requests_per_hour, 3600.0):
                self.limit_violations["subscriptions"] += 1
                return False
        return True

    def heartbeat_frames(self, session: ClientSession, now_ns: int) -> list[str]:
        """Exchange-level heartbeats to send this second (for dialects that have them)."""
        return []

    def rest_routes(self) -> list[web.RouteDef]:
        """REST routes (snapshots, instruments)."""
        return []

    def instrument_routes(self) -> list[web.RouteDef]:
        """The venue's instruments endpoint(s), listing :attr:`markets` (tick from ``MarketModel.tick``,
        lot from its size decimals); dialects with instruments override it."""
        return []

    def instruments_routes_of(self, paths: Sequence[str], body: Callable[[], Any]) -> list[web.RouteDef]:
        """GET routes serving ``body()`` (the venue's instrument list of :attr:`markets`) as JSON at
        each path, answering the armed instruments fault instead (:meth:`instruments_fault_response`)."""
        from aiohttp import web

        async def handler(request: web.Request) -> web.Response:
            fault = self.instruments_fault_response()
            if fault is not None:
                return fault
            return web.json_response(body(), dumps=lambda o: orjson.dumps(o).decode())

        return [web.get(path, handler) for path in paths]

    def add_market(self, symbol: str) -> MarketModel:
        """Lists a new market while running (it appears in the instruments and starts trading)."""
        market = MarketModel(symbol, self.config.seed, self.config.book_levels, self.config.trade_probability)
        self.markets[symbol] = market
        return market

    def remove_market(self, symbol: str) -> None:
        """Delists a market while running (it leaves the instruments and stops trading)."""
        self.markets.pop(symbol, None)

    # -- helpers for dialects ------------------------------------------------------------------
    def now_exchange_ns(self) -> int:
        """The exchange's clock, lagging when the ``ts_lag_ns`` fault is on."""
        return time.time_ns() - self.faults.ts_lag_ns

    def send(self, session: ClientSession, frame: str | bytes) -> None:
        """Queues a frame for one client; a client that cannot keep up is disconnected."""
        try:
            session.queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("simulator %s: dropping slow client", self.dialect.exchange_id)
            self._drop(session)

    def rest_fault_response(self) -> web.Response | None:
        """A 429/418 answer when that fault is armed, else None."""
        from aiohttp import web

        if self.faults.rest_418 > 0:
            self.faults.rest_418 -= 1
            return web.json_response(
                {"code": -1003, "msg": "IP banned (simulated)"},
                status=418,
                headers={"Retry-After": str(int(self.faults.retry_after_s))},
            )
        if self.faults.rest_429 > 0:
            self.faults.rest_429 -= 1
            return web.json_response(
                {"code": -1003, "msg": "Too many requests (simulated)"},
                status=429,
                headers={"Retry-After": str(int(self.faults.retry_after_s))},
            )
        return None

    def instruments_fault_response(self) -> web.Response | None:
        """A 503 answer of the instruments endpoint when that fault is armed, else None (counts the
        request in :attr:`instrument_requests`; the snapshot faults ``rest_429``/``rest_418`` and
        ``rest_requests`` stay for snapshots)."""
        from aiohttp import web

        self.instrument_requests += 1
        if self.faults.instruments_errors > 0:
            self.faults.instruments_errors -= 1
            return web.json_response({"error": "service unavailable (simulated)"}, status=503)
        return None

    # -- server ----------------------------------------------------------------------------------
    @property
    def ws_url(self) -> str:
        """Base websocket URL (``ws://127.0.0.1:PORT``)."""
        return f"ws://{self.config.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        """Base REST URL."""
        return f"http://{self.config.host}:{self.port}"

    async def start(self) -> None:
        """Binds the server and starts the market."""
        from aiohttp import web

        app = web.Application()
        for path in self.ws_paths:
            app.router.add_get(path, self._ws_handler)
        app.add_routes(self.rest_routes())
        app.add_routes(self.instrument_routes())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._tasks.append(asyncio.create_task(self._market_loop(), name="sim-market"))
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="sim-heartbeat"))

    async def stop(self) -> None:
        """Stops the market and closes every client."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.disconnect_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def disconnect_all(self) -> None:
        """Closes every client connection (a disconnect fault)."""
        for session in list(self.sessions):
            self._drop(session)
            with contextlib.suppress(Exception):
                await session.ws.close()

    def _drop(self, session: ClientSession) -> None:
        self.sessions.discard(session)
        while True:
            try:
                session.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
        session.queue.put_nowait(None)

    def _over_message_rate(self, session: ClientSession) -> bool:
        limits = self.dialect.limits
        rate = limits.messages_per_second
        if not rate or not self.config.enforce_limits:
            return False
        limit, window = (int(rate), 1.0) if rate >= 1 else (1, 1.0 / rate)
        times = (
            self._ip_message_times
            if limits.messages_per_ip
            else session.state.setdefault("msg_times", deque())
        )
        return not _fits(times, limit, window)

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import WSMsgType, web

        limits = self.dialect.limits
        if (
            self.config.enforce_limits
            and limits.connections_per_window
            and not _fits(self._connect_times, limits.connections_per_window, limits.connection_window_s)
        ):
            self.limit_violations["connections"] += 1
            return self.refuse_connection()
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=4 * 1024 * 1024)
        await ws.prepare(request)
        if self.faults.refuse_connections:
            await ws.close()
            return ws
        self.connections_total += 1
        session = ClientSession(ws, request, asyncio.Queue(self.config.client_queue_frames))
        writer = asyncio.create_task(self._writer(session))
        expiry = (
            asyncio.get_running_loop().call_later(self.config.max_connection_age_s, self._drop, session)
            if self.config.max_connection_age_s > 0
            else None
        )
        try:
            await self.on_open(session)
            self.sessions.add(session)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    if self._over_message_rate(session):
                        self.limit_violations["messages"] += 1
                        await self.on_message_limit(session)
                        break
                    await self.on_message(session, msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            if expiry is not None:
                expiry.cancel()
            self._drop(session)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _writer(self, session: ClientSession) -> None:
        ws = session.ws
        try:
            while True:
                frame = await session.queue.get()
                if frame is None:
                    await ws.close()
                    return
                if self.faults.silent:
                    continue
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_str(frame)
                self.frames_sent += 1
        except (ConnectionResetError, RuntimeError):
            return

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval_s)
            now = self.now_exchange_ns()
            for session in list(self.sessions):
                for frame in self.heartbeat_frames(session, now):
                    self.send(session, frame)

    async def _market_loop(self) -> None:
        interval = 1.0 / self.config.rate_hz if self.config.rate_hz > 0 else 1.0
        next_at = time.monotonic()
        while True:
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # behind schedule: still let clients' writers and readers run
                if delay < -1.0:
                    next_at = time.monotonic()  # fell far behind (a paused loop): do not burst
            ts = self.now_exchange_ns()
            for market in list(self.markets.values()):  # markets listed or delisted while running
                self.publish_step(market.step(ts))
            self._inject_bad_frames()

    def publish_step(self, step: MarketStep) -> None:
        """Renders one market step for every subscribed client, applying per-symbol faults."""
        faults = self.faults
        symbol = step.symbol
        step.corrupt_checksum = Faults.take(faults.corrupt_checksums, symbol)
        drop = Faults.take(faults.drop_updates, symbol)
        duplicate = Faults.take(faults.duplicate_updates, symbol)
        reorder = Faults.take(faults.reorder_updates, symbol)
        for session in list(self.sessions):
            trades, book, bbo = self.render(session, step)
            if faults.heartbeats_only:
                continue
            for frame in trades:
                self.send(session, frame)
            if drop:
                book = []
            elif duplicate:
                book = book + book
            if reorder:
                session.held.setdefault(symbol, []).extend(book)
                book = []
            elif book and session.held.get(symbol):
                book = book + session.held.pop(symbol)
            for frame in book:
                self.send(session, frame)
            for frame in bbo:
                self.send(session, frame)

    def _inject_bad_frames(self) -> None:
        faults = self.faults
        frames: list[str | bytes] = []
        if faults.malformed_frames > 0:
            faults.malformed_frames -= 1
            frames.append('{"stream": "broken", "data": {"e": ')
        if faults.invalid_utf8_frames > 0:
            faults.invalid_utf8_frames -= 1
            frames.append(b'{"stream":"\xff\xfe\xfd"}')
        if faults.oversized_frames > 0:
            faults.oversized_frames -= 1
            frames.append('{"pad":"' + "x" * faults.oversized_bytes + '"}')
        for frame in frames:
            for session in list(self.sessions):
                self.send(session, frame)


def _fits(times: deque[float], limit: int, window_s: float) -> bool:
    """Records one event in a sliding window of ``window_s`` seconds; False when it is above ``limit``."""
    now = time.monotonic()
    while times and times[0] <= now - window_s:
        times.popleft()
    if len(times) >= limit:
        return False
    times.append(now)
    return True

"""Binance spot (exchange id ``binance``): combined websocket streams and the REST depth snapshot.

Streams (one combined connection, ``/stream?streams=a/b/c``): ``<sym>@trade``, ``<sym>@depth@100ms``,
``<sym>@bookTicker``. Frames arrive wrapped as ``{"stream": ..., "data": ...}``.

Book sync (Binance's documented procedure for a local order book):
1. buffer depth events; fetch ``GET /api/v3/depth?symbol=S&limit=N``;
2. drop buffered events with ``u <= lastUpdateId``;
3. the first applied event must straddle the snapshot: ``U <= lastUpdateId + 1 <= u``; if even the
   first remaining event starts after ``lastUpdateId + 1`` the snapshot is too old: fetch another;
4. afterwards every event continues the previous one: ``U == previous u + 1`` (an event with
   ``u <= previous u`` is a stale repeat and is ignored; one with ``U > previous u + 1`` is a gap).
A gap resets that symbol only: ``gap`` event, book cleared, new snapshot, ``resync`` and ``epoch + 1``.

Timestamps: trades carry ``T`` (trade time, ms), depth events ``E`` (event time, ms); spot
``@bookTicker`` carries no event time, so its ``ts_exchange`` is null. The REST snapshot has no time
either: its rows have a null ``ts_exchange``.

Connection facts (https://developers.binance.com/en/docs/products/spot/web-socket-streams, checked
2026-12-05), declared on the dialect and enforced by :mod:`collectors.pacing` and the simulator:
- a connection is valid for 24 hours, then closed: connections rotate (make-before-break) at 23 h;
- a ``serverShutdown`` event announces that the server will close the connection soon: it is a
  ``server_shutdown`` feed event and the connection rotates at once (not a parse error);
- at most 5 incoming messages per second per connection (pings and subscribe requests counted); a
  connection above it is closed (code 1008, "Too many requests"); at most 300 connection attempts
  per 5 minutes per IP; at most 1024 streams per connection.
- stream names are lower-case symbols; symbols that are not ASCII (they exist on spot) are
  percent-encoded in the URL (UTF-8), and the server decodes them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote as url_quote

import orjson

from schemas import RecordBuffer

from .. import book as book_engine
from ..base import ExchangeDialect, Normaliser, Subscription
from ..book import SyncedBook, parse_levels
from ..events import (
    ParseError,
    bbo_side,
    check_int64,
    check_symbol,
    decode_json,
    emit_event,
    ms_to_ns,
    positive_price,
)
from ..instruments import Instrument
from ..pacing import VenueLimits
from ..simulator import ClientSession, ExchangeSimulator, MarketStep, SimulatorConfig
from .binance_instruments import exchange_info_body, parse_exchange_info

if TYPE_CHECKING:
    import aiohttp
    from aiohttp import web

EXCHANGE = "binance"

#: Quote assets, longest first so that e.g. ``FDUSD`` wins over ``USD``-like suffixes.
QUOTE_ASSETS: tuple[str, ...] = tuple(
    sorted(
        (
            "USDT",
            "USDC",
            "FDUSD",
            "TUSD",
            "BUSD",
            "USDP",
            "DAI",
            "BTC",
            "ETH",
            "BNB",
            "EUR",
            "TRY",
            "BRL",
            "GBP",
            "AUD",
            "JPY",
            "RUB",
            "UAH",
            "ZAR",
            "PLN",
            "RON",
            "ARS",
            "MXN",
            "COP",
            "CZK",
            "IDRT",
            "BIDR",
            "XRP",
            "DOGE",
            "TRX",
            "DOT",
            "SOL",
            "USD",
        ),
        key=len,
        reverse=True,
    )
)

#: Events buffered per symbol while a snapshot is awaited; beyond it the oldest are dropped (counted).
MAX_PENDING_EVENTS = 20_000
SNAPSHOT_LIMIT = 1000


def split_binance_symbol(native: str) -> tuple[str, str]:
    """``ETHUSDT`` -> ``("ETH", "USDT")`` using the known quote assets; ``ParseError`` if none matches."""
    upper = native.upper()
    for quote in QUOTE_ASSETS:
        if upper.endswith(quote) and len(upper) > len(quote):
            return upper[: -len(quote)], quote
    raise ParseError(f"cannot split symbol {native[:40]!r} into base and quote")


def side_of_buyer_maker(is_buyer_maker: Any) -> str:
    """Taker side from Binance's ``m`` flag: the buyer is the maker, so the taker sold."""
    if is_buyer_maker is True:
        return "sell"
    if is_buyer_maker is False:
        return "buy"
    raise ParseError(f"trade flag m is not a boolean: {str(is_buyer_maker)[:20]!r}", channel="trades")


class BinanceFamilyNormaliser(Normaliser):
    """Shared skeleton of Binance-style combined-stream normalisers (spot and USD-M futures).

    Subclasses set the exchange id, symbol normalisation and the sequence rule of depth events.
    """

    exchange: ClassVar[str] = EXCHANGE
    #: The depth sequence rule of the compiled frame scanner: ``spot`` (``U == previous u + 1``) or
    #: ``futures`` (``pu == previous u``; the first event after a snapshot is the Python path's). The
    #: scanner stands in for this class's own methods, so only a class that declares the rule itself
    #: gets one: a subclass that changes a method (a parser under test, a fix) runs the Python path
    #: until it declares the rule again.
    frame_scan_rule: ClassVar[str | None] = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.books: dict[str, SyncedBook] = {}
        self.symbols: dict[str, str] = {}  # native (upper) -> normalised
        self.last_trade_id: dict[str, int] = {}
        # native symbols whose book took a snapshot and still waits for the straddling first event
        # (the futures rule; spot never fills it)
        self.awaiting_first: set[str] = set()
        #: the compiled frame scanner (see :func:`frame_scanner`); when there is one, its ``on_frame``
        #: (Normaliser.on_frame with the scanner first) and ``on_frames`` are this normaliser's
        self._scanner: Any = frame_scanner(self)
        if self._scanner is not None:
            self.on_frame = self._scanner.on_frame  # type: ignore[method-assign]
            self.on_frames = self._scanner.on_frames  # type: ignore[method-assign]

    # -- symbols -------------------------------------------------------------------------------
    def normalise(self, native: str) -> str:
        """Normalised symbol of a native one (cached)."""
        sym = self.symbols.get(native)
        if sym is None:
            sym = check_symbol(self.normalise_native(native))
            self.symbols[native] = sym
            if self._scanner is not None:
                self._scanner.register(native, sym)
        return sym

    def normalise_native(self, native: str) -> str:
        """Exchange-specific normalisation."""
        base, quote = split_binance_symbol(native)
        return f"{base}-{quote}"

    def book_of(self, native: str) -> SyncedBook:
        """The synced book of a native symbol (created on first use)."""
        book = self.books.get(native)
        if book is None:
            book = SyncedBook(self.exchange, self.normalise(native), self.limits)
            self.books[native] = book
            if self._scanner is not None:
                self._scanner.set_book(native, book)
        return book

    # -- frames --------------------------------------------------------------------------------
    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        msg = decode_json(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not a JSON object")
        stream = msg.get("stream")
        data = msg.get("data")
        if msg.get("e") == "serverShutdown" or (isinstance(data, dict) and data.get("e") == "serverShutdown"):
            self.on_server_shutdown(ts_recv, data if isinstance(data, dict) else msg, out)
            return
        if not isinstance(stream, str) or not isinstance(data, dict):
            if "result" in msg and "id" in msg:
                return  # reply to a SUBSCRIBE/LIST_SUBSCRIPTIONS request
            raise ParseError("not a combined-stream frame (no stream/data)")
        at = stream.find("@")
        if at <= 0:
            raise ParseError(f"unknown stream {stream[:60]!r}")
        kind = stream[at + 1 :]
        if kind == "trade":
            self.on_trade(ts_recv, data, out)
        elif kind.startswith("depth"):
            if kind == "depthSnapshot":
                self.on_snapshot(ts_recv, stream[:at].upper(), data, out)
            else:
                self.on_depth(ts_recv, data, out)
        elif kind == "bookTicker":
            self.on_book_ticker(ts_recv, data, out)
        else:
            self.on_other_stream(ts_recv, stream, kind, data, out)

    def on_other_stream(
        self, ts_recv: int, stream: str, kind: str, data: dict[str, Any], out: RecordBuffer
    ) -> None:
        """A stream other than trades, depth and bookTicker (futures: mark price, liquidations...)."""
        raise ParseError(f"unknown stream {stream[:60]!r}")

    def on_server_shutdown(self, ts_recv: int, data: dict[str, Any], out: RecordBuffer) -> None:
        """``serverShutdown``: the server will close this connection soon; ask for a rotation now."""
        self.rotation_requested = True
        emit_event(out, self.exchange, None, "connection", ts_recv, "server_shutdown", {"E": data.get("E")})

    def on_trade(self, ts_recv: int, data: dict[str, Any], out: RecordBuffer) -> None:
        """A ``@trade`` event: one trade row (duplicates by id across reconnects are dropped)."""
        native = data["s"]
        symbol = self.normalise(native)
        trade_id = check_int64(data["t"], "trade id", symbol, "trades")
        price = positive_price(data["p"])
        size = positive_price(data["q"], "size")
        ts_exchange = ms_to_ns(data["T"])
        side = side_of_buyer_maker(data.get("m"))
        last = self.last_trade_id.get(native)
        if last is not None and trade_id <= last:
            emit_event(out, self.exchange, symbol, "trades", ts_recv, "duplicate", {"trade_id": trade_id})
            return
        self.last_trade_id[native] = trade_id
        self.emit_trade(out, symbol, ts_exchange, ts_recv, str(trade_id), price, size, side)

    def on_book_ticker(self, ts_recv: int, data: dict[str, Any], out: RecordBuffer) -> None:
        """A ``@bookTicker`` event: one bbo row."""
        symbol = self.normalise(data["s"])
        seq = check_int64(data["u"], "update id u", symbol, "bbo")
        bid_price, bid_size = bbo_side(data["b"], data["B"], "bid")
        ask_price, ask_size = bbo_side(data["a"], data["A"], "ask")
        ts_exchange = self.book_ticker_time(data)
        self.emit_bbo(out, symbol, ts_exchange, ts_recv, bid_price, bid_size, ask_price, ask_size, seq)

    def book_ticker_time(self, data: dict[str, Any]) -> int | None:
        """Exchange time of a bookTicker event: spot sends none."""
        return None

    def on_snapshot(self, ts_recv: int, native: str, data: dict[str, Any], out: RecordBuffer) -> None:
        """An injected REST depth snapshot: reset the book, then apply the buffered events."""
        book = self.book_of(native)
        last_update_id = check_int64(data["lastUpdateId"], "lastUpdateId", book.symbol, "book")
        bids, asks = data["bids"], data["asks"]
        if not isinstance(bids, list) or not isinstance(asks, list):
            raise ParseError("snapshot bids/asks are not lists", book.symbol, "book")
        pending = book.pending
        book.pending = []
        self.snapshot_requests.discard(native)
        book.apply_snapshot(out, self.snapshot_time(data), ts_recv, bids, asks, last_update_id)
        for event_recv, event in pending:
            if not book.synced:
                book.pending.append((event_recv, event))  # a replayed event broke the sync again
                continue
            self.apply_depth(event_recv, book, native, event, out)

    def snapshot_time(self, data: dict[str, Any]) -> int | None:
        """Exchange time of a REST snapshot: spot sends none."""
        return None

    def on_depth(self, ts_recv: int, data: dict[str, Any], out: RecordBuffer) -> None:
        """A depth update: buffered until the book is synced, then applied under the sequence rule."""
        native = data["s"]
        book = self.book_of(native)
        first = check_int64(data["U"], "depth update id U", book.symbol, "book")
        last = check_int64(data["u"], "depth update id u", book.symbol, "book")
        if first > last + 1:
            raise ParseError("depth update ids U/u are not a valid range", book.symbol, "book")
        if not book.synced:
            self.buffer(book, native, ts_recv, data, out)
            return
        self.apply_depth(ts_recv, book, native, data, out)

    def validate_levels(self, book: SyncedBook, data: dict[str, Any]) -> None:
        """:class:`ParseError` when an event that is not applied now (buffered, or already covered by
        the snapshot) holds levels no book may take."""
        limits = self.limits
        parse_levels(data["b"], limits.max_price, limits.max_size)
        parse_levels(data["a"], limits.max_price, limits.max_size)
        ms_to_ns(data["E"])

    def buffer(
        self, book: SyncedBook, native: str, ts_recv: int, data: dict[str, Any], out: RecordBuffer
    ) -> None:
        """Keeps an event until the snapshot arrives, and asks for the snapshot (a bad event is a parse
        error now, not when it is applied)."""
        self.validate_levels(book, data)
        if len(book.pending) >= MAX_PENDING_EVENTS:
            dropped = book.pending.pop(0)
            emit_event(
                out,
                self.exchange,
                book.symbol,
                "book",
                ts_recv,
                "dropped",
                {"reason": "snapshot wait buffer full", "u": dropped[1].get("u")},
            )
        book.pending.append((ts_recv, data))
        self.snapshot_requests.add(native)

    def apply_depth(
        self, ts_recv: int, book: SyncedBook, native: str, data: dict[str, Any], out: RecordBuffer
    ) -> None:
        """Applies one event to a synced book, or detects a gap (Binance spot rule)."""
        first, last = data["U"], data["u"]
        prev = book.last_seq
        assert prev is not None
        if last <= prev:
            self.validate_levels(book, data)
            return  # entirely before the book's state (snapshot overlap or repeat): nothing new
        if first > prev + 1:
            snapshot_overlap = book.snapshots > 0 and book.book.depth("bid") + book.book.depth("ask") > 0
            book.gap(
                out,
                ts_recv,
                "gap",
                {
                    "expected_U": prev + 1,
                    "U": first,
                    "u": last,
                    "missing": first - prev - 1,
                    "after_snapshot": snapshot_overlap,
                },
            )
            self.buffer(book, native, ts_recv, data, out)
            return
        ts_exchange = ms_to_ns(data["E"])
        self.apply_levels(ts_recv, ts_exchange, book, data, last, out)

    def apply_levels(
        self,
        ts_recv: int,
        ts_exchange: int,
        book: SyncedBook,
        data: dict[str, Any],
        seq: int,
        out: RecordBuffer,
    ) -> None:
        """Applies both sides of a depth event and advances the book's sequence."""
        flags = self.time_flags.flags(ts_exchange, ts_recv)
        book.apply_update(out, ts_exchange, ts_recv, data["b"], data["a"], seq, flags)
        book.last_seq = seq
        book.check_crossed(out, ts_recv, {"u": seq})

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """Every book must be rebuilt from a new snapshot after a disconnect."""
        for native, book in self.books.items():
            if book.synced or book.pending:
                book.reset()
                self.snapshot_requests.discard(native)


def frame_scanner(normaliser: BinanceFamilyNormaliser) -> Any:
    """The compiled frame scanner of a normaliser (``collectors._booknative.BinanceScanner``), or None.

    It reads the bytes of the steady-state frames (a depth update continuing a synced book, a trade
    with a new id, a bookTicker) and appends the rows :meth:`BinanceFamilyNormaliser.handle` would,
    sharing this normaliser's state (books, last trade ids, time flags); every other frame, and every
    frame it cannot prove plain, is left to :meth:`~BinanceFamilyNormaliser.handle` untouched. Its
    ``on_frame`` is :meth:`Normaliser.on_frame` with the scanner first (a frame it takes counts in
    ``frames``; a book crossed by it gets :meth:`SyncedBook.check_crossed`'s event; a held-back skew
    report is made as :meth:`Normaliser.on_frame` makes it), and the normaliser's ``on_frame``. Active
    with the native implementation (:data:`collectors.book.IMPLEMENTATION`) for a class that declares
    :attr:`BinanceFamilyNormaliser.frame_scan_rule` itself, unless
    ``TICKTAPE_NO_FRAME_SCAN=1``.
    """
    native = book_engine._native
    if native is None or os.environ.get("TICKTAPE_NO_FRAME_SCAN", "") not in ("", "0"):
        return None
    rule = type(normaliser).__dict__.get("frame_scan_rule")
    if rule not in ("spot", "futures"):
        return None
    if not isinstance(normaliser.time_flags, native.TimeFlags):
        return None
    return native.BinanceScanner(
        normaliser.exchange,
        rule == "futures",
        normaliser.last_trade_id,
        normaliser.awaiting_first,
        normaliser.limits,
        normaliser.time_flags,
        normaliser,
        Normaliser.on_frame,
    )


class BinanceNormaliser(BinanceFamilyNormaliser):
    """Binance spot frames -> records."""

    exchange: ClassVar[str] = EXCHANGE
    frame_scan_rule: ClassVar[str | None] = "spot"


def snapshot_frame(native_symbol: str, body: str | bytes) -> str:
    """Wraps a REST depth snapshot body as a generated capture frame (DESIGN.md, capture format)."""
    text = body.decode() if isinstance(body, bytes) else body
    return f'{{"stream":"{native_symbol.lower()}@depthSnapshot","generated":true,"data":{text}}}'


class BinanceDialect(ExchangeDialect):
    """Binance spot: endpoints, subscriptions, snapshots, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://stream.binance.com:9443"
    default_rest_url: ClassVar[str | None] = "https://api.binance.com"
    #: Binance allows 1024 streams per connection; a shorter URL keeps well inside proxies' limits.
    max_streams_per_connection: ClassVar[int] = 200
    #: 5 incoming messages/s per connection; 300 connection attempts per 5 minutes per IP
    limits: ClassVar[VenueLimits] = VenueLimits(
        connections_per_window=300, connection_window_s=300.0, messages_per_second=5
    )
    #: every connection is closed at 24 h
    forced_disconnect_s: ClassVar[float | None] = 24 * 3600.0
    #: book rows carry Binance's update ids, the same on every connection: rotations hand over there
    book_handover_by_seq: ClassVar[bool] = True
    depth_stream: ClassVar[str] = "depth@100ms"
    snapshot_path: ClassVar[str] = "/api/v3/depth"
    normaliser_class: ClassVar[type[BinanceFamilyNormaliser]] = BinanceNormaliser

    def native_symbol(self, symbol: str) -> str:
        return symbol.replace("-", "").replace("/", "").upper()

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(self.normaliser_class().normalise_native(native.upper()))

    def streams(self, sub: Subscription) -> list[str]:
        """Stream names of a subscription (lower-case symbols)."""
        names = {"trades": "trade", "book": self.depth_stream, "bbo": "bookTicker"}
        return [f"{s.lower()}@{names[c]}" for s in sub.symbols for c in sub.channels]

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        return f"{ws_url.rstrip('/')}/stream?streams={stream_query(self.streams(sub))}"

    def new_normaliser(self) -> Normaliser:
        return self.normaliser_class()

    def snapshot_request_weight(self, native_symbol: str) -> int:
        # Request weight of GET depth with limit 1000 (Binance documents 50 for 501-1000 levels).
        return 50

    async def fetch_snapshot(self, http: aiohttp.ClientSession, rest_url: str, native_symbol: str) -> str:
        url = f"{rest_url.rstrip('/')}{self.snapshot_path}"
        async with http.get(
            url, params={"symbol": native_symbol.upper(), "limit": str(SNAPSHOT_LIMIT)}
        ) as resp:
            resp.raise_for_status()
            body = await resp.read()
        return snapshot_frame(native_symbol, body)

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return BinanceSimulator(self, config)

    # -- instruments (collectors/venues/binance_instruments.py) ----------------------------------
    #: the venue's exchangeInfo path and its request weight
    instruments_path: ClassVar[str] = "/api/v3/exchangeInfo"
    instruments_weight: ClassVar[int] = 20

    def instruments_paths(self) -> list[str]:
        return [self.instruments_path]

    def instruments_request_weight(self, path: str) -> int:
        return self.instruments_weight

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return parse_exchange_info(self, body, ts_recv)


def stream_query(streams: Sequence[str]) -> str:
    """The ``streams=`` value: names joined by ``/``, non-ASCII symbols percent-encoded (UTF-8)."""
    return "/".join(url_quote(name, safe="@_-.") for name in streams)


STREAM_CHANNELS = {"trade": "trades", "bookTicker": "bbo"}


def stream_channel(stream_kind: str) -> str | None:
    """Our channel for a Binance stream kind (``trade``, ``depth@100ms``, ``bookTicker``)."""
    if stream_kind.startswith("depth"):
        return "book"
    return STREAM_CHANNELS.get(stream_kind)


class BinanceSimulator(ExchangeSimulator):
    """Binance spot on loopback: ``/stream?streams=...`` (combined) and ``GET /api/v3/depth``."""

    ws_paths: tuple[str, ...] = ("/stream", "/ws")

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        # frames of the last step, rendered once and shared by every client
        self._rendered: tuple[MarketStep, tuple[list[str], list[str], list[str]]] | None = None

    def _subscribe(self, session: ClientSession, streams: Sequence[str]) -> None:
        for name in streams:
            symbol, _, kind = name.partition("@")
            channel = stream_channel(kind)
            if channel is not None and symbol.upper() in self.markets:
                session.subscriptions.add((channel, symbol.upper()))

    async def on_open(self, session: ClientSession) -> None:
        streams = session.request.query.get("streams", "")
        self._subscribe(session, [s for s in streams.split("/") if s])

    async def on_message(self, session: ClientSession, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.send(session, '{"error":{"code":3,"msg":"Invalid JSON"}}')
            return
        if isinstance(msg, dict) and msg.get("method") == "SUBSCRIBE" and isinstance(msg.get("params"), list):
            self._subscribe(session, [str(p) for p in msg["params"]])
            self.send(session, orjson.dumps({"result": None, "id": msg.get("id")}).decode())

    def step_frames(self, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        """Frames of one market step for a fully subscribed client (rendered once per step)."""
        if self._rendered is not None and self._rendered[0] is step:
            return self._rendered[1]
        lower, ms = step.symbol.lower(), step.ts_ns // 1_000_000
        trades = [
            orjson.dumps(
                {
                    "stream": f"{lower}@trade",
                    "data": {
                        "e": "trade",
                        "E": ms,
                        "s": step.symbol,
                        "t": t.trade_id,
                        "p": t.price,
                        "q": t.size,
                        "T": ms,
                        "m": t.side == "sell",
                        "M": True,
                    },
                }
            ).decode()
            for t in step.trades
        ]
        book = [self.depth_frame(step, ms)]
        (bp, bq), (ap, aq) = step.model.best()
        bbo = [self.book_ticker_frame(step, ms, bp, bq, ap, aq)]
        self._rendered = (step, (trades, book, bbo))
        return trades, book, bbo

    def depth_frame(self, step: MarketStep, ms: int) -> str:
        """A ``@depth`` event of one step."""
        return orjson.dumps(
            {
                "stream": f"{step.symbol.lower()}@depth@100ms",
                "data": {
                    "e": "depthUpdate",
                    "E": ms,
                    "s": step.symbol,
                    "U": step.first_update_id,
                    "u": step.update_id,
                    "b": step.bids,
                    "a": step.asks,
                },
            }
        ).decode()

    def book_ticker_frame(self, step: MarketStep, ms: int, bp: str, bq: str, ap: str, aq: str) -> str:
        """A ``@bookTicker`` event of one step (spot: no event time)."""
        return orjson.dumps(
            {
                "stream": f"{step.symbol.lower()}@bookTicker",
                "data": {"u": step.update_id, "s": step.symbol, "b": bp, "B": bq, "a": ap, "A": aq},
            }
        ).decode()

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        trades, book, bbo = self.step_frames(step)
        sym = step.symbol
        return (
            trades if session.subscribed("trades", sym) else [],
            book if session.subscribed("book", sym) else [],
            bbo if session.subscribed("bbo", sym) else [],
        )

    def snapshot_body(self, symbol: str, limit: int) -> dict[str, Any]:
        """The REST depth snapshot body of a symbol."""
        model = self.markets[symbol]
        bids, asks = model.top(limit)
        return {"lastUpdateId": model.update_id, "bids": bids, "asks": asks}

    async def depth_handler(self, request: web.Request) -> web.Response:
        """``GET depth?symbol=S&limit=N``."""
        from aiohttp import web  # only a serving simulator needs it (collectors/simulator.py)

        self.rest_requests += 1
        fault = self.rest_fault_response()
        if fault is not None:
            return fault
        symbol = request.query.get("symbol", "").upper()
        if symbol not in self.markets:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        try:
            limit = min(5000, max(1, int(request.query.get("limit", "100"))))
        except ValueError:
            return web.json_response(
                {"code": -1100, "msg": "Illegal characters in parameter 'limit'."}, status=400
            )
        return web.json_response(self.snapshot_body(symbol, limit), dumps=lambda o: orjson.dumps(o).decode())

    def rest_routes(self) -> list[web.RouteDef]:
        from aiohttp import web

        return [web.get(self.dialect_snapshot_path(), self.depth_handler)]

    def instrument_routes(self) -> list[web.RouteDef]:
        from aiohttp import web  # only a serving simulator needs it

        path: str = getattr(self.dialect, "instruments_path", "/api/v3/exchangeInfo")
        return [web.get(path, self.exchange_info_handler)]

    async def exchange_info_handler(self, request: web.Request) -> web.Response:
        """``GET exchangeInfo``: this simulator's markets."""
        from aiohttp import web

        fault = self.instruments_fault_response()
        if fault is not None:
            return fault
        body = exchange_info_body(self.dialect.exchange_id, self.markets)
        return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())

    def dialect_snapshot_path(self) -> str:
        """Path of the snapshot endpoint (the dialect's)."""
        path: str = getattr(self.dialect, "snapshot_path", "/api/v3/depth")
        return path


DIALECT_CLASS = BinanceDialect

"""Bitstamp (exchange id ``bitstamp``): websocket API v2 ``wss://ws.bitstamp.net`` + REST order book.

Protocol, as Bitstamp documents it (https://www.bitstamp.net/websocket/v2/ and
https://www.bitstamp.net/api/#tag/Order-book, checked 2026-12-05):
- ``{"event":"bts:subscribe","data":{"channel":"<channel>_<pair>"}}`` per channel, acknowledged by
  ``bts:subscription_succeeded``; pushes are ``{"event":"data"|"trade","channel":...,"data":...}``;
- ``{"event":"bts:heartbeat"}`` keeps a connection alive (answered with the same event);
- ``bts:request_reconnect``: the server asks clients to reconnect (maintenance); recorded as a
  ``reconnect_requested`` feed event (the connection is then closed by the server and reopened).

Channels:
- ``live_trades_<pair>``: ``{id, amount_str, price_str, type, microtimestamp, ...}``; ``type`` is the
  taker side (0 buy, 1 sell); ``microtimestamp`` (µs, a string) is the exchange time. Trades are
  de-duplicated by ``id``.
- ``diff_order_book_<pair>``: changed levels ``{microtimestamp, bids, asks}``, size 0 removes a level.
  There is no sequence number: the book is synced as Bitstamp documents, from a REST snapshot
  ``GET /api/v2/order_book/<pair>/`` (with its ``microtimestamp``): changes buffered until the snapshot
  arrives, those at or before its ``microtimestamp`` dropped, the rest applied in order. A lost change
  cannot be detected (``sequenced_book = False``); a reconnect starts a new snapshot and epoch.
- ``order_book_<pair>``: the top 100 levels after every change, which is Bitstamp's only top-of-book
  stream: its best levels are the ``bbo`` rows (``seq`` null).

Symbols: ``btcusd`` -> ``BTC-USD``. Bitstamp has spot markets only.
Checked against the shared recording ``bitstamp/bitstamp_cryptofeed`` (2022, v2 ``live_trades`` and
``diff_order_book``; the recorder fetched the REST snapshots before subscribing, kept in the
``requests`` file beside it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from aiohttp import web

from schemas import RecordBuffer

from ..base import ExchangeDialect, Normaliser, Subscription
from ..book import SymbolBooks, SyncedBook
from ..dedupe import RecentTradeIds
from ..events import ParseError, check_symbol, emit_event, non_negative_size, positive_price
from ..instruments import Instrument
from ..simulator import ClientSession, ExchangeSimulator, MarketStep, SimulatorConfig
from . import spot_instruments

if TYPE_CHECKING:
    import aiohttp

EXCHANGE = "bitstamp"
#: Quote currencies of Bitstamp pairs, longest first (``usdt`` before ``usd``).
QUOTES: tuple[str, ...] = ("pyusd", "usdt", "usdc", "eurt", "usd", "eur", "gbp", "btc", "eth", "pax")
#: Changes kept per pair while its snapshot is awaited.
MAX_PENDING = 10_000
#: Our channel -> Bitstamp channel prefix.
_CHANNELS = {"trades": "live_trades", "book": "diff_order_book", "bbo": "order_book"}
_TAKER_SIDE = {0: "buy", 1: "sell"}


def split_pair(pair: str) -> tuple[str, str]:
    """``btcusd`` -> ``("BTC", "USD")``; ``ParseError`` when no known quote ends it."""
    lower = pair.lower()
    for quote in QUOTES:
        if lower.endswith(quote) and len(lower) > len(quote):
            return lower[: -len(quote)].upper(), quote.upper()
    raise ParseError(f"cannot split pair {pair[:40]!r} into base and quote")


def _micros(value: Any, what: str = "microtimestamp") -> int:
    """Bitstamp's microsecond timestamp (a decimal string) as integer ns."""
    if isinstance(value, str) and value.isdigit() and len(value) <= 17:
        return int(value) * 1_000
    raise ParseError(f"bad {what} {str(value)[:40]!r}")


def snapshot_frame(pair: str, body: str | bytes) -> str:
    """Wraps a REST order book as a generated capture frame (DESIGN.md, capture format)."""
    text = body.decode() if isinstance(body, bytes) else body
    return f'{{"event":"snapshot","channel":"diff_order_book_{pair}","generated":true,"data":{text}}}'


class BitstampNormaliser(Normaliser):
    """Bitstamp v2 frames -> records."""

    exchange: ClassVar[str] = EXCHANGE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbols = SymbolBooks(self.exchange, self.normalise_pair)
        self.trade_ids = RecentTradeIds()
        #: pair -> time (ns) of its REST snapshot, and of the last change applied
        self.snapshot_time: dict[str, int] = {}
        self.book_time: dict[str, int] = {}

    @staticmethod
    def normalise_pair(pair: Any) -> str:
        """``btcusd`` -> ``BTC-USD``."""
        if not isinstance(pair, str):
            raise ParseError("pair is not a string")
        base, quote = split_pair(pair)
        return f"{base}-{quote}"

    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not an object")
        event, channel, data = msg.get("event"), msg.get("channel"), msg.get("data")
        if event in ("bts:subscription_succeeded", "bts:unsubscription_succeeded", "bts:heartbeat"):
            return
        if event == "bts:request_reconnect":
            emit_event(out, self.exchange, None, "connection", ts_recv, "reconnect_requested", {})
            return
        if event == "bts:error":
            emit_event(
                out, self.exchange, None, "connection", ts_recv, "venue_error", {"data": str(data)[:500]}
            )
            return
        if not isinstance(channel, str) or not isinstance(data, dict):
            raise ParseError(f"unexpected message {str(event)[:40]!r}")
        kind, _, pair = channel.rpartition("_")
        if kind == "live_trades" and event == "trade":
            self.on_trade(ts_recv, pair, data, out)
        elif kind == "diff_order_book" and event == "data":
            self.on_diff(ts_recv, pair, data, out)
        elif kind == "diff_order_book" and event == "snapshot" and msg.get("generated") is True:
            self.on_snapshot(ts_recv, pair, data, out)
        elif kind == "order_book" and event == "data":
            self.on_top(ts_recv, pair, data, out)
        else:
            raise ParseError(f"unknown channel {channel[:60]!r} or event {str(event)[:40]!r}")

    def on_trade(self, ts_recv: int, pair: str, data: dict[str, Any], out: RecordBuffer) -> None:
        """A ``live_trades`` push: one row (a repeated ``id`` is dropped)."""
        symbol = self.symbols.name(pair)
        trade_id = data["id"]
        if not isinstance(trade_id, int) or isinstance(trade_id, bool) or trade_id < 0:
            raise ParseError(f"bad trade id {str(trade_id)[:40]!r}", symbol, "trades")
        side = _TAKER_SIDE.get(data["type"]) if not isinstance(data["type"], bool) else None
        if side is None:
            raise ParseError(f"unknown trade type {str(data['type'])[:20]!r}", symbol, "trades")
        price = positive_price(data["price_str"])
        size = positive_price(data["amount_str"], "size")
        ts_exchange = _micros(data["microtimestamp"])
        tid = str(trade_id)
        if self.trade_ids.seen(pair, tid):
            emit_event(out, self.exchange, symbol, "trades", ts_recv, "duplicate", {"trade_id": tid})
            return
        self.emit_trade(out, symbol, ts_exchange, ts_recv, tid, price, size, side)

    def on_snapshot(self, ts_recv: int, pair: str, data: dict[str, Any], out: RecordBuffer) -> None:
        """The REST order book: reset the book, then apply the buffered changes that are newer."""
        book = self.symbols.book(pair)
        ts_book = _micros(data["microtimestamp"])
        bids, asks = data["bids"], data["asks"]
        if not isinstance(bids, list) or not isinstance(asks, list):
            raise ParseError("snapshot bids/asks are not lists", book.symbol, "book")
        pending = book.pending
        book.pending = []
        self.snapshot_requests.discard(pair)
        book.apply_snapshot(out, ts_book, ts_recv, bids, asks, None)
        self.snapshot_time[pair] = self.book_time[pair] = ts_book
        for event_recv, event in pending:
            self.apply_diff(event_recv, book, pair, event, out)

    def on_diff(self, ts_recv: int, pair: str, data: dict[str, Any], out: RecordBuffer) -> None:
        """A ``diff_order_book`` push: buffered until the book has its snapshot, then applied."""
        book = self.symbols.book(pair)
        _micros(data["microtimestamp"])  # validated on arrival, not only when applied
        if not book.synced:
            if len(book.pending) >= MAX_PENDING:
                book.pending.pop(0)
                emit_event(
                    out,
                    self.exchange,
                    book.symbol,
                    "book",
                    ts_recv,
                    "dropped",
                    {"reason": "snapshot wait buffer full"},
                )
            book.pending.append((ts_recv, data))
            self.snapshot_requests.add(pair)
            return
        self.apply_diff(ts_recv, book, pair, data, out)

    def apply_diff(
        self, ts_recv: int, book: SyncedBook, pair: str, data: dict[str, Any], out: RecordBuffer
    ) -> None:
        """Applies one change to a synced book; one at or before the snapshot's time is in it already."""
        ts_book = _micros(data["microtimestamp"])
        if ts_book <= self.snapshot_time.get(pair, 0):
            return
        last = self.book_time.get(pair, 0)
        if ts_book < last:
            # Bitstamp sends changes in time order: an older one is not a change of the book we hold.
            detail = {"microtimestamp": ts_book // 1_000, "last": last // 1_000}
            emit_event(out, self.exchange, book.symbol, "book", ts_recv, "out_of_order", detail)
            return
        flags = self.time_flags.flags(ts_book, ts_recv)
        book.apply_update(out, ts_book, ts_recv, data["bids"], data["asks"], None, flags)
        self.book_time[pair] = ts_book
        book.check_crossed(out, ts_recv, {"microtimestamp": ts_book // 1_000})

    def on_top(self, ts_recv: int, pair: str, data: dict[str, Any], out: RecordBuffer) -> None:
        """An ``order_book`` push (top 100 levels): its best bid and ask are the bbo row."""
        symbol = self.symbols.name(pair)
        bids, asks = data["bids"], data["asks"]
        if not isinstance(bids, list) or not isinstance(asks, list):
            raise ParseError("order_book bids/asks are not lists", symbol, "bbo")
        quote: list[float | None] = [None, None, None, None]
        for i, levels in enumerate((bids, asks)):
            if levels:
                quote[2 * i] = positive_price(levels[0][0])
                quote[2 * i + 1] = non_negative_size(levels[0][1])
        ts_exchange = _micros(data["microtimestamp"])
        self.emit_bbo(out, symbol, ts_exchange, ts_recv, quote[0], quote[1], quote[2], quote[3], None)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """Every book needs a new snapshot after a disconnect."""
        for pair, book in self.symbols.books.items():
            if book.synced or book.pending:
                book.reset()
            self.snapshot_requests.discard(pair)
        self.snapshot_time.clear()
        self.book_time.clear()


class BitstampDialect(ExchangeDialect):
    """Bitstamp v2: endpoint, subscriptions, REST snapshots, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://ws.bitstamp.net"
    default_rest_url: ClassVar[str | None] = "https://www.bitstamp.net"
    demo_symbols: ClassVar[tuple[str, ...]] = ("btcusd", "ethusd")
    #: changes carry no sequence number: a lost one cannot be detected
    sequenced_book: ClassVar[bool] = False
    app_ping: ClassVar[tuple[str, float] | None] = ('{"event":"bts:heartbeat"}', 30.0)
    max_streams_per_connection: ClassVar[int] = 300

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USD`` / ``BTC/USD`` / ``btcusd`` -> ``btcusd``."""
        return symbol.strip().lower().replace("-", "").replace("/", "")

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(BitstampNormaliser.normalise_pair(native.lower()))

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        return ws_url.rstrip("/") + "/"

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        return [
            orjson.dumps({"event": "bts:subscribe", "data": {"channel": f"{_CHANNELS[c]}_{pair}"}}).decode()
            for pair in sub.symbols
            for c in sub.channels
        ]

    def new_normaliser(self) -> Normaliser:
        return BitstampNormaliser()

    async def fetch_snapshot(self, http: aiohttp.ClientSession, rest_url: str, native_symbol: str) -> str:
        url = f"{rest_url.rstrip('/')}/api/v2/order_book/{native_symbol}/"
        async with http.get(url) as resp:
            resp.raise_for_status()
            body = await resp.read()
        return snapshot_frame(native_symbol, body)

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return BitstampSimulator(self, config)

    # -- instruments (collectors/venues/spot_instruments.py) -------------------------------------
    def instruments_paths(self) -> list[str]:
        return [spot_instruments.BITSTAMP_PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return spot_instruments.parse_bitstamp(self, body, ts_recv)


class BitstampSimulator(ExchangeSimulator):
    """Bitstamp v2 on loopback: ``/`` websocket, ``GET /api/v2/order_book/<pair>/``."""

    ws_paths = ("/",)
    #: levels of an ``order_book`` push
    TOP_LEVELS = 100

    async def on_message(self, session: ClientSession, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.send(
                session, '{"event":"bts:error","channel":"","data":{"code":null,"message":"Bad request"}}'
            )
            return
        event = msg.get("event") if isinstance(msg, dict) else None
        if event == "bts:heartbeat":
            self.send(session, '{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}')
            return
        channel = (msg.get("data") or {}).get("channel") if isinstance(msg, dict) else None
        if event not in ("bts:subscribe", "bts:unsubscribe") or not isinstance(channel, str):
            self.send(
                session, '{"event":"bts:error","channel":"","data":{"code":null,"message":"Bad request"}}'
            )
            return
        kind, _, pair = channel.rpartition("_")
        if kind not in _CHANNELS.values() or pair not in self.markets:
            self.send(
                session,
                orjson.dumps(
                    {
                        "event": "bts:error",
                        "channel": channel,
                        "data": {"code": None, "message": "Incorrect channel"},
                    }
                ).decode(),
            )
            return
        if event == "bts:subscribe":
            session.subscriptions.add((kind, pair))
            ack = "bts:subscription_succeeded"
        else:
            session.subscriptions.discard((kind, pair))
            ack = "bts:unsubscription_succeeded"
        self.send(session, orjson.dumps({"event": ack, "channel": channel, "data": {}}).decode())

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        pair = step.symbol
        micros = step.ts_ns // 1_000
        trades = [
            orjson.dumps(
                {
                    "data": {
                        "id": t.trade_id,
                        "timestamp": str(micros // 1_000_000),
                        "amount": float(t.size),
                        "amount_str": t.size,
                        "price": float(t.price),
                        "price_str": t.price,
                        "type": 0 if t.side == "buy" else 1,
                        "microtimestamp": str(micros),
                        "buy_order_id": 1_000_000 + t.trade_id,
                        "sell_order_id": 2_000_000 + t.trade_id,
                    },
                    "channel": f"live_trades_{pair}",
                    "event": "trade",
                }
            ).decode()
            for t in step.trades
            if session.subscribed("live_trades", pair)
        ]
        book = []
        if session.subscribed("diff_order_book", pair):
            data = {
                "timestamp": str(micros // 1_000_000),
                "microtimestamp": str(micros),
                "bids": step.bids,
                "asks": step.asks,
            }
            book.append(
                orjson.dumps({"data": data, "channel": f"diff_order_book_{pair}", "event": "data"}).decode()
            )
        top = []
        if session.subscribed("order_book", pair):
            bids, asks = step.model.top(self.TOP_LEVELS)
            data = {
                "timestamp": str(micros // 1_000_000),
                "microtimestamp": str(micros),
                "bids": bids,
                "asks": asks,
            }
            top.append(
                orjson.dumps({"data": data, "channel": f"order_book_{pair}", "event": "data"}).decode()
            )
        return trades, book, top

    async def order_book_handler(self, request: web.Request) -> web.Response:
        """``GET /api/v2/order_book/<pair>/``."""
        self.rest_requests += 1
        fault = self.rest_fault_response()
        if fault is not None:
            return fault
        pair = request.match_info["pair"]
        model = self.markets.get(pair)
        if model is None:
            return web.json_response({"status": "error", "reason": "Invalid currency pair"}, status=404)
        bids, asks = model.top()
        micros = self.now_exchange_ns() // 1_000
        body = {
            "timestamp": str(micros // 1_000_000),
            "microtimestamp": str(micros),
            "bids": bids,
            "asks": asks,
        }
        return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())

    def instrument_routes(self) -> list[web.RouteDef]:
        """The venue's instrument list: this simulator's markets."""
        return self.instruments_routes_of(
            [spot_instruments.BITSTAMP_PATH], lambda: spot_instruments.bitstamp_body(self.markets)
        )

    def rest_routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v2/order_book/{pair}/", self.order_book_handler)]


DIALECT_CLASS = BitstampDialect

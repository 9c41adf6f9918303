"""Upbit (exchange id ``upbit``): quotation websocket ``wss://api.upbit.com/websocket/v1``, KRW, BTC and USDT markets.

Documentation followed (checked 2026-12-05): https://docs.upbit.com/kr/reference/websocket-guide (request
format, ``PING``/``{"status":"UP"}``, errors), https://docs.upbit.com/kr/reference/websocket-trade,
https://docs.upbit.com/kr/reference/websocket-orderbook, https://docs.upbit.com/kr/reference/rate-limits.

Protocol:
- one request, a JSON array: ``[{"ticket":"<id>"},{"type":"trade","codes":[...]},{"type":"orderbook",
  "codes":[...]},{"format":"SIMPLE"}]``; codes are upper case (``KRW-BTC``: quote first). Each type first
  sends a snapshot (``stream_type``/``st`` ``SNAPSHOT``), then the real-time stream (``REALTIME``).
- frames arrive as binary websocket messages holding UTF-8 JSON: captured as that text (DESIGN.md,
  "Raw capture format"); a binary frame that is not UTF-8 is captured as ``b64:`` + base64 and becomes
  a ``parse_error`` (:meth:`UpbitDialect.decode_binary`).
- the server closes a connection idle for 120 s; the text ``PING`` keeps it open (answered by
  ``{"status":"UP"}``), sent every 60 s (``app_ping``). Errors come as ``{"error":{"name","message"}}``
  (a ``venue_error`` event).
- limits: 5 connection requests per second per IP; on a connection, 5 data requests per second and
  100 per minute (one request carries every subscription, so a connection sends one).

Formats: ``SIMPLE`` (abbreviated keys, what the collector asks for) and ``DEFAULT`` (full names) are both
read, as objects or as the ``*_LIST`` arrays of objects.

Trades (``trade``): ``sid``/``sequential_id`` (unique trade number: the trade id), ``tp``/``trade_price``,
``tv``/``trade_volume``, ``ab``/``ask_bid`` the taker side (``ASK``: the taker sold into the bids, ``BID``:
the taker bought), ``ttms``/``trade_timestamp`` (ms, ts_exchange). The snapshot repeats the latest trade
at every subscription: trades are de-duplicated by ``sid`` (``RecentTradeIds``).

Book (``orderbook``): every message is the whole top of the book (15 units by default; ``codes`` entries
``KRW-BTC.{n}`` ask for n units, the ``book_depth`` option) as units ``{ap, as, bp, bs}`` (one ask and
one bid level each, best first), ``tms``/``timestamp`` (ms, ts_exchange), and no sequence number: the
first message of a connection is the snapshot, later ones are turned into the levels that changed
(``SyncedBook.apply_full_book``); a lost message cannot be detected and needs no resync
(``sequenced_book = False``). A unit side with price 0 is an empty level (a side shorter than the other).

bbo: Upbit has no separate best bid/offer stream; its orderbook message is its top of book, so the first
unit of every orderbook message is a bbo row (``ts_exchange`` = ``tms``, ``seq`` null). ``ticker`` carries
no bid or ask, and the best quotes on trade messages arrive only with trades.

Symbols: native ``KRW-BTC`` (quote first) <-> ``BTC-KRW``. Reference data (the ``instruments`` dataset, ``all``
and globs): :mod:`.upbit_instruments`.

The shared recording (2021-04-17, ``SIMPLE``, subscribed with ``isOnlyRealtime``) matches the current
documentation for every field read here; it has no snapshot messages, and its ``ttms`` are whole seconds.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp
import orjson

from schemas import RecordBuffer

from ..base import DialectOptions, ExchangeDialect, Normaliser, Subscription
from ..book import SymbolBooks
from ..dedupe import RecentTradeIds
from ..events import ParseError, check_symbol, emit_event, ms_to_ns, non_negative_size, positive_price
from ..instruments import Instrument
from ..simulator import ClientSession, ExchangeSimulator, MarketStep, SimTrade, SimulatorConfig
from . import upbit_instruments

if TYPE_CHECKING:
    from aiohttp import web

EXCHANGE = "upbit"
WS_PATH = "/websocket/v1"
B64_PREFIX = b"b64:"
#: Quote currencies of Upbit's markets, by rank: of two, the higher ranked one is the quote.
QUOTE_RANK = {"KRW": 3, "USDT": 2, "BTC": 1}
#: Orderbook units the venue accepts for ``codes`` entries ``CODE.{n}``.
BOOK_UNITS = (1, 5, 15, 30)
_TAKER_SIDE = {"ASK": "sell", "BID": "buy"}
#: DEFAULT-format key -> SIMPLE-format key, for the fields read here.
_SIMPLE = {
    "type": "ty",
    "code": "cd",
    "timestamp": "tms",
    "trade_price": "tp",
    "trade_volume": "tv",
    "ask_bid": "ab",
    "trade_timestamp": "ttms",
    "sequential_id": "sid",
    "orderbook_units": "obu",
    "ask_price": "ap",
    "ask_size": "as",
    "bid_price": "bp",
    "bid_size": "bs",
}


def normalise_code(code: Any) -> str:
    """``KRW-BTC`` -> ``BTC-KRW``."""
    if not isinstance(code, str):
        raise ParseError("code is not a string")
    quote, sep, base = code.partition("-")
    if not sep or not quote or not base or "-" in base or quote not in QUOTE_RANK:
        raise ParseError(f"not an Upbit market code: {code[:40]!r}")
    return f"{base}-{quote}"


class UpbitNormaliser(Normaliser):
    """Upbit quotation frames (SIMPLE or DEFAULT) -> records."""

    exchange: ClassVar[str] = EXCHANGE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbols = SymbolBooks(self.exchange, normalise_code)
        self.trade_ids = RecentTradeIds()

    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        if isinstance(frame, bytes) and frame.startswith(B64_PREFIX):
            raise ParseError("binary frame that is not UTF-8 JSON")
        msg = orjson.loads(frame)
        if isinstance(msg, list):  # the *_LIST formats
            if not msg:
                raise ParseError("empty list")
            for item in msg:
                self.on_message(ts_recv, item, out)
            return
        self.on_message(ts_recv, msg, out)

    def on_message(self, ts_recv: int, msg: Any, out: RecordBuffer) -> None:
        if not isinstance(msg, dict):
            raise ParseError("message is not an object")
        simple = "ty" in msg
        kind = msg["ty"] if simple else msg.get("type")
        if kind == "trade":
            self.on_trade(ts_recv, msg, simple, out)
        elif kind == "orderbook":
            self.on_book(ts_recv, msg, simple, out)
        elif "status" in msg and len(msg) == 1:
            return  # {"status":"UP"}: the answer to PING
        elif "error" in msg:
            error = msg["error"]
            detail = error if isinstance(error, dict) else {"error": error}
            detail = {str(k)[:40]: str(v)[:300] for k, v in list(detail.items())[:5]}
            emit_event(out, self.exchange, None, "connection", ts_recv, "venue_error", detail)
        else:
            raise ParseError(f"unknown message type {str(kind)[:40]!r}")

    def on_trade(self, ts_recv: int, msg: dict[str, Any], simple: bool, out: RecordBuffer) -> None:
        """One trade: a row, unless its ``sid`` was seen."""

        def get(key: str) -> Any:
            return msg[_SIMPLE[key] if simple else key]

        code = get("code")
        symbol = self.symbols.name(code)
        sid = get("sequential_id")
        if not isinstance(sid, int) or isinstance(sid, bool) or not 0 <= sid < 2**63:
            raise ParseError(f"bad sequential_id {str(sid)[:40]!r}", symbol, "trades")
        side = _TAKER_SIDE.get(get("ask_bid")) if isinstance(get("ask_bid"), str) else None
        if side is None:
            raise ParseError(f"unknown ask_bid {str(get('ask_bid'))[:20]!r}", symbol, "trades")
        price = positive_price(get("trade_price"))
        size = positive_price(get("trade_volume"), "size")
        ts_exchange = ms_to_ns(get("trade_timestamp"))
        tid = str(sid)
        if self.trade_ids.seen(code, tid):
            emit_event(out, self.exchange, symbol, "trades", ts_recv, "duplicate", {"trade_id": tid})
            return
        self.emit_trade(out, symbol, ts_exchange, ts_recv, tid, price, size, side)

    def on_book(self, ts_recv: int, msg: dict[str, Any], simple: bool, out: RecordBuffer) -> None:
        """A whole top of book: the book's changes, and its first unit as the bbo."""
        keys = _SIMPLE if simple else {k: k for k in _SIMPLE}
        code = msg[keys["code"]]
        book = self.symbols.book(code)
        units = msg[keys["orderbook_units"]]
        if not isinstance(units, list) or not units:
            raise ParseError("orderbook units are not a non-empty list", book.symbol, "book")
        bids: list[tuple[Any, Any]] = []
        asks: list[tuple[Any, Any]] = []
        for unit in units:
            if not isinstance(unit, dict):
                raise ParseError("orderbook unit is not an object", book.symbol, "book")
            for levels, price_key, size_key in (
                (asks, "ask_price", "ask_size"),
                (bids, "bid_price", "bid_size"),
            ):
                price, size = unit[keys[price_key]], unit[keys[size_key]]
                if price == 0 and size == 0 and not isinstance(price, bool):
                    continue  # an empty level: this side has fewer units than the other
                levels.append((price, size))
        # the first unit is the venue's best bid and ask (validated before the book changes)
        first = units[0]
        quote: list[float | None] = [None, None, None, None]
        for i, (price_key, size_key) in enumerate((("bid_price", "bid_size"), ("ask_price", "ask_size"))):
            price = first[keys[price_key]]
            if price != 0 or isinstance(price, bool):
                quote[2 * i] = positive_price(price)
                quote[2 * i + 1] = non_negative_size(first[keys[size_key]])
        ts_exchange = ms_to_ns(msg[keys["timestamp"]])
        flags = self.time_flags.flags(ts_exchange, ts_recv)
        book.apply_full_book(out, ts_exchange, ts_recv, bids, asks, None, flags)
        book.check_crossed(out, ts_recv, {"timestamp": ts_exchange // 1_000_000})
        self.emit_bbo(out, book.symbol, ts_exchange, ts_recv, quote[0], quote[1], quote[2], quote[3], None)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """A new connection's first orderbook message of each market is a new snapshot (a new epoch)."""
        for book in self.symbols.books.values():
            book.reset()


class UpbitDialect(ExchangeDialect):
    """Upbit quotation websocket: endpoint, the one request, keep-alive, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://api.upbit.com"
    default_rest_url: ClassVar[str | None] = "https://api.upbit.com"
    demo_symbols: ClassVar[tuple[str, ...]] = ("KRW-BTC", "KRW-ETH")
    #: every orderbook message is the whole top of the book: a lost one cannot be (and need not be) found
    sequenced_book: ClassVar[bool] = False
    #: the server closes a connection idle for 120 s; ``PING`` keeps it open
    app_ping: ClassVar[tuple[str, float] | None] = ("PING", 60.0)
    #: codes per connection (one request carries them all)
    max_streams_per_connection: ClassVar[int] = 300

    def __init__(self, options: DialectOptions | None = None) -> None:
        super().__init__(options)
        depth = self.options.book_depth
        if depth is not None and depth not in BOOK_UNITS:
            raise ValueError(f"upbit orderbook units must be one of {BOOK_UNITS}, not {depth}")
        self.book_units = depth

    def native_symbol(self, symbol: str) -> str:
        """``BTC-KRW`` -> ``KRW-BTC``; a native code (quote first) stays as it is."""
        first, sep, second = symbol.strip().upper().replace("/", "-").partition("-")
        if not sep:
            return first
        if QUOTE_RANK.get(first, 0) >= QUOTE_RANK.get(second, 0):
            return f"{first}-{second}"
        return f"{second}-{first}"

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(normalise_code(native))

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        base = ws_url.rstrip("/")
        return base if base.endswith(WS_PATH) else base + WS_PATH

    def decode_binary(self, data: bytes) -> bytes:
        """Upbit's binary frames are UTF-8 JSON, captured as that text; anything else as ``b64:``."""
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return B64_PREFIX + base64.b64encode(data)
        return data

    def request(self, sub: Subscription, ticket: str, fmt: str = "SIMPLE") -> list[dict[str, Any]]:
        """The request's objects: ticket, one per type, format."""
        request: list[dict[str, Any]] = [{"ticket": ticket}]
        if "trades" in sub.channels:
            request.append({"type": "trade", "codes": list(sub.symbols)})
        if "book" in sub.channels or "bbo" in sub.channels:
            suffix = f".{self.book_units}" if self.book_units is not None else ""
            request.append({"type": "orderbook", "codes": [f"{c}{suffix}" for c in sub.symbols]})
        request.append({"format": fmt})
        return request

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        return [orjson.dumps(self.request(sub, f"ticktape-{uuid.uuid4()}")).decode()]

    def new_normaliser(self) -> Normaliser:
        return UpbitNormaliser()

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return UpbitSimulator(self, config)

    # -- instruments (collectors/venues/upbit_instruments.py) ------------------------------------
    def instruments_paths(self) -> list[str]:
        return [upbit_instruments.MARKETS_PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        """The instruments of one ``orderbook/instruments`` (tick) answer (the market list names the
        markets to ask for; it carries no tick)."""
        return upbit_instruments.parse_ticks(self, body, ts_recv)

    async def fetch_instruments(
        self,
        http: aiohttp.ClientSession,
        rest_url: str,
        spend: Callable[[int], Awaitable[None]] | None = None,
    ) -> list[Instrument]:
        """The market list, then the ticks of its markets in batches (see :mod:`.upbit_instruments`)."""
        listing = await self.instruments_body(http, rest_url, upbit_instruments.MARKETS_PATH, spend)
        out: list[Instrument] = []
        for path in upbit_instruments.ticks_paths(upbit_instruments.parse_markets(self, listing)):
            body = await self.instruments_body(http, rest_url, path, spend)
            out.extend(upbit_instruments.parse_ticks(self, body, time.time_ns()))
        return out


class UpbitSimulator(ExchangeSimulator):
    """Upbit on loopback: ``/websocket/v1``, one JSON-array request, binary JSON frames, ``PING``."""

    ws_paths = (WS_PATH,)
    #: orderbook units sent when a code asks for no count
    DEFAULT_UNITS = 15

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        #: the latest trade of each market, sent as the trade snapshot of a subscription
        self.last_trade: dict[str, tuple[SimTrade, int]] = {}
        self.pings = 0

    def frame(self, obj: dict[str, Any]) -> bytes:
        return orjson.dumps(obj)

    def error(self, session: ClientSession, name: str, message: str) -> None:
        self.send(session, self.frame({"error": {"name": name, "message": message}}))

    async def on_message(self, session: ClientSession, text: str) -> None:
        if text == "PING":
            self.pings += 1
            self.send(session, self.frame({"status": "UP"}))
            return
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.error(session, "WRONG_FORMAT", "request is not JSON")
            return
        if not isinstance(request, list) or not all(isinstance(o, dict) for o in request):
            self.error(session, "WRONG_FORMAT", "request is not an array of objects")
            return
        if not any("ticket" in o for o in request):
            self.error(session, "NO_TICKET", "ticket is missing")
            return
        fmt = next((o["format"] for o in request if "format" in o), "DEFAULT")
        wanted: dict[tuple[str, str], int] = {}
        for obj in (o for o in request if "type" in o):
            kind, codes = obj["type"], obj.get("codes")
            if kind not in ("trade", "orderbook"):
                self.error(session, "INVALID_PARAM", f"type {str(kind)[:40]}")
                return
            if not isinstance(codes, list) or not codes:
                self.error(session, "NO_CODES", "codes are missing")
                return
            for entry in codes:
                code, _, count = str(entry).partition(".")
                if code not in self.markets or (count and not count.isdigit()):
                    self.error(session, "INVALID_PARAM", f"code {str(entry)[:40]}")
                    return
                wanted[(kind, code)] = int(count) if count else self.DEFAULT_UNITS
        if fmt not in ("SIMPLE", "DEFAULT"):
            self.error(session, "INVALID_PARAM", f"format {str(fmt)[:20]}")
            return
        session.state["format"] = fmt
        session.subscriptions = set(wanted)  # a new request replaces the connection's subscriptions
        ms = self.now_exchange_ns() // 1_000_000
        for (kind, code), n_units in wanted.items():
            if kind == "trade" and code in self.last_trade:
                trade, trade_ms = self.last_trade[code]
                self.send(session, self.trade_frame(session, code, trade, trade_ms, ms, "SNAPSHOT"))
            elif kind == "orderbook":
                session.state[f"units:{code}"] = n_units
                self.send(session, self.book_frame(session, code, ms, "SNAPSHOT"))

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[bytes], list[bytes], list[str]]:  # type: ignore[override]
        code, ms = step.symbol, step.ts_ns // 1_000_000
        for t in step.trades:
            self.last_trade[code] = (t, ms)
        trades = [
            self.trade_frame(session, code, t, ms, ms, "REALTIME")
            for t in step.trades
            if session.subscribed("trade", code)
        ]
        book = (
            [self.book_frame(session, code, ms, "REALTIME")] if session.subscribed("orderbook", code) else []
        )
        return trades, book, []

    def trade_frame(
        self, session: ClientSession, code: str, t: SimTrade, trade_ms: int, ms: int, stream: str
    ) -> bytes:
        fields = {
            "type": "trade",
            "code": code,
            "timestamp": ms,
            "trade_price": float(t.price),
            "trade_volume": float(t.size),
            "ask_bid": "BID" if t.side == "buy" else "ASK",
            "trade_timestamp": trade_ms,
            "sequential_id": t.trade_id,
            "stream_type": stream,
        }
        return self.frame(self.shape(session, fields))

    def book_frame(self, session: ClientSession, code: str, ms: int, stream: str) -> bytes:
        units = session.state.get(f"units:{code}") or self.DEFAULT_UNITS
        bids, asks = self.markets[code].top(units)
        rows = []
        for i in range(max(len(bids), len(asks))):
            ap, a_s = asks[i] if i < len(asks) else ("0", "0")
            bp, b_s = bids[i] if i < len(bids) else ("0", "0")
            rows.append(
                self.shape(
                    session,
                    {
                        "ask_price": float(ap),
                        "bid_price": float(bp),
                        "ask_size": float(a_s),
                        "bid_size": float(b_s),
                    },
                )
            )
        fields = {
            "type": "orderbook",
            "code": code,
            "timestamp": ms,
            "orderbook_units": rows,
            "stream_type": stream,
        }
        return self.frame(self.shape(session, fields))

    def instrument_routes(self) -> list[web.RouteDef]:
        """``/v1/market/all`` and ``/v1/orderbook/instruments?markets=...`` for the simulator's markets."""
        from aiohttp import web

        async def ticks(request: web.Request) -> web.Response:
            fault = self.instruments_fault_response()
            if fault is not None:
                return fault
            codes = [c for c in request.query.get("markets", "").split(",") if c]
            if not codes:
                error = {"error": {"name": "validation_error", "message": "markets is required"}}
                return web.json_response(error, status=400)
            return web.json_response(upbit_instruments.ticks_body(self.markets, codes))

        markets = self.instruments_routes_of(
            [upbit_instruments.MARKETS_PATH.partition("?")[0]],
            lambda: upbit_instruments.markets_body(self.markets),
        )
        return [*markets, web.get(upbit_instruments.TICKS_PATH, ticks)]

    def shape(self, session: ClientSession, fields: dict[str, Any]) -> dict[str, Any]:
        """Fields in the session's format (SIMPLE: abbreviated keys)."""
        if session.state.get("format") != "SIMPLE":
            return fields
        abbreviated = {**_SIMPLE, "stream_type": "st"}
        return {abbreviated.get(k, k): v for k, v in fields.items()}


DIALECT_CLASS = UpbitDialect

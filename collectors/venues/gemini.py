"""Gemini (exchange id ``gemini``): market data version 2, ``wss://api.gemini.com/v2/marketdata``.

Protocol, as Gemini documents it (https://docs.gemini.com/websocket-api/#market-data-version-2,
checked 2026-12-05):
- one subscribe frame ``{"type":"subscribe","subscriptions":[{"name":"l2","symbols":["BTCUSD",...]}]}``;
  the ``l2`` subscription carries both the book and the trades of its symbols;
- the first ``l2_updates`` of a symbol is its whole book (``changes`` listing every level, plus the
  recent ``trades`` and ``auction_events``); later ``l2_updates`` list changed levels
  ``[side, price, quantity]`` (``buy``/``sell``, quantity 0 removes the level);
- ``trade`` messages: ``{symbol, event_id, tid, price, quantity, side, timestamp}``, ``side`` the
  taker's side, ``timestamp`` in ms; the recent trades of the first message are replayed history:
  flagged SNAPSHOT and de-duplicated by ``tid`` across reconnects;
- ``heartbeat`` every 5 s from the server (no client ping needed).

What the feed does not have, and so ticktape does not pretend to: ``l2_updates`` carry **no exchange
time and no sequence number** (``ts_exchange`` is null on book rows, and a lost update cannot be
detected: ``sequenced_book = False``; a reconnect brings a new whole book and a new epoch), and there
is no best bid/offer stream on v2 (``channels`` has no ``bbo``).

Symbols: ``BTCUSD`` -> ``BTC-USD``; perpetuals ``BTCUSDCPERP`` -> ``BTC-USDC-PERP``. Reference data (the
``instruments`` dataset, ``all`` and globs): :mod:`.gemini_instruments`.
Checked against the shared recording ``gemini/gemini_cryptofeed`` (2026-08, current v2).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp
import orjson

from schemas import Flags, RecordBuffer

from ..base import DialectOptions, ExchangeDialect, Normaliser, Subscription
from ..book import ASK, BID, SymbolBooks, parse_levels
from ..dedupe import RecentTradeIds
from ..events import ParseError, check_symbol, emit_event, ms_to_ns, positive_price
from ..instruments import Instrument
from ..pacing import RateWindow
from ..simulator import ClientSession, ExchangeSimulator, MarketStep, SimulatorConfig
from . import gemini_instruments

if TYPE_CHECKING:
    from aiohttp import web

EXCHANGE = "gemini"
#: Quote currencies, longest first (``RLUSD``/``GUSD``/``USDC`` before ``USD``).
#: ``SOL`` and ``FIL`` last: only ``JITOSOLSOL`` and ``EFILFIL`` are quoted in them (2026-08 listing).
QUOTES: tuple[str, ...] = (
    "RLUSD", "GUSD", "USDC", "USDT", "USD", "EUR", "GBP", "SGD", "BTC", "ETH", "DAI", "SOL", "FIL",
)  # fmt: skip
#: Bases that the quote-suffix rule would split wrongly (``PAXGUSD`` is PAXG in USD, not PAX in GUSD):
#: every symbol of Gemini's symbol details (base_currency, quote_currency; 2026-08 listing, 347
#: symbols) splits right with these checked first.
BASES_FIRST: tuple[str, ...] = ("PAXG", "USDG")
PERP = "PERP"
_SIDES = {"buy": BID, "sell": ASK}


def normalise_gemini(native: Any) -> str:
    """``BTCUSD`` -> ``BTC-USD``; ``BTCUSDCPERP`` -> ``BTC-USDC-PERP``."""
    if not isinstance(native, str):
        raise ParseError("symbol is not a string")
    upper = native.upper()
    suffix = ""
    if upper.endswith(PERP):
        upper, suffix = upper[: -len(PERP)], "-PERP"
    for base in BASES_FIRST:
        if upper.startswith(base) and upper[len(base) :] in QUOTES:
            return f"{base}-{upper[len(base) :]}{suffix}"
    for quote in QUOTES:
        if upper.endswith(quote) and len(upper) > len(quote):
            return f"{upper[: -len(quote)]}-{quote}{suffix}"
    raise ParseError(f"cannot split symbol {native[:40]!r} into base and quote")


class GeminiNormaliser(Normaliser):
    """Gemini market data v2 frames -> records."""

    exchange: ClassVar[str] = EXCHANGE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbols = SymbolBooks(self.exchange, normalise_gemini)
        self.trade_ids = RecentTradeIds()

    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not an object")
        kind = msg.get("type")
        if kind == "l2_updates":
            self.on_l2(ts_recv, msg, out)
        elif kind == "trade":
            self.on_trade(ts_recv, msg, out, 0)
        elif kind == "heartbeat":
            return
        elif kind == "error" or "result" in msg:
            emit_event(
                out, self.exchange, None, "connection", ts_recv, "venue_error", {"message": str(msg)[:500]}
            )
        else:
            raise ParseError(f"unknown message type {str(kind)[:40]!r}")

    def on_l2(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        """``l2_updates``: the whole book the first time on a connection, changed levels afterwards."""
        native = msg["symbol"]
        book = self.symbols.book(native)
        changes = msg["changes"]
        if not isinstance(changes, list):
            raise ParseError("changes is not a list", book.symbol, "book")
        sides: dict[str, list[Any]] = {BID: [], ASK: []}
        for change in changes:
            if not isinstance(change, list) or len(change) != 3 or change[0] not in _SIDES:
                raise ParseError(f"malformed change {str(change)[:60]}", book.symbol, "book")
            sides[_SIDES[change[0]]].append(change[1:])
        replayed = msg.get("trades", [])
        if not isinstance(replayed, list):
            raise ParseError("trades is not a list", book.symbol, "trades")
        if not book.synced:
            book.apply_snapshot(out, None, ts_recv, sides[BID], sides[ASK], None)
        else:
            parsed_bids, parsed_asks = parse_levels(sides[BID]), parse_levels(sides[ASK])
            book.apply_parsed(out, None, ts_recv, BID, parsed_bids, None)
            book.apply_parsed(out, None, ts_recv, ASK, parsed_asks, None)
            book.check_crossed(out, ts_recv, {})
        for trade in replayed:
            self.on_trade(ts_recv, trade, out, int(Flags.SNAPSHOT))

    def on_trade(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer, flags: int) -> None:
        """A trade (live, or replayed in a book's first message): one row, repeats by ``tid`` dropped."""
        native = msg["symbol"]
        symbol = self.symbols.name(native)
        tid = msg["tid"]
        if not isinstance(tid, int) or isinstance(tid, bool) or tid < 0:
            raise ParseError(f"bad trade id {str(tid)[:40]!r}", symbol, "trades")
        side = msg["side"]
        if side not in ("buy", "sell"):
            raise ParseError(f"unknown trade side {str(side)[:20]!r}", symbol, "trades")
        price = positive_price(msg["price"])
        size = positive_price(msg["quantity"], "size")
        ts_exchange = ms_to_ns(msg["timestamp"])
        trade_id = str(tid)
        if self.trade_ids.seen(native, trade_id):
            emit_event(out, self.exchange, symbol, "trades", ts_recv, "duplicate", {"trade_id": trade_id})
            return
        self.emit_trade(out, symbol, ts_exchange, ts_recv, trade_id, price, size, side, flags)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """The next connection starts with a whole book per symbol: a new epoch."""
        for book in self.symbols.books.values():
            book.reset()


class GeminiDialect(ExchangeDialect):
    """Gemini market data v2: endpoint, subscription, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://api.gemini.com"
    default_rest_url: ClassVar[str | None] = "https://api.gemini.com"
    #: v2 has no best bid/offer stream
    channels: ClassVar[tuple[str, ...]] = ("trades", "book")
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTCUSD", "ETHUSD")
    #: l2_updates carry no sequence: a lost one cannot be detected
    sequenced_book: ClassVar[bool] = False
    max_streams_per_connection: ClassVar[int] = 100

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USD`` / ``btcusd`` -> ``BTCUSD``; ``BTC-USDC-PERP`` -> ``BTCUSDCPERP``."""
        return symbol.strip().upper().replace("-", "").replace("/", "")

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(normalise_gemini(native))

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        return f"{ws_url.rstrip('/')}/v2/marketdata"

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        # One l2 subscription carries both the book and the trades.
        return [
            orjson.dumps(
                {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": list(sub.symbols)}]}
            ).decode()
        ]

    def new_normaliser(self) -> Normaliser:
        return GeminiNormaliser()

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return GeminiSimulator(self, config)

    # -- instruments (collectors/venues/gemini_instruments.py) -----------------------------------
    #: details requests at once, and the seconds they take on average (Gemini's rate recommendation)
    details_burst: ClassVar[int] = gemini_instruments.DETAILS_BURST
    details_window_s: ClassVar[float] = gemini_instruments.DETAILS_WINDOW_S

    def __init__(self, options: DialectOptions | None = None) -> None:
        super().__init__(options)
        #: the details answers of earlier instrument fetches (the refresh re-reads a few each time)
        self.details_cache = gemini_instruments.DetailsCache()

    def instruments_paths(self) -> list[str]:
        return [gemini_instruments.SYMBOLS_PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        """The instrument of one symbol details answer (the list of names carries no instrument)."""
        return gemini_instruments.parse_details(self, body, ts_recv)

    async def fetch_instruments(
        self,
        http: aiohttp.ClientSession,
        rest_url: str,
        spend: Callable[[int], Awaitable[None]] | None = None,
    ) -> list[Instrument]:
        """The symbol list, then the details of new symbols and of the known ones read longest ago,
        paced at Gemini's public rate (see :mod:`.gemini_instruments`; a dialect remembers the answers
        between fetches). A symbol whose details answer 400/404 (delisted since the list was read) is
        left out; any other HTTP error fails the fetch (429 pauses the REST budget)."""
        window = RateWindow(self.details_burst, self.details_window_s)

        async def get(path: str) -> bytes:
            await window.acquire()
            return await self.instruments_body(http, rest_url, path, spend)

        cache = self.details_cache
        listing = gemini_instruments.parse_symbols(await get(gemini_instruments.SYMBOLS_PATH))
        for native in cache.due(listing):
            try:
                body = await get(gemini_instruments.DETAILS_PATH + native.lower())
            except aiohttp.ClientResponseError as exc:
                if exc.status in (400, 404):
                    cache.forget(native)
                    continue
                raise
            cache.store(native, gemini_instruments.parse_details(self, body, time.time_ns()))
        return cache.instruments(listing)


class GeminiSimulator(ExchangeSimulator):
    """Gemini v2 on loopback: ``/v2/marketdata``, the whole book first, then changes and trades."""

    ws_paths = ("/v2/marketdata",)

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.recent: dict[str, list[dict[str, Any]]] = {s: [] for s in self.markets}

    async def on_message(self, session: ClientSession, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.send(session, '{"result":"error","reason":"InvalidJson","message":"Invalid JSON"}')
            return
        subs = msg.get("subscriptions") if isinstance(msg, dict) else None
        if not isinstance(msg, dict) or msg.get("type") != "subscribe" or not isinstance(subs, list):
            self.send(session, '{"result":"error","reason":"InvalidRequest","message":"Invalid request"}')
            return
        for sub in subs:
            if not isinstance(sub, dict) or sub.get("name") != "l2":
                continue
            for symbol in sub.get("symbols") or []:
                if symbol in self.markets and ("l2", symbol) not in session.subscriptions:
                    session.subscriptions.add(("l2", symbol))
                    self.send(session, self.initial(symbol))

    def initial(self, symbol: str) -> str:
        """The first ``l2_updates`` of a symbol: its whole book and recent trades."""
        bids, asks = self.markets[symbol].top()
        changes = [["buy", p, s] for p, s in bids] + [["sell", p, s] for p, s in asks]
        return orjson.dumps(
            {
                "type": "l2_updates",
                "symbol": symbol,
                "changes": changes,
                "trades": self.recent[symbol],
                "auction_events": [],
            }
        ).decode()

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        symbol, ms = step.symbol, step.ts_ns // 1_000_000
        trades = [
            {
                "type": "trade",
                "symbol": symbol,
                "event_id": 10 * t.trade_id,
                "tid": t.trade_id,
                "price": t.price,
                "quantity": t.size,
                "side": t.side,
                "timestamp": ms,
            }
            for t in step.trades
        ]
        if trades and session.state.get("recorded_step") is not step:
            session.state["recorded_step"] = step
            self.recent[symbol] = (self.recent[symbol] + trades)[-50:]
        if ("l2", symbol) not in session.subscriptions:
            return [], [], []
        changes = [["buy", p, s] for p, s in step.bids] + [["sell", p, s] for p, s in step.asks]
        book = [orjson.dumps({"type": "l2_updates", "symbol": symbol, "changes": changes}).decode()]
        return [orjson.dumps(t).decode() for t in trades], book, []

    def heartbeat_frames(self, session: ClientSession, now_ns: int) -> list[str]:
        return [orjson.dumps({"type": "heartbeat", "timestamp": now_ns // 1_000_000}).decode()]

    def instrument_routes(self) -> list[web.RouteDef]:
        """``/v1/symbols`` and ``/v1/symbols/details/{symbol}`` for the simulator's markets (an unknown
        symbol answers 400 ``InvalidSymbol``, as Gemini does)."""
        from aiohttp import web

        async def details(request: web.Request) -> web.Response:
            fault = self.instruments_fault_response()
            if fault is not None:
                return fault
            native = request.match_info["symbol"].upper()
            model = self.markets.get(native)
            if model is None:
                error = {
                    "result": "error",
                    "reason": "InvalidSymbol",
                    "message": f"{native[:40]} is not valid",
                }
                return web.json_response(error, status=400)
            base, quote = normalise_gemini(native).split("-")[:2]
            return web.json_response(gemini_instruments.details_body(native, model, base, quote))

        symbols = self.instruments_routes_of(
            [gemini_instruments.SYMBOLS_PATH], lambda: gemini_instruments.symbols_body(self.markets)
        )
        return [*symbols, web.get(gemini_instruments.DETAILS_PATH + "{symbol}", details)]


DIALECT_CLASS = GeminiDialect

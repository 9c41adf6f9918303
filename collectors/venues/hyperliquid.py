"""Hyperliquid perpetuals (exchange id ``hyperliquid``): public websocket ``wss://api.hyperliquid.xyz/ws``.

Protocol, as Hyperliquid documents it (checked 2026-12-05):
- subscribe one feed per frame: ``{"method":"subscribe","subscription":{"type":"l2Book","coin":"BTC"}}``
  (also ``trades``, ``bbo``, ``activeAssetCtx``); the server acknowledges with
  ``{"channel":"subscriptionResponse",...}`` and then pushes ``{"channel":"<type>","data":...}``;
- the server closes a connection that sent nothing for 60 s: ``{"method":"ping"}`` every 30 s, answered
  by ``{"channel":"pong"}``;
- limits per IP: 100 websocket connections, 1000 subscriptions, 2000 messages sent per minute.

Channels:
- ``l2Book``: ``{coin, time (ms), levels: [[bids...], [asks...]]}``, each level ``{px, sz, n}``, at most
  20 per side, best first. **Every message is the whole book** (one per block), with no sequence number,
  so there is nothing to lose between two messages: the first message of a connection is the snapshot,
  later ones are turned into the levels that changed (``SyncedBook.apply_full_book``). A lost message
  cannot be detected and needs no resync (``sequenced_book = False``); a reconnect starts a new epoch.
- ``trades``: a list of ``{coin, side, px, sz, hash, time, tid, users}``; ``side`` is the aggressor's:
  ``B`` (bid: the taker bought) or ``A`` (ask: the taker sold). ``tid`` is the trade id. Trades are
  de-duplicated by ``tid`` (a resubscription may send recent trades again).
- ``bbo``: ``{coin, time, bbo: [bid level or null, ask level or null]}``.
- ``activeAssetCtx`` (derivatives channels ``funding``, ``mark``, ``open_interest``): ``{coin, ctx:
  {funding, openInterest, markPx, oraclePx, midPx, premium, ...}}``. It carries no time, so these rows
  have a null ``ts_exchange``. ``funding`` is the current hourly rate (Hyperliquid settles funding every
  hour); ``oraclePx`` is the index price; ``openInterest`` is in coins. Hyperliquid publishes no public
  liquidation stream.

Symbols: perpetuals of the first perp dex, ``BTC`` -> ``BTC-USDC-PERP`` (collateral and quote USDC).
Spot pairs (``@107``, ``PURR/USDC``) and builder-deployed dexes (``xyz:SP500``) are not covered.

Sources: https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/websocket/subscriptions,
https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/websocket/timeouts-and-heartbeats,
https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-user-limits.
Checked against the shared recording ``hyperliquid/btc_20250126`` (``l2Book`` and ``trades``).

Instruments: ``POST /info`` with ``{"type":"meta"}`` (weight 20 in the 1200-per-minute IP budget)
answers ``{"universe": [{"name": "BTC", "szDecimals": 5, "maxLeverage": 50}, {"name": ..., "onlyIsolated":
true, "isDelisted": true}, ...], "marginTables": [...]}``
(https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/perpetuals, checked
2026-12-05). The lot is ``10**-szDecimals`` (sizes have at most ``szDecimals`` decimals). Hyperliquid has
no fixed tick: a perpetual's price may have at most 5 significant figures *and* at most ``6 -
szDecimals`` decimals, integers always allowed
(https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/tick-and-lot-size, checked
2026-12-05). The tick in ``instruments`` is the decimals bound, ``10**-(6 - szDecimals)`` (``10**0`` when
``szDecimals`` >= 6): the finest step any valid price can take, so every valid price is a whole multiple
of it and rounding a trade price to it is exact. At a given price the step is coarser (``10**(e - 4)``
for a price of ``e + 1`` integer digits: 1 for BTC at 97 000, where the row says 0.1). ``isDelisted``
makes the status ``delisted``; ``maxLeverage`` and ``onlyIsolated`` have no column. Contracts are one
coin, quoted and settled in USDC.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from aiohttp import web

from schemas import RecordBuffer

from ..base import CHANNELS, ExchangeDialect, Normaliser, Subscription, unique_streams
from ..book import SymbolBooks
from ..dedupe import RecentTradeIds
from ..events import (
    ParseError,
    check_symbol,
    emit_event,
    funding_rate,
    ms_to_ns,
    non_negative_size,
    positive_price,
)
from ..instruments import TRADING, Instrument, build_all, decimals_increment
from ..simulator import ClientSession, ExchangeSimulator, MarketStep, SimulatorConfig

EXCHANGE = "hyperliquid"
SUFFIX = "-USDC-PERP"
#: Decimals a perpetual's price may have before ``szDecimals`` are taken off (tick and lot size rules)
PERP_MAX_DECIMALS = 6
#: The instruments request: its path and JSON body
INFO_PATH = "/info"
META_REQUEST = {"type": "meta"}
#: Weight of an ``info`` request of type ``meta`` (rate limits page: most info requests weigh 20)
META_WEIGHT = 20

#: Taker side of a trade from its ``side`` (the aggressor's side of the book).
_TAKER_SIDE = {"B": "buy", "A": "sell"}
#: Our channel -> Hyperliquid subscription type (the three derivatives channels share one feed).
_FEEDS = {
    "trades": "trades",
    "book": "l2Book",
    "bbo": "bbo",
    "funding": "activeAssetCtx",
    "mark": "activeAssetCtx",
    "open_interest": "activeAssetCtx",
}


def _level(level: Any) -> tuple[Any, Any]:
    """``{px, sz, n}`` -> ``(px, sz)`` wire strings."""
    if not isinstance(level, dict):
        raise ParseError("book level is not an object", channel="book")
    return level["px"], level["sz"]


class HyperliquidNormaliser(Normaliser):
    """Hyperliquid frames -> records."""

    exchange: ClassVar[str] = EXCHANGE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbols = SymbolBooks(self.exchange, normalise_coin)
        self.trade_ids = RecentTradeIds()

    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not an object")
        channel = msg.get("channel")
        data = msg.get("data")
        if channel == "l2Book":
            self.on_book(ts_recv, data, out)
        elif channel == "trades":
            self.on_trades(ts_recv, data, out)
        elif channel == "bbo":
            self.on_bbo(ts_recv, data, out)
        elif channel == "activeAssetCtx":
            self.on_asset_ctx(ts_recv, data, out)
        elif channel in ("subscriptionResponse", "pong"):
            return
        elif channel == "error":
            emit_event(
                out, self.exchange, None, "connection", ts_recv, "venue_error", {"error": str(data)[:500]}
            )
        else:
            raise ParseError(f"unknown channel {str(channel)[:40]!r}")

    def on_book(self, ts_recv: int, data: Any, out: RecordBuffer) -> None:
        """An ``l2Book`` message: the whole book of one coin."""
        if not isinstance(data, dict):
            raise ParseError("l2Book data is not an object", channel="book")
        book = self.symbols.book(data["coin"])
        levels = data["levels"]
        if not isinstance(levels, list) or len(levels) != 2:
            raise ParseError("l2Book levels is not [bids, asks]", book.symbol, "book")
        bids = [_level(lv) for lv in levels[0]]
        asks = [_level(lv) for lv in levels[1]]
        ts_exchange = ms_to_ns(data["time"])
        flags = self.time_flags.flags(ts_exchange, ts_recv)
        book.apply_full_book(out, ts_exchange, ts_recv, bids, asks, None, flags)
        book.check_crossed(out, ts_recv, {"time": data["time"]})

    def on_trades(self, ts_recv: int, data: Any, out: RecordBuffer) -> None:
        """A ``trades`` message: one row per trade, repeats (by ``tid``) dropped."""
        if not isinstance(data, list):
            raise ParseError("trades data is not a list", channel="trades")
        parsed = []
        for t in data:  # validate the whole message before any row is kept
            symbol = self.symbols.name(t["coin"])
            tid = t["tid"]
            if not isinstance(tid, int) or isinstance(tid, bool) or tid < 0:
                raise ParseError(f"bad trade id {str(tid)[:40]!r}", symbol, "trades")
            side = _TAKER_SIDE.get(t["side"])
            if side is None:
                raise ParseError(f"unknown trade side {str(t['side'])[:20]!r}", symbol, "trades")
            price = positive_price(t["px"])
            size = positive_price(t["sz"], "size")
            parsed.append((t["coin"], symbol, str(tid), price, size, side, ms_to_ns(t["time"])))
        for coin, symbol, tid, price, size, side, ts_exchange in parsed:
            if self.trade_ids.seen(coin, tid):
                emit_event(out, self.exchange, symbol, "trades", ts_recv, "duplicate", {"trade_id": tid})
                continue
            self.emit_trade(out, symbol, ts_exchange, ts_recv, tid, price, size, side)

    def on_bbo(self, ts_recv: int, data: Any, out: RecordBuffer) -> None:
        """A ``bbo`` message: one row; an empty side is null."""
        if not isinstance(data, dict):
            raise ParseError("bbo data is not an object", channel="bbo")
        symbol = self.symbols.name(data["coin"])
        sides = data["bbo"]
        if not isinstance(sides, list) or len(sides) != 2:
            raise ParseError("bbo is not [bid, ask]", symbol, "bbo")
        quotes: list[float | None] = []
        for level in sides:
            if level is None:
                quotes += [None, None]
            else:
                px, sz = _level(level)
                quotes += [positive_price(px), non_negative_size(sz)]
        ts_exchange = ms_to_ns(data["time"])
        self.emit_bbo(out, symbol, ts_exchange, ts_recv, quotes[0], quotes[1], quotes[2], quotes[3], None)

    def on_asset_ctx(self, ts_recv: int, data: Any, out: RecordBuffer) -> None:
        """An ``activeAssetCtx`` message: funding, mark/index and open interest (no exchange time)."""
        if not isinstance(data, dict) or not isinstance(data.get("ctx"), dict):
            raise ParseError("activeAssetCtx data has no ctx object", channel="funding")
        symbol = self.symbols.name(data["coin"])
        ctx = data["ctx"]
        funding = funding_rate(ctx["funding"], symbol)
        mark = positive_price(ctx["markPx"], "markPx")
        oracle = ctx.get("oraclePx")
        index = positive_price(oracle, "oraclePx") if oracle is not None else None
        open_interest = non_negative_size(ctx["openInterest"], "openInterest")
        self.emit_funding(out, symbol, None, ts_recv, funding)
        self.emit_mark_price(out, symbol, None, ts_recv, mark, index)
        self.emit_open_interest(out, symbol, None, ts_recv, open_interest)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """A new connection's first ``l2Book`` of each coin is a new snapshot (a new epoch)."""
        for book in self.symbols.books.values():
            book.reset()


def normalise_coin(coin: Any) -> str:
    """``BTC`` -> ``BTC-USDC-PERP`` (perpetuals of the first dex)."""
    if not isinstance(coin, str) or not coin or not coin.isalnum():
        raise ParseError(f"not a perpetual coin of the first dex: {str(coin)[:40]!r}")
    return f"{coin.upper()}{SUFFIX}"


def perp_tick(sz_decimals: Any) -> float:
    """The finest price step of a perpetual with ``szDecimals`` (module docstring)."""
    return decimals_increment(max(PERP_MAX_DECIMALS - int(sz_decimals), 0))


def parse_meta(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of a ``{"type":"meta"}`` answer (perpetuals of the first dex)."""
    data = orjson.loads(body)
    universe = data["universe"] if isinstance(data, dict) else None
    if not isinstance(universe, list):
        raise ValueError("meta: 'universe' is not a list")

    def build(item: dict[str, Any]) -> Instrument:
        coin = item["name"]
        if not isinstance(coin, str) or isinstance(item["szDecimals"], bool):
            raise TypeError("meta: name or szDecimals of the wrong type")
        return Instrument(
            exchange=dialect.exchange_id,
            symbol=dialect.normalise_symbol(coin),
            native_symbol=coin,
            kind="perpetual",
            base=coin,
            quote="USDC",
            settle="USDC",
            tick_size=perp_tick(item["szDecimals"]),
            lot_size=decimals_increment(item["szDecimals"]),
            contract_size=1.0,
            expiry=None,
            strike=None,
            option_type=None,
            status="delisted" if item.get("isDelisted") else TRADING,
            ts_recv=ts_recv,
        )

    return build_all(universe, build)


class HyperliquidDialect(ExchangeDialect):
    """Hyperliquid: endpoint, subscriptions, heartbeat, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://api.hyperliquid.xyz"
    default_rest_url: ClassVar[str | None] = "https://api.hyperliquid.xyz"
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, "funding", "mark", "open_interest")
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTC", "ETH")
    #: every l2Book message is the whole book: a lost one cannot be (and need not be) detected
    sequenced_book: ClassVar[bool] = False
    #: 1000 subscriptions per IP in all; one connection keeps well inside it
    max_streams_per_connection: ClassVar[int] = 400
    app_ping: ClassVar[tuple[str, float] | None] = ('{"method":"ping"}', 30.0)

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USDC-PERP`` / ``BTC`` -> ``BTC`` (coin names are case-sensitive: ``kPEPE``)."""
        text = symbol.strip()
        if text.upper().endswith(SUFFIX):
            text = text[: -len(SUFFIX)]
        return text

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(normalise_coin(native))

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        return f"{ws_url.rstrip('/')}/ws"

    def feeds(self, sub: Subscription) -> list[tuple[str, str]]:
        """``(subscription type, coin)`` pairs of a subscription (derivatives channels share a feed)."""
        return unique_streams(sub.symbols, sub.channels, lambda coin, channel: (_FEEDS[channel], coin))

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        return [
            orjson.dumps({"method": "subscribe", "subscription": {"type": kind, "coin": coin}}).decode()
            for kind, coin in self.feeds(sub)
        ]

    def new_normaliser(self) -> Normaliser:
        return HyperliquidNormaliser()

    def instruments_paths(self) -> list[str]:
        return [INFO_PATH]

    def instruments_request_json(self, path: str) -> Any:
        return META_REQUEST

    def instruments_request_weight(self, path: str) -> int:
        return META_WEIGHT

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return parse_meta(self, body, ts_recv)

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return HyperliquidSimulator(self, config)


class HyperliquidSimulator(ExchangeSimulator):
    """Hyperliquid on loopback: ``/ws``, one subscription per frame, ``ping``/``pong``, whole books."""

    ws_paths = ("/ws",)
    #: levels per side of an ``l2Book`` message, as the venue sends
    BOOK_LEVELS = 20
    #: market steps between two ``activeAssetCtx`` pushes
    CTX_EVERY = 5

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.steps = 0

    def instrument_routes(self) -> list[web.RouteDef]:
        return [web.post(INFO_PATH, self.info_handler)]

    async def info_handler(self, request: web.Request) -> web.Response:
        """``POST /info`` of type ``meta``: this simulator's markets, ``szDecimals`` from the size decimals
        (the tick the dialect derives, ``10**-(6 - szDecimals)``, is the market's tick for 2 price
        decimals, as the demo coins have)."""
        fault = self.instruments_fault_response()
        if fault is not None:
            return fault
        try:
            req = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.json_response({"error": "Failed to deserialize the JSON body"}, status=422)
        if not isinstance(req, dict) or req.get("type") != "meta":
            return web.json_response({"error": "unknown info request type (simulated)"}, status=422)
        universe = [
            {"name": coin, "szDecimals": m.size_decimals, "maxLeverage": 40, "marginTableId": 40}
            for coin, m in self.markets.items()
        ]
        return web.json_response({"universe": universe, "marginTables": []})

    async def on_message(self, session: ClientSession, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.send(session, '{"channel":"error","data":"Invalid JSON"}')
            return
        if not isinstance(msg, dict):
            self.send(session, '{"channel":"error","data":"Invalid request"}')
            return
        method = msg.get("method")
        if method == "ping":
            self.send(session, '{"channel":"pong"}')
            return
        sub = msg.get("subscription")
        if method not in ("subscribe", "unsubscribe") or not isinstance(sub, dict):
            self.send(
                session, orjson.dumps({"channel": "error", "data": f"Invalid request: {text[:200]}"}).decode()
            )
            return
        kind, coin = sub.get("type"), sub.get("coin")
        if coin not in self.markets or kind not in ("l2Book", "trades", "bbo", "activeAssetCtx"):
            self.send(
                session, orjson.dumps({"channel": "error", "data": f"Invalid subscription {sub}"}).decode()
            )
            return
        if method == "subscribe":
            session.subscriptions.add((kind, coin))
        else:
            session.subscriptions.discard((kind, coin))
        self.send(session, orjson.dumps({"channel": "subscriptionResponse", "data": msg}).decode())

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        coin, ms = step.symbol, step.ts_ns // 1_000_000
        trades: list[str] = []
        if step.trades and session.subscribed("trades", coin):
            trades.append(
                orjson.dumps(
                    {
                        "channel": "trades",
                        "data": [
                            {
                                "coin": coin,
                                "side": "B" if t.side == "buy" else "A",
                                "px": t.price,
                                "sz": t.size,
                                "hash": f"0x{t.trade_id:064x}",
                                "time": ms,
                                "tid": t.trade_id,
                                "users": ["0x" + "1" * 40, "0x" + "2" * 40],
                            }
                            for t in step.trades
                        ],
                    }
                ).decode()
            )
        book: list[str] = []
        if session.subscribed("l2Book", coin):
            bids, asks = step.model.top(self.BOOK_LEVELS)
            levels = [[{"px": p, "sz": s, "n": 1} for p, s in side] for side in (bids, asks)]
            book.append(
                orjson.dumps(
                    {"channel": "l2Book", "data": {"coin": coin, "time": ms, "levels": levels}}
                ).decode()
            )
        other: list[str] = []
        if session.subscribed("bbo", coin):
            (bp, bq), (ap, aq) = step.model.best()
            bbo = [{"px": bp, "sz": bq, "n": 1}, {"px": ap, "sz": aq, "n": 1}]
            other.append(
                orjson.dumps({"channel": "bbo", "data": {"coin": coin, "time": ms, "bbo": bbo}}).decode()
            )
        if session.subscribed("activeAssetCtx", coin) and step.first_update_id % self.CTX_EVERY == 0:
            (bp, _), (ap, _) = step.model.best()
            mid = (float(bp) + float(ap)) / 2
            ctx = {
                "funding": "0.0000125",
                "openInterest": f"{1000 + step.update_id % 997:.4f}",
                "markPx": f"{mid:.2f}",
                "oraclePx": f"{mid * 0.9999:.2f}",
                "midPx": f"{mid:.2f}",
                "premium": "0.0001",
                "dayNtlVlm": "1000000.0",
                "prevDayPx": bp,
                "impactPxs": [bp, ap],
            }
            other.append(
                orjson.dumps({"channel": "activeAssetCtx", "data": {"coin": coin, "ctx": ctx}}).decode()
            )
        return trades, book, other


DIALECT_CLASS = HyperliquidDialect

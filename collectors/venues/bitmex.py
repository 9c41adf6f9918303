"""BitMEX (exchange id ``bitmex``): realtime websocket ``wss://ws.bitmex.com/realtime``.

Protocol, as BitMEX documents it (checked 2026-12-05):
- commands are ``{"op": "subscribe"|"unsubscribe", "args": ["<table>:<symbol>", ...]}``; each topic is
  answered ``{"success": true, "subscribe": "<topic>", "request": {...}}``, an error ``{"status": 400,
  "error": "...", "request": {...}}``. On connect the server sends ``{"info": "Welcome ...", "limit":
  {"remaining": n}}``. Every table message is ``{"table", "action": partial|insert|update|delete,
  "data": [rows]}``; a subscription starts with a ``partial`` (the current table), and messages that
  arrive before it are discarded.
- heartbeats: when nothing arrived for 5 s, send the text ``ping``; the server answers ``pong``. We send
  ``ping`` every 5 s (besides websocket pings).
- limits: opening connections is rate limited (a token bucket, 20 connections per hour in a burst);
  subscriptions are not rate limited once connected. BitMEX documents no per-connection topic cap; we
  keep 50 symbols (250 topics) on one connection.

Tables we subscribe, per symbol:
- ``orderBookL2``: full-depth book by level ``id``: ``partial`` (the whole book), then ``insert``,
  ``update`` (new ``size``) and ``delete`` rows ``{symbol, id, side: Buy|Sell, size, price, timestamp}``.
  Since July 2023 ids are arbitrary (no longer a function of the price) and every row, delete included,
  carries its ``price``; L2 rows carry ``timestamp`` (the matching-engine time) since February 2022. The
  book is kept by price; we also keep ``id -> (side, price)`` because the ids are the only consistency
  check BitMEX offers: an ``update``/``delete`` of an id we do not hold, an ``insert`` of an id or price
  level we already hold, or an id whose side or price differs from what it was inserted with means a
  message was lost: a ``gap`` for that symbol, resynced by unsubscribing and subscribing its book (a new
  ``partial``). There is no sequence number, so a lost ``update`` of a held level cannot be seen:
  ``sequenced_book = False`` (the contract's lost-update test does not apply), though every
  inconsistency that the ids reveal is a gap. Book rows have ``seq`` null.
- ``trade``: ``{timestamp, symbol, side, size, price, trdMatchID, homeNotional, ...}``; ``side`` is the
  taker's side, ``trdMatchID`` the trade id. The subscription's ``partial`` repeats recent trades, so
  trades are de-duplicated by ``trdMatchID``.
- ``quote``: best bid/ask ``{timestamp, symbol, bidSize, bidPrice, askPrice, askSize}`` (a ``bbo`` row,
  seq null; a null side is empty).
- ``instrument``: a ``partial`` row, then ``update`` rows holding only the fields that changed, with
  ``timestamp``. ``markPrice`` gives a ``mark_price`` row whose index is ``indicativeSettlePrice`` (for a
  perpetual, BitMEX's underlying index, e.g. ``.BXBT``; ``fairPrice`` is the basis-adjusted fair price
  the mark follows, not the index); ``openInterest`` (contracts) an ``open_interest`` row;
  ``fundingRate`` (the rate of the coming funding, per 8 h interval), ``indicativeFundingRate`` (the
  predicted rate of the interval after) and ``fundingTimestamp`` (its time) a ``funding`` row. Fields
  missing from an update keep their last value (the table is a diff).
- ``liquidation``: live liquidation orders ``{orderID, symbol, side, price, leavesQty}``, ``insert``
  when one enters the book, ``update`` as it fills, ``delete`` when it is done. We store one
  ``liquidations`` row per order at its insert (or first sight in a ``partial``), de-duplicated by
  ``orderID``: side is the liquidation order's side (it takes liquidity), size its ``leavesQty`` then
  (contracts). The table carries no time: ``ts_exchange`` is null.
BitMEX's ``funding`` table (the settled rate every 8 h) is not subscribed: the instrument carries the
rates ahead of settlement.

Symbols (DESIGN.md): perpetuals ``XBTUSD`` -> ``BTC-USD-PERP``, ``XBTUSDT`` -> ``BTC-USDT-PERP``,
``ETHUSD`` -> ``ETH-USD-PERP``; dated futures (``XBTZ26``, ``XBTUSDTZ26``) keep BitMEX's names; spot pairs
(``XBT_USDT``) are not covered. Sizes (book, trades, liquidations, open interest) are in contracts, as
BitMEX sends them: 1 USD per contract for ``XBTUSD``, a fixed amount of the base coin for linear
contracts (``XBTUSDT``: 0.000001 XBT); the instrument's ``multiplier`` says which.

Sources: https://www.bitmex.com/app/wsAPI,
https://blog.bitmex.com/api_announcement/removing-id-schema-on-orderbook-feeds/ (2023, price on every L2
row, ids arbitrary), https://blog.bitmex.com/api_announcement/changes-to-order-book-level-2-data/
(2022, timestamps on L2), https://blog.bitmex.com/site_announcement/rate-limiting-websocket-connections,
https://www.bitmex.com/api/explorer (table fields), all checked 2026-12-05. There is no BitMEX recording
in ../shared; the tests use BitMEX's documented message examples.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson
from aiohttp import web

from schemas import RecordBuffer

from ..base import CHANNELS, ExchangeDialect, Normaliser, Subscription, unique_streams
from ..book import ASK, BID, ResyncWatch, SymbolBooks
from ..dedupe import RecentTradeIds
from ..events import (
    ParseError,
    check_symbol,
    emit_event,
    funding_rate,
    iso_to_ns,
    non_negative_size,
    ns_to_iso,
    positive_price,
)
from ..instruments import Instrument
from ..simulator import ClientSession, ExchangeSimulator, MarketStep, SimulatorConfig
from . import bitmex_instruments

EXCHANGE = "bitmex"
_PERP_RE = re.compile(r"^([A-Z0-9]{2,20}?)(USDT|USDC|USD|EUR)$")
_NATIVE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_.]{0,31}$")
_SIDES = {"Buy": BID, "Sell": ASK}
_TAKER = {"Buy": "buy", "Sell": "sell"}
#: Our channel -> BitMEX table (the derivatives channels from the instrument share one table).
_TABLES = {
    "trades": "trade",
    "book": "orderBookL2",
    "bbo": "quote",
    "funding": "instrument",
    "mark": "instrument",
    "open_interest": "instrument",
    "liquidations": "liquidation",
}


def normalise_bitmex(native: Any) -> str:
    """``XBTUSD`` -> ``BTC-USD-PERP``; ``ETHUSDT`` -> ``ETH-USDT-PERP``; dated futures unchanged."""
    if not isinstance(native, str) or not _NATIVE_RE.match(native):
        raise ParseError(f"not a BitMEX symbol: {str(native)[:40]!r}")
    match = _PERP_RE.match(native)
    if match is None:
        return native
    base, quote = match.groups()
    return f"{'BTC' if base == 'XBT' else base}-{quote}-PERP"


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(f"{what} is not a number: {str(value)[:40]!r}")
    return float(value)


def _rate(value: Any, what: str, symbol: str) -> float:
    """A funding rate sent as a JSON number, within the shared bounds (:func:`funding_rate`)."""
    return funding_rate(_number(value, what), symbol, what)


class BitmexNormaliser(Normaliser):
    """BitMEX frames -> records."""

    exchange: ClassVar[str] = EXCHANGE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbols = SymbolBooks(self.exchange, normalise_bitmex)
        #: native symbol -> level id -> (side, price) of the held book
        self.level_ids: dict[str, dict[int, tuple[str, float]]] = {}
        #: native symbol -> the instrument row as far as received (the table is a diff)
        self.instruments: dict[str, dict[str, Any]] = {}
        self.trade_ids = RecentTradeIds()
        self.liquidation_ids = RecentTradeIds()
        self.resync = ResyncWatch()

    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        if frame in ("pong", b"pong"):
            return
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not an object")
        table = msg.get("table")
        if table is None:
            if "error" in msg:
                emit_event(
                    out,
                    self.exchange,
                    None,
                    "connection",
                    ts_recv,
                    "venue_error",
                    {"error": str(msg["error"])[:500], "status": str(msg.get("status"))[:10]},
                )
            elif "success" in msg or "info" in msg:
                return  # a subscription answer, the welcome message
            else:
                raise ParseError("neither a table message nor an answer")
            return
        action, data = msg["action"], msg["data"]
        if action not in ("partial", "insert", "update", "delete"):
            raise ParseError(f"unknown action {str(action)[:20]!r}")
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise ParseError("data is not a list of rows")
        if table == "orderBookL2":
            if action == "partial" and not data:
                self.on_empty_book(ts_recv, msg.get("filter"), out)
                return
            self.on_book(ts_recv, action, data, out)
        elif table == "trade":
            self.on_trades(ts_recv, action, data, out)
        elif table == "quote":
            self.on_quotes(ts_recv, data, out)
        elif table == "instrument":
            self.on_instrument(ts_recv, action, data, out)
        elif table == "liquidation":
            self.on_liquidations(ts_recv, action, data, out)
        else:
            raise ParseError(f"unknown table {str(table)[:40]!r}")

    # -- book --------------------------------------------------------------------------------------
    def on_book(self, ts_recv: int, action: str, data: list[dict[str, Any]], out: RecordBuffer) -> None:
        """``orderBookL2`` rows, per symbol: a partial is the snapshot, the rest move levels by id."""
        by_symbol: dict[str, list[tuple[int, str, float, float, Any, int | None]]] = {}
        for row in data:  # validate the whole message before anything is applied
            native = row["symbol"]
            symbol = self.symbols.name(native)
            level_id = row["id"]
            if not isinstance(level_id, int) or isinstance(level_id, bool) or level_id < 0:
                raise ParseError(f"bad level id {str(level_id)[:40]!r}", symbol, "book")
            side = _SIDES.get(row["side"])
            if side is None:
                raise ParseError(f"unknown side {str(row['side'])[:20]!r}", symbol, "book")
            price = positive_price(row["price"])
            self._check_price(price, symbol, "book")  # within the sanity bounds, before ids are compared
            size = 0.0 if action == "delete" else non_negative_size(row["size"])
            if not size < self.limits.max_size:
                raise ParseError(f"level size out of range: {str(row['size'])[:40]!r}", symbol, "book")
            ts = row.get("timestamp")
            ts_exchange = iso_to_ns(ts) if ts is not None else None
            by_symbol.setdefault(native, []).append((level_id, side, price, size, row["price"], ts_exchange))
        for native, rows in by_symbol.items():
            book = self.symbols.book(native)
            ids = self.level_ids.setdefault(native, {})
            if action == "partial":
                ids.clear()
                bids: list[tuple[Any, float]] = []
                asks: list[tuple[Any, float]] = []
                for level_id, side, price, size, wire, _ in rows:
                    ids[level_id] = (side, price)
                    (bids if side == BID else asks).append((wire, size))
                book.apply_snapshot(out, rows[0][5] if rows else None, ts_recv, bids, asks, None)
                self.resync.done(native)
                continue
            if not book.synced:
                self.resync.check(out, self.exchange, native, book.symbol, ts_recv, self.resubscribe_requests)
                continue
            problem = _inconsistency(action, rows, ids, book.book.bids, book.book.asks)
            if problem is not None:
                ids.clear()
                book.gap(out, ts_recv, "gap", {"action": action, **problem})
                self.resubscribe_requests.add(native)
                continue
            for level_id, side, price, _, _, _ in rows:
                if action == "delete":
                    del ids[level_id]
                else:
                    ids[level_id] = (side, price)
            for ts_exchange, run in itertools.groupby(rows, key=lambda r: r[5]):
                bids, asks = [], []
                for _, side, _, size, wire, _ in run:
                    (bids if side == BID else asks).append((wire, size))
                flags = self.time_flags.flags(ts_exchange, ts_recv)
                book.apply_update(out, ts_exchange, ts_recv, bids, asks, None, flags)
            book.check_crossed(out, ts_recv, {"action": action})

    def on_empty_book(self, ts_recv: int, filter_: Any, out: RecordBuffer) -> None:
        """A ``partial`` without rows: the book named by the subscription's filter is empty."""
        native = filter_.get("symbol") if isinstance(filter_, dict) else None
        if native is None:
            return  # a partial of no book at all
        book = self.symbols.book(native)
        self.level_ids.setdefault(native, {}).clear()
        book.apply_snapshot(out, None, ts_recv, [], [], None)
        self.resync.done(native)

    # -- trades, quotes ----------------------------------------------------------------------------
    def on_trades(self, ts_recv: int, action: str, data: list[dict[str, Any]], out: RecordBuffer) -> None:
        """``trade`` rows (a partial repeats recent ones: de-duplicated by ``trdMatchID``)."""
        if action not in ("partial", "insert"):
            raise ParseError(f"unexpected trade action {action!r}", channel="trades")
        parsed = []
        for t in data:
            symbol = self.symbols.name(t["symbol"])
            trade_id = t["trdMatchID"]
            if not isinstance(trade_id, str) or not trade_id or len(trade_id) > 64:
                raise ParseError(f"bad trdMatchID {str(trade_id)[:40]!r}", symbol, "trades")
            side = _TAKER.get(t["side"])
            if side is None:
                raise ParseError(f"unknown side {str(t['side'])[:20]!r}", symbol, "trades")
            price = positive_price(t["price"])
            size = positive_price(t["size"], "size")
            parsed.append((t["symbol"], symbol, trade_id, price, size, side, iso_to_ns(t["timestamp"])))
        for native, symbol, trade_id, price, size, side, ts_exchange in parsed:
            if self.trade_ids.seen(native, trade_id):
                if action == "insert":
                    emit_event(
                        out, self.exchange, symbol, "trades", ts_recv, "duplicate", {"trade_id": trade_id}
                    )
                continue
            self.emit_trade(out, symbol, ts_exchange, ts_recv, trade_id, price, size, side)

    def on_quotes(self, ts_recv: int, data: list[dict[str, Any]], out: RecordBuffer) -> None:
        """``quote`` rows: best bid and ask (a null side is empty)."""
        parsed = []
        for q in data:
            symbol = self.symbols.name(q["symbol"])
            sides: list[float | None] = []
            for price_key, size_key in (("bidPrice", "bidSize"), ("askPrice", "askSize")):
                price = q.get(price_key)
                if price is None:
                    sides += [None, None]
                else:
                    sides += [positive_price(price, price_key), non_negative_size(q.get(size_key), size_key)]
            parsed.append((symbol, iso_to_ns(q["timestamp"]), sides))
        for symbol, ts_exchange, (bp, bs, ap, asz) in parsed:
            self.emit_bbo(out, symbol, ts_exchange, ts_recv, bp, bs, ap, asz, None)

    # -- derivatives ---------------------------------------------------------------------------------
    def on_instrument(self, ts_recv: int, action: str, data: list[dict[str, Any]], out: RecordBuffer) -> None:
        """``instrument`` rows: mark and index, open interest, funding, each when its fields change."""
        parsed = []
        for row in data:
            native = row["symbol"]
            symbol = self.symbols.name(native)
            ts_exchange = iso_to_ns(row["timestamp"])
            fields: dict[str, Any] = {}
            for key in ("markPrice", "indicativeSettlePrice"):
                if row.get(key) is not None:
                    fields[key] = positive_price(row[key], key)
            if row.get("openInterest") is not None:
                fields["openInterest"] = non_negative_size(row["openInterest"], "openInterest")
            for key in ("fundingRate", "indicativeFundingRate"):
                if row.get(key) is not None:
                    fields[key] = _rate(row[key], key, symbol)
            if row.get("fundingTimestamp") is not None:
                fields["fundingTimestamp"] = iso_to_ns(row["fundingTimestamp"])
            parsed.append((native, symbol, ts_exchange, fields))
        for native, symbol, ts_exchange, fields in parsed:
            held = self.instruments.get(native)
            if held is None or action == "partial":
                held = self.instruments[native] = {}
            held.update(fields)
            if "markPrice" in fields and "markPrice" in held:
                self.emit_mark_price(
                    out, symbol, ts_exchange, ts_recv, held["markPrice"], held.get("indicativeSettlePrice")
                )
            if "openInterest" in fields:
                self.emit_open_interest(out, symbol, ts_exchange, ts_recv, fields["openInterest"])
            funding_keys = ("fundingRate", "indicativeFundingRate", "fundingTimestamp")
            if "fundingRate" in held and any(k in fields for k in funding_keys):
                self.emit_funding(
                    out,
                    symbol,
                    ts_exchange,
                    ts_recv,
                    held["fundingRate"],
                    held.get("indicativeFundingRate"),
                    held.get("fundingTimestamp"),
                )

    def on_liquidations(
        self, ts_recv: int, action: str, data: list[dict[str, Any]], out: RecordBuffer
    ) -> None:
        """``liquidation`` rows: one row per liquidation order, at its insert (or first partial)."""
        if action not in ("partial", "insert"):
            return  # an order filling or leaving the book: not a new liquidation
        parsed = []
        for row in data:
            symbol = self.symbols.name(row["symbol"])
            order_id = row["orderID"]
            if not isinstance(order_id, str) or not order_id or len(order_id) > 64:
                raise ParseError(f"bad orderID {str(order_id)[:40]!r}", symbol, "liquidations")
            side = _TAKER.get(row["side"])
            if side is None:
                raise ParseError(f"unknown side {str(row['side'])[:20]!r}", symbol, "liquidations")
            price = positive_price(row["price"])
            size = positive_price(row["leavesQty"], "leavesQty")
            parsed.append((row["symbol"], symbol, order_id, side, price, size))
        for native, symbol, order_id, side, price, size in parsed:
            if not self.liquidation_ids.seen(native, order_id):
                self.emit_liquidation(out, symbol, None, ts_recv, order_id, side, price, size)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """A new connection starts every table with a partial: books get a new epoch."""
        for book in self.symbols.books.values():
            book.reset()
        self.level_ids.clear()
        self.instruments.clear()
        self.resync.waiting.clear()


def _inconsistency(
    action: str,
    rows: list[tuple[int, str, float, float, Any, int | None]],
    ids: dict[int, tuple[str, float]],
    bids: Any,
    asks: Any,
) -> dict[str, Any] | None:
    """What in these rows contradicts the held ids (a lost message), or None."""
    for level_id, side, price, _, _, _ in rows:
        held = ids.get(level_id)
        if action == "insert":
            if held is not None:
                return {"reason": "insert of a held id", "id": level_id}
            if price in (bids if side == BID else asks):
                return {"reason": "insert at a held price level", "id": level_id, "price": price}
        elif held is None:
            return {"reason": f"{action} of an unknown id", "id": level_id}
        elif held != (side, price):
            return {"reason": "id moved", "id": level_id, "held": list(held), "price": price}
    return None


class BitmexDialect(ExchangeDialect):
    """BitMEX: endpoint, topic subscriptions, ``ping``, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://ws.bitmex.com"
    default_rest_url: ClassVar[str | None] = "https://www.bitmex.com/api/v1"
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, "funding", "mark", "open_interest", "liquidations")
    demo_symbols: ClassVar[tuple[str, ...]] = ("XBTUSD", "ETHUSD")
    #: no id sequence: a lost update of a held level is invisible (inconsistent ids are still gaps)
    sequenced_book: ClassVar[bool] = False
    #: five tables per symbol; 50 symbols per connection (our choice, see above)
    max_streams_per_connection: ClassVar[int] = 250
    app_ping: ClassVar[tuple[str, float] | None] = ("ping", 5.0)

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USD-PERP`` -> ``XBTUSD``, ``ETH-USDT-PERP`` -> ``ETHUSDT``; BitMEX names are kept."""
        text = symbol.strip().upper()
        parts = text.split("-")
        if len(parts) == 3 and parts[2] == "PERP":
            return f"{'XBT' if parts[0] == 'BTC' else parts[0]}{parts[1]}"
        return text

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(normalise_bitmex(native))

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        return f"{ws_url.rstrip('/')}/realtime"

    def topics(self, natives: Sequence[str], channels: Sequence[str]) -> list[str]:
        """``table:symbol`` topics of some symbols and our channels (shared tables once)."""
        return unique_streams(natives, channels, lambda native, channel: f"{_TABLES[channel]}:{native}")

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        return [orjson.dumps({"op": "subscribe", "args": self.topics(sub.symbols, sub.channels)}).decode()]

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        """A book's resync: unsubscribe and subscribe its ``orderBookL2`` (which starts with a partial)."""
        topics = self.topics(native_symbols, ("book",))
        return [
            orjson.dumps({"op": "unsubscribe", "args": topics}).decode(),
            orjson.dumps({"op": "subscribe", "args": topics}).decode(),
        ]

    def new_normaliser(self) -> Normaliser:
        return BitmexNormaliser()

    # -- instruments (collectors/venues/bitmex_instruments.py) -----------------------------------
    instruments_rest_url: ClassVar[str | None] = "https://www.bitmex.com"

    def instruments_paths(self) -> list[str]:
        return [bitmex_instruments.PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return bitmex_instruments.parse_active(self, body, ts_recv)

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return BitmexSimulator(self, config)


class BitmexSimulator(ExchangeSimulator):
    """BitMEX on loopback: ``/realtime``, welcome, subscribe/unsubscribe answers, ``ping``/``pong``, tables
    with partials; book levels get arbitrary ids, and every L2 row carries its price and timestamp."""

    ws_paths = ("/realtime",)
    sizes_in_lots = True
    #: market steps between two instrument updates
    INSTRUMENT_EVERY = 5
    #: one trade in this many comes from a liquidation order
    LIQUIDATION_EVERY = 4
    TABLES = ("orderBookL2", "trade", "quote", "instrument", "liquidation")

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        #: symbol -> (side, price string) -> level id (ids are global, as on the venue)
        self.ids: dict[str, dict[tuple[str, str], int]] = {s: {} for s in config.symbols}
        self._next_id = itertools.count(8_700_000_000, 7)
        self._actions: tuple[MarketStep | None, dict[str, list[dict[str, Any]]]] = (None, {})
        self.recent_trades: dict[str, list[dict[str, Any]]] = {s: [] for s in config.symbols}

    def instrument_routes(self) -> list[web.RouteDef]:
        return [web.get(bitmex_instruments.PATH, self.instruments_handler)]

    async def instruments_handler(self, request: web.Request) -> web.Response:
        """``GET /api/v1/instrument/active``: this simulator's markets."""
        fault = self.instruments_fault_response()
        if fault is not None:
            return fault
        return web.json_response(bitmex_instruments.active_body(self.markets))

    async def on_open(self, session: ClientSession) -> None:
        welcome = {
            "info": "Welcome to the BitMEX Realtime API.",
            "version": "2.0.0",
            "timestamp": ns_to_iso(self.now_exchange_ns(), 3),
            "docs": "https://www.bitmex.com/app/wsAPI",
            "limit": {"remaining": 39},
        }
        self.send(session, orjson.dumps(welcome).decode())

    async def on_message(self, session: ClientSession, text: str) -> None:
        if text == "ping":
            self.send(session, "pong")
            return
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._error(session, "Unable to parse request.", text)
            return
        op = msg.get("op") if isinstance(msg, dict) else None
        args = msg.get("args") if isinstance(msg, dict) else None
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list | str):
            self._error(session, "Unknown or missing op.", msg)
            return
        for topic in [args] if isinstance(args, str) else args:
            table, _, symbol = str(topic).partition(":")
            if table not in self.TABLES or symbol not in self.markets:
                self._error(session, f"Unknown table or symbol: {str(topic)[:60]}", msg)
                continue
            if op == "subscribe":
                session.subscriptions.add((table, symbol))
                session.state.setdefault("partial_due", set()).add((table, symbol))
            else:
                session.subscriptions.discard((table, symbol))
            answer = {"success": True, op: topic, "request": msg}
            self.send(session, orjson.dumps(answer).decode())

    def _error(self, session: ClientSession, error: str, request: Any) -> None:
        frame = {"status": 400, "error": error, "meta": {}, "request": request}
        self.send(session, orjson.dumps(frame, default=str).decode())

    def publish_step(self, step: MarketStep) -> None:
        """Moves the level ids with every step, whether or not a client is subscribed."""
        self._book_actions(step)
        super().publish_step(step)

    def _book_actions(self, step: MarketStep) -> dict[str, list[dict[str, Any]]]:
        """The step's book changes as insert/update/delete rows (computed once for every session)."""
        if self._actions[0] is step:
            return self._actions[1]
        ids, ts = self.ids[step.symbol], ns_to_iso(step.ts_ns, 3)
        actions: dict[str, list[dict[str, Any]]] = {"delete": [], "update": [], "insert": []}
        for side, levels in (("Buy", step.bids), ("Sell", step.asks)):
            for price, size in levels:
                key = (side, price)
                row: dict[str, Any] = {"symbol": step.symbol, "side": side, "price": float(price)}
                if float(size) == 0.0:
                    level_id = ids.pop(key, None)
                    if level_id is None:
                        continue
                    actions["delete"].append({"id": level_id, **row, "timestamp": ts})
                elif key in ids:
                    actions["update"].append(
                        {"id": ids[key], **row, "size": _contracts(step, size), "timestamp": ts}
                    )
                else:
                    ids[key] = next(self._next_id)
                    actions["insert"].append(
                        {"id": ids[key], **row, "size": _contracts(step, size), "timestamp": ts}
                    )
        self._actions = (step, actions)
        return actions

    def _partial(self, table: str, symbol: str, data: list[dict[str, Any]]) -> str:
        frame = {"table": table, "action": "partial", "keys": [], "filter": {"symbol": symbol}, "data": data}
        return orjson.dumps(frame).decode()

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        sym, ts = step.symbol, ns_to_iso(step.ts_ns, 3)
        due: set[tuple[str, str]] = session.state.setdefault("partial_due", set())
        actions = self._book_actions(step)
        trade_rows = [
            {
                "timestamp": ts,
                "symbol": sym,
                "side": "Buy" if t.side == "buy" else "Sell",
                "size": max(1, _contracts(step, t.size)),
                "price": float(t.price),
                "tickDirection": "PlusTick",
                "trdMatchID": f"{t.trade_id:08x}-0000-4000-8000-{t.trade_id:012x}",
                "grossValue": 0,
                "homeNotional": 0.0,
                "foreignNotional": 0.0,
                "trdType": "Regular",
            }
            for t in step.trades
        ]
        if trade_rows:
            self.recent_trades[sym] = (self.recent_trades[sym] + trade_rows)[-3:]
        trades: list[str] = []
        if session.subscribed("trade", sym):
            if ("trade", sym) in due:
                due.discard(("trade", sym))
                trades.append(self._partial("trade", sym, self.recent_trades[sym]))
            elif trade_rows:
                trades.append(
                    orjson.dumps({"table": "trade", "action": "insert", "data": trade_rows}).decode()
                )
        book: list[str] = []
        if session.subscribed("orderBookL2", sym):
            if ("orderBookL2", sym) in due:
                due.discard(("orderBookL2", sym))
                ids = self.ids[sym]
                bids, asks = step.model.top()
                rows = []
                for side, levels in (("Sell", list(reversed(asks))), ("Buy", bids)):
                    for price, size in levels:
                        level_id = ids.setdefault((side, price), next(self._next_id))
                        rows.append(
                            {
                                "symbol": sym,
                                "id": level_id,
                                "side": side,
                                "size": _contracts(step, size),
                                "price": float(price),
                                "timestamp": ts,
                            }
                        )
                book.append(self._partial("orderBookL2", sym, rows))
            else:
                for action, rows in actions.items():
                    if rows:
                        book.append(
                            orjson.dumps({"table": "orderBookL2", "action": action, "data": rows}).decode()
                        )
        other: list[str] = []
        (bp, bq), (ap, aq) = step.model.best()
        if session.subscribed("quote", sym):
            quote = {
                "timestamp": ts,
                "symbol": sym,
                "bidSize": _contracts(step, bq),
                "bidPrice": float(bp),
                "askPrice": float(ap),
                "askSize": _contracts(step, aq),
            }
            action = "partial" if ("quote", sym) in due else "insert"
            due.discard(("quote", sym))
            other.append(orjson.dumps({"table": "quote", "action": action, "data": [quote]}).decode())
        if session.subscribed("instrument", sym) and (
            ("instrument", sym) in due or step.first_update_id % self.INSTRUMENT_EVERY == 0
        ):
            mid = (float(bp) + float(ap)) / 2
            row = {
                "symbol": sym,
                "markPrice": round(mid, 2),
                "fairPrice": round(mid, 2),
                "indicativeSettlePrice": round(mid * 0.9999, 2),
                "openInterest": 500_000_000 + step.update_id % 9973,
                "fundingRate": 0.0001,
                "indicativeFundingRate": 0.000087,
                "fundingTimestamp": "2026-12-06T04:00:00.000Z",
                "timestamp": ts,
            }
            action = "partial" if ("instrument", sym) in due else "update"
            due.discard(("instrument", sym))
            other.append(orjson.dumps({"table": "instrument", "action": action, "data": [row]}).decode())
        if session.subscribed("liquidation", sym):
            rows = [
                {
                    "orderID": f"{t.trade_id:08x}-1111-4000-8000-{t.trade_id:012x}",
                    "symbol": sym,
                    "side": "Sell" if t.side == "buy" else "Buy",
                    "price": float(t.price),
                    "leavesQty": max(1, _contracts(step, t.size)),
                }
                for t in step.trades
                if t.trade_id % self.LIQUIDATION_EVERY == 0
            ]
            if ("liquidation", sym) in due:
                due.discard(("liquidation", sym))
                other.append(self._partial("liquidation", sym, []))
            if rows:
                other.append(
                    orjson.dumps({"table": "liquidation", "action": "insert", "data": rows}).decode()
                )
        return trades, book, other


def _contracts(step: MarketStep, size: str) -> int:
    """A model size as a whole number of contracts (its lots)."""
    return round(float(size) * 10**step.model.size_decimals)


DIALECT_CLASS = BitmexDialect

"""Deribit (exchange id ``deribit``): JSON-RPC 2.0 over ``wss://www.deribit.com/ws/api/v2``.

Protocol, as Deribit documents it (checked 2026-12-05):
- one ``public/subscribe`` request carries every channel: ``{"jsonrpc":"2.0","id":2,"method":
  "public/subscribe","params":{"channels":[...]}}``; the answer is ``{"id":2,"result":[channels]}``, an
  error ``{"id":..,"error":{"code","message"}}``. Notifications are ``{"method":"subscription","params":
  {"channel","data"}}``.
- channel intervals: ``raw`` is for authorised connections only; a public connection uses ``100ms``
  (aggregated). We subscribe ``book.{instrument}.100ms``, ``trades.{instrument}.100ms`` and
  ``ticker.{instrument}.100ms``.
- heartbeats: ``public/set_heartbeat`` (interval >= 10 s, we ask 30 s) makes the server send
  ``{"method":"heartbeat","params":{"type":"heartbeat"|"test_request"}}``; a ``test_request`` must be
  answered with ``public/test`` or the server closes the connection. The normaliser queues that answer
  in ``Normaliser.replies``; the live connection sends it.
- limits: credit-based rate limits (each request costs credits from a refilling pool; running dry is a
  ``too_many_requests`` error, code 10028, and the session is closed); 32 simultaneous connections per
  IP. Deribit documents no per-connection channel cap; we keep 100 instruments (300 channels) on one
  connection, in one subscribe request.

Channels:
- ``book.{instrument}.100ms``: the first notification is ``type: snapshot`` (every level as
  ``["new", price, amount]``) with ``change_id``; each later one is ``type: change`` with
  ``prev_change_id`` and levels ``[action, price, amount]``, ``action`` one of ``new``/``change``/
  ``delete``. No message was missed exactly when ``prev_change_id`` equals the previous ``change_id``;
  otherwise that instrument's book has a ``gap`` and is resynced by unsubscribing and subscribing its book
  channel again (the new subscription starts with a snapshot). ``seq`` of book rows is ``change_id``.
- ``trades.{instrument}.100ms``: a list of ``{trade_id, trade_seq, timestamp (ms), price, amount,
  direction, liquidation?, ...}``; ``direction`` is the taker's side. A trade with ``liquidation``
  (``"T"``: the taker was liquidated, ``"M"``: the maker, ``"MT"``: both) is also a ``liquidations`` row
  per liquidated side: its side is that liquidation order's side (``direction`` for ``T``, the opposite
  for ``M``), its id the ``trade_id``.
- ``ticker.{instrument}.100ms``: ``best_bid_price``/``best_bid_amount``/``best_ask_price``/
  ``best_ask_amount`` (a ``bbo`` row; an empty side is price 0 or null), ``mark_price`` and
  ``index_price`` (a ``mark_price`` row), ``open_interest`` (an ``open_interest`` row, in the amount unit
  below), and for perpetuals ``funding_8h`` and ``current_funding`` (a ``funding`` row: ``funding_rate`` is
  ``funding_8h``, the rate over 8 hours; ``predicted_rate`` is ``current_funding``, the rate accruing now;
  Deribit charges funding continuously, so there is no ``next_funding_time``). All rows carry the
  ticker's ``timestamp``; the bbo has no sequence (the ticker carries no ``change_id``).

Symbols (DESIGN.md): ``BTC-PERPETUAL`` -> ``BTC-USD-PERP`` (inverse), ``BTC_USDC-PERPETUAL`` ->
``BTC-USDC-PERP`` (linear); dated futures (``BTC-27DEC26``) and options (``BTC-27DEC26-100000-C``) keep
Deribit's names (upper case: a decimal strike ``XRP_USDC-30MAY25-2d2-C`` becomes ``...-2D2-C``).

Units of ``size`` (book, trades, liquidations) and of open interest, per instrument kind: inverse
perpetuals and inverse futures (``BTC-PERPETUAL``, ``BTC-27DEC26``): USD; linear perpetuals and futures
(``BTC_USDC-PERPETUAL``): the base coin; options: contracts of the underlying coin (1 contract = 1 BTC or
1 ETH). Prices of options are in the underlying coin (BTC, ETH), of everything else in the quote currency.

Sources: https://docs.deribit.com/subscriptions/orderbook/bookinstrument_nameinterval,
https://docs.deribit.com/articles/notifications,
https://docs.deribit.com/subscriptions/upcoming/market-data/tickerinstrument_nameinterval,
https://docs.deribit.com/api-reference/session-management/public-set_heartbeat,
https://docs.deribit.com/api-reference/supporting/public-test,
https://docs.deribit.com/articles/rate-limits, https://docs.deribit.com/articles/market-data-collection-best-practices
(public trade fields: ``trade_id``, ``direction`` "Trade direction of the taker", ``liquidation`` M/T/MT),
all checked 2026-12-05. Checked against the shared recording ``deribit/deribit_cryptofeed`` (2021, ``raw``
channels of options).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson
from aiohttp import web

from schemas import RecordBuffer

from ..base import CHANNELS, ExchangeDialect, Normaliser, Subscription, unique_streams
from ..book import ResyncWatch, SymbolBooks, parse_levels
from ..events import (
    ParseError,
    bbo_side,
    check_symbol,
    emit_event,
    funding_rate,
    ms_to_ns,
    non_negative_size,
    positive_price,
)
from ..instruments import Instrument
from ..simulator import ClientSession, ExchangeSimulator, MarketStep, SimulatorConfig
from . import deribit_instruments

EXCHANGE = "deribit"
PERPETUAL = "-PERPETUAL"
#: aggregation interval of every channel (``raw`` needs an authorised connection)
INTERVAL = "100ms"
#: seconds between the server's heartbeats (Deribit's minimum is 10)
HEARTBEAT_S = 30
#: JSON-RPC ids of our requests (answers are recognised and otherwise ignored)
ID_HEARTBEAT, ID_SUBSCRIBE, ID_RESUBSCRIBE, ID_TEST = 1, 2, 3, 4
#: Our channel -> Deribit channel kind (several of ours share one Deribit channel).
_KINDS = {
    "trades": "trades",
    "liquidations": "trades",
    "book": "book",
    "bbo": "ticker",
    "funding": "ticker",
    "mark": "ticker",
    "open_interest": "ticker",
}
_TAKER = ("buy", "sell")
_OPPOSITE = {"buy": "sell", "sell": "buy"}
_NATIVE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
TEST_REPLY = orjson.dumps({"jsonrpc": "2.0", "id": ID_TEST, "method": "public/test", "params": {}}).decode()


def normalise_instrument(native: Any) -> str:
    """``BTC-PERPETUAL`` -> ``BTC-USD-PERP``; ``ETH_USDC-PERPETUAL`` -> ``ETH-USDC-PERP``; others upper-cased."""
    if not isinstance(native, str) or not _NATIVE_RE.match(native):
        raise ParseError(f"not a Deribit instrument: {str(native)[:40]!r}")
    if native.endswith(PERPETUAL):
        root = native[: -len(PERPETUAL)]
        base, _, quote = root.partition("_")
        if not base or "-" in root:
            raise ParseError(f"not a Deribit perpetual: {native[:40]!r}")
        return f"{base}-{quote or 'USD'}-PERP".upper()
    return native.upper()


def _level(level: Any) -> tuple[Any, Any]:
    """``[action, price, amount]`` -> ``(price, amount)``; a ``delete`` has amount 0."""
    if not isinstance(level, list) or len(level) != 3:
        raise ParseError("book level is not [action, price, amount]", channel="book")
    action, price, amount = level
    if action == "delete":
        return price, 0.0
    if action not in ("new", "change"):
        raise ParseError(f"unknown book action {str(action)[:20]!r}", channel="book")
    return price, amount


def _int(value: Any, what: str, symbol: str | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ParseError(f"bad {what} {str(value)[:40]!r}", symbol, "book")
    return value


def _rate(value: Any, what: str, symbol: str) -> float:
    """A funding rate: a finite number (negative allowed)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(f"{what} is not a number: {str(value)[:40]!r}", symbol, "funding")
    return funding_rate(value, symbol, what)  # the shared bounds


class DeribitNormaliser(Normaliser):
    """Deribit frames -> records."""

    exchange: ClassVar[str] = EXCHANGE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbols = SymbolBooks(self.exchange, normalise_instrument)
        self.resync = ResyncWatch()

    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not an object")
        method = msg.get("method")
        if method == "subscription":
            params = msg["params"]
            channel, data = params["channel"], params["data"]
            if not isinstance(channel, str):
                raise ParseError("channel is not a string")
            kind = channel.split(".", 1)[0]
            if kind == "book":
                self.on_book(ts_recv, data, out)
            elif kind == "trades":
                self.on_trades(ts_recv, data, out)
            elif kind == "ticker":
                self.on_ticker(ts_recv, data, out)
            else:
                raise ParseError(f"unknown channel {channel[:60]!r}")
        elif method == "heartbeat":
            params = msg.get("params")
            if isinstance(params, dict) and params.get("type") == "test_request":
                self.replies.append(TEST_REPLY)
        elif "error" in msg:
            emit_event(
                out,
                self.exchange,
                None,
                "connection",
                ts_recv,
                "venue_error",
                {"error": str(msg["error"])[:500], "id": str(msg.get("id"))[:40]},
            )
        elif "result" in msg and "id" in msg:
            return  # the answer to one of our requests
        else:
            raise ParseError("neither a notification nor an answer")

    def on_book(self, ts_recv: int, data: Any, out: RecordBuffer) -> None:
        """A ``book`` notification: a snapshot, or changes chained by ``prev_change_id``."""
        if not isinstance(data, dict):
            raise ParseError("book data is not an object", channel="book")
        native = data["instrument_name"]
        book = self.symbols.book(native)
        kind = data["type"]
        change_id = _int(data["change_id"], "change_id", book.symbol)
        ts_exchange = ms_to_ns(data["timestamp"])
        bids = [_level(lv) for lv in data["bids"]]
        asks = [_level(lv) for lv in data["asks"]]
        if kind == "snapshot":
            book.apply_snapshot(out, ts_exchange, ts_recv, bids, asks, change_id)
            self.resync.done(native)
            return
        if kind != "change":
            raise ParseError(f"unknown book type {str(kind)[:20]!r}", book.symbol, "book")
        prev = _int(data["prev_change_id"], "prev_change_id", book.symbol)
        if not book.synced or prev != book.last_seq:
            # a change that is dropped or breaks the book is validated first: a hostile one is a
            # parse error, never a silent skip or a gap
            parse_levels(bids, book.limits.max_price, book.limits.max_size)
            parse_levels(asks, book.limits.max_price, book.limits.max_size)
        if not book.synced:
            # waiting for the snapshot of a (re)subscription: changes before it cannot be applied
            self.resync.check(out, self.exchange, native, book.symbol, ts_recv, self.resubscribe_requests)
            return
        if prev != book.last_seq:
            book.gap(
                out,
                ts_recv,
                "gap",
                {"expected_prev_change_id": book.last_seq, "prev_change_id": prev, "change_id": change_id},
            )
            self.resubscribe_requests.add(native)
            return
        flags = self.time_flags.flags(ts_exchange, ts_recv)
        book.apply_update(out, ts_exchange, ts_recv, bids, asks, change_id, flags)
        book.last_seq = change_id
        book.check_crossed(out, ts_recv, {"change_id": change_id})

    def on_trades(self, ts_recv: int, data: Any, out: RecordBuffer) -> None:
        """A ``trades`` notification: one row per trade, and a liquidation row per liquidated side."""
        if not isinstance(data, list):
            raise ParseError("trades data is not a list", channel="trades")
        parsed = []
        for t in data:  # validate the whole message before any row is kept
            symbol = self.symbols.name(t["instrument_name"])
            trade_id = t["trade_id"]
            if not isinstance(trade_id, str) or not trade_id or len(trade_id) > 64:
                raise ParseError(f"bad trade id {str(trade_id)[:40]!r}", symbol, "trades")
            side = t["direction"]
            if side not in _TAKER:
                raise ParseError(f"unknown direction {str(side)[:20]!r}", symbol, "trades")
            price = positive_price(t["price"])
            size = positive_price(t["amount"], "amount")
            liquidation = t.get("liquidation")
            if liquidation not in (None, "M", "T", "MT"):
                raise ParseError(f"unknown liquidation flag {str(liquidation)[:20]!r}", symbol, "trades")
            parsed.append((symbol, trade_id, price, size, side, ms_to_ns(t["timestamp"]), liquidation or ""))
        for symbol, trade_id, price, size, side, ts_exchange, liquidation in parsed:
            self.emit_trade(out, symbol, ts_exchange, ts_recv, trade_id, price, size, side)
            if "T" in liquidation:
                self.emit_liquidation(out, symbol, ts_exchange, ts_recv, trade_id, side, price, size)
            if "M" in liquidation:
                self.emit_liquidation(
                    out, symbol, ts_exchange, ts_recv, trade_id, _OPPOSITE[side], price, size
                )

    def on_ticker(self, ts_recv: int, data: Any, out: RecordBuffer) -> None:
        """A ``ticker`` notification: bbo, mark and index, open interest, and funding of perpetuals."""
        if not isinstance(data, dict):
            raise ParseError("ticker data is not an object", channel="bbo")
        symbol = self.symbols.name(data["instrument_name"])
        ts_exchange = ms_to_ns(data["timestamp"])
        bid_p, bid_s = _bbo_side(data.get("best_bid_price"), data.get("best_bid_amount"), "bid")
        ask_p, ask_s = _bbo_side(data.get("best_ask_price"), data.get("best_ask_amount"), "ask")
        mark = positive_price(data["mark_price"], "mark_price")
        index_raw = data.get("index_price")
        index = positive_price(index_raw, "index_price") if index_raw is not None else None
        open_interest = non_negative_size(data["open_interest"], "open_interest")
        funding_8h, current = data.get("funding_8h"), data.get("current_funding")
        funding = None
        if funding_8h is not None:
            funding = _rate(funding_8h, "funding_8h", symbol)
        predicted = _rate(current, "current_funding", symbol) if current is not None else None
        self.emit_bbo(out, symbol, ts_exchange, ts_recv, bid_p, bid_s, ask_p, ask_s, None)
        self.emit_mark_price(out, symbol, ts_exchange, ts_recv, mark, index)
        self.emit_open_interest(out, symbol, ts_exchange, ts_recv, open_interest)
        if funding is not None:
            self.emit_funding(out, symbol, ts_exchange, ts_recv, funding, predicted)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """A new connection's subscription starts each book with a snapshot (a new epoch)."""
        for book in self.symbols.books.values():
            book.reset()
        self.resync.waiting.clear()
        self.replies.clear()


def _bbo_side(price: Any, size: Any, what: str) -> tuple[float | None, float | None]:
    """One side of the ticker's best bid/ask; null or price 0 is an empty side."""
    if price is None:
        return None, None
    return bbo_side(price, 0.0 if size is None else size, what)


class DeribitDialect(ExchangeDialect):
    """Deribit: endpoint, JSON-RPC subscriptions, heartbeats, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://www.deribit.com"
    default_rest_url: ClassVar[str | None] = "https://www.deribit.com/api/v2"
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, "funding", "mark", "open_interest", "liquidations")
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTC-PERPETUAL", "ETH-PERPETUAL")
    #: three Deribit channels per instrument; 100 instruments per connection (our choice, see above)
    max_streams_per_connection: ClassVar[int] = 300

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USD-PERP`` -> ``BTC-PERPETUAL``, ``BTC-USDC-PERP`` -> ``BTC_USDC-PERPETUAL``; native names
        are kept (a decimal strike's ``D`` between digits becomes Deribit's ``d``)."""
        text = symbol.strip()
        upper = text.upper()
        parts = upper.split("-")
        if len(parts) == 3 and parts[2] == "PERP":
            return f"{parts[0]}{PERPETUAL}" if parts[1] == "USD" else f"{parts[0]}_{parts[1]}{PERPETUAL}"
        return re.sub(r"(?<=\d)D(?=\d)", "d", upper)

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(normalise_instrument(native))

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        return f"{ws_url.rstrip('/')}/ws/api/v2"

    def channel_names(self, natives: Sequence[str], channels: Sequence[str]) -> list[str]:
        """Deribit channel names of some instruments and our channels (shared channels once)."""
        return unique_streams(
            natives, channels, lambda native, channel: f"{_KINDS[channel]}.{native}.{INTERVAL}"
        )

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        return [
            _request(ID_HEARTBEAT, "public/set_heartbeat", {"interval": HEARTBEAT_S}),
            _request(
                ID_SUBSCRIBE, "public/subscribe", {"channels": self.channel_names(sub.symbols, sub.channels)}
            ),
        ]

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        """A book's resync: unsubscribe and subscribe its book channel (which starts with a snapshot)."""
        names = self.channel_names(native_symbols, ("book",))
        return [
            _request(ID_RESUBSCRIBE, "public/unsubscribe", {"channels": names}),
            _request(ID_RESUBSCRIBE, "public/subscribe", {"channels": names}),
        ]

    def new_normaliser(self) -> Normaliser:
        return DeribitNormaliser()

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return DeribitSimulator(self, config)

    # -- instruments (collectors/venues/deribit_instruments.py) ----------------------------------
    def instruments_paths(self) -> list[str]:
        return [deribit_instruments.PATH + deribit_instruments.QUERY]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return deribit_instruments.parse_get_instruments(self, body, ts_recv)


def _request(request_id: int, method: str, params: dict[str, Any]) -> str:
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).decode()


class DeribitSimulator(ExchangeSimulator):
    """Deribit on loopback: ``/ws/api/v2``, JSON-RPC subscribe/unsubscribe, heartbeats with test requests
    (a client that leaves them unanswered is disconnected), snapshot-then-change books, trades with
    liquidations, tickers with funding, mark, index and open interest."""

    ws_paths = ("/ws/api/v2",)
    #: unanswered test requests after which the server closes the connection
    MAX_UNANSWERED = 5
    #: one trade in this many is a liquidation (of the taker, the maker, or both in turn)
    LIQUIDATION_EVERY = 4

    async def on_message(self, session: ClientSession, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._error(session, None, -32700, "parse_error")
            return
        if not isinstance(msg, dict):
            self._error(session, None, -32600, "invalid_request")
            return
        rid, method, params = msg.get("id"), msg.get("method"), msg.get("params") or {}
        if method == "public/test":
            session.state["unanswered"] = 0
            self._result(session, rid, {"version": "1.2.26"})
        elif method == "public/set_heartbeat":
            interval = params.get("interval")
            if not isinstance(interval, int | float) or interval < 10:
                self._error(session, rid, 11029, "invalid_arguments")
                return
            session.state["heartbeat"] = True
            self._result(session, rid, "ok")
        elif method in ("public/subscribe", "public/unsubscribe"):
            names = params.get("channels")
            if not isinstance(names, list):
                self._error(session, rid, 11029, "invalid_arguments")
                return
            done = []
            for name in names:
                parts = name.split(".") if isinstance(name, str) else []
                if (
                    len(parts) != 3
                    or parts[0] not in ("book", "trades", "ticker")
                    or parts[1] not in self.markets
                ):
                    continue
                key = (parts[0], parts[1])
                if method == "public/subscribe":
                    session.subscriptions.add(key)
                    if parts[0] == "book":
                        session.state.setdefault("snapshot_due", set()).add(parts[1])
                else:
                    session.subscriptions.discard(key)
                done.append(name)
            self._result(session, rid, done)
        else:
            self._error(session, rid, -32601, "method_not_found")

    def _result(self, session: ClientSession, rid: Any, result: Any) -> None:
        self.send(session, orjson.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).decode())

    def _error(self, session: ClientSession, rid: Any, code: int, message: str) -> None:
        frame = {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}
        self.send(session, orjson.dumps(frame).decode())

    def heartbeat_frames(self, session: ClientSession, now_ns: int) -> list[str]:
        if not session.state.get("heartbeat"):
            return []
        unanswered = session.state.get("unanswered", 0) + 1
        session.state["unanswered"] = unanswered
        if unanswered > self.MAX_UNANSWERED:
            self._drop(session)  # Deribit closes a connection that ignores its test requests
            return []
        return ['{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}']

    def instrument_routes(self) -> list[web.RouteDef]:
        """``GET /api/v2/public/get_instruments``: this simulator's markets, under the venue's ``/api/v2``
        and under the bare path (a --rest-url naming the simulator root)."""
        paths = ["/api/v2" + deribit_instruments.PATH, deribit_instruments.PATH]
        return self.instruments_routes_of(
            paths, lambda: deribit_instruments.get_instruments_body(self.markets)
        )

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        inst, ms = step.symbol, step.ts_ns // 1_000_000
        trades: list[str] = []
        if step.trades and session.subscribed("trades", inst):
            rows = []
            for t in step.trades:
                row: dict[str, Any] = {
                    "trade_seq": t.trade_id,
                    "trade_id": str(t.trade_id),
                    "timestamp": ms,
                    "tick_direction": 0,
                    "price": float(t.price),
                    "mark_price": float(t.price),
                    "index_price": float(t.price),
                    "instrument_name": inst,
                    "direction": t.side,
                    "amount": float(t.size),
                }
                if t.trade_id % self.LIQUIDATION_EVERY == 0:
                    row["liquidation"] = ("T", "M", "MT")[(t.trade_id // self.LIQUIDATION_EVERY) % 3]
                rows.append(row)
            trades.append(_notification(f"trades.{inst}.{INTERVAL}", rows))
        book: list[str] = []
        if session.subscribed("book", inst):
            due = session.state.get("snapshot_due", set())
            if inst in due:
                due.discard(inst)
                bids, asks = step.model.top()
                data = {
                    "type": "snapshot",
                    "timestamp": ms,
                    "instrument_name": inst,
                    "change_id": step.update_id,
                    "bids": [["new", float(p), float(s)] for p, s in bids],
                    "asks": [["new", float(p), float(s)] for p, s in asks],
                }
            else:
                data = {
                    "type": "change",
                    "timestamp": ms,
                    "prev_change_id": step.first_update_id - 1,
                    "instrument_name": inst,
                    "change_id": step.update_id,
                    "bids": [_sim_level(p, s) for p, s in step.bids],
                    "asks": [_sim_level(p, s) for p, s in step.asks],
                }
            book.append(_notification(f"book.{inst}.{INTERVAL}", data))
        other: list[str] = []
        if session.subscribed("ticker", inst):
            (bp, bq), (ap, aq) = step.model.best()
            mid = (float(bp) + float(ap)) / 2
            ticker: dict[str, Any] = {
                "timestamp": ms,
                "instrument_name": inst,
                "state": "open",
                "best_bid_price": float(bp),
                "best_bid_amount": float(bq),
                "best_ask_price": float(ap),
                "best_ask_amount": float(aq),
                "mark_price": round(mid, 2),
                "index_price": round(mid * 0.9999, 2),
                "open_interest": float(10_000_000 + step.update_id % 9973),
                "stats": {"volume": 1000.0, "price_change": 0.5, "low": float(bp), "high": float(ap)},
            }
            if inst.endswith(PERPETUAL):
                ticker["current_funding"] = 0.00001
                ticker["funding_8h"] = 0.0000825
            other.append(_notification(f"ticker.{inst}.{INTERVAL}", ticker))
        return trades, book, other


def _sim_level(price: str, size: str) -> list[Any]:
    amount = float(size)
    return ["delete", float(price), 0.0] if amount == 0.0 else ["change", float(price), amount]


def _notification(channel: str, data: Any) -> str:
    return orjson.dumps(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
    ).decode()


DIALECT_CLASS = DeribitDialect

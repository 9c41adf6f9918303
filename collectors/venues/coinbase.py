"""Coinbase Advanced Trade websocket (exchange id ``coinbase``): ``market_trades``, ``level2``, ``ticker``.

Endpoint ``wss://advanced-trade-ws.coinbase.com``. One subscribe message per channel,
``{"type": "subscribe", "product_ids": [...], "channel": "level2"}``, within 5 s of connecting; market
data channels need no authentication. Every message is ``{"channel": C, "client_id": "", "timestamp":
RFC 3339 ns, "sequence_num": n, "events": [...]}``; ``level2`` data arrives with channel ``l2_data``.

Documented rules implemented (docs.cdp.coinbase.com, Advanced Trade "WebSocket Channels"):
- ``sequence_num`` is ONE counter per connection across every channel (heartbeats and subscription
  acks included), starting at 0. So continuity is checked per connection, never per channel or
  product (which would report false gaps all the time). A jump means messages were lost, but the
  counter cannot say which product or channel they belonged to: every book on that connection is
  marked broken (one ``gap`` event per book, flagged ``unattributed``; a connection-wide ``gap`` only
  when the connection has no synced book; MAYBE_BAD_BOOK until its new snapshot) and resynced by
  unsubscribing and re-subscribing ``level2`` for those products. Books on other connections, and
  trades and bbo of every product, keep flowing; an overdue snapshot (1000 updates later) is requested
  again (``resync_retry``). A repeated ``sequence_num`` is a duplicate message
  (``duplicate`` event, skipped); one that goes backwards is a reordered message (treated as a gap).
- ``level2``: an ``l2_data`` event ``snapshot`` (the whole book) then ``update`` events; ``new_quantity``
  is the new size of the level (not a delta), ``"0"`` removes it; sides are ``bid`` and ``offer``. Level2
  guarantees delivery, so the sequence check is the integrity rule (Coinbase sends no checksum).
  Book rows carry the message's ``sequence_num`` as ``seq`` (connection-scoped), and each update's
  ``event_time`` as ``ts_exchange``; snapshot levels carry a zero ``event_time``
  (``1970-01-01T00:00:00Z``), so snapshot rows take the message ``timestamp``.
- ``market_trades``: on subscribe a ``snapshot`` event of recent trades (flagged SNAPSHOT), then
  ``update`` events batching the trades of the last 250 ms, possibly several per message and not in
  id order. Trades are de-duplicated by ``trade_id`` across reconnects, in any order.
  ``side`` (``BUY``/``SELL``): the Advanced Trade docs do not say whose side it is. It is read as the
  *maker* order's side, as Coinbase documents for its Exchange feed's matches (and as third-party
  clients treat it, flipping it to get the aggressor), so the taker side recorded is its opposite.
  This is an assumption no real recording here could check: :data:`TAKER_SIDE` is the one place to
  change if a recording shows otherwise.
  ``ts_exchange`` is the trade's ``time``.
- ``ticker``: ``best_bid``/``best_bid_quantity``/``best_ask``/``best_ask_quantity`` give one ``bbo`` row
  per ticker. Tickers are published on trades, so they are samples, not a BBO stream; ``ts_exchange``
  is the message ``timestamp`` (tickers carry no time of their own), ``seq`` its ``sequence_num``.
- ``heartbeats`` (one per second, ``heartbeat_counter``) is subscribed on every connection so quiet
  products do not get the connection closed; heartbeats prove liveness but produce no records.

What differs from old recordings: the retired Coinbase Pro / Exchange feed (``ws-feed``) used
``type``-tagged messages (``l2update``, ``match``, ``ticker``) with per-product ``sequence`` numbers and
``changes`` arrays; none of that applies to Advanced Trade.

``-USDC`` products: on every channel except ``user``, a ``-USDC`` product id returns the data of the
matching ``-USD`` product (USDT-USDC and EURC-USDC excepted), so subscribing ``BTC-USDC`` beside
``BTC-USD`` would store one book twice under two names, and ``BTC-USDC`` alone would store the USD
book under a USDC name. Such product ids are refused with an error naming the ``-USD`` product
(https://docs.cdp.coinbase.com/coinbase-app/advanced-trade-apis/websocket/websocket-channels and
.../websocket-endpoints, checked 2026-12-05).

Limits (https://docs.cdp.coinbase.com/coinbase-app/advanced-trade-apis/websocket/websocket-rate-limits,
checked 2026-12-05): 8 connections per second per IP and 8 unauthenticated messages per second per IP
(every connection's subscribe frames count together). Declared on the dialect, paced by
:mod:`collectors.pacing`, enforced by the simulator. Coinbase documents no forced disconnect.

Symbols: spot product ids are already ``BASE-QUOTE``. International perpetuals (``BTC-PERP-INTX``,
USDC-margined) become ``BTC-USDC-PERP``; dated futures (``BIT-28JUN24-CDE``) keep their id.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson
from aiohttp import web

from schemas import Flags, RecordBuffer

from ..base import ExchangeDialect, Normaliser, Subscription
from ..book import ASK, BID, ConnectionSequence, ResyncWatch, SymbolBooks, add_flags, parse_levels
from ..dedupe import RecentTradeIds
from ..events import (
    ParseError,
    bbo_side,
    check_int64,
    check_symbol,
    decode_json,
    emit_event,
    iso_to_ns,
    ns_to_iso,
    positive_price,
)
from ..instruments import Instrument
from ..pacing import VenueLimits
from ..simulator import ClientSession, ExchangeSimulator, MarketModel, MarketStep, SimTrade, SimulatorConfig
from . import coinbase_instruments

EXCHANGE = "coinbase"
CHANNEL_NAMES = {"trades": "market_trades", "book": "level2", "bbo": "ticker"}
#: Sides of ``l2_data`` updates (``offer`` is documented; ``ask`` accepted for robustness).
L2_SIDES = {"bid": BID, "offer": ASK, "ask": ASK}
#: Maker side -> taker side (see the module docstring).
TAKER_SIDE = {"BUY": "sell", "SELL": "buy"}
PERP_SUFFIX = "-PERP-INTX"
#: -USDC products with a book of their own (every other -USDC product id serves the -USD book)
USDC_BOOKS = frozenset({"USDT-USDC", "EURC-USDC"})
#: Trades the simulator replays on subscribe.
SNAPSHOT_TRADES = 50


def normalise_product(native: Any) -> str:
    """Normalised symbol of a product id: ``BTC-USD`` stays, ``BTC-PERP-INTX`` -> ``BTC-USDC-PERP``."""
    if not isinstance(native, str):
        raise ParseError(f"product id is not a string: {str(native)[:40]!r}")
    upper = native.upper()
    if upper.endswith(PERP_SUFFIX) and len(upper) > len(PERP_SUFFIX):
        return f"{upper[: -len(PERP_SUFFIX)]}-USDC-PERP"
    return upper


def _ts_or_none(value: Any) -> int | None:
    """An RFC 3339 time, or None when absent or the documented zero placeholder."""
    if value is None:
        return None
    ts = iso_to_ns(value)
    return ts if ts > 0 else None


class CoinbaseNormaliser(ConnectionSequence, Normaliser):
    """Coinbase Advanced Trade frames -> records (one instance per connection)."""

    exchange: ClassVar[str] = EXCHANGE
    sequence_field: ClassVar[str] = "sequence_num"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbols = SymbolBooks(EXCHANGE, normalise_product, self.limits)
        self.books = self.symbols.books  # product id -> synced book
        self.trade_ids = RecentTradeIds()
        self.last_seq: int | None = None
        self.sequence_gaps = 0
        self.heartbeats = 0
        self.unsynced_updates = 0  # l2 updates for a product that never had a snapshot (ignored)
        self.resync_watch = ResyncWatch()

    # -- frames --------------------------------------------------------------------------------
    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        msg = decode_json(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not a JSON object")
        channel = msg.get("channel")
        if channel is None:
            if msg.get("type") == "error":
                emit_event(
                    out,
                    self.exchange,
                    None,
                    "connection",
                    ts_recv,
                    "exchange_error",
                    {"message": str(msg.get("message"))[:300], "reason": str(msg.get("reason"))[:300]},
                )
                return
            raise ParseError("message without channel")
        seq = msg.get("sequence_num")
        if seq is not None:
            check_int64(seq, "sequence_num")
            if not self.check_sequence(ts_recv, seq, out):
                return
        events = msg.get("events")
        if not isinstance(events, list):
            raise ParseError(f"{str(channel)[:30]} message without an events list")
        if channel == "l2_data":
            handler = self.on_l2_event
            ours = "book"
        elif channel == "market_trades":
            handler = self.on_trades_event
            ours = "trades"
        elif channel == "ticker":
            handler = self.on_ticker_event
            ours = "bbo"
        elif channel == "heartbeats":
            self.heartbeats += 1
            return
        elif channel == "subscriptions":
            return
        else:
            raise ParseError(f"unknown channel {str(channel)[:40]!r}")
        ts_msg = iso_to_ns(msg["timestamp"])
        for event in events:
            # One bad event must not cost the other products of the same message.
            try:
                if not isinstance(event, dict):
                    raise ParseError("event is not an object", channel=ours)
                handler(ts_recv, ts_msg, seq, event, out)
            except ParseError as exc:
                self.parse_error(out, ts_recv, frame, exc.reason, exc.symbol, ours)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                self.parse_error(out, ts_recv, frame, f"{type(exc).__name__}: {exc}", None, ours)

    def on_l2_event(
        self, ts_recv: int, ts_msg: int, seq: int | None, event: dict[str, Any], out: RecordBuffer
    ) -> None:
        """A level2 snapshot or update of one product."""
        native = event["product_id"]
        book = self.symbols.book(native)
        kind = event["type"]
        updates = event["updates"]
        if not isinstance(updates, list):
            raise ParseError("l2 updates is not a list", book.symbol, "book")
        # Validate the whole event before touching the book (one pass over the levels).
        try:
            sides = [L2_SIDES[u["side"]] for u in updates]
            parsed = parse_levels(
                ((u["price_level"], u["new_quantity"]) for u in updates),
                self.limits.max_price,
                self.limits.max_size,
            )
            times = [u.get("event_time") for u in updates]
        except KeyError as exc:
            raise ParseError(f"l2 update without a valid {exc}", book.symbol, "book") from None
        except TypeError:
            raise ParseError("l2 update is not an object", book.symbol, "book") from None
        if kind == "snapshot":
            self.resubscribe_requests.discard(native)
            self.resync_watch.done(native)
            bids = [(p[2], p[3]) for p, side in zip(parsed, sides, strict=True) if side == BID]
            asks = [(p[2], p[3]) for p, side in zip(parsed, sides, strict=True) if side == ASK]
            ts_exchange = _ts_or_none(times[0]) if times else None
            before = len(out.book)
            book.apply_snapshot(out, ts_exchange or ts_msg, ts_recv, bids, asks, seq)
            self._flag_times(out, before, ts_exchange or ts_msg, ts_recv)
            return
        if kind != "update":
            raise ParseError(f"unknown l2 event type {str(kind)[:20]!r}", book.symbol, "book")
        if book.snapshots == 0:
            self.unsynced_updates += 1  # nothing to apply it to; a snapshot is on its way
            self.resync_watch.check(
                out, self.exchange, native, book.symbol, ts_recv, self.resubscribe_requests
            )
            return
        if not book.synced:
            self.resync_watch.check(
                out, self.exchange, native, book.symbol, ts_recv, self.resubscribe_requests
            )
        # Apply in runs that share a side and an event time (one call per run, not per level).
        i = 0
        n = len(parsed)
        while i < n:
            j = i + 1
            while j < n and sides[j] == sides[i] and times[j] == times[i]:
                j += 1
            ts_exchange = _ts_or_none(times[i]) or ts_msg
            before = len(out.book)
            book.apply_parsed(out, ts_exchange, ts_recv, sides[i], parsed[i:j], seq)
            self._flag_times(out, before, ts_exchange, ts_recv)
            i = j
        book.check_crossed(out, ts_recv, {"sequence_num": seq})

    def _flag_times(self, out: RecordBuffer, before: int, ts_exchange: int | None, ts_recv: int) -> None:
        add_flags(out.book, before, self.time_flags.flags(ts_exchange, ts_recv))

    def on_trades_event(
        self, ts_recv: int, ts_msg: int, seq: int | None, event: dict[str, Any], out: RecordBuffer
    ) -> None:
        """Trades of a market_trades event; snapshot ones are flagged, repeats dropped."""
        trades = event["trades"]
        if not isinstance(trades, list):
            raise ParseError("trades is not a list", channel="trades")
        snapshot = event.get("type") == "snapshot"
        duplicates: dict[str, list[str]] = {}
        for trade in trades:
            native = trade["product_id"]
            symbol = self.symbols.name(native)
            trade_id = trade["trade_id"]
            if not isinstance(trade_id, str | int) or isinstance(trade_id, bool):
                raise ParseError("trade_id is not a string", symbol, "trades")
            price = positive_price(trade["price"])
            size = positive_price(trade["size"], "size")
            side = TAKER_SIDE.get(trade.get("side"))
            if side is None and trade.get("side") is not None:
                raise ParseError(f"trade side {str(trade.get('side'))[:20]!r}", symbol, "trades")
            ts_exchange = iso_to_ns(trade["time"])
            tid = str(trade_id)
            if self.trade_ids.seen(native, tid):
                duplicates.setdefault(symbol, []).append(tid)
                continue
            flags = int(Flags.SNAPSHOT) if snapshot else 0
            self.emit_trade(out, symbol, ts_exchange, ts_recv, tid, price, size, side, flags)
        for symbol, ids in duplicates.items():
            emit_event(
                out,
                self.exchange,
                symbol,
                "trades",
                ts_recv,
                "duplicate",
                {"trades": len(ids), "trade_ids": ids[:20], "snapshot": snapshot},
            )

    def on_ticker_event(
        self, ts_recv: int, ts_msg: int, seq: int | None, event: dict[str, Any], out: RecordBuffer
    ) -> None:
        """Tickers of one event: one bbo row each."""
        tickers = event["tickers"]
        if not isinstance(tickers, list):
            raise ParseError("tickers is not a list", channel="bbo")
        snapshot = event.get("type") == "snapshot"
        flags = int(Flags.SNAPSHOT) if snapshot else 0
        for ticker in tickers:
            symbol = self.symbols.name(ticker["product_id"])
            bid_price, bid_size = bbo_side(ticker["best_bid"], ticker["best_bid_quantity"], "bid")
            ask_price, ask_size = bbo_side(ticker["best_ask"], ticker["best_ask_quantity"], "ask")
            self.emit_bbo(out, symbol, ts_msg, ts_recv, bid_price, bid_size, ask_price, ask_size, seq, flags)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """A new connection restarts the sequence at 0 and sends new snapshots."""
        self.last_seq = None
        for book in self.books.values():
            book.reset()
        self.resubscribe_requests.clear()


class CoinbaseDialect(ExchangeDialect):
    """Coinbase Advanced Trade: endpoint, subscriptions, level2 resubscription, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://advanced-trade-ws.coinbase.com"
    #: ``sequence_num`` counts every message of a connection: a lost one breaks every book on it
    gap_scope: ClassVar[str] = "connection"
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTC-USD", "ETH-USD")
    default_rest_url: ClassVar[str | None] = None
    #: A sequence gap resyncs every book of its connection, so connections stay modest in size.
    max_streams_per_connection: ClassVar[int] = 90
    #: 8 connections/s per IP; 8 unauthenticated messages/s per IP (all connections together)
    limits: ClassVar[VenueLimits] = VenueLimits(
        connections_per_window=8, connection_window_s=1.0, messages_per_second=8, messages_per_ip=True
    )

    def native_symbol(self, symbol: str) -> str:
        text = symbol.strip().upper().replace("/", "-")
        if text.endswith("-PERP") and text.count("-") == 2:
            return f"{text.split('-')[0]}{PERP_SUFFIX}"  # BTC-USDC-PERP -> BTC-PERP-INTX
        if text.endswith("-USDC") and text not in USDC_BOOKS:
            raise ValueError(
                f"coinbase: {text} returns the data of {text[:-1]} on market data channels (Coinbase "
                f"serves -USDC products from the -USD book); collect {text[:-1]} instead"
            )
        return text

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(normalise_product(native))

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        return ws_url

    @staticmethod
    def _request(kind: str, channel: str, products: Sequence[str]) -> str:
        msg: dict[str, Any] = {"type": kind, "channel": channel}
        if products:
            msg["product_ids"] = list(products)
        return orjson.dumps(msg).decode()

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        frames = [self._request("subscribe", "heartbeats", [])]
        frames.extend(self._request("subscribe", CHANNEL_NAMES[c], sub.symbols) for c in sub.channels)
        return frames

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        products = list(native_symbols)
        return [
            self._request("unsubscribe", "level2", products),
            self._request("subscribe", "level2", products),
        ]

    def new_normaliser(self) -> Normaliser:
        return CoinbaseNormaliser()

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return CoinbaseSimulator(self, config)

    # -- instruments (collectors/venues/coinbase_instruments.py) ----------------------------------
    instruments_rest_url: ClassVar[str | None] = "https://api.coinbase.com"

    def instruments_paths(self) -> list[str]:
        return [coinbase_instruments.PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return coinbase_instruments.parse_products(self, body, ts_recv)


# -- simulator ---------------------------------------------------------------------------------------
_OUR_CHANNEL = {v: k for k, v in CHANNEL_NAMES.items()}


class CoinbaseSimulator(ExchangeSimulator):
    """Coinbase Advanced Trade on loopback: one ``sequence_num`` counter per client across all channels."""

    ws_paths = ("/",)

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.recent_trades: dict[str, deque[tuple[SimTrade, str]]] = {
            s: deque(maxlen=SNAPSHOT_TRADES) for s in self.markets
        }
        self._frames_step: MarketStep | None = None
        self._step_events: dict[str, str | None] = {}
        self._step_ts = ""
        self._heartbeat_counter = itertools.count(1)

    def message(self, session: ClientSession, channel: str, ts: str, events: str) -> str:
        """One message for one client, stamped with the client's next ``sequence_num``."""
        seq = session.state.get("seq", 0)
        session.state["seq"] = seq + 1
        return f'{{"channel":"{channel}","client_id":"","timestamp":"{ts}","sequence_num":{seq},"events":{events}}}'

    async def on_message(self, session: ClientSession, text: str) -> None:
        now = ns_to_iso(self.now_exchange_ns())
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.send(session, '{"type":"error","message":"failure to parse request"}')
            return
        kind = msg.get("type") if isinstance(msg, dict) else None
        channel = msg.get("channel") if isinstance(msg, dict) else None
        if kind not in ("subscribe", "unsubscribe") or not isinstance(channel, str):
            self.send(session, '{"type":"error","message":"invalid request"}')
            return
        if channel == "heartbeats":
            session.state["heartbeats"] = kind == "subscribe"
        elif channel in _OUR_CHANNEL:
            products = msg.get("product_ids")
            if not isinstance(products, list) or any(p not in self.markets for p in products):
                self.send(
                    session, '{"type":"error","message":"Failed to subscribe","reason":"unknown product"}'
                )
                return
            ours = _OUR_CHANNEL[channel]
            for product in products:
                if kind == "unsubscribe":
                    session.subscriptions.discard((ours, product))
                    continue
                session.subscriptions.add((ours, product))
                self.send(session, self.snapshot(session, ours, product, now))
        else:
            self.send(session, '{"type":"error","message":"unknown channel"}')
            return
        subs: dict[str, list[str]] = {}
        for ours, product in sorted(session.subscriptions):
            subs.setdefault(CHANNEL_NAMES[ours], []).append(product)
        if session.state.get("heartbeats"):
            subs["heartbeats"] = []
        events = orjson.dumps([{"subscriptions": subs}]).decode()
        self.send(session, self.message(session, "subscriptions", now, events))

    def snapshot(self, session: ClientSession, channel: str, product: str, now: str) -> str:
        """The snapshot message a new subscription receives."""
        model = self.markets[product]
        if channel == "book":
            bids, asks = model.top()
            updates = [
                {"side": side, "event_time": "1970-01-01T00:00:00Z", "price_level": p, "new_quantity": q}
                for side, levels in (("bid", bids), ("offer", asks))
                for p, q in levels
            ]
            events = orjson.dumps([{"type": "snapshot", "product_id": product, "updates": updates}]).decode()
            return self.message(session, "l2_data", now, events)
        if channel == "trades":
            # Newest first, and in one batch, so clients cannot rely on id order.
            trades = [self._trade(product, t, ts) for t, ts in reversed(self.recent_trades[product])]
            events = orjson.dumps([{"type": "snapshot", "trades": trades}]).decode()
            return self.message(session, "market_trades", now, events)
        events = orjson.dumps([{"type": "snapshot", "tickers": [self._ticker(model)]}]).decode()
        return self.message(session, "ticker", now, events)

    @staticmethod
    def _trade(product: str, t: SimTrade, ts: str) -> dict[str, Any]:
        # Coinbase reports the maker's side: the opposite of the taker's.
        maker = "SELL" if t.side == "buy" else "BUY"
        return {
            "trade_id": str(t.trade_id),
            "product_id": product,
            "price": t.price,
            "size": t.size,
            "side": maker,
            "time": ts,
        }

    @staticmethod
    def _ticker(model: Any) -> dict[str, Any]:
        (bp, bq), (ap, aq) = model.best()
        return {
            "type": "ticker",
            "product_id": model.symbol,
            "price": bp,
            "best_bid": bp,
            "best_bid_quantity": bq,
            "best_ask": ap,
            "best_ask_quantity": aq,
        }

    def heartbeat_frames(self, session: ClientSession, now_ns: int) -> list[str]:
        if not session.state.get("heartbeats"):
            return []
        ts = ns_to_iso(now_ns)
        counter = next(self._heartbeat_counter)
        events = f'[{{"current_time":"{ts}","heartbeat_counter":{counter}}}]'
        return [self.message(session, "heartbeats", ts, events)]

    def publish_step(self, step: MarketStep) -> None:
        self._step_ts = ns_to_iso(step.ts_ns)
        self.recent_trades[step.symbol].extend((t, self._step_ts) for t in step.trades)
        super().publish_step(step)

    def step_events(self, step: MarketStep) -> dict[str, str | None]:
        """The events JSON of one step per channel, rendered once for all clients."""
        if self._frames_step is step:
            return self._step_events
        ts = self._step_ts
        product = step.symbol
        trades = None
        if step.trades:
            trades = orjson.dumps(
                [{"type": "update", "trades": [self._trade(product, t, ts) for t in reversed(step.trades)]}]
            ).decode()
        updates = [
            {"side": side, "event_time": ts, "price_level": p, "new_quantity": q}
            for side, levels in (("bid", step.bids), ("offer", step.asks))
            for p, q in levels
        ]
        book = orjson.dumps([{"type": "update", "product_id": product, "updates": updates}]).decode()
        ticker = None
        if step.trades:  # Coinbase publishes tickers on trades
            ticker = orjson.dumps([{"type": "update", "tickers": [self._ticker(step.model)]}]).decode()
        self._frames_step = step
        self._step_events = {"trades": trades, "book": book, "bbo": ticker}
        return self._step_events

    def add_market(self, symbol: str) -> MarketModel:
        market = super().add_market(symbol)
        self.recent_trades[symbol] = deque(maxlen=SNAPSHOT_TRADES)
        return market

    def instrument_routes(self) -> list[web.RouteDef]:
        """``GET /api/v3/brokerage/market/products``: this simulator's markets."""
        return self.instruments_routes_of(
            [coinbase_instruments.PATH], lambda: coinbase_instruments.products_body(self.markets)
        )

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        events = self.step_events(step)
        product, ts = step.symbol, self._step_ts
        out: list[list[str]] = [[], [], []]
        # sequence_num is assigned in send order: trades, then book, then bbo (as publish_step sends).
        for i, (ours, wire) in enumerate(
            (("trades", "market_trades"), ("book", "l2_data"), ("bbo", "ticker"))
        ):
            body = events[ours]
            if body is not None and session.subscribed(ours, product):
                out[i].append(self.message(session, wire, ts, body))
        return out[0], out[1], out[2]


DIALECT_CLASS = CoinbaseDialect

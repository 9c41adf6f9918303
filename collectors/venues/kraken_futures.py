"""Kraken Futures (exchange id ``kraken-futures``): public websocket v1, ``wss://futures.kraken.com/ws/v1``.

Protocol, as Kraken documents it (checked 2026-12-05):
- ``{"event":"subscribe","feed":"book","product_ids":["PF_XBTUSD"]}`` (also ``trade``, ``ticker``,
  ``heartbeat``), answered with ``{"event":"subscribed",...}``; failures with ``subscribed_failed`` or
  ``{"event":"alert","message":...}`` (recorded as ``venue_error``). Public feeds need no challenge.
- clients must ping at least every 60 s: the connection's websocket pings (every 20 s) do; the
  ``heartbeat`` feed is subscribed too, so a quiet market still shows the connection alive.
- limits: 100 websocket requests per second (Derivatives rate limits page); one subscribe frame per
  feed carries every product of the connection.

Feeds:
- ``book_snapshot`` ``{product_id, timestamp, seq, bids:[{price, qty}], asks:[...]}`` then ``book``
  ``{product_id, side (buy|sell), seq, price, qty, timestamp}``, ``qty 0`` removes the level. ``seq``
  counts one product's book messages: each must be the previous + 1 (``gap_scope = "symbol"``); a gap
  resubscribes that product's book (unsubscribe + subscribe) and its new snapshot is the resync.
- ``trade_snapshot`` (recent trades, newest first, replayed on every subscribe) then ``trade``
  ``{uid, side, type, seq, time, qty, price}``. ``side`` is documented as the taker's side
  ("classification of the taker side"). Trades are de-duplicated by ``uid`` (trades of older captures
  have none: ``seq:<seq>``, their per-product trade sequence, stands in); ``type`` ``liquidation``
  trades are also written to ``liquidations`` (same id, price, size and taker side); ``fill``,
  ``termination`` and ``block`` are trades only.
- ``ticker`` (throttled to once a second): ``bid``, ``bid_size``, ``ask``, ``ask_size`` -> ``bbo``;
  ``markPrice`` and ``index`` -> ``mark_price``; ``openInterest`` -> ``open_interest`` (in contracts);
  for perpetuals ``funding``: ``funding_rate`` is an absolute amount (currency per contract), so the
  row takes ``relative_funding_rate`` (the hourly rate as a fraction of the price) and
  ``relative_funding_rate_prediction``; Kraken leaves a field out when it is zero, so an absent rate is
  0. ``next_funding_rate_time`` is documented as "time until", but Kraken's examples and live frames
  carry the absolute time of the next hour (ms since the epoch), which is how it is read. All rows carry
  the ticker's ``time``. One ticker message feeds all four datasets, so they are written whenever the
  ticker is subscribed (for ``bbo`` or for a derivatives channel).

Symbols: linear multi-collateral perpetuals ``PF_XBTUSD`` -> ``BTC-USD-PERP`` (``XBT`` -> ``BTC``).
Inverse perpetuals (``PI_XBTUSD``, sizes in USD contracts) and dated futures (``FI_``, ``FF_``) keep their
native names, upper case, so that the inverse and the linear ``BTC-USD`` perpetuals never collide.

Instruments: ``GET /derivatives/api/v3/instruments`` (:mod:`.kraken_futures_instruments`), served by the
simulator too.

Sources: https://docs.kraken.com/exchange/api-reference/futures-websocket,
https://docs.kraken.com/exchange/api-reference/futures-websocket/book.md,
https://docs.kraken.com/exchange/api-reference/futures-websocket/trade.md,
https://docs.kraken.com/exchange/api-reference/futures-websocket/ticker.md,
https://docs.kraken.com/exchange/guides/futures/ratelimits.md (checked 2026-12-05). Checked
against the shared recording ``kraken-futures/kraken-futures_cryptofeed`` (2021-07-22: book, trade,
``ticker_lite``, which carries bid and ask without sizes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from schemas import RecordBuffer

from ..base import CHANNELS, ExchangeDialect, Normaliser, Subscription
from ..book import ResyncWatch, SymbolBooks
from ..dedupe import RecentTradeIds
from ..events import ParseError, check_symbol, emit_event, ms_to_ns, non_negative_size, positive_price
from ..instruments import Instrument
from ..simulator import ClientSession, ExchangeSimulator, MarketStep, SimulatorConfig
from . import kraken_futures_instruments

if TYPE_CHECKING:
    from aiohttp import web

EXCHANGE = "kraken-futures"
_SIDES = {"buy": "bid", "sell": "ask"}
_TRADE_TYPES = ("fill", "liquidation", "termination", "block")
_FEEDS = {"trades": "trade", "book": "book", "bbo": "ticker", "funding": "ticker", "mark": "ticker",
          "open_interest": "ticker", "liquidations": "trade"}  # fmt: skip


def normalise_product(native: Any) -> str:
    """``PF_XBTUSD`` -> ``BTC-USD-PERP``; other products keep their native name (upper case)."""
    if not isinstance(native, str) or "_" not in native:
        raise ParseError(f"not a Kraken Futures product: {str(native)[:40]!r}")
    upper = native.upper()
    kind, _, rest = upper.partition("_")
    if kind == "PF" and rest.endswith("USD") and len(rest) > 3:
        base = rest[:-3]
        return f"{'BTC' if base == 'XBT' else base}-USD-PERP"
    return upper


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (0 <= value < 2**63):
        raise ParseError(f"bad {what} {str(value)[:40]!r}")
    return value


def _level(level: Any) -> tuple[float, float]:
    if not isinstance(level, dict):
        raise ParseError("book level is not an object", channel="book")
    return positive_price(level["price"]), non_negative_size(level["qty"], "qty")


def _time(msg: dict[str, Any], key: str) -> int | None:
    """A message's millisecond time in ns; None when the message has none (older captures)."""
    value = msg.get(key)
    return None if value is None else ms_to_ns(value)


def _rate(value: Any, symbol: str) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ParseError(f"funding rate is not a number: {str(value)[:40]!r}", symbol, "funding") from None
    if not -1e6 < rate < 1e6:
        raise ParseError(f"funding rate out of range: {str(value)[:40]!r}", symbol, "funding")
    return rate


class KrakenFuturesNormaliser(Normaliser):
    """Kraken Futures v1 frames -> records."""

    exchange: ClassVar[str] = EXCHANGE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbols = SymbolBooks(self.exchange, normalise_product)
        self.trade_ids = RecentTradeIds()
        self.watch = ResyncWatch()

    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not an object")
        feed = msg.get("feed")
        event = msg.get("event")
        if event is not None:
            if event in ("info", "subscribed", "unsubscribed"):
                return
            if event in ("alert", "error", "subscribed_failed", "unsubscribed_failed"):
                detail = {"message": str(msg)[:500]}
                emit_event(out, self.exchange, None, "connection", ts_recv, "venue_error", detail)
                return
            raise ParseError(f"unknown event {str(event)[:40]!r}")
        if feed == "book":
            self.on_book(ts_recv, msg, out)
        elif feed == "ticker":
            self.on_ticker(ts_recv, msg, out)
        elif feed == "trade":
            self.on_trades(ts_recv, msg["product_id"], [msg], out)
        elif feed == "book_snapshot":
            self.on_snapshot(ts_recv, msg, out)
        elif feed == "trade_snapshot":
            trades = msg["trades"]
            if not isinstance(trades, list):
                raise ParseError("trade_snapshot trades is not a list", channel="trades")
            self.on_trades(ts_recv, msg["product_id"], list(reversed(trades)), out)
        elif feed == "ticker_lite":
            self.on_ticker_lite(ts_recv, msg, out)
        elif feed == "heartbeat":
            return
        else:
            raise ParseError(f"unknown feed {str(feed)[:40]!r}")

    def on_snapshot(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        native = msg["product_id"]
        book = self.symbols.book(native)
        seq = _int(msg["seq"], "seq")
        bids = [_level(lv) for lv in msg["bids"]]
        asks = [_level(lv) for lv in msg["asks"]]
        ts_exchange = _time(msg, "timestamp")
        book.apply_snapshot(
            out,
            ts_exchange,
            ts_recv,
            [(repr(p), repr(q)) for p, q in bids],
            [(repr(p), repr(q)) for p, q in asks],
            seq,
        )
        self.watch.done(native)
        self.resubscribe_requests.discard(native)

    def on_book(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        native = msg["product_id"]
        book = self.symbols.book(native)
        seq = _int(msg["seq"], "seq")
        side = _SIDES.get(msg["side"])
        if side is None:
            raise ParseError(f"unknown book side {str(msg['side'])[:20]!r}", book.symbol, "book")
        price, qty = _level(msg)
        if not (price < book.limits.max_price and qty < book.limits.max_size):
            # within the sanity bounds before the update is dropped (unsynced) or breaks the book (gap)
            raise ParseError(f"level out of range: {price!r} x {qty!r}", book.symbol, "book")
        ts_exchange = _time(msg, "timestamp")
        if not book.synced:
            self.watch.check(out, self.exchange, native, book.symbol, ts_recv, self.resubscribe_requests)
            return
        last = book.last_seq
        if last is not None and seq <= last:
            raise ParseError(f"book seq went back: {seq} after {last}", book.symbol, "book")
        if last is not None and seq != last + 1:
            book.gap(out, ts_recv, "gap", {"expected": last + 1, "got": seq})
            self.resubscribe_requests.add(native)
            return
        level = [(repr(price), repr(qty))]
        flags = self.time_flags.flags(ts_exchange, ts_recv)
        if side == "bid":
            book.apply_update(out, ts_exchange, ts_recv, level, [], seq, flags)
        else:
            book.apply_update(out, ts_exchange, ts_recv, [], level, seq, flags)
        book.last_seq = seq

    def on_trades(self, ts_recv: int, native: Any, trades: list[Any], out: RecordBuffer) -> None:
        symbol = self.symbols.name(native)
        parsed = []
        for t in trades:  # validate the whole message before any row is kept
            if not isinstance(t, dict):
                raise ParseError("trade is not an object", symbol, "trades")
            uid = t.get("uid")
            if uid is None:  # trades of older captures carry no uid: their per-product seq identifies them
                uid = f"seq:{_int(t['seq'], 'trade seq')}"
            if not isinstance(uid, str) or not uid or len(uid) > 80:
                raise ParseError(f"bad trade uid {str(uid)[:40]!r}", symbol, "trades")
            side = t["side"]
            if side not in ("buy", "sell"):
                raise ParseError(f"unknown trade side {str(side)[:20]!r}", symbol, "trades")
            kind = t.get("type", "fill")
            if kind not in _TRADE_TYPES:
                raise ParseError(f"unknown trade type {str(kind)[:20]!r}", symbol, "trades")
            parsed.append(
                (
                    uid,
                    ms_to_ns(t["time"]),
                    positive_price(t["price"]),
                    positive_price(t["qty"], "qty"),
                    side,
                    kind,
                )
            )
        for uid, ts_exchange, price, qty, side, kind in parsed:
            if self.trade_ids.seen(native, uid):
                continue  # replayed by a new subscription's trade_snapshot
            self.emit_trade(out, symbol, ts_exchange, ts_recv, uid, price, qty, side)
            if kind == "liquidation":
                self.emit_liquidation(out, symbol, ts_exchange, ts_recv, uid, side, price, qty)

    def on_ticker(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        symbol = self.symbols.name(msg["product_id"])
        ts_exchange = _time(msg, "time")
        bid, ask = msg.get("bid"), msg.get("ask")
        bid_p = positive_price(bid, "bid") if bid else None
        ask_p = positive_price(ask, "ask") if ask else None
        bid_s = non_negative_size(msg["bid_size"], "bid_size") if bid_p is not None else None
        ask_s = non_negative_size(msg["ask_size"], "ask_size") if ask_p is not None else None
        self.emit_bbo(out, symbol, ts_exchange, ts_recv, bid_p, bid_s, ask_p, ask_s, None)
        if msg.get("tag") == "perpetual" or str(msg["product_id"]).upper().startswith(("PF_", "PI_")):
            # relative_* are fractions of the price per hour; a rate of zero is left out of the message
            next_time = msg.get("next_funding_rate_time")
            self.emit_funding(
                out,
                symbol,
                ts_exchange,
                ts_recv,
                _rate(msg.get("relative_funding_rate", 0.0), symbol),
                _rate(msg.get("relative_funding_rate_prediction", 0.0), symbol),
                ms_to_ns(next_time) if next_time else None,
            )
        if "markPrice" in msg:
            index = msg.get("index")
            self.emit_mark_price(
                out,
                symbol,
                ts_exchange,
                ts_recv,
                positive_price(msg["markPrice"], "markPrice"),
                positive_price(index, "index") if index is not None else None,
            )
        if "openInterest" in msg:
            self.emit_open_interest(
                out, symbol, ts_exchange, ts_recv, non_negative_size(msg["openInterest"], "openInterest")
            )

    def on_ticker_lite(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        """``ticker_lite`` (older subscriptions, the shared recording): best prices only, no time."""
        symbol = self.symbols.name(msg["product_id"])
        bid, ask = msg.get("bid"), msg.get("ask")
        bid_p = positive_price(bid, "bid") if bid else None
        ask_p = positive_price(ask, "ask") if ask else None
        self.emit_bbo(out, symbol, None, ts_recv, bid_p, None, ask_p, None, None)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        for book in self.symbols.books.values():
            book.reset()


class KrakenFuturesDialect(ExchangeDialect):
    """Kraken Futures: endpoint, feeds, resubscription, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://futures.kraken.com"
    default_rest_url: ClassVar[str | None] = "https://futures.kraken.com"
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, "funding", "mark", "open_interest", "liquidations")
    demo_symbols: ClassVar[tuple[str, ...]] = ("PF_XBTUSD", "PF_ETHUSD")
    max_streams_per_connection: ClassVar[int] = 400

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USD-PERP`` -> ``PF_XBTUSD``; native names (``PI_XBTUSD``, ``FI_XBTUSD_211231``) as given."""
        text = symbol.strip().upper()
        if text.endswith("-USD-PERP"):
            base = text[: -len("-USD-PERP")]
            return f"PF_{'XBT' if base == 'BTC' else base}USD"
        return text

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(normalise_product(native))

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        return f"{ws_url.rstrip('/')}/ws/v1"

    @staticmethod
    def feed_frame(event: str, feed: str, products: Sequence[str]) -> str:
        return orjson.dumps({"event": event, "feed": feed, "product_ids": list(products)}).decode()

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        feeds: list[str] = []
        for channel in sub.channels:
            feed = _FEEDS[channel]
            if feed not in feeds:
                feeds.append(feed)
        frames = [self.feed_frame("subscribe", feed, sub.symbols) for feed in feeds]
        frames.append('{"event":"subscribe","feed":"heartbeat"}')
        return frames

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        return [
            self.feed_frame("unsubscribe", "book", native_symbols),
            self.feed_frame("subscribe", "book", native_symbols),
        ]

    def new_normaliser(self) -> Normaliser:
        return KrakenFuturesNormaliser()

    # -- instruments (collectors/venues/kraken_futures_instruments.py) ---------------------------
    def instruments_paths(self) -> list[str]:
        return [kraken_futures_instruments.PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return kraken_futures_instruments.parse_instruments(self, body, ts_recv)

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return KrakenFuturesSimulator(self, config)


class KrakenFuturesSimulator(ExchangeSimulator):
    """Kraken Futures on loopback: ``/ws/v1``, per-product book ``seq``, trade snapshots replayed."""

    ws_paths = ("/ws/v1",)
    TICKER_EVERY = 3
    LIQUIDATION_EVERY = 7

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.recent: dict[str, list[dict[str, Any]]] = {s: [] for s in self.markets}
        self.count: dict[str, int] = dict.fromkeys(self.markets, 0)
        self._step_trades: list[dict[str, Any]] = []

    def instrument_routes(self) -> list[web.RouteDef]:
        """``GET /derivatives/api/v3/instruments``: this simulator's markets."""
        return self.instruments_routes_of(
            [kraken_futures_instruments.PATH],
            lambda: kraken_futures_instruments.instruments_body(self.markets),
        )

    async def on_open(self, session: ClientSession) -> None:
        self.send(session, '{"event":"info","version":1}')

    async def on_message(self, session: ClientSession, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.send(session, '{"event":"alert","message":"Json Error"}')
            return
        if not isinstance(msg, dict) or msg.get("event") not in ("subscribe", "unsubscribe"):
            self.send(session, '{"event":"alert","message":"Unknown request"}')
            return
        event, feed = msg["event"], msg.get("feed")
        if feed == "heartbeat":
            self.send(session, '{"event":"subscribed","feed":"heartbeat"}')
            session.state["heartbeat"] = True
            return
        products = msg.get("product_ids")
        if (
            feed not in ("book", "trade", "ticker")
            or not isinstance(products, list)
            or any(p not in self.markets for p in products)
        ):
            self.send(
                session,
                orjson.dumps({"event": f"{event}d_failed", "feed": feed, "product_ids": products}).decode(),
            )
            return
        for product in products:
            if event == "unsubscribe":
                session.subscriptions.discard((feed, product))
                self.send(
                    session,
                    orjson.dumps({"event": "unsubscribed", "feed": feed, "product_ids": [product]}).decode(),
                )
                continue
            session.subscriptions.add((feed, product))
            self.send(
                session,
                orjson.dumps({"event": "subscribed", "feed": feed, "product_ids": [product]}).decode(),
            )
            model = self.markets[product]
            ms = self.now_exchange_ns() // 1_000_000
            if feed == "book":
                bids, asks = model.top()
                session.state[f"seq:{product}"] = model.update_id
                snapshot = {
                    "feed": "book_snapshot",
                    "product_id": product,
                    "timestamp": ms,
                    "seq": model.update_id,
                    "tickSize": None,
                    "bids": [{"price": float(p), "qty": float(q)} for p, q in bids],
                    "asks": [{"price": float(p), "qty": float(q)} for p, q in asks],
                }
                self.send(session, orjson.dumps(snapshot).decode())
            elif feed == "trade":
                trades = list(reversed(self.recent[product][-20:]))
                self.send(
                    session,
                    orjson.dumps(
                        {"feed": "trade_snapshot", "product_id": product, "trades": trades}
                    ).decode(),
                )

    def publish_step(self, step: MarketStep) -> None:
        ms = step.ts_ns // 1_000_000
        self.count[step.symbol] += 1
        trades = []
        for i, t in enumerate(step.trades):
            liquidation = (self.count[step.symbol] + i) % self.LIQUIDATION_EVERY == 0
            trades.append(
                {
                    "feed": "trade",
                    "product_id": step.symbol,
                    "uid": f"00000000-0000-4000-8000-{t.trade_id:012d}",
                    "side": t.side,
                    "type": "liquidation" if liquidation else "fill",
                    "seq": t.trade_id,
                    "time": ms,
                    "qty": float(t.size),
                    "price": float(t.price),
                }
            )
        self.recent[step.symbol] = (self.recent[step.symbol] + trades)[-50:]
        self._step_trades = trades
        super().publish_step(step)

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        product, ms = step.symbol, step.ts_ns // 1_000_000
        trades = (
            [orjson.dumps(t).decode() for t in self._step_trades]
            if session.subscribed("trade", product)
            else []
        )
        book: list[str] = []
        if session.subscribed("book", product):
            seq_key = f"seq:{product}"
            for side, levels in (("buy", step.bids), ("sell", step.asks)):
                for p, q in levels:
                    session.state[seq_key] = session.state.get(seq_key, 0) + 1
                    book.append(
                        orjson.dumps(
                            {
                                "feed": "book",
                                "product_id": product,
                                "side": side,
                                "seq": session.state[seq_key],
                                "price": float(p),
                                "qty": float(q),
                                "timestamp": ms,
                            }
                        ).decode()
                    )
        other: list[str] = []
        if session.subscribed("ticker", product) and self.count[product] % self.TICKER_EVERY == 0:
            (bp, bq), (ap, aq) = step.model.best()
            mid = (float(bp) + float(ap)) / 2
            ticker = {
                "time": ms,
                "product_id": product,
                "funding_rate": 1.2e-5,
                "funding_rate_prediction": 1.4e-5,
                "relative_funding_rate": 1.2e-5,
                "relative_funding_rate_prediction": 1.4e-5,
                "next_funding_rate_time": (ms // 3_600_000 + 1) * 3_600_000,
                "feed": "ticker",
                "bid": float(bp),
                "ask": float(ap),
                "bid_size": float(bq),
                "ask_size": float(aq),
                "volume": 1234.5,
                "dtm": 0,
                "leverage": "50x",
                "index": round(mid * 0.9999, 2),
                "premium": 0.01,
                "last": float(bp),
                "change": 0.5,
                "suspended": False,
                "tag": "perpetual",
                "pair": product[3:],
                "openInterest": 1000.0 + step.update_id % 997,
                "markPrice": round(mid, 2),
                "maturityTime": 0,
                "post_only": False,
            }
            other.append(orjson.dumps(ticker).decode())
        return trades, book, other

    def heartbeat_frames(self, session: ClientSession, now_ns: int) -> list[str]:
        if session.state.get("heartbeat"):
            return [orjson.dumps({"feed": "heartbeat", "time": now_ns // 1_000_000}).decode()]
        return []


DIALECT_CLASS = KrakenFuturesDialect

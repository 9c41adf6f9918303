"""Bybit v5 linear perpetuals (exchange id ``bybit``): public websocket ``/v5/public/linear``.

The spot dialect (``bybit-spot``, :mod:`collectors.venues.bybit_spot`) subclasses everything here; only the
endpoint, the symbol naming and a few limits differ.

Topics (subscribed with ``{"op":"subscribe","args":[...],"req_id":...}``, acknowledged with
``{"success":true,"op":"subscribe",...}``):
- ``publicTrade.<S>``: trades in ``data`` (a list, at most 1024 per message, ascending match time);
  ``T`` fill time (ms), ``S`` taker side ``Buy``/``Sell``, ``p`` price, ``v`` size, ``i`` trade id
  (a UUID on linear, a decimal string on spot), ``BT`` block trade, ``RPI``, ``seq`` (cross sequence).
  The message ``type`` is always ``snapshot``, but Bybit sends no backlog on subscribe: every trade
  is live, so no trade carries Flags.SNAPSHOT. Ids are de-duplicated per symbol (bounded memory).
- ``orderbook.<N>.<S>`` (N in 50/200/1000 on linear and on spot; default 50; linear depth 500 was
  removed in November 2025): the book.
  Subscribing yields a ``snapshot``; ``delta`` messages follow. ``data.u`` is the update id of that
  topic and increments by one per message; ``data.seq`` is the matching engine's cross sequence,
  shared by every depth of the symbol and by trades. Rules implemented, as documented:
  * a ``snapshot`` resets the book (epoch + 1 and a ``resync`` event after the first one); so does a
    message with ``u == 1`` (the orderbook service restarted), whatever its ``type``;
  * a delta must carry ``u == previous u + 1``; a larger ``u`` is a ``gap``, a smaller one (sequence
    going backwards) too; ``u == previous u`` is a repeated message (``duplicate`` event, ignored);
  * size ``"0"`` deletes a level; the stream keeps exactly N levels, so levels leaving the window
    arrive as deletions.
  A gap on one symbol resyncs that symbol only: Bybit has no REST snapshot sequence to join a stream
  with, so the symbol's book topics are resubscribed (``resubscribe_requests``), which makes Bybit send
  a fresh snapshot. Deltas between the gap and that snapshot are kept with MAYBE_BAD_BOOK.
  A snapshot identical to the synced book at the same ``u`` (the level-1 re-push every 3 s when
  nothing changed, on linear and spot alike, or the answer to a resubscribe of a healthy topic)
  changes nothing.
- best bid/offer (``bbo``): ``orderbook.1.<S>`` by default (same rules; it is its own topic with its
  own ``u``), or ``tickers.<S>`` on linear (``DialectOptions.extra["bbo_source"] = "tickers"``): a
  snapshot then deltas that carry only the fields that changed, merged here; ``cs`` is the cross
  sequence. Spot tickers carry no best bid/offer, so spot uses ``orderbook.1`` only.

Derivatives channels (issue 15, linear only; spot offers none):
- ``mark``, ``funding``, ``open_interest`` ride ``tickers.<S>`` (subscribed once for all three, and for
  bbo when it is the bbo source): the snapshot carries ``markPrice``, ``indexPrice``, ``fundingRate``,
  ``nextFundingTime`` (ms, as a string), ``openInterest`` (in the base coin, as Bybit states it) and
  ``openInterestValue`` (in the quote); deltas carry only what changed and are merged like the bbo
  fields. The snapshot gives one row per dataset; a delta gives a ``mark_price`` row when it carries
  ``markPrice`` or ``indexPrice``, a ``funding`` row when it carries ``fundingRate`` or
  ``nextFundingTime``, an ``open_interest`` row when it carries ``openInterest`` or
  ``openInterestValue`` (other fields from the merged state); ``ts_exchange`` is the message ``ts``;
  ``predicted_rate`` is null (Bybit's ticker has no predicted rate). When tickers are subscribed only
  for these channels (bbo from ``orderbook.1``, the default), their bid/ask fields add no bbo row.
- ``liquidations``: ``allLiquidation.<S>`` (which replaced ``liquidation.<S>`` in 2025; pushed every
  500 ms as a ``snapshot`` whose ``data`` lists every liquidation since the last push): ``T`` time,
  ``s`` symbol, ``S`` side, ``v`` size, ``p`` price.
  ``S`` is the side of the liquidated *position* ("When you receive a Buy update, this means that a
  long position has been liquidated"); the schema stores the taker side of the liquidation order,
  which is the opposite (``Buy`` -> ``sell``). No id is given (``liquidation_id`` null).
Sources (checked 2026-12-05): https://bybit-exchange.github.io/docs/v5/websocket/public/ticker and
https://bybit-exchange.github.io/docs/v5/websocket/public/all-liquidation (the venue's pages were not
in our stored documentation corpus; their fields and the side rule above are as quoted from them by
https://docs.rs/rs_bybit/latest/bybit/prelude/struct.AllLiquidationData.html,
https://docs.rs/rs_bybit/latest/bybit/prelude/struct.LinearTickerDataSnapshot.html and
https://nautilustrader.io/docs/rust-api-latest/nautilus_bybit/websocket/parse/fn.parse_ws_liquidation.html
("Bybit reports the side of the liquidated position")).

Rows: ``seq`` of book and bbo rows is the cross sequence (``data.seq``/``cs``), not ``u``: it is the
one number comparable across depths, so a rebuilt book can be checked against ``orderbook.1`` at an
equal ``seq``; ``u`` stays internal to the continuity check. ``ts_exchange``: trades ``T``; book and
bbo ``cts`` (matching engine time of the book state) when present, else ``ts`` (when the market data
service produced the message); tickers ``ts``.

Differences from older recordings and examples: ``cts`` on orderbook messages and ``seq``/``RPI`` on
trades were added in 2023-2025 and are optional here; spot used ``trade.<S>`` with ``v`` as trade id
and ``m`` for the side before v5 (not parsed: unknown topic). Heartbeat: the client sends
``{"op":"ping"}`` every 20 s (Bybit closes idle connections); pong replies are recognised and ignored.
Spot accepts at most 10 args per subscribe request; linear frames are kept to 100 args.

Sources (checked 2026-12-05): https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook
(read as https://bybit-exchange.github.io/docs/zh-TW/v5/websocket/public/orderbook; depths 1/50/200/1000 for linear, inverse and spot; level 1: "if 3 seconds have elapsed without a
change in the orderbook, a snapshot message will be pushed again" for USDT/USDC contracts, inverse and
spot, with the same ``u``); https://bybit-exchange.github.io/docs/v5/rate-limit (websocket: no more
than 500 connections within 5 minutes per IP; at most 1,000 market data connections per IP, counted
per market). The connection rate is declared on the dialect, paced by :mod:`collectors.pacing` and
enforced by the simulator. Bybit documents no forced disconnect (no rotation unless configured).
"""

from __future__ import annotations

import itertools
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from aiohttp import web

from schemas import Flags, RecordBuffer

from ..base import CHANNELS, DialectOptions, ExchangeDialect, Normaliser, Subscription
from ..book import ASK, BID, L2Book, SymbolBooks, SyncedBook, parse_levels
from ..dedupe import RecentTradeIds
from ..events import (
    ParseError,
    check_symbol,
    decode_json,
    emit_event,
    frame_text_for_event,
    funding_rate,
    ms_to_ns,
    non_negative_size,
    positive_price,
)
from ..instruments import Instrument
from ..pacing import VenueLimits
from ..simulator import ClientSession, ExchangeSimulator, MarketModel, MarketStep, SimulatorConfig
from . import bybit_instruments

if TYPE_CHECKING:
    import aiohttp

EXCHANGE = "bybit"

#: Book depths the linear public stream offers (besides 1, which is the bbo channel here); 500 was
#: removed in November 2025.
LINEAR_BOOK_DEPTHS: tuple[int, ...] = (50, 200, 1000)
DEFAULT_BOOK_DEPTH = 50
#: Trade ids remembered per symbol for de-duplication (Bybit ids are not ordered: UUIDs on linear).
TRADE_ID_MEMORY = 8192
#: Messages of a topic still waiting for its snapshot after a resubscribe before asking again.
RESUBSCRIBE_AGAIN_AFTER = 500
#: Distinct topics whose parse is cached; beyond it the cache is cleared (a hostile stream of topics).
MAX_CACHED_TOPICS = 100_000

TOPIC_TRADE = 0
TOPIC_BOOK = 1
TOPIC_BBO_BOOK = 2
TOPIC_TICKER = 3
TOPIC_LIQUIDATION = 4
#: simulator: one trade in this many (by id) comes from a liquidation order
LIQUIDATION_EVERY = 4
#: derivatives channels a linear ``tickers`` topic carries
TICKER_CHANNELS: tuple[str, ...] = ("funding", "mark", "open_interest")

_TAKER_SIDE = {"Buy": "buy", "Sell": "sell"}
_TICKER_FIELDS = ("bid1Price", "bid1Size", "ask1Price", "ask1Size")
#: derivatives fields of a linear ticker, after the four bbo fields in a symbol's merged state
_MARK_FIELDS = ("markPrice", "indexPrice")
_FUNDING_FIELDS = ("fundingRate", "nextFundingTime")
_OPEN_INTEREST_FIELDS = ("openInterest", "openInterestValue")
#: ``allLiquidation`` ``S`` is the liquidated *position's* side; the liquidation order takes the other
#: side (a long, ``Buy``, is closed by a sell): our row stores that order's (taker) side
_LIQUIDATION_ORDER_SIDE = {"Buy": "sell", "Sell": "buy"}


class TopState:
    """State of one symbol's ``orderbook.1`` stream: its level-1 book and update-id continuity."""

    __slots__ = ("book", "last_u", "maybe_bad", "snapshots", "synced")

    def __init__(self) -> None:
        self.book = L2Book()
        self.last_u: int | None = None
        self.synced = False
        self.maybe_bad = False
        self.snapshots = 0


def _or_flags(rows: list[Any], start: int, flags: int) -> None:
    """ORs ``flags`` into the last field of ``rows[start:]`` (rows are immutable tuples)."""
    if flags:
        for i in range(start, len(rows)):
            row = rows[i]
            rows[i] = (*row[:-1], row[-1] | flags)


def _int_field(data: dict[str, Any], key: str, symbol: str, channel: str) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ParseError(f"{key} is not a non-negative integer: {str(value)[:40]!r}", symbol, channel)
    return value


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ticker_price(value: Any, what: str) -> float | None:
    """A ticker's best price: empty string or zero means that side is empty."""
    if value == "" or value is None:
        return None
    price = non_negative_size(value, what)
    return price if price > 0.0 else None


def split_quote(native: str, quotes: Sequence[str]) -> tuple[str, str]:
    """``ETHUSDT`` -> ``("ETH", "USDT")`` using ``quotes`` (longest first); ``ParseError`` if none fits."""
    for quote in quotes:
        if native.endswith(quote) and len(native) > len(quote):
            return native[: -len(quote)], quote
    raise ParseError(f"cannot split symbol {native[:40]!r} into base and quote")


class BybitNormaliser(Normaliser):
    """Bybit v5 linear frames -> records (rules in the module docstring)."""

    exchange: ClassVar[str] = EXCHANGE
    #: quote assets of linear perpetuals named ``<BASE><QUOTE>``; ``<BASE>PERP`` are USDC perpetuals
    quotes: ClassVar[tuple[str, ...]] = ("USDT", "USDC")

    def __init__(self, tickers_bbo: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: True when ``tickers`` is the bbo source (else tickers are subscribed for the derivatives
        #: channels only and their bid/ask fields must not add a second bbo stream)
        self.tickers_bbo = tickers_bbo
        self.symbol_books = SymbolBooks(self.exchange, self.normalise_native, self.limits)
        #: native symbol -> synced book (the ``orderbook.N`` topic, N > 1)
        self.books: dict[str, SyncedBook] = self.symbol_books.books
        self.book_depth: dict[str, int] = {}
        self.tops: dict[str, TopState] = {}
        self.tickers: dict[str, list[Any]] = {}
        self.trade_ids = RecentTradeIds(TRADE_ID_MEMORY)
        self.topics: dict[str, tuple[int, str, str, int]] = {}
        #: deltas dropped because no snapshot of their topic was ever seen on this connection
        self.dropped_unsynced = 0
        #: (native, channel) waiting for a snapshot -> messages seen since the resubscribe request
        self.awaiting: dict[tuple[str, str], int] = {}

    # -- symbols ---------------------------------------------------------------------------------
    def normalise_native(self, native: str) -> str:
        """Normalised symbol: ``BTCUSDT`` -> ``BTC-USDT-PERP``, ``BTCPERP`` -> ``BTC-USDC-PERP``.

        Dated futures (``BTC-26DEC25``, ``BTCUSDT-26DEC25``) keep Bybit's name (DESIGN.md).
        """
        if "-" in native:
            return native
        if native.endswith("PERP") and len(native) > 4:
            return f"{native[:-4]}-USDC-PERP"
        base, quote = split_quote(native, self.quotes)
        return f"{base}-{quote}-PERP"

    def normalise(self, native: str) -> str:
        """Normalised, validated symbol of a native one (cached)."""
        return self.symbol_books.name(native)

    def request_snapshot(self, native: str, channel: str) -> None:
        """Asks the connection to resubscribe ``native``: once, and again only if the snapshot has
        not come after :data:`RESUBSCRIBE_AGAIN_AFTER` messages (never a resubscribe storm)."""
        key = (native, channel)
        waited = self.awaiting.get(key)
        if waited is None or waited >= RESUBSCRIBE_AGAIN_AFTER:
            self.awaiting[key] = 0
            self.resubscribe_requests.add(native)
        else:
            self.awaiting[key] = waited + 1

    def topic_info(self, topic: Any) -> tuple[int, str, str, int]:
        """``(kind, native, symbol, depth)`` of a topic name (cached: parsed once per topic)."""
        info = self.topics.get(topic) if isinstance(topic, str) else None
        if info is not None:
            return info
        if not isinstance(topic, str):
            raise ParseError("topic is not a string")
        name, _, rest = topic.partition(".")
        depth = 0
        if name == "publicTrade":
            kind, native = TOPIC_TRADE, rest
        elif name == "orderbook":
            depth_text, _, native = rest.partition(".")
            if not depth_text.isdigit() or not native:
                raise ParseError(f"bad orderbook topic {topic[:80]!r}")
            depth = int(depth_text)
            kind = TOPIC_BBO_BOOK if depth == 1 else TOPIC_BOOK
        elif name == "tickers":
            kind, native = TOPIC_TICKER, rest
        elif name == "allLiquidation":
            kind, native = TOPIC_LIQUIDATION, rest
        else:
            raise ParseError(f"unknown topic {topic[:80]!r}")
        symbol = self.normalise(native)  # raises for empty or unsafe symbols
        if len(self.topics) >= MAX_CACHED_TOPICS:
            self.topics.clear()
        info = (kind, native, symbol, depth)
        self.topics[topic] = info
        return info

    # -- frames ----------------------------------------------------------------------------------
    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        msg = decode_json(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not a JSON object")
        topic = msg.get("topic")
        if topic is None:
            self.on_control(ts_recv, msg, frame, out)
            return
        kind, native, symbol, depth = self.topic_info(topic)
        if kind == TOPIC_BOOK:
            self.on_book(ts_recv, msg, native, symbol, depth, out)
        elif kind == TOPIC_TRADE:
            self.on_trades(ts_recv, msg, native, symbol, out)
        elif kind == TOPIC_BBO_BOOK:
            self.on_top(ts_recv, msg, native, symbol, out)
        elif kind == TOPIC_TICKER:
            self.on_ticker(ts_recv, msg, native, symbol, out)
        else:
            self.on_liquidations(ts_recv, msg, native, symbol, out)

    def on_control(self, ts_recv: int, msg: dict[str, Any], frame: str | bytes, out: RecordBuffer) -> None:
        """Replies to our requests: pongs (ignored) and subscribe acknowledgements (failures recorded)."""
        op = msg.get("op")
        if op in ("ping", "pong") or msg.get("ret_msg") == "pong":
            return
        if op in ("subscribe", "unsubscribe") and "success" in msg:
            if msg["success"] is not True:
                detail = {"op": op, "ret_msg": str(msg.get("ret_msg"))[:500], **frame_text_for_event(frame)}
                emit_event(out, self.exchange, None, "connection", ts_recv, "subscribe_error", detail)
            return
        raise ParseError("unknown message (no topic, not a reply)")

    def _ts_book(self, msg: dict[str, Any]) -> int:
        cts = msg.get("cts")
        return ms_to_ns(cts if cts is not None else msg["ts"])

    # -- trades ----------------------------------------------------------------------------------
    def on_trades(
        self, ts_recv: int, msg: dict[str, Any], native: str, symbol: str, out: RecordBuffer
    ) -> None:
        """A ``publicTrade`` message: every trade is validated before any row is emitted."""
        data = msg["data"]
        if not isinstance(data, list):
            raise ParseError("trade data is not a list", symbol, "trades")
        parsed = []
        for t in data:
            trade_id = t["i"]
            if not isinstance(trade_id, str) or not trade_id:
                raise ParseError("trade id i is not a string", symbol, "trades")
            side = _TAKER_SIDE.get(t["S"])
            if side is None:
                raise ParseError(f"unknown taker side {str(t['S'])[:20]!r}", symbol, "trades")
            parsed.append(
                (trade_id, positive_price(t["p"]), positive_price(t["v"], "size"), side, ms_to_ns(t["T"]))
            )
        seen = self.trade_ids.seen
        for trade_id, price, size, side, ts_exchange in parsed:
            if seen(native, trade_id):
                emit_event(out, self.exchange, symbol, "trades", ts_recv, "duplicate", {"trade_id": trade_id})
                continue
            self.emit_trade(out, symbol, ts_exchange, ts_recv, trade_id, price, size, side)

    # -- book ------------------------------------------------------------------------------------
    def on_book(
        self, ts_recv: int, msg: dict[str, Any], native: str, symbol: str, depth: int, out: RecordBuffer
    ) -> None:
        """An ``orderbook.N`` message (N > 1): snapshot or delta under the ``u`` rule."""
        known_depth = self.book_depth.setdefault(native, depth)
        if known_depth != depth:
            raise ParseError(f"second book depth {depth} for {native} (using {known_depth})", symbol, "book")
        data = msg["data"]
        kind = msg["type"]
        u = _int_field(data, "u", symbol, "book")
        seq = _opt_int(data.get("seq"))
        bids, asks = data["b"], data["a"]
        if not isinstance(bids, list) or not isinstance(asks, list):
            raise ParseError("book b/a are not lists", symbol, "book")
        ts_exchange = self._ts_book(msg)
        book = self.symbol_books.book(native)
        rows = out.book
        start = len(rows)
        if kind == "snapshot" or u == 1:
            if kind not in ("snapshot", "delta"):
                raise ParseError(f"unknown book message type {str(kind)[:20]!r}", symbol, "book")
            if book.synced and u == book.last_seq and _same_levels(book.book, bids, asks):
                return  # a re-sent snapshot of the state we hold: nothing changed
            reason = "service restart (u=1)" if u == 1 and book.snapshots else "snapshot"
            book.apply_snapshot(out, ts_exchange, ts_recv, bids, asks, seq, reason)
            book.last_seq = u
            self.awaiting.pop((native, "book"), None)
        elif kind == "delta":
            if not book.synced:
                if not book.maybe_bad:
                    # No snapshot on this connection yet: nothing to apply the delta to.
                    self.dropped_unsynced += 1
                    parse_levels(bids)  # still reject malformed input as a parse error
                    parse_levels(asks)
                    self.request_snapshot(native, "book")
                    return
                book.apply_update(out, ts_exchange, ts_recv, bids, asks, seq)  # MAYBE_BAD_BOOK rows
                self.request_snapshot(native, "book")
            else:
                prev = book.last_seq
                assert prev is not None
                if u != prev + 1:
                    if u == prev:
                        parse_levels(bids)
                        parse_levels(asks)
                        emit_event(out, self.exchange, symbol, "book", ts_recv, "duplicate", {"u": u})
                        return
                    parse_levels(bids)  # a malformed frame is a parse error, not a gap
                    parse_levels(asks)
                    detail: dict[str, Any] = {"expected_u": prev + 1, "u": u, "seq": seq}
                    if u < prev:
                        detail["backwards"] = True
                    else:
                        detail["missing"] = u - prev - 1
                    book.gap(out, ts_recv, "gap", detail)
                    self.request_snapshot(native, "book")
                    book.apply_update(out, ts_exchange, ts_recv, bids, asks, seq)  # kept, flagged
                else:
                    book.apply_update(out, ts_exchange, ts_recv, bids, asks, seq)
                    book.last_seq = u
        else:
            raise ParseError(f"unknown book message type {str(kind)[:20]!r}", symbol, "book")
        _or_flags(rows, start, self.time_flags.flags(ts_exchange, ts_recv))
        if book.synced and book.book.is_crossed():
            emit_event(
                out,
                self.exchange,
                symbol,
                "book",
                ts_recv,
                "crossed_book",
                {"bid": book.book.best_bid(), "ask": book.book.best_ask(), "u": u, "seq": seq},
            )

    # -- bbo: orderbook.1 -------------------------------------------------------------------------
    def on_top(self, ts_recv: int, msg: dict[str, Any], native: str, symbol: str, out: RecordBuffer) -> None:
        """An ``orderbook.1`` message: the level-1 book, one bbo row per message."""
        data = msg["data"]
        kind = msg["type"]
        u = _int_field(data, "u", symbol, "bbo")
        seq = _opt_int(data.get("seq"))
        limits = self.limits
        bids = parse_levels(data["b"], limits.max_price, limits.max_size)
        asks = parse_levels(data["a"], limits.max_price, limits.max_size)
        ts_exchange = self._ts_book(msg)
        state = self.tops.get(native)
        if state is None:
            state = self.tops[native] = TopState()
        book = state.book
        if kind == "snapshot" or u == 1:
            if kind not in ("snapshot", "delta"):
                raise ParseError(f"unknown book message type {str(kind)[:20]!r}", symbol, "bbo")
            if state.snapshots and not state.synced:
                emit_event(
                    out,
                    self.exchange,
                    symbol,
                    "bbo",
                    ts_recv,
                    "resync",
                    {"u": u, "seq": seq, "reason": "snapshot"},
                )
            book.clear()
            state.synced, state.maybe_bad = True, False
            state.snapshots += 1
            self.awaiting.pop((native, "bbo"), None)
        elif kind == "delta":
            if not state.synced:
                if not state.maybe_bad:
                    self.dropped_unsynced += 1
                    self.request_snapshot(native, "bbo")
                    return
                self.request_snapshot(native, "bbo")  # still waiting: counts towards asking again
            else:
                prev = state.last_u
                assert prev is not None
                if u == prev:
                    emit_event(out, self.exchange, symbol, "bbo", ts_recv, "duplicate", {"u": u})
                    return
                if u != prev + 1:
                    detail: dict[str, Any] = {"expected_u": prev + 1, "u": u, "seq": seq}
                    if u < prev:
                        detail["backwards"] = True
                    else:
                        detail["missing"] = u - prev - 1
                    emit_event(out, self.exchange, symbol, "bbo", ts_recv, "gap", detail)
                    state.synced, state.maybe_bad = False, True
                    self.request_snapshot(native, "bbo")
        else:
            raise ParseError(f"unknown book message type {str(kind)[:20]!r}", symbol, "bbo")
        for side, levels in ((BID, bids), (ASK, asks)):
            for price, size, p_str, s_str in levels:
                book.set_level(side, price, size, p_str, s_str)
        # The stream holds one level per side; drop anything a delta pushed out of the window.
        for levels in (book.bids, book.asks):
            while len(levels) > 1:
                levels.popitem()
        if state.synced:
            state.last_u = u
        bid = book.best_bid()
        ask = book.best_ask()
        # MAYBE_BAD_BOOK between a gap and the next snapshot
        self.emit_bbo(
            out,
            symbol,
            ts_exchange,
            ts_recv,
            bid[0] if bid else None,
            bid[1] if bid else None,
            ask[0] if ask else None,
            ask[1] if ask else None,
            seq,
            int(Flags.MAYBE_BAD_BOOK) if state.maybe_bad else 0,
        )

    # -- bbo: tickers (linear) --------------------------------------------------------------------
    def on_ticker(
        self, ts_recv: int, msg: dict[str, Any], native: str, symbol: str, out: RecordBuffer
    ) -> None:
        """A ``tickers`` message: merged into the symbol's state; a bbo row when bid/ask changed (if
        tickers are the bbo source); mark, funding and open interest rows when their fields came."""
        data = msg["data"]
        kind = msg["type"]
        if not isinstance(data, dict):
            raise ParseError("ticker data is not an object", symbol, "bbo")
        state = self.tickers.get(native)
        if kind == "snapshot":
            state = [None] * 10
            self.awaiting.pop((native, "bbo"), None)
        elif kind == "delta":
            if state is None:
                self.dropped_unsynced += 1
                self.request_snapshot(native, "bbo")
                return
            state = list(state)
        else:
            raise ParseError(f"unknown ticker message type {str(kind)[:20]!r}", symbol, "bbo")
        changed = kind == "snapshot"
        for i, key in enumerate(_TICKER_FIELDS):
            if key in data:
                value = data[key]
                state[i] = _ticker_price(value, key) if i % 2 == 0 else non_negative_size(value, key)
                changed = True
        ts_exchange = ms_to_ns(msg["ts"])
        derivatives = len(data) > 1 and self._merge_derivatives(data, state, symbol)
        self.tickers[native] = state
        if derivatives:
            self._emit_derivatives(out, data, state, symbol, ts_exchange, ts_recv, kind == "snapshot")
        if not changed or not self.tickers_bbo:
            return
        bid_p, bid_s, ask_p, ask_s = state[:4]
        self.emit_bbo(
            out,
            symbol,
            ts_exchange,
            ts_recv,
            bid_p,
            bid_s if bid_p is not None else None,
            ask_p,
            ask_s if ask_p is not None else None,
            _opt_int(msg.get("cs")),
        )

    @staticmethod
    def _merge_derivatives(data: dict[str, Any], state: list[Any], symbol: str) -> bool:
        """Merges a ticker's mark, index, funding and open interest fields into ``state[4:]``; True
        when any came (a field sent as ``""`` is absent on that instrument)."""
        came = False
        for i, key in enumerate((*_MARK_FIELDS, *_FUNDING_FIELDS, *_OPEN_INTEREST_FIELDS), 4):
            value = data.get(key)
            if value is None:
                continue
            came = True
            if value == "":
                state[i] = None
            elif i < 6:
                state[i] = positive_price(value, key)
            elif i == 6:
                state[i] = funding_rate(value, symbol, key)
            elif i == 7:
                state[i] = ms_to_ns(value) if value not in (0, "0") else None
            else:
                state[i] = non_negative_size(value, key)
        return came

    def _emit_derivatives(
        self,
        out: RecordBuffer,
        data: dict[str, Any],
        state: list[Any],
        symbol: str,
        ts_exchange: int,
        ts_recv: int,
        snapshot: bool,
    ) -> None:
        """Rows of the derivatives fields this ticker message carried (merged with earlier ones)."""
        mark, index, rate, next_time, oi, oi_value = state[4:]
        if mark is not None and (snapshot or "markPrice" in data or "indexPrice" in data):
            self.emit_mark_price(out, symbol, ts_exchange, ts_recv, mark, index)
        if rate is not None and (snapshot or "fundingRate" in data or "nextFundingTime" in data):
            self.emit_funding(out, symbol, ts_exchange, ts_recv, rate, None, next_time)
        if oi is not None and (snapshot or "openInterest" in data or "openInterestValue" in data):
            self.emit_open_interest(out, symbol, ts_exchange, ts_recv, oi, oi_value)

    # -- liquidations -----------------------------------------------------------------------------
    def on_liquidations(
        self, ts_recv: int, msg: dict[str, Any], native: str, symbol: str, out: RecordBuffer
    ) -> None:
        """An ``allLiquidation`` message: one ``liquidations`` row per element of ``data``."""
        items = msg["data"]
        if not isinstance(items, list):
            raise ParseError("allLiquidation data is not a list", symbol, "liquidations")
        rows = []
        for item in items:
            if not isinstance(item, dict):
                raise ParseError("liquidation is not an object", symbol, "liquidations")
            if item.get("s", native) != native:
                raise ParseError("liquidation of another symbol", symbol, "liquidations")
            side = _LIQUIDATION_ORDER_SIDE.get(item["S"]) if isinstance(item["S"], str) else None
            if side is None:
                raise ParseError(f"unknown position side {str(item['S'])[:20]!r}", symbol, "liquidations")
            price = positive_price(item["p"], "liquidation price p")
            size = positive_price(item["v"], "liquidation size v")
            rows.append((ms_to_ns(item["T"]), side, price, size))
        for ts_exchange, side, price, size in rows:  # all or nothing: a bad element adds no row
            self.emit_liquidation(out, symbol, ts_exchange, ts_recv, None, side, price, size)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """A new connection starts with new snapshots: forget every book and ticker state."""
        for book in self.books.values():
            book.reset()
        self.tops.clear()
        self.tickers.clear()
        self.resubscribe_requests.clear()
        self.awaiting.clear()


def _same_levels(book: L2Book, bids: list[Any], asks: list[Any]) -> bool:
    """True when a snapshot's levels equal the book's (as numbers; zero-size levels ignored)."""
    for side, levels in ((BID, bids), (ASK, asks)):
        parsed = [(p, s) for p, s, _, _ in parse_levels(levels) if s != 0.0]
        if len(parsed) != book.depth(side):
            return False
        held = book.side(side)
        for price, size in parsed:
            level = held.get(price)
            if level is None or level[0] != size:
                return False
    return True


class BybitDialect(ExchangeDialect):
    """Bybit v5 linear: endpoint, topics, resubscription, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://stream.bybit.com"
    ws_path: ClassVar[str] = "/v5/public/linear"
    #: Bybit documents no public topic limit per connection; 200 topics keeps resubscribes cheap.
    max_streams_per_connection: ClassVar[int] = 200
    #: Bybit asks clients to ping every 20 s; it drops connections that stay silent.
    app_ping: ClassVar[tuple[str, float] | None] = ('{"op":"ping"}', 20.0)
    args_per_request: ClassVar[int] = 100
    #: at most 500 connections within 5 minutes per IP
    limits: ClassVar[VenueLimits] = VenueLimits(connections_per_window=500, connection_window_s=300.0)
    book_depths: ClassVar[tuple[int, ...]] = LINEAR_BOOK_DEPTHS
    bbo_sources: ClassVar[tuple[str, ...]] = ("orderbook.1", "tickers")
    #: linear perpetuals: mark, funding and open interest from ``tickers``, ``allLiquidation``
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, *TICKER_CHANNELS, "liquidations")
    normaliser_class: ClassVar[type[BybitNormaliser]] = BybitNormaliser

    def __init__(self, options: DialectOptions | None = None) -> None:
        super().__init__(options)
        depth = self.options.book_depth or DEFAULT_BOOK_DEPTH
        if depth not in self.book_depths:
            raise ValueError(
                f"{self.exchange_id}: book depth {depth} not offered; choose one of "
                f"{', '.join(map(str, self.book_depths))}"
            )
        self.book_depth = depth
        bbo = str(self.options.extra.get("bbo_source", self.bbo_sources[0]))
        if bbo not in self.bbo_sources:
            raise ValueError(f"{self.exchange_id}: bbo_source must be one of {', '.join(self.bbo_sources)}")
        self.bbo_source = bbo
        self._req_ids = itertools.count(1)

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USDT-PERP``/``BTC-USDT``/``btcusdt`` -> ``BTCUSDT``; ``BTC-USDC-PERP`` -> ``BTCPERP``."""
        upper = symbol.strip().upper().replace("/", "-")
        if upper.endswith("-PERP"):
            upper = upper[: -len("-PERP")]
            base, _, quote = upper.partition("-")
            return f"{base}PERP" if quote == "USDC" else f"{base}{quote}"
        base, dash, quote = upper.partition("-")
        if dash and quote in self.normaliser_class.quotes:
            return base + quote
        return upper  # native already, or a dated future (BTC-26DEC25) that keeps its name

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(self.normaliser_class().normalise_native(native.upper()))

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        return f"{ws_url.rstrip('/')}{self.ws_path}"

    def topics(self, native: str, channels: Sequence[str]) -> list[str]:
        """Topic names of one symbol's channels (``funding``, ``mark`` and ``open_interest`` share
        ``tickers``; listed once)."""
        ticker = f"tickers.{native}"
        names = {
            "trades": f"publicTrade.{native}",
            "book": f"orderbook.{self.book_depth}.{native}",
            "bbo": ticker if self.bbo_source == "tickers" else f"orderbook.1.{native}",
            "funding": ticker,
            "mark": ticker,
            "open_interest": ticker,
            "liquidations": f"allLiquidation.{native}",
        }
        topics: list[str] = []
        for c in channels:
            topic = names[c]
            if topic not in topics:
                topics.append(topic)
        return topics

    def _requests(self, op: str, topics: list[str]) -> list[str]:
        step = self.args_per_request
        return [
            orjson.dumps(
                {"op": op, "args": topics[i : i + step], "req_id": f"{op}-{next(self._req_ids)}"}
            ).decode()
            for i in range(0, len(topics), step)
        ]

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        topics = [t for s in sub.symbols for t in self.topics(s, sub.channels)]
        return self._requests("subscribe", topics)

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        """Unsubscribe then subscribe the book topics (book and bbo) of these symbols.

        Bybit answers a subscribe with a fresh snapshot; for a topic that was healthy the snapshot
        equals the held book and changes nothing. ``tickers`` (when it carries derivatives channels) is
        renewed too: its snapshot restarts the merged state.
        """
        channels = [c for c in ("book", "bbo", *TICKER_CHANNELS) if c in sub.channels]
        topics = [t for s in native_symbols for t in self.topics(s, channels)]
        if not topics:
            return []
        return self._requests("unsubscribe", topics) + self._requests("subscribe", topics)

    def new_normaliser(self) -> BybitNormaliser:
        return self.normaliser_class(tickers_bbo=self.bbo_source == "tickers")

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return BybitSimulator(self, config)

    # -- instruments (collectors/venues/bybit_instruments.py) ------------------------------------
    instruments_rest_url: ClassVar[str | None] = "https://api.bybit.com"
    #: the ``category`` of ``/v5/market/instruments-info`` this dialect lists
    instruments_category: ClassVar[str] = "linear"

    def instruments_paths(self) -> list[str]:
        return [bybit_instruments.first_path(self.instruments_category)]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return bybit_instruments.parse_instruments_info(self, body, ts_recv)

    async def fetch_instruments(
        self,
        http: aiohttp.ClientSession,
        rest_url: str,
        spend: Callable[[int], Awaitable[None]] | None = None,
    ) -> list[Instrument]:
        """Every page of the category (``cursor`` paging), at most ``MAX_PAGES``, each one request."""
        out: list[Instrument] = []
        path: str | None = self.instruments_paths()[0]
        for _ in range(bybit_instruments.MAX_PAGES):
            if path is None:
                break
            if spend is not None:
                await spend(self.instruments_request_weight(path))
            async with http.get(rest_url.rstrip("/") + path) as resp:
                resp.raise_for_status()
                body = await resp.read()
            out.extend(self.parse_instruments(body, time.time_ns()))
            path = bybit_instruments.next_path(self.instruments_category, body)
        return out


# -- simulator ---------------------------------------------------------------------------------------


class DepthWindow:
    """The simulator's view of one ``orderbook.N`` topic: the N-level window last pushed and its ``u``."""

    __slots__ = ("asks", "bids", "last_push_ns", "u")

    def __init__(self, u: int) -> None:
        self.u = u
        self.bids: dict[int, int] = {}  # ticks -> lots, as last pushed
        self.asks: dict[int, int] = {}
        self.last_push_ns = 0


def _window_levels(model: MarketModel, depth: int) -> tuple[dict[int, int], dict[int, int]]:
    """The best ``depth`` levels of each side as ticks -> lots (sliced, no scan, no formatting)."""
    bids, asks = model.bids, model.asks
    return (
        {t: bids[t] for t in bids.keys()[-depth:]},  # bids ascend in the model: best are last
        {t: asks[t] for t in asks.keys()[:depth]},
    )


def _wire(model: MarketModel, levels: dict[int, int], descending: bool) -> list[list[str]]:
    """Wire levels ``[price, size]`` in book order (size ``"0"`` deletes)."""
    return [
        [model.price_str(t), model.size_str(levels[t]) if levels[t] else "0"]
        for t in sorted(levels, reverse=descending)
    ]


def _diff(old: dict[int, int], new: dict[int, int]) -> dict[int, int]:
    """Levels that changed between two windows; levels that left the window get size 0."""
    changes = {t: v for t, v in new.items() if old.get(t) != v}
    for t in old:
        if t not in new:
            changes[t] = 0
    return changes


class BybitSimulator(ExchangeSimulator):
    """Bybit v5 public websocket on loopback: op-based subscribe, snapshot then deltas, ping/pong.

    :meth:`restart_orderbook_service` makes the next book message of a symbol a ``u == 1`` snapshot,
    as Bybit does after an orderbook service restart.
    """

    category: ClassVar[str] = "linear"
    #: level-1 books (linear and spot) are re-pushed as a snapshot after 3 s without change (documented)
    level1_repush_ns: ClassVar[int] = 3_000_000_000

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.ws_paths = (str(getattr(dialect, "ws_path", "/v5/public/linear")),)
        self.windows: dict[tuple[str, int], DepthWindow] = {}
        self.ticker_state: dict[str, tuple[str, str, str, str]] = {}
        #: per symbol: the second whose ticker last carried the derivatives fields
        self.ticker_second: dict[str, int] = {}
        self._rendered: tuple[MarketStep, dict[str, list[str]]] | None = None
        self._conn_ids = itertools.count(1)

    # -- protocol -----------------------------------------------------------------------------
    def valid_depths(self) -> tuple[int, ...]:
        """Depths this category offers (1 included)."""
        return (1, *getattr(self.dialect, "book_depths", LINEAR_BOOK_DEPTHS))

    async def on_open(self, session: ClientSession) -> None:
        session.state["conn_id"] = f"sim-{next(self._conn_ids)}"
        session.state["topics"] = set()

    def _reply(self, session: ClientSession, msg: dict[str, Any], success: bool, ret_msg: str) -> None:
        reply = {
            "success": success,
            "ret_msg": ret_msg,
            "conn_id": session.state["conn_id"],
            "req_id": str(msg.get("req_id", "")),
            "op": msg.get("op"),
        }
        self.send(session, orjson.dumps(reply).decode())

    async def on_message(self, session: ClientSession, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.send(session, '{"success":false,"ret_msg":"error:invalid json","op":""}')
            return
        if not isinstance(msg, dict):
            return
        op = msg.get("op")
        if op == "ping":
            self._reply(session, msg, True, "pong")
            return
        args = msg.get("args")
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
            self._reply(session, msg, False, f"error:unknown op {str(op)[:20]}")
            return
        limit = getattr(self.dialect, "args_per_request", 0)
        if self.category == "spot" and len(args) > limit:
            self._reply(session, msg, False, f"error:args size >{limit}")
            return
        parsed = [self._parse_topic(str(a)) for a in args]
        bad = [str(a) for a, p in zip(args, parsed, strict=True) if p is None]
        if bad:
            self._reply(session, msg, False, f"error:handler not found,topic:{bad[0][:60]}")
            return
        topics: set[str] = session.state["topics"]
        if op == "subscribe":
            already = [str(a) for a in args if a in topics]
            if already:
                self._reply(session, msg, False, f"error:already subscribed,topic:{already[0][:60]}")
                return
            self._reply(session, msg, True, "")
            for topic, p in zip(args, parsed, strict=True):
                assert p is not None
                topics.add(topic)
                channel, symbol, depth = p
                session.subscriptions.add((channel, symbol))
                session.state.setdefault("depth", {})[(channel, symbol)] = depth
                first = self.snapshot_frame(topic, symbol, depth)
                if first:
                    self.send(session, first)
        else:
            self._reply(session, msg, True, "")
            for topic, p in zip(args, parsed, strict=True):
                assert p is not None
                topics.discard(topic)
                session.subscriptions.discard((p[0], p[1]))

    def _parse_topic(self, topic: str) -> tuple[str, str, int] | None:
        """``(channel, native symbol, depth)`` of a topic this simulator serves, or None."""
        name, _, rest = topic.partition(".")
        if name == "publicTrade" and rest in self.markets:
            return ("trades", rest, 0)
        if name == "tickers" and rest in self.markets and self.category == "linear":
            return ("bbo", rest, 0)
        if name == "allLiquidation" and rest in self.markets and self.category == "linear":
            return ("liquidations", rest, 0)
        if name == "orderbook":
            depth_text, _, symbol = rest.partition(".")
            if depth_text.isdigit() and symbol in self.markets and int(depth_text) in self.valid_depths():
                depth = int(depth_text)
                return ("bbo" if depth == 1 else "book", symbol, depth)
        return None

    # -- frames ---------------------------------------------------------------------------------
    def window(self, symbol: str, depth: int) -> DepthWindow:
        """The window of a topic, created from the current market (so a snapshot is always current)."""
        key = (symbol, depth)
        w = self.windows.get(key)
        if w is None:
            model = self.markets[symbol]
            # a start value per topic that does not consume the market's random stream
            w = self.windows[key] = DepthWindow(
                u=1_000 + zlib.crc32(f"{symbol}.{depth}".encode()) % 1_000_000
            )
            w.bids, w.asks = _window_levels(model, depth)
        return w

    def restart_orderbook_service(self, symbol: str) -> None:
        """Simulates an orderbook service restart: every depth of ``symbol`` restarts at ``u = 0``.

        The next message of each topic then carries ``u == 1`` and must be treated as a snapshot.
        """
        for (sym, _), w in self.windows.items():
            if sym == symbol:
                w.u = 0

    def snapshot_frame(self, topic: str, symbol: str, depth: int) -> str:
        """The message a subscriber receives first: a book snapshot, a ticker snapshot, or nothing."""
        model = self.markets[symbol]
        ms = self.now_exchange_ns() // 1_000_000
        if topic.startswith("orderbook."):
            w = self.window(symbol, depth)
            new_b, new_a = _window_levels(model, depth)
            if new_b != w.bids or new_a != w.asks:  # the market moved while nobody watched
                w.bids, w.asks = new_b, new_a
                w.u += 1
            bids, asks = _wire(model, new_b, True), _wire(model, new_a, False)
            return self._book_frame(topic, "snapshot", symbol, w.u, model.update_id, bids, asks, ms)
        if topic.startswith("tickers."):
            (bp, bq), (ap, aq) = model.best()
            self.ticker_state[symbol] = (bp, bq, ap, aq)
            return self._ticker_frame(topic, "snapshot", symbol, model, (bp, bq, ap, aq), ms, full=True)
        return ""

    def _book_frame(
        self,
        topic: str,
        kind: str,
        symbol: str,
        u: int,
        seq: int,
        bids: Sequence[Sequence[str]],
        asks: Sequence[Sequence[str]],
        ms: int,
    ) -> str:
        return orjson.dumps(
            {
                "topic": topic,
                "type": kind,
                "ts": ms,
                "data": {"s": symbol, "b": bids, "a": asks, "u": u, "seq": seq},
                "cts": ms,
            }
        ).decode()

    def _ticker_frame(
        self,
        topic: str,
        kind: str,
        symbol: str,
        model: MarketModel,
        values: tuple[str | None, ...],
        ms: int,
        full: bool,
    ) -> str:
        data: dict[str, Any] = {"symbol": symbol}
        if full:
            data["lastPrice"] = values[0]
        for key, value in zip(_TICKER_FIELDS, values, strict=True):
            if value is not None:
                data[key] = value
        second = ms // 1000
        if full or self.ticker_second.get(symbol) != second:
            # mark, index, funding and open interest: in the snapshot, then about once a second
            self.ticker_second[symbol] = second
            data.update(self.derivative_fields(model, ms))
        return orjson.dumps(
            {"topic": topic, "type": kind, "data": data, "cs": model.update_id, "ts": ms}
        ).decode()

    def derivative_fields(self, model: MarketModel, ms: int) -> dict[str, str]:
        """A linear ticker's mark, index, funding and open interest fields (strings, as Bybit sends)."""
        (bp, _), (ap, _) = model.best()
        mid = (float(bp) + float(ap)) / 2
        interval_ms = 8 * 3600 * 1000
        open_interest = 50_000 + model.update_id % 9_973 / 100
        return {
            "markPrice": f"{mid:.2f}",
            "indexPrice": f"{mid * 0.9999:.2f}",
            "fundingRate": "0.0001" if model.update_id % 2 else "-0.00005",
            "nextFundingTime": str((ms // interval_ms + 1) * interval_ms),
            "openInterest": f"{open_interest:.2f}",
            "openInterestValue": f"{open_interest * mid:.2f}",
        }

    def trade_id(self, trade_id: int) -> str:
        """Wire trade id: linear sends UUIDs (derived deterministically from the model's counter)."""
        return str(uuid.UUID(int=(trade_id * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128)))

    def trade_item(self, step: MarketStep, t: Any, ms: int) -> dict[str, Any]:
        """One element of a ``publicTrade`` message's data."""
        return {
            "T": ms,
            "s": step.symbol,
            "S": "Buy" if t.side == "buy" else "Sell",
            "v": t.size,
            "p": t.price,
            "L": "PlusTick" if t.side == "buy" else "MinusTick",
            "i": self.trade_id(t.trade_id),
            "BT": False,
            "RPI": False,
            "seq": step.update_id,
        }

    def step_topic_frames(self, step: MarketStep) -> dict[str, list[str]]:
        """Every topic's frames for one market step (computed once per step, for every session)."""
        # keyed by the step object itself: an id() of a freed step can be reused by the next one
        if self._rendered is not None and self._rendered[0] is step:
            return self._rendered[1]
        symbol = step.symbol
        ms = step.ts_ns // 1_000_000
        frames: dict[str, list[str]] = {}
        if step.trades:
            frames[f"publicTrade.{symbol}"] = [
                orjson.dumps(
                    {
                        "topic": f"publicTrade.{symbol}",
                        "type": "snapshot",
                        "ts": ms,
                        "data": [self.trade_item(step, t, ms) for t in step.trades],
                    }
                ).decode()
            ]
        for (sym, depth), w in self.windows.items():
            if sym != symbol:
                continue
            topic = f"orderbook.{depth}.{symbol}"
            model = step.model
            new_b, new_a = _window_levels(model, depth)
            db, da = _diff(w.bids, new_b), _diff(w.asks, new_a)
            w.bids, w.asks = new_b, new_a
            if db or da:
                w.u += 1
                if w.u == 1:  # after an orderbook service restart: a full snapshot with u = 1
                    kind, db, da = "snapshot", new_b, new_a
                else:
                    kind = "delta"
                bids, asks = _wire(model, db, True), _wire(model, da, False)
                frames[topic] = [self._book_frame(topic, kind, symbol, w.u, step.update_id, bids, asks, ms)]
                w.last_push_ns = step.ts_ns
            elif depth == 1 and step.ts_ns - w.last_push_ns >= self.level1_repush_ns:
                # documented: an unchanged level-1 book is re-sent as a snapshot with the same u
                bids, asks = _wire(model, new_b, True), _wire(model, new_a, False)
                frames[topic] = [
                    self._book_frame(topic, "snapshot", symbol, w.u, step.update_id, bids, asks, ms)
                ]
                w.last_push_ns = step.ts_ns
        liquidations = [
            {"T": ms, "s": symbol, "S": "Buy" if t.side == "sell" else "Sell", "v": t.size, "p": t.price}
            for t in step.trades
            if t.trade_id % LIQUIDATION_EVERY == 0
        ]
        if liquidations and self.category == "linear":
            topic = f"allLiquidation.{symbol}"
            frame = {"topic": topic, "type": "snapshot", "ts": ms, "data": liquidations}
            frames[topic] = [orjson.dumps(frame).decode()]
        if symbol in self.ticker_state:
            (bp, bq), (ap, aq) = step.model.best()
            old = self.ticker_state[symbol]
            new = (bp, bq, ap, aq)
            if new != old or self.ticker_second.get(symbol) != ms // 1000:
                self.ticker_state[symbol] = new
                changed = tuple(n if n != o else None for n, o in zip(new, old, strict=True))
                frames[f"tickers.{symbol}"] = [
                    self._ticker_frame(
                        f"tickers.{symbol}", "delta", symbol, step.model, changed, ms, full=False
                    )
                ]
        self._rendered = (step, frames)
        return frames

    #: instruments per ``instruments-info`` page (Bybit's largest ``limit``)
    instruments_page_size: int = 1000

    def instrument_routes(self) -> list[web.RouteDef]:
        return [web.get(bybit_instruments.PATH, self.instruments_handler)]

    async def instruments_handler(self, request: web.Request) -> web.Response:
        """``GET /v5/market/instruments-info?category=..``: this simulator's markets, paged."""
        fault = self.instruments_fault_response()
        if fault is not None:
            return fault
        if request.query.get("category") != self.category:
            return web.json_response(
                {"retCode": 10001, "retMsg": "category mismatch (simulated)", "result": {}}
            )
        quotes = getattr(self.dialect, "normaliser_class", BybitNormaliser).quotes
        body = bybit_instruments.instruments_info_body(
            self.category, self.markets, quotes, request.query.get("cursor", ""), self.instruments_page_size
        )
        return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        frames = self.step_topic_frames(step)
        topics: set[str] = session.state.get("topics", set())
        trades: list[str] = []
        book: list[str] = []
        bbo: list[str] = []
        for topic, topic_frames in frames.items():
            if topic not in topics:
                continue
            if topic.startswith("publicTrade."):
                trades.extend(topic_frames)
            elif topic.startswith(("orderbook.1.", "tickers.", "allLiquidation.")):
                bbo.extend(topic_frames)
            else:
                book.extend(topic_frames)
        return trades, book, bbo

    def publish_step(self, step: MarketStep) -> None:
        # Windows must advance every step even with no session (u is a per-topic global counter).
        self.step_topic_frames(step)
        super().publish_step(step)


DIALECT_CLASS = BybitDialect

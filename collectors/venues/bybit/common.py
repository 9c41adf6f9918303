"""Bybit v5 linear perpetuals (exchange id ``bybit``): public websocket ``/v5/public/linear``.

The spot dialect (``bybit-spot``, :mod:`.spot`) subclasses everything here; only the
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
https://bybit-exchange.github.io/docs/v5/websocket/public/all-liquidation (the latter confirms ``T``,
``s``, ``S``, ``v``, ``p``, the 500 ms push and "Buy" = a long position liquidated; the ticker fields as
quoted by https://docs.rs/rs_bybit/latest/bybit/prelude/struct.LinearTickerDataSnapshot.html).

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

from collections.abc import Sequence
from typing import Any, ClassVar

from schemas import Flags, RecordBuffer

from ...base import Normaliser
from ...book import ASK, BID, L2Book, SymbolBooks, SyncedBook, parse_levels
from ...dedupe import RecentTradeIds
from ...events import (
    ParseError,
    decode_json,
    emit_event,
    frame_text_for_event,
    funding_rate,
    ms_to_ns,
    non_negative_size,
    positive_price,
)

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
TICKER_BBO_FIELDS = ("bid1Price", "bid1Size", "ask1Price", "ask1Size")
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
        for i, key in enumerate(TICKER_BBO_FIELDS):
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

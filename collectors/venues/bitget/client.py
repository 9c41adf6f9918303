"""Client side of Bitget's public websocket v2, shared by ``bitget`` (spot) and ``bitget-futures``
(USDT-M perpetuals): the normaliser and the dialect base. The rules are in the package docstring
(:mod:`collectors.venues.bitget`); what differs between the two venues is a handful of class attributes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from schemas import Flags, RecordBuffer

from ...base import DialectOptions, ExchangeDialect, Normaliser, Subscription
from ...book import L2Book, ResyncWatch, SymbolBooks, SyncedBook, add_flags, parse_levels
from ...checksum import book_crc32, colon_level, to_signed32
from ...dedupe import RecentTradeIds
from ...events import (
    ParseError,
    bbo_side,
    check_symbol,
    emit_event,
    funding_rate,
    ms_to_ns,
    non_negative_size,
    positive_price,
)
from ...instruments import Instrument
from ..binance import split_binance_symbol
from . import instruments as bitget_instruments

if TYPE_CHECKING:
    from ...simulator import ExchangeSimulator, SimulatorConfig

WS_PATH = "/v2/ws/public"
#: the unified-account (v3) public endpoint, which alone serves the ``liquidation`` topic
V3_PATH = "/v3/ws/public"
LIQUIDATION_TOPIC = "liquidation"
#: the liquidation push's ``side`` is the liquidated *position's*; the order that closes it takes the
#: other side (``buy``: a long was liquidated, by a sell)
LIQUIDATION_TAKER_SIDES = {"buy": "sell", "sell": "buy"}
#: Book levels per side covered by Bitget's checksum.
CHECKSUM_DEPTH = 25
#: Subscription arguments per request: one request carries a whole connection's channels (at most
#: ``max_streams_per_connection`` of them), well inside the 10 messages per second Bitget accepts.
ARGS_PER_REQUEST = 50
#: Book channel (incremental, checksummed) and best bid/offer channels.
BOOK_CHANNEL = "books"
BBO_CHANNELS = ("books1", "ticker")
#: Updates in a row at or below the book's seq after which the book's own seq is presumed wrong.
BEHIND_LIMIT = 50
#: Trade id given to a v1 trade (which has none; the lake needs one): its own wire fields.
V1_TRADE_ID = "v1:{}:{}:{}:{}"
#: Bitget's sequence numbers are Java longs.
SEQ_MAX = 2**63 - 1
#: Candle channels (``candle1m``, ``candle1H``, ``candle1Dutc``...), which the v1 recordings carry besides
#: ours: recognised and counted, never rows.
IGNORED_CHANNEL = re.compile(r"candle\d+[A-Za-z]+")


def validate_levels(book: SyncedBook, bids: list[Any], asks: list[Any]) -> None:
    """:class:`ParseError` unless every level is valid (for updates a venue does not apply)."""
    parse_levels(bids, book.limits.max_price, book.limits.max_size)
    parse_levels(asks, book.limits.max_price, book.limits.max_size)


def bitget_checksum(book: L2Book) -> int:
    """Bitget's signed CRC32 of a book's best 25 bids and asks interleaved, over the wire strings."""
    return to_signed32(book_crc32(book, CHECKSUM_DEPTH, colon_level, interleave=True, separator=":"))


def _int_field(value: Any, what: str, symbol: str) -> int | None:
    """An optional integer sequence field (Bitget sends numbers; a numeric string is accepted)."""
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit() and len(value) < 20:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= SEQ_MAX:
        raise ParseError(f"{what} is not a non-negative integer: {str(value)[:40]!r}", symbol, "book")
    return value


def _side(value: Any, symbol: str) -> str:
    side = value.lower() if isinstance(value, str) else None
    if side != "buy" and side != "sell":
        raise ParseError(f"bad trade side {str(value)[:20]!r}", symbol, "trades")
    return side


#: our channels that ride a futures ``ticker`` subscription
TICKER_CHANNELS: tuple[str, ...] = ("funding", "mark", "open_interest")
#: ticker fields (v2, v1) of: exchange time, mark, index, funding rate, next funding time, open interest
_V2_FIELDS = ("ts", "markPrice", "indexPrice", "fundingRate", "nextFundingTime", "holdingAmount")
_V1_FIELDS = ("systemTime", "markPrice", "indexPrice", "capitalRate", "nextSettleTime", "holding")


def _present(t: dict[str, Any], key: str) -> Any:
    """A ticker field, or None when absent or empty."""
    value = t.get(key)
    return None if value is None or value == "" else value


def ticker_derivatives(
    t: dict[str, Any], v1: bool, symbol: str
) -> tuple[int, float | None, float | None, float | None, int | None, float | None]:
    """A futures ticker's (ts_exchange, mark, index, funding rate, next funding time, open interest);
    each value None when the ticker does not carry it (a next funding time of 0 too)."""
    ts_key, mark_key, index_key, rate_key, next_key, oi_key = _V1_FIELDS if v1 else _V2_FIELDS
    ts_exchange = ms_to_ns(t[ts_key])
    mark, index, rate, next_raw, oi = (
        _present(t, k) for k in (mark_key, index_key, rate_key, next_key, oi_key)
    )
    next_time = None if next_raw in (None, 0, "0") else ms_to_ns(next_raw)
    return (
        ts_exchange,
        None if mark is None else positive_price(mark, "markPrice"),
        None if index is None else positive_price(index, "indexPrice"),
        None if rate is None else funding_rate(rate, symbol),
        next_time,
        None if oi is None else non_negative_size(oi, "holdingAmount"),
    )


class BitgetNormaliser(Normaliser):
    """Bitget public v2 frames (and retired v1 frames, for old captures) -> records."""

    exchange: ClassVar[str] = "bitget"
    #: ``instType`` values this venue's pushes carry: the v2 name and the retired v1 name
    inst_types: ClassVar[frozenset[str]] = frozenset({"SPOT", "sp"})
    #: suffix of normalised symbols (``-PERP`` for perpetuals)
    symbol_suffix: ClassVar[str] = ""
    #: whether ``ticker`` pushes carry mark, funding and open interest (futures)
    derivatives: ClassVar[bool] = False
    #: ``instType`` of the v3 ``liquidation`` topic (futures), or None
    liquidation_inst_type: ClassVar[str | None] = None

    def __init__(self, verify_checksums: bool = True, ticker_bbo: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verify_checksums = verify_checksums
        #: whether ``ticker`` pushes are the bbo source (else, on futures, they are subscribed for the
        #: derivatives channels only and their bid/ask add no second bbo stream)
        self.ticker_bbo = ticker_bbo
        self.symbols = SymbolBooks(self.exchange, self.normalise_native)
        self.books = self.symbols.books  # instId -> book
        self.trade_ids = RecentTradeIds()
        self.resync_watch = ResyncWatch()
        self.checksums_verified = 0
        self.checksums_unverified = 0
        self.updates_skipped = 0
        #: trades of a subscribe snapshot that were already stored (replayed after a reconnect)
        self.trades_replayed = 0
        #: updates accepted across a documented sequence restart (``pseq`` 0)
        self.sequence_restarts = 0
        #: instId -> updates in a row whose seq was at or below the book's
        self.behind: dict[str, int] = {}
        #: pushes of channels we do not store (v1 candles and tickers in old captures)
        self.ignored_pushes = 0
        #: liquidation records of symbols another connection carries (the topic covers every symbol)
        self.liquidations_of_other_symbols = 0

    def normalise_native(self, native: Any) -> str:
        """``BTCUSDT`` -> ``BTC-USDT`` (spot) or ``BTC-USDT-PERP`` (futures)."""
        if not isinstance(native, str):
            raise ParseError(f"instId is not a string: {str(native)[:40]!r}")
        base, quote = split_binance_symbol(native)
        return f"{base}-{quote}{self.symbol_suffix}"

    # -- frames --------------------------------------------------------------------------------
    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        if frame == b"pong" or frame == "pong":
            return  # answer to our text ping
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not a JSON object")
        if "event" in msg:
            self.on_event(ts_recv, msg, out)
            return
        arg, data, action = msg.get("arg"), msg.get("data"), msg.get("action")
        if not isinstance(arg, dict) or not isinstance(data, list):
            raise ParseError("push without arg object or data list")
        if arg.get("topic") == LIQUIDATION_TOPIC and self.liquidation_inst_type is not None:
            if arg.get("instType") != self.liquidation_inst_type:
                raise ParseError(f"instType {str(arg.get('instType'))[:30]!r} is not {self.exchange}'s")
            self.on_liquidations(ts_recv, data, out)
            return
        channel, inst_id = arg.get("channel"), arg.get("instId")
        if arg.get("instType") not in self.inst_types:
            raise ParseError(f"instType {str(arg.get('instType'))[:30]!r} is not {self.exchange}'s")
        if action != "snapshot" and action != "update":
            raise ParseError(f"unknown push action {str(action)[:20]!r}", channel=str(channel)[:20])
        if channel == "trade":
            self.on_trades(ts_recv, inst_id, action, data, out)
        elif channel == BOOK_CHANNEL:
            self.on_book(ts_recv, inst_id, action, data, out)
        elif channel == "books1":
            self.on_books1(ts_recv, inst_id, data, out)
        elif channel == "ticker":
            self.on_ticker(ts_recv, inst_id, data, out)
        elif isinstance(channel, str) and IGNORED_CHANNEL.fullmatch(channel):
            self.symbols.name(inst_id)  # still validated
            self.ignored_pushes += 1
        else:
            raise ParseError(f"unknown channel {str(channel)[:60]!r}")

    def on_event(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        """Subscription acknowledgements and errors."""
        event = msg.get("event")
        if event in ("subscribe", "unsubscribe", "login"):
            return
        if event == "error":
            arg = msg.get("arg")
            symbol = None
            if isinstance(arg, dict) and isinstance(arg.get("instId"), str):
                try:
                    symbol = self.symbols.name(arg["instId"])
                except ParseError:
                    symbol = None
            detail = {"code": str(msg.get("code"))[:20], "msg": str(msg.get("msg"))[:500]}
            emit_event(out, self.exchange, symbol, "connection", ts_recv, "exchange_error", detail)
            return
        raise ParseError(f"unknown event {str(event)[:40]!r}")

    # -- trades --------------------------------------------------------------------------------
    def on_trades(self, ts_recv: int, inst_id: Any, action: str, data: list[Any], out: RecordBuffer) -> None:
        """A trade push. v2 entries are ``{ts, price, size, side, tradeId}``; v1 ones ``[ts, price,
        size, side]`` without id (their rows get the made-up id :data:`V1_TRADE_ID`). The subscribe snapshot (recent trades, newest first) is flagged
        SNAPSHOT and its already stored trades are dropped (counted in ``trades_replayed``); ``update``
        pushes are live trades and are always stored."""
        symbol = self.symbols.name(inst_id)
        parsed: list[tuple[str, bool, float, float, str, int]] = []
        for t in data:  # validate the whole push before emitting any of it
            if isinstance(t, dict):
                trade_id = t["tradeId"]
                if not isinstance(trade_id, str) or not trade_id or len(trade_id) > 64:
                    raise ParseError(f"bad tradeId {str(trade_id)[:40]!r}", symbol, "trades")
                ts, price, size, side = t["ts"], t["price"], t["size"], t["side"]
                exchange_id = True
            elif isinstance(t, list) and len(t) == 4:
                ts, price, size, side = t
                trade_id = V1_TRADE_ID.format(ts, price, size, side)[:64]
                exchange_id = False
            else:
                raise ParseError("trade is neither an object nor a v1 array", symbol, "trades")
            parsed.append(
                (
                    trade_id,
                    exchange_id,
                    positive_price(price),
                    positive_price(size, "size"),
                    _side(side, symbol),
                    ms_to_ns(ts),
                )
            )
        snapshot = action == "snapshot"
        flags = int(Flags.SNAPSHOT) if snapshot else 0
        for trade_id, exchange_id, price, size, side, ts_exchange in parsed:
            # Every id is remembered; only a snapshot (a replay of recent trades) drops known ones: an
            # update is a new trade by definition. Made-up v1 ids are not unique: never de-duplicated.
            if exchange_id and self.trade_ids.seen(inst_id, trade_id) and snapshot:
                self.trades_replayed += 1
                continue
            self.emit_trade(out, symbol, ts_exchange, ts_recv, trade_id, price, size, side, flags)

    # -- book ----------------------------------------------------------------------------------
    def on_book(self, ts_recv: int, inst_id: Any, action: str, data: list[Any], out: RecordBuffer) -> None:
        """A ``books`` push: snapshot or update, under the sequence and checksum rules."""
        book = self.symbols.book(inst_id)
        for entry in data:
            bids, asks = entry["bids"], entry["asks"]
            if not isinstance(bids, list) or not isinstance(asks, list):
                raise ParseError("book bids/asks are not lists", book.symbol, "book")
            ts_exchange = ms_to_ns(entry["ts"])
            seq = _int_field(entry.get("seq"), "seq", book.symbol)
            pseq = _int_field(entry.get("pseq"), "pseq", book.symbol)
            checksum = entry.get("checksum")
            if checksum is not None and (not isinstance(checksum, int) or isinstance(checksum, bool)):
                raise ParseError("checksum is not an integer", book.symbol, "book")
            time_flags = self.time_flags.flags(ts_exchange, ts_recv)
            before = len(out.book)
            if action == "snapshot":
                book.apply_snapshot(out, ts_exchange, ts_recv, bids, asks, seq)
                add_flags(out.book, before, time_flags)
                self.resync_watch.done(inst_id)
            else:
                if not book.synced:
                    # waiting for the snapshot of a (re)subscription; ask again if it is overdue
                    validate_levels(book, bids, asks)  # a hostile update is a parse error, not a skip
                    self.updates_skipped += 1
                    self.resync_watch.check(
                        out, self.exchange, inst_id, book.symbol, ts_recv, self.resubscribe_requests
                    )
                    continue
                if not self.in_sequence(out, book, inst_id, ts_recv, seq, pseq, bids, asks):
                    continue
                book.apply_update(out, ts_exchange, ts_recv, bids, asks, seq, time_flags)
                if seq is not None:
                    book.last_seq = seq
            if checksum and self.verify_checksums:
                computed = bitget_checksum(book.book)
                self.checksums_verified += 1
                if computed != checksum:
                    add_flags(out.book, before, int(Flags.MAYBE_BAD_BOOK))
                    detail = {"checksum": checksum, "computed": computed, "seq": seq, "action": action}
                    self.break_book(out, book, inst_id, ts_recv, "checksum_mismatch", detail)
                    continue
            else:
                self.checksums_unverified += 1
            book.check_crossed(out, ts_recv, {"seq": seq})

    def in_sequence(
        self,
        out: RecordBuffer,
        book: SyncedBook,
        inst_id: str,
        ts_recv: int,
        seq: int | None,
        pseq: int | None,
        bids: list[Any],
        asks: list[Any],
    ) -> bool:
        """Whether an update continues the book (see the package docstring); otherwise records why.

        An update that is not applied (a repeat, a gap) is validated first: a hostile one is a
        ``parse_error``, not a duplicate or a gap.
        """
        last = book.last_seq
        if seq is None or last is None:
            return True  # v1 frames: only the checksum proves continuity
        if pseq == 0:
            self.sequence_restarts += 1  # documented restart after a release; the checksum still holds
            return True
        if (pseq is None or pseq == last) and seq > last:
            self.behind.pop(inst_id, None)
            return True
        validate_levels(book, bids, asks)
        if seq <= last:
            # a repeat, or a sequence going backwards: never applied over a newer book. A run of them
            # means the book's own seq is wrong (a bad frame that passed validation): resync it.
            behind = self.behind.get(inst_id, 0) + 1
            self.behind[inst_id] = behind
            detail = {"seq": seq, "pseq": pseq, "last_seq": last}
            if behind >= BEHIND_LIMIT:
                self.break_book(out, book, inst_id, ts_recv, "gap", {**detail, "updates_behind": behind})
            else:
                emit_event(out, self.exchange, book.symbol, "book", ts_recv, "duplicate", detail)
            return False
        self.break_book(out, book, inst_id, ts_recv, "gap", {"expected_pseq": last, "pseq": pseq, "seq": seq})
        return False

    def break_book(
        self,
        out: RecordBuffer,
        book: SyncedBook,
        inst_id: str,
        ts_recv: int,
        kind: str,
        detail: dict[str, Any],
    ) -> None:
        """A gap or checksum failure: that book is cleared and renewed by resubscribing it alone."""
        book.gap(out, ts_recv, kind, detail)
        self.behind.pop(inst_id, None)
        self.resubscribe_requests.add(inst_id)

    # -- best bid/offer ------------------------------------------------------------------------
    def on_books1(self, ts_recv: int, inst_id: Any, data: list[Any], out: RecordBuffer) -> None:
        """A ``books1`` push (a one-level snapshot every time): the best bid/offer with the book's seq."""
        symbol = self.symbols.name(inst_id)
        for entry in data:
            bids, asks = entry["bids"], entry["asks"]
            if not isinstance(bids, list) or not isinstance(asks, list):
                raise ParseError("books1 bids/asks are not lists", symbol, "bbo")
            bid_p = bid_s = ask_p = ask_s = None
            if bids:
                bid_p, bid_s = bbo_side(bids[0][0], bids[0][1], "bid")
            if asks:
                ask_p, ask_s = bbo_side(asks[0][0], asks[0][1], "ask")
            seq = _int_field(entry.get("seq"), "seq", symbol)
            ts_exchange = ms_to_ns(entry["ts"])
            self.emit_bbo(out, symbol, ts_exchange, ts_recv, bid_p, bid_s, ask_p, ask_s, seq)

    def on_ticker(self, ts_recv: int, inst_id: Any, data: list[Any], out: RecordBuffer) -> None:
        """A ``ticker`` push: a bbo row from v2 ``bidPr``/``bidSz``/``askPr``/``askSz`` (no book
        sequence) when the ticker is the bbo source, and on futures mark, funding and open interest rows.

        v1 tickers (old captures) carry ``bestBid``/``bestAsk`` without sizes, rounded on the 2022
        recording (bid equal to ask): never bbo rows; on spot they are counted in ``ignored_pushes``.
        Every entry is validated before any row is written.
        """
        symbol = self.symbols.name(inst_id)
        rows = []
        derivatives = []
        ignored = False
        for t in data:
            if not isinstance(t, dict):
                raise ParseError("ticker is not an object", symbol, "bbo")
            v1 = "bidPr" not in t and "bestBid" in t
            if self.derivatives:
                derivatives.append(ticker_derivatives(t, v1, symbol))
            elif v1:
                ignored = True
            if v1 or not self.ticker_bbo:
                continue
            bid_p, bid_s = bbo_side(t["bidPr"] or 0, t["bidSz"] or 0, "bid")
            ask_p, ask_s = bbo_side(t["askPr"] or 0, t["askSz"] or 0, "ask")
            rows.append((ms_to_ns(t["ts"]), bid_p, bid_s, ask_p, ask_s))
        if ignored:
            self.ignored_pushes += 1
        for ts_exchange, bid_p, bid_s, ask_p, ask_s in rows:
            self.emit_bbo(out, symbol, ts_exchange, ts_recv, bid_p, bid_s, ask_p, ask_s, None)
        for ts_exchange, mark, index, rate, next_time, oi in derivatives:
            if mark is not None:
                self.emit_mark_price(out, symbol, ts_exchange, ts_recv, mark, index)
            if rate is not None:
                self.emit_funding(out, symbol, ts_exchange, ts_recv, rate, None, next_time)
            if oi is not None:
                self.emit_open_interest(out, symbol, ts_exchange, ts_recv, oi, None)

    def on_liquidations(self, ts_recv: int, data: list[Any], out: RecordBuffer) -> None:
        """A v3 ``liquidation`` push: ``{symbol, side, price, amount, ts}`` records of every symbol of
        the product type; one row per record of a symbol this connection carries (rules in the package
        docstring). Every record is validated before any row is written."""
        rows = []
        for item in data:
            if not isinstance(item, dict):
                raise ParseError("liquidation is not an object", channel="liquidations")
            symbol = self.symbols.name(item["symbol"])
            side = LIQUIDATION_TAKER_SIDES.get(item["side"]) if isinstance(item["side"], str) else None
            if side is None:
                raise ParseError(f"unknown position side {str(item['side'])[:20]!r}", symbol, "liquidations")
            price = positive_price(item["price"], "liquidation price")
            amount = positive_price(item["amount"], "liquidation amount")  # quote coin
            rows.append((symbol, ms_to_ns(item["ts"]), side, price, amount / price))
        for symbol, ts_exchange, side, price, size in rows:
            if self.subscribed is not None and symbol not in self.subscribed:
                self.liquidations_of_other_symbols += 1
                continue
            self.emit_liquidation(out, symbol, ts_exchange, ts_recv, None, side, price, size)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """Books start over on the next connection (trade ids are kept to drop replayed trades)."""
        for book in self.books.values():
            book.reset()
        self.resubscribe_requests.clear()
        self.resync_watch.waiting.clear()
        self.behind.clear()


class BitgetDialect(ExchangeDialect):
    """Bitget public v2: endpoint, subscribe/resubscribe frames, text ping, simulator (both venues)."""

    exchange_id: ClassVar[str] = "bitget"
    default_ws_url: ClassVar[str] = "wss://ws.bitget.com"
    default_rest_url: ClassVar[str | None] = None  # books come over the websocket
    book_checksum: ClassVar[bool] = True
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTCUSDT", "ETHUSDT")
    #: Bitget allows up to 1000 channels per connection and recommends at most 50 for stability.
    max_streams_per_connection: ClassVar[int] = 50
    #: Bitget expects the text ``ping`` every 30 s (answered ``pong``) and closes after 2 min without.
    app_ping: ClassVar[tuple[str, float] | None] = ("ping", 25.0)
    #: Bitget closes every connection after 24 h: rotated before (make-before-break)
    forced_disconnect_s: ClassVar[float | None] = 24 * 3600.0
    #: ``instType`` of every subscription argument
    inst_type: ClassVar[str] = "SPOT"
    normaliser_class: ClassVar[type[BitgetNormaliser]] = BitgetNormaliser
    #: suffix of normalised symbols
    symbol_suffix: ClassVar[str] = ""

    def __init__(self, options: DialectOptions | None = None) -> None:
        super().__init__(options)
        self.bbo_channel = str(self.options.extra.get("bbo_channel", "books1"))
        if self.bbo_channel not in BBO_CHANNELS:
            raise ValueError(
                f"{self.exchange_id} bbo_channel must be one of {list(BBO_CHANNELS)}, not {self.bbo_channel!r}"
            )

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USDT``/``BTC-USDT-PERP``/``btc/usdt``/``btcusdt`` -> ``BTCUSDT``."""
        upper = symbol.strip().upper()
        if upper.endswith("-PERP"):
            upper = upper[: -len("-PERP")]
        return upper.replace("/", "").replace("-", "").replace("_", "")

    def normalise_symbol(self, native: str) -> str:
        base, quote = split_binance_symbol(self.native_symbol(native))
        return check_symbol(f"{base}-{quote}{self.symbol_suffix}")

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        """``/v2/ws/public``; the ``liquidations`` connection ``/v3/ws/public`` (a given path of either
        is dropped first)."""
        base = ws_url.rstrip("/")
        for path in (WS_PATH, V3_PATH):
            if base.endswith(path):
                base = base[: -len(path)]
        return base + (V3_PATH if "liquidations" in sub.channels else WS_PATH)

    def channel_groups(self, channels: Sequence[str]) -> list[tuple[str, ...]]:
        """``liquidations`` on its own connections (the v3 endpoint), everything else on v2."""
        v2 = tuple(c for c in channels if c != "liquidations")
        return ([v2] if v2 else []) + ([("liquidations",)] if "liquidations" in channels else [])

    def streams_per_symbol(self, group: Sequence[str]) -> int:
        """The v3 ``liquidation`` topic is one subscription for every USDT future: one connection."""
        return 0 if tuple(group) == ("liquidations",) else len(group)

    def channel_names(self, sub: Subscription) -> list[str]:
        """Bitget channel names of a subscription's channels."""
        names = {"trades": "trade", "book": BOOK_CHANNEL, "bbo": self.bbo_channel}
        names.update({c: "ticker" for c in TICKER_CHANNELS if c in self.channels})
        # one ``ticker`` subscription serves bbo (when it is the bbo source) and the derivatives channels
        return list(dict.fromkeys(names[c] for c in sub.channels if c in names))

    def _requests(self, op: str, args: list[dict[str, str]]) -> list[str]:
        return [
            orjson.dumps({"op": op, "args": args[i : i + ARGS_PER_REQUEST]}).decode()
            for i in range(0, len(args), ARGS_PER_REQUEST)
        ]

    def _arg(self, channel: str, inst_id: str) -> dict[str, str]:
        return {"instType": self.inst_type, "channel": channel, "instId": inst_id}

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        if "liquidations" in sub.channels:
            # one topic for every symbol of the product type; rows of other symbols are dropped
            arg = {"instType": self.normaliser_class.liquidation_inst_type or "", "topic": LIQUIDATION_TOPIC}
            return self._requests("subscribe", [arg])
        args = [self._arg(c, s) for s in sub.symbols for c in self.channel_names(sub)]
        return self._requests("subscribe", args)

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        """Unsubscribe then subscribe the books of some instruments: Bitget answers with a new snapshot."""
        if "book" not in sub.channels:
            return []
        args = [self._arg(BOOK_CHANNEL, s) for s in native_symbols]
        return self._requests("unsubscribe", args) + self._requests("subscribe", args)

    def new_normaliser(self) -> Normaliser:
        return self.normaliser_class(
            verify_checksums=self.options.verify_checksums, ticker_bbo=self.bbo_channel == "ticker"
        )

    # -- instruments (collectors/venues/bitget/instruments.py) -----------------------------------
    instruments_rest_url: ClassVar[str | None] = "https://api.bitget.com"

    def instruments_paths(self) -> list[str]:
        if self.inst_type == "SPOT":
            return [bitget_instruments.SPOT_PATH]
        return [f"{bitget_instruments.CONTRACTS_PATH}?productType={self.inst_type}"]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        if self.inst_type == "SPOT":
            return bitget_instruments.parse_spot(self, body, ts_recv)
        return bitget_instruments.parse_contracts(self, body, ts_recv)

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        from .simulator import BitgetSimulator

        return BitgetSimulator(self, config)

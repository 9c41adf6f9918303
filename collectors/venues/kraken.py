"""Kraken spot, websocket v2 (exchange id ``kraken``): ``trade``, ``book`` (L2, CRC32) and ``ticker``.

Endpoint ``wss://ws.kraken.com/v2``. Requests are ``{"method": "subscribe", "params": {"channel": C,
"symbol": [...], ...}, "req_id": n}``, acknowledged once per symbol with ``{"method": "subscribe",
"result": {...}, "success": true}``. Data messages are ``{"channel": C, "type": "snapshot"|"update",
"data": [{"symbol": "BTC/USD", ...}]}``; ``{"channel": "heartbeat"}`` arrives every second and
``{"channel": "status"}`` once on connect.

Documented rules implemented (docs.kraken.com: "Book (Level 2)", "Book checksum (WebSocket v2)",
"Trade", "Ticker"):
- book: a snapshot at the subscribed depth (10, 25, 100, 500 or 1000), then updates. ``qty`` 0 removes
  a level. After every message the book is truncated to the subscribed depth: levels pushed out of
  scope get no ``qty`` 0 from Kraken. The truncation is emitted as size-0 ``book`` rows, so a book
  rebuilt from the lake equals the one verified here. The depth comes from the subscribe ack
  (captured, so replays see it), else from the dialect's configured depth.
- checksum: snapshot *and* update messages carry ``checksum``, the unsigned CRC32 of the top 10 asks
  (low to high) then the top 10 bids (high to low), each level rendered as price then qty with the
  ``.`` removed and leading zeros stripped, over the *exact wire text*. v2 sends prices and
  quantities as JSON numbers at full precision (trailing zeros included, e.g. ``0.00100000``), so
  book messages are decoded with a parser that keeps number text (a float would lose those zeros).
  All levels of a message are applied before the check. Verified by default. Kraken's own
  documented example message shows numbers *without* trailing zeros (``0.566``, ``18097.1547``) and
  its checksum only matches once they are padded to the pair's precision (4 and 8 decimals there).
  So when the wire text does not match, the check is repeated with every price and qty padded to the
  most decimals seen in that book (the pair's precision, learnt offline from the data itself); only
  when both fail is it a ``checksum_mismatch``.
- there are no sequence numbers: the checksum is the only integrity check. A mismatch on one symbol
  emits ``checksum_mismatch``, flags that message's rows MAYBE_BAD_BOOK, and resyncs that symbol only
  by unsubscribing and re-subscribing its book (``resubscribe_requests``); rows until the new
  snapshot carry MAYBE_BAD_BOOK, the snapshot brings ``resync`` and ``epoch + 1``. If that snapshot
  is overdue (1000 updates later), the book is requested again (``resync_retry``).
- trade: on subscribe the most recent 50 trades come as a ``snapshot``: flagged SNAPSHOT and
  de-duplicated by ``trade_id`` (a per-pair sequence) across reconnects. ``side`` is the taker side.
- ticker, subscribed with ``event_trigger: "bbo"``, publishes on every best bid/offer change: one
  ``bbo`` row per symbol. ``ts_exchange`` is its ``timestamp`` when present, else null.
- timestamps are RFC 3339 strings (microseconds); the book snapshot may have none (null ts_exchange).

What differs from old (v1) recordings: v1 frames are arrays (``[channelID, {"a": ...}, "book-10",
"XBT/USD"]``), symbols use ``XBT``/``XDG``, numbers are strings, times are epoch seconds, trades have no
id, and the checksum (``"c"``) is only on updates. This module speaks v2 only; ``native_symbol``
still accepts ``XBT``/``XDG`` names and maps them to v2's ``BTC``/``DOGE``.
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson
from aiohttp import web

from schemas import Flags, RecordBuffer

from ..base import DialectOptions, ExchangeDialect, Normaliser, Subscription
from ..book import ASK, BID, ResyncWatch, SymbolBooks, SyncedBook, add_flags, parse_levels
from ..checksum import PaddedDigits, book_crc32, decimals_of, digits_level
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
from ..simulator import ClientSession, ExchangeSimulator, MarketModel, MarketStep, SimTrade, SimulatorConfig
from . import kraken_instruments

EXCHANGE = "kraken"
#: Book depths Kraken accepts on subscribe.
BOOK_DEPTHS: tuple[int, ...] = (10, 25, 100, 500, 1000)
DEFAULT_BOOK_DEPTH = 100
#: Levels per side covered by the checksum, whatever the subscribed depth.
CHECKSUM_DEPTH = 10
#: Trades Kraken replays on subscribe.
SNAPSHOT_TRADES = 50
#: v1 asset codes that v2 spells differently.
ASSET_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}

CHANNEL_NAMES = {"trades": "trade", "book": "book", "bbo": "ticker"}
_OUR_CHANNEL = {v: k for k, v in CHANNEL_NAMES.items()}
_BOOK_MARKERS = (b'"channel":"book"', '"channel":"book"')


#: One level as it enters Kraken's checksum: digits of price then qty, without '.' or leading zeros.
level_text = digits_level


def kraken_checksum(book: Any) -> int:
    """Kraken's CRC32 of an :class:`~collectors.book.L2Book` (top 10 asks then top 10 bids)."""
    return book_crc32(book, CHECKSUM_DEPTH, level_text)


def padded_checksum(book: Any, price_decimals: int, qty_decimals: int) -> int:
    """Kraken's CRC32 with every price and qty padded to the pair's precision (see module docstring)."""
    return book_crc32(book, CHECKSUM_DEPTH, PaddedDigits(price_decimals, qty_decimals))


_EXACT_DECODER = json.JSONDecoder(parse_float=str, parse_int=str)


def loads_exact(frame: str | bytes) -> Any:
    """JSON decoding that keeps every number's wire text (as ``str``): checksums need the exact digits."""
    text = frame.decode() if isinstance(frame, bytes) else frame
    return _EXACT_DECODER.decode(text)


def _is_book_frame(frame: str | bytes) -> bool:
    head = frame[:40]
    marker = _BOOK_MARKERS[0] if isinstance(head, bytes) else _BOOK_MARKERS[1]
    return marker in head  # type: ignore[operator]


def book_depth_for(requested: int | None) -> int:
    """The smallest depth Kraken offers that covers ``requested`` (default :data:`DEFAULT_BOOK_DEPTH`)."""
    if requested is None:
        return DEFAULT_BOOK_DEPTH
    for depth in BOOK_DEPTHS:
        if requested <= depth:
            return depth
    return BOOK_DEPTHS[-1]


def _levels(raw: Any, what: str) -> list[tuple[Any, Any]]:
    """``[{"price": p, "qty": q}, ...]`` as ``(p, q)`` pairs (validated later by the book engine)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ParseError(f"book {what} is not a list", channel="book")
    try:
        return [(lv["price"], lv["qty"]) for lv in raw]
    except (KeyError, TypeError):
        raise ParseError(f"malformed book level in {what}", channel="book") from None


def _as_int(value: Any, what: str, symbol: str | None, channel: str) -> int:
    if isinstance(value, bool):
        raise ParseError(f"{what} is not an integer", symbol, channel)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit() and value.isascii():
        return int(value)
    raise ParseError(f"{what} is not an integer: {str(value)[:30]!r}", symbol, channel)


class KrakenNormaliser(Normaliser):
    """Kraken websocket v2 frames -> records."""

    exchange: ClassVar[str] = EXCHANGE

    def __init__(self, depth: int = DEFAULT_BOOK_DEPTH, verify_checksums: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.default_depth = depth
        self.verify_checksums = verify_checksums
        self.symbols = SymbolBooks(EXCHANGE, normalise_native, self.limits)
        self.books = self.symbols.books  # native -> synced book
        self.depths: dict[str, int] = {}  # native symbol -> subscribed depth (from the ack)
        self.trade_ids = RecentTradeIds()
        self.checksums_verified = 0
        self.checksums_padded = 0  # verified only after padding to the pair's precision
        self.checksum_failures = 0
        #: native -> [price decimals, qty decimals]: the pair's precision as seen on the wire
        self.precision: dict[str, list[int]] = {}
        self.unsynced_updates = 0  # updates for a book that never had a snapshot (ignored)
        self.resync_watch = ResyncWatch()

    # -- frames --------------------------------------------------------------------------------
    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        if _is_book_frame(frame):
            msg = decode_json(frame, loads_exact)
        else:
            msg = decode_json(frame)
            if isinstance(msg, dict) and msg.get("channel") == "book":
                msg = decode_json(frame, loads_exact)  # unusual key order: decode again keeping number text
        if not isinstance(msg, dict):
            raise ParseError("frame is not a JSON object")
        channel = msg.get("channel")
        if channel is None:
            method = msg.get("method")
            if method in ("subscribe", "unsubscribe"):
                self.on_ack(ts_recv, msg, out)
                return
            if method == "pong":
                return
            if "error" in msg:
                emit_event(
                    out,
                    self.exchange,
                    None,
                    "connection",
                    ts_recv,
                    "exchange_error",
                    {"error": str(msg["error"])[:300]},
                )
                return
            raise ParseError("message has neither channel nor method")
        if channel in ("heartbeat", "status"):
            return
        kind = msg.get("type")
        data = msg.get("data")
        if not isinstance(data, list):
            raise ParseError(f"{str(channel)[:20]} message without a data list")
        if channel == "book":
            handler = self.on_book
        elif channel == "trade":
            handler = self.on_trade
        elif channel == "ticker":
            handler = self.on_ticker
        else:
            raise ParseError(f"unknown channel {str(channel)[:40]!r}")
        for item in data:
            # One bad item must not cost the other symbols of the same message.
            try:
                if not isinstance(item, dict):
                    raise ParseError(f"{channel} item is not an object", channel=_OUR_CHANNEL[channel])
                handler(ts_recv, kind, item, out)
            except ParseError as exc:
                self.parse_error(out, ts_recv, frame, exc.reason, exc.symbol, exc.channel)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                self.parse_error(out, ts_recv, frame, reason, None, _OUR_CHANNEL[channel])

    def on_ack(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        """A subscribe/unsubscribe acknowledgement: remembers book depths, records failures."""
        if msg.get("success") is False:
            emit_event(
                out,
                self.exchange,
                None,
                "connection",
                ts_recv,
                "subscribe_error",
                {
                    "method": msg.get("method"),
                    "error": str(msg.get("error"))[:300],
                    "symbol": msg.get("symbol"),
                },
            )
            return
        result = msg.get("result")
        if msg.get("method") == "subscribe" and isinstance(result, dict) and result.get("channel") == "book":
            native = result.get("symbol")
            if isinstance(native, str):
                self.depths[native] = _as_int(result.get("depth", self.default_depth), "depth", None, "book")

    def on_book(self, ts_recv: int, kind: Any, item: dict[str, Any], out: RecordBuffer) -> None:
        """A book snapshot or update of one symbol: apply, truncate to depth, verify the checksum."""
        native = item["symbol"]
        book = self.symbols.book(native)
        symbol = book.symbol
        bids = _levels(item.get("bids"), "bids")
        asks = _levels(item.get("asks"), "asks")
        raw_checksum = item.get("checksum")
        checksum = None if raw_checksum is None else _as_int(raw_checksum, "checksum", symbol, "book")
        if checksum is None and self.verify_checksums:
            raise ParseError("book message without checksum", symbol, "book")
        ts_raw = item.get("timestamp")
        ts_exchange = iso_to_ns(ts_raw) if ts_raw is not None else None
        before = len(out.book)
        if kind == "snapshot":
            self.resubscribe_requests.discard(native)
            self.resync_watch.done(native)
            if native not in self.depths:
                self.depths[native] = max(self.default_depth, len(bids), len(asks))
            book.apply_snapshot(out, ts_exchange, ts_recv, bids, asks, None)
        elif kind == "update":
            if book.snapshots == 0:
                parse_levels(bids)  # still reject malformed input as such
                parse_levels(asks)
                self.unsynced_updates += 1  # nothing to apply it to; the snapshot is on its way
                self.resync_watch.check(
                    out, self.exchange, native, symbol, ts_recv, self.resubscribe_requests
                )
                return
            book.apply_update(out, ts_exchange, ts_recv, bids, asks, None)
            if not book.synced:
                self.resync_watch.check(
                    out, self.exchange, native, symbol, ts_recv, self.resubscribe_requests
                )
        else:
            raise ParseError(f"unknown book message type {str(kind)[:20]!r}", symbol, "book")
        self.truncate(book, native, ts_exchange, ts_recv, out)
        flags = self.time_flags.flags(ts_exchange, ts_recv)
        if book.synced and self.verify_checksums and checksum is not None:
            computed = kraken_checksum(book.book)
            self.checksums_verified += 1
            if computed != checksum:
                computed = self.checksum_with_precision(native, book, bids, asks)
                if computed == checksum:
                    self.checksums_padded += 1
            if computed != checksum:
                self.checksum_failures += 1
                flags |= Flags.MAYBE_BAD_BOOK
                book.gap(
                    out,
                    ts_recv,
                    "checksum_mismatch",
                    {"expected": checksum, "computed": computed, "type": kind},
                )
                self.resubscribe_requests.add(native)
        add_flags(out.book, before, flags)
        book.check_crossed(out, ts_recv, {"type": kind})

    def checksum_with_precision(
        self, native: str, book: SyncedBook, bids: list[tuple[Any, Any]], asks: list[tuple[Any, Any]]
    ) -> int:
        """The checksum with numbers padded to the most decimals this pair has shown (learnt lazily)."""
        precision = self.precision.get(native)
        if precision is None:
            precision = [0, 0]
            for side in (BID, ASK):
                for _, (_, p_str, s_str) in book.book.side(side).items():
                    precision[0] = max(precision[0], decimals_of(p_str))
                    precision[1] = max(precision[1], decimals_of(s_str))
            self.precision[native] = precision
        for p, q in itertools.chain(bids, asks):
            precision[0] = max(precision[0], decimals_of(str(p)))
            precision[1] = max(precision[1], decimals_of(str(q)))
        return padded_checksum(book.book, precision[0], precision[1])

    def truncate(
        self, book: SyncedBook, native: str, ts_exchange: int | None, ts_recv: int, out: RecordBuffer
    ) -> None:
        """Drops levels beyond the subscribed depth (Kraken sends no removal for them), as size-0 rows."""
        depth = self.depths.get(native, self.default_depth)
        for side in (BID, ASK):
            levels = book.book.side(side)
            if len(levels) <= depth:
                continue
            flags = book.flags
            while len(levels) > depth:
                price, _ = levels.popitem(-1)  # the worst level of either side sorts last
                out.book.append(
                    (
                        self.exchange,
                        book.symbol,
                        ts_exchange,
                        ts_recv,
                        side,
                        price,
                        0.0,
                        False,
                        None,
                        book.epoch,
                        flags,
                    )
                )

    def on_trade(self, ts_recv: int, kind: Any, item: dict[str, Any], out: RecordBuffer) -> None:
        """One trade; snapshot trades (sent on subscribe) are flagged and never repeated."""
        native = item["symbol"]
        symbol = self.symbols.name(native)
        trade_id = item["trade_id"]
        if trade_id.__class__ is not str:
            check_int64(trade_id, "trade_id", symbol, "trades")
        price = positive_price(item["price"])
        size = positive_price(item["qty"], "qty")
        side = item["side"]
        if side not in ("buy", "sell"):
            raise ParseError(f"trade side {str(side)[:20]!r}", symbol, "trades")
        ts_exchange = iso_to_ns(item["timestamp"])
        tid = str(trade_id)
        if self.trade_ids.seen(native, tid):
            emit_event(out, self.exchange, symbol, "trades", ts_recv, "duplicate", {"trade_id": tid})
            return
        flags = int(Flags.SNAPSHOT) if kind == "snapshot" else 0
        self.emit_trade(out, symbol, ts_exchange, ts_recv, tid, price, size, side, flags)

    def on_ticker(self, ts_recv: int, kind: Any, item: dict[str, Any], out: RecordBuffer) -> None:
        """A ticker (best bid/offer) update: one bbo row."""
        symbol = self.symbols.name(item["symbol"])
        bid_price, bid_size = bbo_side(item["bid"], item["bid_qty"], "bid")
        ask_price, ask_size = bbo_side(item["ask"], item["ask_qty"], "ask")
        ts_raw = item.get("timestamp")
        ts_exchange = iso_to_ns(ts_raw) if ts_raw is not None else None
        flags = int(Flags.SNAPSHOT) if kind == "snapshot" else 0
        self.emit_bbo(
            out, symbol, ts_exchange, ts_recv, bid_price, bid_size, ask_price, ask_size, None, flags
        )

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """Books restart from the snapshot that the renewed subscription brings."""
        for book in self.books.values():
            book.reset()
        self.resubscribe_requests.clear()


def normalise_native(native: Any) -> str:
    """``BTC/USD`` -> ``BTC-USD`` (v1 ``XBT``/``XDG`` become ``BTC``/``DOGE``)."""
    if not isinstance(native, str) or native.count("/") != 1:
        raise ParseError(f"not a Kraken pair: {str(native)[:40]!r}")
    base, quote = native.upper().split("/")
    return f"{ASSET_ALIASES.get(base, base)}-{ASSET_ALIASES.get(quote, quote)}"


class KrakenDialect(ExchangeDialect):
    """Kraken spot websocket v2: endpoints, subscriptions, resubscription on checksum failure, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://ws.kraken.com"
    book_checksum: ClassVar[bool] = True
    #: v2 book messages carry no sequence number: a lost update shows as a checksum mismatch
    sequenced_book: ClassVar[bool] = False
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTC/USD", "ETH/USD")
    default_rest_url: ClassVar[str | None] = None
    #: Kraken documents no per-connection limit for public channels; keep subscribe requests modest.
    max_streams_per_connection: ClassVar[int] = 300

    def __init__(self, options: DialectOptions | None = None) -> None:
        super().__init__(options)
        self.depth = book_depth_for(self.options.book_depth)

    def native_symbol(self, symbol: str) -> str:
        text = symbol.strip().upper().replace("-", "/")
        if text.count("/") != 1:
            raise ValueError(f"kraken: symbol {symbol!r} is not BASE/QUOTE or BASE-QUOTE")
        base, quote = text.split("/")
        return f"{ASSET_ALIASES.get(base, base)}/{ASSET_ALIASES.get(quote, quote)}"

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(normalise_native(native))

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        base = ws_url.rstrip("/")
        return base if base.endswith("/v2") else f"{base}/v2"

    def _request(self, method: str, channel: str, symbols: Sequence[str], req_id: int) -> str:
        params: dict[str, Any] = {"channel": CHANNEL_NAMES[channel], "symbol": list(symbols)}
        if method == "subscribe":
            params["snapshot"] = True
            if channel == "book":
                params["depth"] = self.depth
            elif channel == "bbo":
                params["event_trigger"] = "bbo"  # a ticker on every best bid/offer change
        return orjson.dumps({"method": method, "params": params, "req_id": req_id}).decode()

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        return [self._request("subscribe", c, sub.symbols, i + 1) for i, c in enumerate(sub.channels)]

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        symbols = list(native_symbols)
        return [
            self._request("unsubscribe", "book", symbols, 101),
            self._request("subscribe", "book", symbols, 102),
        ]

    def new_normaliser(self) -> Normaliser:
        return KrakenNormaliser(depth=self.depth, verify_checksums=self.options.verify_checksums)

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return KrakenSimulator(self, config)

    # -- instruments (collectors/venues/kraken_instruments.py) ----------------------------------
    instruments_rest_url: ClassVar[str | None] = "https://api.kraken.com"

    def instruments_paths(self) -> list[str]:
        return [kraken_instruments.PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return kraken_instruments.parse_asset_pairs(self, body, ts_recv)


# -- simulator ---------------------------------------------------------------------------------------
def _levels_json(levels: Sequence[tuple[str, str]]) -> str:
    # Numbers are written as their wire text (JSON numbers), exactly as Kraken v2 does.
    return ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels)


def _crc_of_view(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int:
    text = "".join(level_text(p, q) for p, q in asks[:CHECKSUM_DEPTH])
    text += "".join(level_text(p, q) for p, q in bids[:CHECKSUM_DEPTH])
    return zlib.crc32(text.encode())


class KrakenSimulator(ExchangeSimulator):
    """Kraken v2 on loopback (``/v2``): per-depth book views with checksums, trade and ticker channels."""

    ws_paths = ("/v2",)

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.recent_trades: dict[str, deque[tuple[SimTrade, str]]] = {
            s: deque(maxlen=SNAPSHOT_TRADES) for s in self.markets
        }
        #: (symbol, depth) -> the book as a client subscribed at that depth sees it (price -> qty text)
        self.views: dict[tuple[str, int], tuple[dict[str, str], dict[str, str]]] = {}
        self.last_best: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {}
        self._step_frames: dict[str, Any] = {}
        self._frames_step: MarketStep | None = None
        self._step_ts = ""
        self._conn_ids = itertools.count(1)

    # -- protocol --------------------------------------------------------------------------------
    async def on_open(self, session: ClientSession) -> None:
        session.state["depth"] = {}
        status = {
            "channel": "status",
            "type": "update",
            "data": [
                {
                    "version": "2.0.10",
                    "system": "online",
                    "api_version": "v2",
                    "connection_id": next(self._conn_ids),
                }
            ],
        }
        self.send(session, orjson.dumps(status).decode())

    async def on_message(self, session: ClientSession, text: str) -> None:
        now = ns_to_iso(self.now_exchange_ns(), 6)

        def reply(**fields: Any) -> None:
            self.send(session, orjson.dumps({**fields, "time_in": now, "time_out": now}).decode())

        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            reply(error="Malformed request", success=False)
            return
        if not isinstance(msg, dict):
            reply(error="Malformed request", success=False)
            return
        method, req_id, params = msg.get("method"), msg.get("req_id"), msg.get("params")
        if method == "ping":
            reply(method="pong", req_id=req_id)
            return
        if method not in ("subscribe", "unsubscribe") or not isinstance(params, dict):
            reply(error="Method not supported", success=False, req_id=req_id)
            return
        channel = _OUR_CHANNEL.get(str(params.get("channel")))
        symbols = params.get("symbol")
        if channel is None or not isinstance(symbols, list):
            reply(method=method, error="Invalid params", success=False, req_id=req_id)
            return
        for native in symbols:
            error = self._apply_request(session, method, channel, native, params)
            if error is not None:
                reply(method=method, error=error, success=False, symbol=native, req_id=req_id)
                continue
            result: dict[str, Any] = {"channel": params["channel"], "symbol": native}
            if channel == "book":
                result["depth"] = session.state["depth"].get(native, params.get("depth", 10))
            if method == "subscribe":
                result["snapshot"] = bool(params.get("snapshot", True))
            reply(method=method, result=result, success=True, req_id=req_id)
            if method == "subscribe" and result["snapshot"]:
                self.send(session, self.snapshot_frame(channel, native, session))
            if method == "unsubscribe" and channel == "book":
                session.state["depth"].pop(native, None)

    def _apply_request(
        self, session: ClientSession, method: str, channel: str, native: Any, params: dict[str, Any]
    ) -> str | None:
        """Changes one subscription; returns Kraken's error text when the request is refused."""
        if native not in self.markets:
            return "Currency pair not supported"
        if method == "unsubscribe":
            session.subscriptions.discard((channel, native))
            return None
        if channel == "book":
            depth = params.get("depth", 10)
            if depth not in BOOK_DEPTHS:
                return "Invalid depth"
            session.state["depth"][native] = depth
        session.subscriptions.add((channel, native))
        return None

    def snapshot_frame(self, channel: str, native: str, session: ClientSession) -> str:
        """The snapshot a new subscription receives."""
        model = self.markets[native]
        now = ns_to_iso(self.now_exchange_ns(), 6)
        if channel == "book":
            depth = session.state["depth"][native]
            bids, asks = model.top(depth)
            self.views[(native, depth)] = (dict(bids), dict(asks))
            return (
                f'{{"channel":"book","type":"snapshot","data":[{{"symbol":"{native}","bids":[{_levels_json(bids)}],'
                f'"asks":[{_levels_json(asks)}],"checksum":{_crc_of_view(bids, asks)},"timestamp":"{now}"}}]}}'
            )
        if channel == "trades":
            return self._trades_frame(native, list(self.recent_trades[native]), "snapshot")
        (bp, bq), (ap, aq) = model.best()
        return self._ticker_frame(native, bp, bq, ap, aq, now, "snapshot")

    @staticmethod
    def _trades_frame(native: str, trades: Sequence[tuple[SimTrade, str]], kind: str) -> str:
        items = ",".join(
            f'{{"symbol":"{native}","side":"{t.side}","price":{t.price},"qty":{t.size},'
            f'"ord_type":"market","trade_id":{t.trade_id},"timestamp":"{ts}"}}'
            for t, ts in trades
        )
        return f'{{"channel":"trade","type":"{kind}","data":[{items}]}}'

    @staticmethod
    def _ticker_frame(native: str, bp: str, bq: str, ap: str, aq: str, ts: str, kind: str) -> str:
        return (
            f'{{"channel":"ticker","type":"{kind}","data":[{{"symbol":"{native}","bid":{bp},"bid_qty":{bq},'
            f'"ask":{ap},"ask_qty":{aq},"timestamp":"{ts}"}}]}}'
        )

    def heartbeat_frames(self, session: ClientSession, now_ns: int) -> list[str]:
        return ['{"channel":"heartbeat"}'] if session.subscriptions else []

    # -- market ----------------------------------------------------------------------------------
    def publish_step(self, step: MarketStep) -> None:
        # Trades are remembered for the subscribe snapshot even when nobody is connected.
        self._step_ts = ns_to_iso(step.ts_ns, 6)
        self.recent_trades[step.symbol].extend((t, self._step_ts) for t in step.trades)
        drops = self.faults.drop_updates
        pending = drops.get(step.symbol, 0)
        if pending > 0 and not self._changes_a_view(step):
            # Kraken sends nothing for a step that leaves every subscribed view unchanged: keep the
            # armed drop for the next update that exists, so the fault always loses one.
            drops[step.symbol] = 0
            try:
                super().publish_step(step)
            finally:
                drops[step.symbol] = max(drops.get(step.symbol, 0), pending)
            return
        super().publish_step(step)

    def _changes_a_view(self, step: MarketStep) -> bool:
        """True when the step changes the top levels some client subscribed to."""
        for (native, depth), (bids, asks) in self.views.items():
            if native != step.symbol:
                continue
            for changes, view, better in ((step.bids, bids, 1.0), (step.asks, asks, -1.0)):
                if not changes:
                    continue
                if len(view) < depth:
                    return True
                worst = min(better * float(p) for p in view)
                if any(p in view or better * float(p) > worst for p, _ in changes):
                    return True
        return False

    def step_frames(self, step: MarketStep) -> dict[str, Any]:
        """Every frame of one step, rendered once (after the base class armed this step's faults)."""
        if self._frames_step is step:
            return self._step_frames
        native = step.symbol
        ts = self._step_ts
        stamped = [(t, ts) for t in step.trades]
        frames: dict[str, Any] = {
            "trades": self._trades_frame(native, stamped, "update") if stamped else None
        }
        best = step.model.best()
        frames["bbo"] = None
        if best != self.last_best.get(native):
            self.last_best[native] = best
            (bp, bq), (ap, aq) = best
            frames["bbo"] = self._ticker_frame(native, bp, bq, ap, aq, ts, "update")
        depths = {d for s in self.sessions for d in [s.state.get("depth", {}).get(native)] if d is not None}
        deleted_bids = {p for p, q in step.bids if float(q) == 0.0}
        deleted_asks = {p for p, q in step.asks if float(q) == 0.0}
        for depth in depths:
            frames[f"book{depth}"] = self._book_update(step, depth, deleted_bids, deleted_asks, ts)
        self._frames_step = step
        self._step_frames = frames
        return frames

    def _book_update(
        self, step: MarketStep, depth: int, deleted_bids: set[str], deleted_asks: set[str], ts: str
    ) -> str | None:
        """The update a depth-``depth`` subscriber receives for one step (None when its view is unchanged)."""
        native = step.symbol
        bids, asks = step.model.top(depth)
        old_bids, old_asks = self.views.get((native, depth), ({}, {}))
        new_bids, new_asks = dict(bids), dict(asks)
        changes = []
        for new, old, deleted, levels in (
            (new_bids, old_bids, deleted_bids, bids),
            (new_asks, old_asks, deleted_asks, asks),
        ):
            side_changes = [(p, q) for p, q in levels if old.get(p) != q]
            # A deleted level is announced with qty 0; one merely pushed out of scope is not (the
            # client truncates), exactly as Kraken documents.
            side_changes.extend((p, "0.00000000") for p in old if p not in new and p in deleted)
            changes.append(side_changes)
        self.views[(native, depth)] = (new_bids, new_asks)
        checksum = _crc_of_view(bids, asks)
        if step.corrupt_checksum:
            checksum ^= 0x5A5A5A5A
            if not changes[0] and not changes[1] and bids:
                changes[0].append(bids[0])  # restating the best bid is a no-op that carries the checksum
        if not changes[0] and not changes[1]:
            return None
        return (
            f'{{"channel":"book","type":"update","data":[{{"symbol":"{native}","bids":[{_levels_json(changes[0])}],'
            f'"asks":[{_levels_json(changes[1])}],"checksum":{checksum},"timestamp":"{ts}"}}]}}'
        )

    def add_market(self, symbol: str) -> MarketModel:
        market = super().add_market(symbol)
        self.recent_trades[symbol] = deque(maxlen=SNAPSHOT_TRADES)
        return market

    def instrument_routes(self) -> list[web.RouteDef]:
        """``GET /0/public/AssetPairs``: this simulator's markets."""
        return self.instruments_routes_of(
            [kraken_instruments.PATH], lambda: kraken_instruments.asset_pairs_body(self.markets)
        )

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        frames = self.step_frames(step)
        native = step.symbol
        trades = frames.get("trades")
        bbo = frames.get("bbo")
        book = None
        if session.subscribed("book", native):
            book = frames.get(f"book{session.state['depth'].get(native)}")
        return (
            [trades] if trades and session.subscribed("trades", native) else [],
            [book] if book else [],
            [bbo] if bbo and session.subscribed("bbo", native) else [],
        )


DIALECT_CLASS = KrakenDialect

"""What HTX spot (``htx``) and HTX USDT-margined swaps (``htx-swap``) share: the client side.

HTX (formerly Huobi) public market websockets, as documented (checked 2026-12-05):
- spot: https://www.htx.com/en-us/opend/newApiPages/?id=662 ("Websocket Market Data": endpoints,
  GZIP, heartbeat, sub/unsub/req, req rate limit) and, for the incremental book,
  https://www.htx.com/en-us/opend/newApiPages/?id=7ec5362b-7773-11ed-9966-0242ac110003
  (``market.$symbol.mbp.$levels``); mirror: https://huobiapi.github.io/docs/spot/v1/en/
- USDT-margined swaps: https://huobiapi.github.io/docs/usdt_swap/v1/en/ ("Subscribe Incremental Market
  Depth Data", "Subscribe market BBO data push", "Subscribe Trade Detail Data", market heartbeat, and
  FAQ "How to maintain local MBP data subscribing incremental MBP").

Rules shared by both, implemented once here:
- Every server frame is a binary websocket frame holding GZIP-compressed JSON. :func:`decode_frame`
  inflates it before capture and normalisation (captures hold the JSON text, DESIGN.md), bounded by
  :data:`MAX_INFLATED_BYTES`: a frame that inflates beyond it (a decompression bomb) or is not valid
  gzip is kept as ``b64:`` + base64 of the raw frame, which the normaliser records as a
  ``parse_error`` (live and on replay alike). Frames not starting with the gzip magic pass unchanged.
- Heartbeat: the server sends ``{"ping": <ms>}`` every 5 s and closes the connection after two pings
  without a matching ``{"pong": <ms>}``; the normaliser queues the answer in ``replies`` (sent by the
  connection at once).
- Subscribe ``{"sub": <topic>, "id": <id>}`` (one topic per request), answered by
  ``{"id", "status": "ok", "subbed", "ts"}``; ``{"unsub": ...}`` likewise; errors are
  ``{"status": "error", "err-code", "err-msg"}`` (recorded as ``subscribe_error`` feed events).
- Data frames: ``{"ch": "market.<symbol>.<channel>", "ts": <ms>, "tick": {...}}``.
- ``market.<symbol>.trade.detail``: ``tick.data`` holds trades with ``price``, ``amount``, ``ts`` (ms),
  ``direction`` (the taker side). Trade ids: spot uses ``tradeId`` (the documented "unique trade id
  (NEW)"; ``id`` is "to be obsoleted" and is a >64-bit number); swaps use ``id`` (unique per contract).
  HTX sends the latest trade again on every subscribe: ids are de-duplicated per symbol across
  reconnects (``duplicate`` feed event).
- ``market.<symbol>.depth.step<N>`` (the channel of the older recordings): every message is the whole
  book. The first is applied as a snapshot; each later one as the difference to the held book
  (changed and removed levels as update rows), so a full book per message is neither a resync nor a
  gap. ``sequenced_book`` describes the live channels (sequenced), not this one.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import zlib
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from schemas import Flags, RecordBuffer

from ...base import DEFAULT_MAX_FRAME_BYTES, DialectOptions, ExchangeDialect, Normaliser, Subscription
from ...book import ASK, BID, ResyncWatch, SymbolBooks, SyncedBook, add_flags, parse_levels
from ...dedupe import RecentTradeIds
from ...events import ParseError, emit_event, frame_text_for_event, ms_to_ns, positive_price

#: Largest inflated frame accepted; bigger ones are a ``parse_error`` (the normaliser's frame limit).
MAX_INFLATED_BYTES = DEFAULT_MAX_FRAME_BYTES
GZIP_MAGIC = b"\x1f\x8b"
B64_PREFIX = b"b64:"
#: Distinct channel names whose parse is cached; beyond it the cache is cleared (hostile streams).
MAX_CACHED_CHANNELS = 100_000

KIND_TRADES = 0
KIND_BBO = 1
KIND_FULL_BOOK = 2
KIND_INCREMENTAL = 3
#: a kind a venue adds through :meth:`HtxNormaliser.other_kind` (the swaps' mark-price kline)
KIND_OTHER = 4

_SIDES = ("buy", "sell")


def gunzip_bounded(data: bytes, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """Inflates one gzip member of at most ``limit`` bytes; :class:`ParseError` otherwise."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ParseError(f"corrupt gzip frame: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ParseError(f"gzip frame inflates beyond {limit} bytes")
    if not inflater.eof:
        raise ParseError("truncated gzip frame")
    return out


def decode_frame(data: bytes) -> bytes:
    """A received frame as captured: gzip inflated; undecodable gzip kept as ``b64:`` + base64."""
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gunzip_bounded(data)
    except ParseError:
        return B64_PREFIX + base64.b64encode(data)


def _decode_b64(frame: bytes) -> bytes:
    """The text of a ``b64:`` capture frame (raises :class:`ParseError` saying why it was not decoded)."""
    try:
        raw = base64.b64decode(frame[len(B64_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ParseError("b64: frame is not valid base64") from None
    if raw[:2] != GZIP_MAGIC:
        raise ParseError("binary frame that is not gzip")
    return gunzip_bounded(raw)


def int_field(value: Any, what: str, symbol: str | None = None, channel: str = "book") -> int:
    """A non-negative JSON integer, else :class:`ParseError`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ParseError(f"{what} is not a non-negative integer: {str(value)[:40]!r}", symbol, channel)
    return value


def _opt_ms(value: Any) -> int | None:
    return None if value is None else ms_to_ns(value)


class HtxNormaliser(Normaliser):
    """HTX frames -> records: everything but the incremental book (subclasses implement that)."""

    exchange: ClassVar[str]
    #: the field holding a trade's id in ``trade.detail`` items
    trade_id_field: ClassVar[str] = "id"
    #: messages of a symbol after which a book request still unanswered is sent again
    request_again_after: ClassVar[int]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbol_books = SymbolBooks(self.exchange, self.normalise_native)
        #: native symbol -> synced book
        self.books: dict[str, SyncedBook] = self.symbol_books.books
        self.trade_ids = RecentTradeIds()
        self.channels: dict[str, tuple[int, str, str]] = {}
        #: natives with a book request (spot: ``req`` snapshot; swap: re-subscription) in flight
        self.requested: set[str] = set()
        self.watch = ResyncWatch(self.request_again_after)

    def request(self, native: str) -> None:
        """Asks the connection for a new book of ``native`` (once while one is in flight)."""
        if native not in self.requested:
            self.requested.add(native)
            self.resubscribe_requests.add(native)

    # -- symbols and channels -------------------------------------------------------------------
    def normalise_native(self, native: str) -> str:
        """The normalised symbol of a native one (venue-specific)."""
        raise NotImplementedError

    def incremental_channel(self, rest: str) -> bool:
        """True when ``rest`` (the channel after the symbol) is this venue's incremental book."""
        return False

    def other_channel(self, rest: str) -> bool:
        """True when ``rest`` is another channel of this venue, handled by :meth:`on_other`."""
        return False

    def on_other(
        self, ts_recv: int, msg: dict[str, Any], tick: dict[str, Any], symbol: str, out: RecordBuffer
    ) -> None:
        """A message of a channel :meth:`other_channel` accepted."""
        raise ParseError("channel not supported", symbol)

    def channel_info(self, ch: Any) -> tuple[int, str, str]:
        """``(kind, native, symbol)`` of a ``ch`` (cached: parsed once per channel name)."""
        info = self.channels.get(ch) if isinstance(ch, str) else None
        if info is not None:
            return info
        if not isinstance(ch, str):
            raise ParseError("ch is not a string")
        prefix, _, tail = ch.partition(".")
        native, _, rest = tail.partition(".")
        if prefix != "market" or not native or not rest:
            raise ParseError(f"unknown channel {ch[:80]!r}")
        if rest == "trade.detail":
            kind = KIND_TRADES
        elif rest == "bbo":
            kind = KIND_BBO
        elif rest.startswith("depth.step") and rest[10:].isdigit():
            kind = KIND_FULL_BOOK
        elif self.incremental_channel(rest):
            kind = KIND_INCREMENTAL
        elif self.other_channel(rest):
            kind = KIND_OTHER
        else:
            raise ParseError(f"unknown channel {ch[:80]!r}")
        symbol = self.symbol_books.name(native)  # raises for unsafe or unknown symbols
        if len(self.channels) >= MAX_CACHED_CHANNELS:
            self.channels.clear()
        info = (kind, native, symbol)
        self.channels[ch] = info
        return info

    # -- frames ----------------------------------------------------------------------------------
    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        if isinstance(frame, str):
            frame = frame.encode("utf-8", "surrogateescape")
        if frame[:4] == B64_PREFIX:
            frame = _decode_b64(frame)
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not a JSON object")
        ch = msg.get("ch")
        if ch is None:
            self.on_control(ts_recv, msg, frame, out)
            return
        kind, native, symbol = self.channel_info(ch)
        tick = msg["tick"]
        if not isinstance(tick, dict):
            raise ParseError("tick is not an object", symbol)
        if kind == KIND_INCREMENTAL:
            self.on_incremental(ts_recv, msg, tick, native, symbol, out)
        elif kind == KIND_TRADES:
            self.on_trades(ts_recv, tick, native, symbol, out)
        elif kind == KIND_BBO:
            self.on_bbo(ts_recv, msg, tick, symbol, out)
        elif kind == KIND_OTHER:
            self.on_other(ts_recv, msg, tick, symbol, out)
        else:
            self.on_full_book(ts_recv, tick, native, symbol, out)

    def on_control(self, ts_recv: int, msg: dict[str, Any], frame: bytes, out: RecordBuffer) -> None:
        """Heartbeats (answered), subscription acknowledgements, request answers and errors."""
        if "ping" in msg:
            ping = int_field(msg["ping"], "ping", channel="connection")
            self.replies.append(f'{{"pong":{ping}}}')
            return
        status = msg.get("status")
        reply = "rep" in msg or (status == "error" and "subbed" not in msg and "unsubbed" not in msg)
        if reply and self.on_reply(ts_recv, msg, frame, out):
            return
        if "subbed" in msg or "unsubbed" in msg or status == "error":
            if status != "ok":
                detail = {
                    "err_code": str(msg.get("err-code"))[:100],
                    "err_msg": str(msg.get("err-msg"))[:500],
                    **frame_text_for_event(frame),
                }
                emit_event(out, self.exchange, None, "connection", ts_recv, "subscribe_error", detail)
            return
        raise ParseError("unknown message (no ch, not a reply)")

    def on_reply(self, ts_recv: int, msg: dict[str, Any], frame: bytes, out: RecordBuffer) -> bool:
        """An answer to a ``req`` (or an error without ``subbed``); True when handled here."""
        return False

    def on_incremental(
        self,
        ts_recv: int,
        msg: dict[str, Any],
        tick: dict[str, Any],
        native: str,
        symbol: str,
        out: RecordBuffer,
    ) -> None:
        """The venue's incremental book channel."""
        raise ParseError("incremental book channel not supported", symbol, "book")

    # -- trades ----------------------------------------------------------------------------------
    def on_trades(
        self, ts_recv: int, tick: dict[str, Any], native: str, symbol: str, out: RecordBuffer
    ) -> None:
        """A ``trade.detail`` message: every trade is validated before any row is emitted."""
        data = tick["data"]
        if not isinstance(data, list):
            raise ParseError("trade data is not a list", symbol, "trades")
        parsed = []
        id_field = self.trade_id_field
        for t in data:
            tid = int_field(t[id_field], id_field, symbol, "trades")
            side = t["direction"]
            if side not in _SIDES:
                raise ParseError(f"unknown taker side {str(side)[:20]!r}", symbol, "trades")
            parsed.append(
                (
                    str(tid),
                    positive_price(t["price"]),
                    positive_price(t["amount"], "size"),
                    side,
                    ms_to_ns(t["ts"]),
                )
            )
        seen = self.trade_ids.seen
        for trade_id, price, size, side, ts_exchange in parsed:
            if seen(native, trade_id):
                emit_event(out, self.exchange, symbol, "trades", ts_recv, "duplicate", {"trade_id": trade_id})
                continue
            self.emit_trade(out, symbol, ts_exchange, ts_recv, trade_id, price, size, side)

    # -- bbo ---------------------------------------------------------------------------------------
    def on_bbo(
        self, ts_recv: int, msg: dict[str, Any], tick: dict[str, Any], symbol: str, out: RecordBuffer
    ) -> None:
        """A ``bbo`` message (venue-specific fields)."""
        raise NotImplementedError

    # -- full books (depth.stepN) ------------------------------------------------------------------
    def full_book_seq(self, tick: dict[str, Any]) -> int | None:
        """The sequence a full-book message carries (``version``)."""
        version = tick.get("version")
        return version if isinstance(version, int) and not isinstance(version, bool) else None

    def on_full_book(
        self, ts_recv: int, tick: dict[str, Any], native: str, symbol: str, out: RecordBuffer
    ) -> None:
        """A ``depth.stepN`` message (the whole book): a snapshot first, then differences."""
        bids = parse_levels(tick.get("bids") or ())
        asks = parse_levels(tick.get("asks") or ())
        ts_exchange = _opt_ms(tick.get("ts"))
        seq = self.full_book_seq(tick)
        flags = self.time_flags.flags(ts_exchange, ts_recv)
        book = self.symbol_books.book(native)
        rows = out.book
        start = len(rows)
        if not book.synced:
            book.apply_snapshot(out, ts_exchange, ts_recv, _wire(bids), _wire(asks), seq)
            add_flags(rows, start, flags)
        else:
            changes = []
            for side, levels in ((BID, bids), (ASK, asks)):
                held = book.book.side(side)
                new = {price: (size, p_str, s_str) for price, size, p_str, s_str in levels if size != 0.0}
                changed = [
                    (price, size, p_str, s_str)
                    for price, (size, p_str, s_str) in new.items()
                    if held.get(price, (None,))[0] != size
                ]
                removed = [(price, 0.0, level[1], "0") for price, level in held.items() if price not in new]
                changes.append((side, sorted(changed + removed, reverse=side == BID)))
            for side, parsed in changes:
                if parsed:
                    book.apply_parsed(out, ts_exchange, ts_recv, side, parsed, seq)
            book.last_seq = seq
            add_flags(rows, start, flags)
        book.check_crossed(out, ts_recv, {"seq": seq})

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """A new connection starts over: every book waits for a new snapshot (trade ids are kept)."""
        for book in self.books.values():
            book.reset()
        self.resubscribe_requests.clear()
        self.replies.clear()
        self.requested.clear()
        self.watch.waiting.clear()


def _wire(levels: Sequence[tuple[float, float, str, str]]) -> list[tuple[str, str]]:
    """Parsed levels back to ``[price_str, size_str]`` pairs (for :meth:`SyncedBook.apply_snapshot`)."""
    return [(p_str, s_str) for _, _, p_str, s_str in levels]


def bbo_level(value: Any, what: str, symbol: str) -> tuple[float | None, float | None]:
    """``[price, size]`` of one side of a swap bbo; missing or empty is an empty side."""
    if value is None or value == []:
        return None, None
    if not isinstance(value, list) or len(value) < 2:
        raise ParseError(f"{what} is not [price, size]", symbol, "bbo")
    return positive_price(value[0], f"{what} price"), positive_price(value[1], f"{what} size")


def maybe_bad(book: SyncedBook | None) -> int:
    """MAYBE_BAD_BOOK when the symbol's book is between a gap and its resync."""
    return int(Flags.MAYBE_BAD_BOOK) if book is not None and book.maybe_bad else 0


class HtxDialect(ExchangeDialect):
    """What both HTX dialects share: one-topic ``sub`` frames, gzip frames, book depth option."""

    normaliser_class: ClassVar[type[HtxNormaliser]]
    #: book depths the incremental channel offers, and the default
    book_depths: ClassVar[tuple[int, ...]] = (150,)
    default_book_depth: ClassVar[int] = 150
    #: HTX advises against many topics per connection and documents no hard limit
    max_streams_per_connection: ClassVar[int] = 100

    def __init__(self, options: DialectOptions | None = None) -> None:
        super().__init__(options)
        depth = self.options.book_depth or self.default_book_depth
        if depth not in self.book_depths:
            raise ValueError(
                f"{self.exchange_id}: book depth {depth} not offered; choose one of "
                f"{', '.join(map(str, self.book_depths))}"
            )
        self.book_depth = depth
        self._ids = itertools.count(1)

    def decode_binary(self, data: bytes) -> bytes:
        return decode_frame(data)

    def normalise_symbol(self, native: str) -> str:
        return self.normaliser_class().symbol_books.name(self.native_symbol(native))

    def topics(self, native: str, channels: Sequence[str]) -> list[str]:
        """Topic names of one symbol's channels."""
        raise NotImplementedError

    def sub_frame(self, topic: str, op: str = "sub") -> str:
        """One ``sub``/``unsub`` request."""
        return orjson.dumps({op: topic, "id": f"{op}-{next(self._ids)}"}).decode()

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        return [self.sub_frame(t) for s in sub.symbols for t in self.topics(s, sub.channels)]

    def new_normaliser(self) -> HtxNormaliser:
        return self.normaliser_class()

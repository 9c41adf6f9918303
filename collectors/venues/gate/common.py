"""What Gate spot and Gate USDT perpetuals share (websocket API v4): framing, book sync, book ticker.

Documentation followed (checked 2026-12-05, through the search tool's stored copies):
- Spot WebSocket v4: https://www.gate.com/docs/developers/apiv4/ws/en/ (stored as the zh_CN page of
  2026-05-27: changelog, ``spot.trades``, ``spot.trades_v2``, ``spot.book_ticker``,
  ``spot.order_book_update``, "how to maintain a local order book", ``spot.obu``, ``spot.ping``)
- Futures WebSocket v4: https://www.gate.com/docs/developers/futures/ws/en/ (zh_CN page of 2026-05-27:
  changelog, ``futures.trades``, ``futures.book_ticker``, ``futures.order_book_update``, ``futures.obu``,
  decimal sizes and the ``X-Gate-Size-Decimal`` header, ``futures.ping``)
- Futures order book channels and local book procedure, announcement of 2021-03-12:
  https://www.gate.io/de/article/19776
- ``spot.obu`` / ``futures.obu`` announcements (2025-05-30, 2025-05-13):
  https://www.gatesite.work/announcements/article/45317 and https://www.gatesite.work/announcements/article/44946

Protocol. Requests are ``{"time": <s>, "channel": C, "event": "subscribe", "payload": [...]}``, answered
``{"channel": C, "event": "subscribe", "error": null|{code,message}, "result": {"status": "success"}}``.
Pushes are ``{"time", "time_ms", "channel", "event": "update", "result": ...}``. ``<prefix>.ping`` is
answered by ``<prefix>.pong``; the server also pings at the protocol level. Before a service upgrade the
server may push ``{"type": "upgrade", "msg": ...}`` (recorded as a ``venue_notice`` event; the
connection layer reconnects when the server closes the socket).

Book sync (the documented procedure, the same on spot and futures):
1. subscribe ``<prefix>.order_book_update`` (``100ms``: 100 levels; ``20ms``: 20 levels) and buffer
   its pushes (``U``/``u``: first and last update id since the previous push);
2. fetch ``GET .../order_book?...&with_id=true``; its ``id`` is the book's update id (``baseId``);
3. drop buffered pushes with ``u < baseId + 1``; the first one applied must satisfy
   ``U <= baseId + 1 <= u``; if even the first remaining push starts after ``baseId + 1`` the snapshot
   is older than the stream: fetch another one;
4. afterwards each push continues the previous one: ``U == previous u + 1``. A push wholly at or before
   the book's state is a repeat (``duplicate`` event, ignored; not counted right after a snapshot,
   where overlap is expected); ``U > previous u + 1`` is a ``gap``: that symbol's book is cleared and
   resynced from a new REST snapshot (``resync``, ``epoch + 1``) while the other symbols keep flowing.
Sizes in pushes are absolute; size 0 removes the level. Since 2025 a push may carry ``"full": true``:
it is the whole book (the subscribed depth) and replaces the local one (applied as a snapshot at its
``u``, without waiting for REST). Gate sends no book checksum.

The REST snapshot is injected into the stream as a generated frame
``{"channel": "<prefix>.order_book_snapshot", "generated": true, "s": <native>, "data": <REST body>}``
(DESIGN.md, raw capture format), so replaying a capture gives the live run's records.

Best bid/offer: ``<prefix>.book_ticker`` (``t`` ms, ``u`` = the book's update id, ``b``/``B``/``a``/``A``;
an empty side has price ``""``). Its ``u`` is the same id as the order book's, so a book rebuilt from
``order_book_update`` has the ticker's best bid and ask wherever a push ends at that id.

Channel choice (why not the newer ones):
- ``spot.obu``/``futures.obu`` (order book v2, 2025: ``ob.<pair>.400`` at 100 ms or ``.50`` at 20 ms) starts
  with a full push and resyncs by unsubscribing and resubscribing, with no REST id to check against. It is
  deeper and faster, but its update ids are not documented to be the ``book_ticker``'s ``u``, so the
  top-of-book cross-check this project relies on would be lost, and the recordings in ``../shared``
  only cover ``order_book_update``. ``order_book_update`` remains documented and maintained (its
  ``full`` field was added 2025-05-22), so it is used.
- ``spot.trades_v2`` (added 2025-01-08) carries the same fields as ``spot.trades`` and is marked
  "no longer maintained" (停止维护) in the current spot page: ``spot.trades`` is subscribed. Pushes of
  ``spot.trades_v2`` (in captures made by other tools) are read as trades too; a trade seen on both
  channels is kept once (``duplicate`` event for the second).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from schemas import RecordBuffer

from ...base import ExchangeDialect, Normaliser, Subscription
from ...book import SymbolBooks, SyncedBook, add_flags, parse_levels
from ...dedupe import RecentTradeIds
from ...events import (
    INT64_MAX,
    ParseError,
    emit_event,
    frame_text_for_event,
    ms_to_ns,
    non_negative_size,
    positive_price,
)

if TYPE_CHECKING:
    import aiohttp

#: Depth pushes buffered per symbol while a snapshot is awaited; beyond it the oldest are dropped (counted).
MAX_PENDING_EVENTS = 20_000
#: Levels asked of the REST snapshot: the ``100ms`` update stream covers the best 100 levels.
SNAPSHOT_LIMIT = 100
#: Update interval of ``order_book_update`` (``100ms`` = 100 levels; ``20ms`` = 20 levels only).
BOOK_INTERVAL = "100ms"

#: A buffered depth push: (ts_recv, U, u, ts_exchange, bids, asks), levels as ``[price, size]``.
PendingPush = tuple[int, int, int, int, list[Any], list[Any]]


def split_pair(native: Any) -> tuple[str, str]:
    """``BTC_USDT`` -> ``("BTC", "USDT")``; :class:`ParseError` for anything else."""
    if not isinstance(native, str):
        raise ParseError(f"symbol is not a string: {str(native)[:40]!r}")
    base, sep, quote = native.upper().partition("_")
    if not sep or not base or not quote or "_" in quote:
        raise ParseError(f"not a Gate pair BASE_QUOTE: {native[:40]!r}")
    return base, quote


def decimal_ms_to_ns(value: Any) -> int:
    """Gate's millisecond time with a fraction (``"1606292218213.4578"``) or an integer, to integer ns.

    Exact (decimal arithmetic, digits beyond the nanosecond truncated); :class:`ParseError` when absent
    or absurd.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return ms_to_ns(value)
    if not isinstance(value, str) or not 0 < len(value) <= 32:
        raise ParseError(f"bad millisecond timestamp {str(value)[:40]!r}")
    whole, _, frac = value.partition(".")
    if not whole.isdigit() or not whole.isascii() or (frac and (not frac.isdigit() or not frac.isascii())):
        raise ParseError(f"bad millisecond timestamp {value[:40]!r}")
    return ms_to_ns(int(whole)) + int(frac[:6].ljust(6, "0"))


def trade_time_ns(trade: dict[str, Any]) -> int:
    """A trade's exchange time: ``create_time_ms`` (added 2021-03), else ``create_time`` (seconds)."""
    ms = trade.get("create_time_ms")
    if ms is not None:
        return decimal_ms_to_ns(ms)
    return seconds_to_ns(trade["create_time"])


def seconds_to_ns(value: Any) -> int:
    """A time in seconds (Gate futures REST: ``1684930166.384``) to integer ns, exactly as written."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ParseError(f"bad seconds timestamp {str(value)[:40]!r}")
    try:
        ns = int(Decimal(str(value)) * 1_000_000_000)
    except (InvalidOperation, ValueError, ArithmeticError):  # "NaN", "Infinity", garbage
        raise ParseError(f"bad seconds timestamp {str(value)[:40]!r}") from None
    if not 0 < ns < 10**20:
        raise ParseError(f"bad seconds timestamp {str(value)[:40]!r}")
    return ns


def update_id(value: Any, what: str, symbol: str | None = None) -> int:
    """An order book update id: a non-negative integer, else :class:`ParseError`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ParseError(f"{what} is not an update id: {str(value)[:40]!r}", symbol, "book")
    return value


def ticker_side(price: Any, size: Any, what: str) -> tuple[float | None, float | None]:
    """One side of a book ticker; an empty side (price ``""``, size 0) becomes nulls."""
    if price == "" or price is None:
        if non_negative_size(size, f"{what} size") != 0.0:
            raise ParseError(f"{what} has a size but no price", channel="bbo")
        return None, None
    return positive_price(price, f"{what} price"), non_negative_size(size, f"{what} size")


class GateNormaliser(Normaliser):
    """Gate v4 frames -> records; subclasses set the channel prefix, symbols, levels and trades."""

    exchange: ClassVar[str]
    #: ``spot`` or ``futures``: channel names are ``<prefix>.<name>``
    prefix: ClassVar[str]
    #: channels of the venue that ticktape does not record: their pushes are skipped, not errors
    ignored_channels: ClassVar[frozenset[str]] = frozenset()
    #: other channels whose pushes are trades in the ``<prefix>.trades`` format
    alt_trade_channels: ClassVar[frozenset[str]] = frozenset()
    #: channels read by :meth:`on_derivative` (funding, mark, open interest, liquidations)
    derivative_channels: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.books = SymbolBooks(self.exchange, self.normalise_native)
        self.trade_ids = RecentTradeIds()
        #: natives whose ``last_seq`` is a snapshot id (pushes at or before it are expected overlap)
        self.seq_from_snapshot: set[str] = set()
        p = self.prefix
        self.ch_trades = f"{p}.trades"
        self.ch_book = f"{p}.order_book_update"
        self.ch_bbo = f"{p}.book_ticker"
        self.ch_pong = f"{p}.pong"
        self.ch_snapshot = f"{p}.order_book_snapshot"

    # -- venue specifics -------------------------------------------------------------------------
    @abc.abstractmethod
    def normalise_native(self, native: Any) -> str:
        """The normalised symbol of a native one."""

    @abc.abstractmethod
    def levels(self, raw: Any) -> list[Any]:
        """Wire levels of one side as ``[price, size, ...]`` sequences (what :func:`parse_levels` reads)."""

    @abc.abstractmethod
    def on_trades(self, ts_recv: int, result: Any, out: RecordBuffer) -> None:
        """A ``<prefix>.trades`` push."""

    @abc.abstractmethod
    def snapshot_time(self, data: dict[str, Any]) -> int | None:
        """Exchange time (ns) of a REST snapshot body."""

    def on_derivative(self, ts_recv: int, channel: str, msg: dict[str, Any], out: RecordBuffer) -> None:
        """A push of one of :attr:`derivative_channels` (futures only; spot declares none)."""
        raise ParseError(f"unexpected channel {channel[:60]!r}")

    # -- frames ----------------------------------------------------------------------------------
    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not a JSON object")
        channel = msg.get("channel")
        event = msg.get("event")
        if event == "update" or event == "all":
            result = msg.get("result")
            if channel == self.ch_book:
                self.on_book_update(ts_recv, result, out)
            elif channel == self.ch_trades or channel in self.alt_trade_channels:
                self.on_trades(ts_recv, result, out)
            elif channel == self.ch_bbo:
                self.on_book_ticker(ts_recv, result, out)
            elif channel in self.derivative_channels:
                self.on_derivative(ts_recv, channel, msg, out)
            elif channel not in self.ignored_channels:
                raise ParseError(f"unknown channel {str(channel)[:60]!r}")
            return
        if channel == self.ch_snapshot and msg.get("generated") is True:
            self.on_snapshot(ts_recv, msg, out)
            return
        if event in ("subscribe", "unsubscribe") and isinstance(channel, str):
            error = msg.get("error")
            if error:
                detail = {"channel": channel[:60], "error": str(error)[:500], **frame_text_for_event(frame)}
                emit_event(out, self.exchange, None, "connection", ts_recv, "subscribe_error", detail)
            return
        if channel == self.ch_pong:
            return
        if msg.get("type") == "upgrade":
            detail = {"type": "upgrade", "msg": str(msg.get("msg"))[:500]}
            emit_event(out, self.exchange, None, "connection", ts_recv, "venue_notice", detail)
            return
        raise ParseError("unknown message (no update event, not a reply)")

    def emit_gate_trade(
        self,
        out: RecordBuffer,
        ts_recv: int,
        native: Any,
        trade_id: Any,
        price: float,
        size: float,
        side: str,
        ts_exchange: int,
    ) -> None:
        """One trade row, unless its id was already seen for that symbol (``duplicate`` event)."""
        symbol = self.books.name(native)
        if isinstance(trade_id, str) and trade_id.isdigit() and trade_id.isascii() and len(trade_id) < 40:
            tid = trade_id  # documented as an integer; a decimal string (some recorders) is the same id
        elif isinstance(trade_id, int) and not isinstance(trade_id, bool) and 0 <= trade_id <= INT64_MAX:
            tid = str(trade_id)  # documented as an int64: a JSON integer beyond it is no Gate id
        else:
            raise ParseError(f"trade id is not an integer: {str(trade_id)[:40]!r}", symbol, "trades")
        if self.trade_ids.seen(symbol, tid):
            emit_event(out, self.exchange, symbol, "trades", ts_recv, "duplicate", {"trade_id": tid})
            return
        self.emit_trade(out, symbol, ts_exchange, ts_recv, tid, price, size, side)

    def on_book_ticker(self, ts_recv: int, result: Any, out: RecordBuffer) -> None:
        """A ``<prefix>.book_ticker`` push: one bbo row, ``seq`` = the book's update id ``u``."""
        if not isinstance(result, dict):
            raise ParseError("book ticker result is not an object", channel="bbo")
        symbol = self.books.name(result["s"])
        seq = update_id(result["u"], "book ticker u", symbol)
        ts_exchange = ms_to_ns(result["t"])
        bid_p, bid_s = ticker_side(result["b"], result["B"], "bid")
        ask_p, ask_s = ticker_side(result["a"], result["A"], "ask")
        self.emit_bbo(out, symbol, ts_exchange, ts_recv, bid_p, bid_s, ask_p, ask_s, seq)

    # -- book --------------------------------------------------------------------------------------
    def on_book_update(self, ts_recv: int, result: Any, out: RecordBuffer) -> None:
        """An ``order_book_update`` push: a full book, or buffered/applied under the sequence rule."""
        if not isinstance(result, dict):
            raise ParseError("order book update result is not an object", channel="book")
        native = result["s"]
        book = self.books.book(native)
        last = update_id(result["u"], "u", book.symbol)
        first = update_id(result.get("U", last), "U", book.symbol)
        if first > last:
            raise ParseError(f"update ids U={first} > u={last}", book.symbol, "book")
        ts_exchange = ms_to_ns(result["t"])
        bids, asks = self.levels(result.get("b", [])), self.levels(result.get("a", []))
        if result.get("full") is True:
            self.apply_full(ts_recv, native, book, last, ts_exchange, bids, asks, out)
            return
        push: PendingPush = (ts_recv, first, last, ts_exchange, bids, asks)
        if not book.synced:
            # a buffered push is validated now: applying it later must not fail
            parse_levels(bids, book.limits.max_price, book.limits.max_size)
            parse_levels(asks, book.limits.max_price, book.limits.max_size)
            self.buffer(book, native, push, out)
            return
        self.apply_push(book, native, push, out, live=True)

    def buffer(self, book: SyncedBook, native: str, push: PendingPush, out: RecordBuffer) -> None:
        """Keeps a push until the snapshot arrives, and asks for the snapshot."""
        if len(book.pending) >= MAX_PENDING_EVENTS:
            dropped = book.pending.pop(0)
            emit_event(
                out,
                self.exchange,
                book.symbol,
                "book",
                push[0],
                "dropped",
                {"reason": "snapshot wait buffer full", "u": dropped[2]},
            )
        book.pending.append(push)
        self.snapshot_requests.add(native)

    def apply_push(
        self, book: SyncedBook, native: str, push: PendingPush, out: RecordBuffer, live: bool
    ) -> None:
        """Applies one push to a synced book, or detects a gap (``U == previous u + 1``)."""
        ts_recv, first, last, ts_exchange, bids, asks = push
        prev = book.last_seq
        assert prev is not None
        if live and (last <= prev or first > prev + 1):
            # a push that is not applied now (a repeat, a gap) is validated first: a hostile one is a
            # parse error, never a duplicate or a gap (buffered pushes were validated when buffered)
            parse_levels(bids, book.limits.max_price, book.limits.max_size)
            parse_levels(asks, book.limits.max_price, book.limits.max_size)
        if last <= prev:
            if live and native not in self.seq_from_snapshot:
                emit_event(
                    out, self.exchange, book.symbol, "book", ts_recv, "duplicate", {"U": first, "u": last}
                )
            return
        if first > prev + 1:
            book.gap(
                out,
                ts_recv,
                "gap",
                {
                    "expected_U": prev + 1,
                    "U": first,
                    "u": last,
                    "missing": first - prev - 1,
                    "after_snapshot": native in self.seq_from_snapshot,
                },
            )
            self.seq_from_snapshot.discard(native)
            self.buffer(book, native, push, out)
            return
        flags = self.time_flags.flags(ts_exchange, ts_recv)
        book.apply_update(out, ts_exchange, ts_recv, bids, asks, last, flags)
        book.last_seq = last
        self.seq_from_snapshot.discard(native)
        book.check_crossed(out, ts_recv, {"u": last})

    def apply_full(
        self,
        ts_recv: int,
        native: str,
        book: SyncedBook,
        last: int,
        ts_exchange: int,
        bids: list[Any],
        asks: list[Any],
        out: RecordBuffer,
    ) -> None:
        """A ``"full": true`` push: the whole book at ``u``, applied as a snapshot (no REST needed)."""
        self.install(ts_recv, native, book, ts_exchange, bids, asks, last, "full", out)

    def on_snapshot(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        """An injected REST snapshot: reset the book at its ``id``, then apply the buffered pushes."""
        native = msg.get("s")
        data = msg.get("data")
        if not isinstance(data, dict):
            raise ParseError("snapshot frame without a data object", channel="book")
        if not isinstance(native, str):
            raise ParseError("snapshot frame without a symbol", channel="book")
        book = self.books.book(native)  # validates the symbol
        base_id = update_id(data.get("id"), "snapshot id (with_id=true)", book.symbol)
        bids, asks = self.levels(data["bids"]), self.levels(data["asks"])
        if book.synced and native not in self.snapshot_requests:
            return  # a late answer: a full push already synced this book
        self.install(ts_recv, native, book, self.snapshot_time(data), bids, asks, base_id, "snapshot", out)

    def install(
        self,
        ts_recv: int,
        native: str,
        book: SyncedBook,
        ts_exchange: int | None,
        bids: list[Any],
        asks: list[Any],
        seq: int,
        reason: str,
        out: RecordBuffer,
    ) -> None:
        """Resets a book to a whole-book state at ``seq`` and replays the pushes buffered meanwhile."""
        parse_levels(bids, book.limits.max_price, book.limits.max_size)
        parse_levels(asks, book.limits.max_price, book.limits.max_size)
        flags = self.time_flags.flags(ts_exchange, ts_recv)
        pending: list[PendingPush] = book.pending
        book.pending = []
        self.snapshot_requests.discard(native)
        before = len(out.book)
        book.apply_snapshot(out, ts_exchange, ts_recv, bids, asks, seq, reason)
        add_flags(out.book, before, flags)  # a snapshot whose exchange time is far from now is flagged too
        self.seq_from_snapshot.add(native)
        for push in pending:
            if not book.synced:
                book.pending.append(push)  # a replayed push broke the sync again: wait for the next one
                continue
            self.apply_push(book, native, push, out, live=False)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """Every book must be rebuilt from a new snapshot after a disconnect."""
        for native, book in self.books.books.items():
            if book.synced or book.pending:
                book.reset()
            self.snapshot_requests.discard(native)
        self.seq_from_snapshot.clear()


def snapshot_frame(prefix: str, native_symbol: str, body: str | bytes) -> str:
    """Wraps a REST order book body as a generated capture frame (DESIGN.md, capture format)."""
    text = body.decode() if isinstance(body, bytes) else body
    sym = orjson.dumps(native_symbol).decode()
    return f'{{"channel":"{prefix}.order_book_snapshot","generated":true,"s":{sym},"data":{text}}}'


class GateDialect(ExchangeDialect):
    """The dialect skeleton of both Gate venues: subscriptions, snapshots, symbols."""

    prefix: ClassVar[str]
    #: websocket path below the host (the simulator serves the same path)
    ws_path: ClassVar[str]
    #: REST path of the order book snapshot and the name of its symbol parameter
    snapshot_path: ClassVar[str]
    snapshot_symbol_param: ClassVar[str]
    default_rest_url: ClassVar[str | None] = "https://api.gateio.ws"
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTC_USDT", "ETH_USDT")
    #: Gate documents no per-connection subscription limit; three streams per symbol, 100 symbols
    max_streams_per_connection: ClassVar[int] = 300
    normaliser_class: ClassVar[type[GateNormaliser]]

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USDT``/``BTC-USDT-PERP``/``btc_usdt``/``BTC/USDT`` -> ``BTC_USDT``."""
        s = symbol.strip().upper()
        if s.endswith("-PERP"):
            s = s[: -len("-PERP")]
        return s.replace("-", "_").replace("/", "_")

    def normalise_symbol(self, native: str) -> str:
        return self.normaliser_class().books.name(native)

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        base = ws_url.rstrip("/")
        path = self.ws_path.rstrip("/")
        return base + self.ws_path if not base.endswith(path) else ws_url

    def book_payload(self, native: str) -> list[str]:
        """Subscription payload of one symbol's ``order_book_update``."""
        return [native, BOOK_INTERVAL]

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        now = int(time.time())
        symbols = list(sub.symbols)
        frames: list[dict[str, Any]] = []
        if "trades" in sub.channels:
            frames.append(
                {"time": now, "channel": f"{self.prefix}.trades", "event": "subscribe", "payload": symbols}
            )
        if "book" in sub.channels:
            frames.extend(
                {
                    "time": now,
                    "channel": f"{self.prefix}.order_book_update",
                    "event": "subscribe",
                    "payload": self.book_payload(s),
                }
                for s in symbols
            )
        if "bbo" in sub.channels:
            frames.append(
                {
                    "time": now,
                    "channel": f"{self.prefix}.book_ticker",
                    "event": "subscribe",
                    "payload": symbols,
                }
            )
        return [orjson.dumps(f).decode() for f in frames]

    def new_normaliser(self) -> Normaliser:
        return self.normaliser_class()

    def snapshot_request_weight(self, native_symbol: str) -> int:
        # Gate allows 200 public requests per 10 s per endpoint and IP (announcement of 2024-01-14,
        # https://bquan.live/th/announcements/article/33995). Against the connection's default budget
        # (half of 6000 weight a minute) a weight of 5 allows 10 snapshots a second: half of Gate's 20.
        return 5

    def snapshot_params(self, native_symbol: str) -> dict[str, str]:
        """Query of the REST snapshot."""
        return {self.snapshot_symbol_param: native_symbol, "limit": str(SNAPSHOT_LIMIT), "with_id": "true"}

    async def fetch_snapshot(self, http: aiohttp.ClientSession, rest_url: str, native_symbol: str) -> str:
        url = f"{rest_url.rstrip('/')}{self.snapshot_path}"
        async with http.get(url, params=self.snapshot_params(native_symbol)) as resp:
            resp.raise_for_status()
            body = await resp.read()
        return snapshot_frame(self.prefix, native_symbol, body)

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        return []  # books resync from REST snapshots, not by resubscribing

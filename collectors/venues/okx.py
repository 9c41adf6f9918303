"""OKX v5 public websocket (exchange id ``okx``): trades, order book, best bid/offer, and for swaps and
futures funding, mark and index prices, open interest and liquidations.

Endpoint ``wss://ws.okx.com:8443/ws/v5/public``; subscribe with
``{"op":"subscribe","args":[{"channel":C,"instId":I},...]}`` (acknowledged per argument with
``{"event":"subscribe","arg":{...}}``; failures with ``{"event":"error","code":..,"msg":..}``).
The connection is kept alive with the text frame ``ping`` (answered ``pong``): OKX closes a
connection that has carried nothing for 30 s.

Channels (``arg.channel``; every push is ``{"arg":{"channel","instId"},"data":[...]}``):
- ``trades``: ``{instId, tradeId, px, sz, side, ts, count}``; ``side`` is the taker side. Current OKX
  aggregates the fills of one taker order at one price into one push (``count`` fills); the
  ``trades-all`` channel of the *business* endpoint has single fills. Trades are de-duplicated by
  ``tradeId`` across reconnects. OKX pushes the latest trade right after a subscription (seen in
  the 2022 recording: ts seconds older than the subscription); the first push after each trades
  acknowledgement is therefore flagged SNAPSHOT when its time is at or before the newest exchange
  time already seen (book, bbo or trade data), and a repeat of a stored trade is dropped.
- ``books`` (400 levels, 100 ms): ``action`` is ``snapshot`` then ``update``; levels
  are ``[px, sz, "0" (deprecated), orders]``, size ``"0"`` removes a level; ``ts`` is the book time.
  OKX itself removes the levels that leave the 400-level window (on the recording BTC-USDT holds
  exactly 400 levels per side after every message), so the local book needs no truncation.
- ``bbo-tbt`` (default) or ``tickers`` (``extra["bbo_channel"]``) for the best bid/offer. ``bbo-tbt``
  carries ``seqId`` from the same per-instrument sequence as the books, so its rows are comparable
  with the rebuilt book at equal ``seq``; ``tickers`` carries no sequence (``seq`` null).

``books-l2-tbt`` and ``books50-l2-tbt`` (same format, 10 ms) need a logged-in account of a VIP fee
tier (OKX answers ``{"event":"error","code":"60011","msg":"Please log in"}`` otherwise; the rule dates
from OKX's change of 2022-05-05, https://www.okx.com/docs-v5/log_en/#2022-05-05, as reported in
https://github.com/bmoscon/cryptofeed/issues/845 and https://github.com/ccxt/ccxt/issues/12995, checked 2026-12-05):
ticktape's public collector does not log in, so they are refused as ``book_channel`` with a clear error.
The normaliser still parses them (captures from accounts that had them replay).

Limits (OKX "WebSocket > Connect", https://www.okx.com/docs-v5/en/#overview-websocket-connect; its
figures as quoted by https://nautilustrader.io/docs/core-latest/nautilus_okx/websocket/client/static.OKX_WS_QUOTA.html,
the page the search corpus holds, checked 2026-12-05):
3 connection requests per second per IP; 480 ``subscribe``/``unsubscribe``/``login`` requests per
hour per connection (resubscriptions for a resync count too). Declared on the dialect, paced by
:mod:`collectors.pacing`, enforced by the simulator (above the connection rate it refuses with 429,
above the hourly subscribe budget it answers error 60014 "Requests too frequent").

Book integrity (documented rules implemented here):
- ``seqId``/``prevSeqId``: a snapshot has ``prevSeqId = -1``; each update's ``prevSeqId`` must equal
  the ``seqId`` of the message before it. An update with empty ``bids``/``asks`` and
  ``seqId == prevSeqId`` is a keep-alive and is accepted. After exchange maintenance the sequence
  may restart lower (``seqId < prevSeqId``); such an update is accepted when its ``prevSeqId``
  continues the chain. A message wholly at or before the book's state is a repeat (``duplicate``
  event, ignored); any other break is a ``gap``.
- checksum: CRC32, as a signed 32-bit integer, of the best 25 bids and asks interleaved
  ``bid1px:bid1sz:ask1px:ask1sz:...`` over the exact wire strings (a shorter side just stops).
  Verified by default after every snapshot and update.
- A gap or checksum failure breaks that instrument only: ``gap``/``checksum_mismatch`` event, its
  book is cleared, the instrument goes into ``resubscribe_requests`` and the connection sends
  :meth:`OkxDialect.resubscribe_frames` (unsubscribe + subscribe of that book); the fresh snapshot
  brings a ``resync`` event and ``epoch + 1``. Updates arriving before that snapshot cannot be
  applied and are counted (``updates_skipped``). The rows of an update that failed its checksum
  carry MAYBE_BAD_BOOK.

What differs from the 2022 recording (``../shared/samples/okx``) and current OKX:
- 2022 book messages have no ``seqId``/``prevSeqId``: only the checksum proves continuity there
  (this module accepts both forms).
- 2022 trades have no ``count`` (no aggregation); current pushes aggregate fills.
- OKX has since deprecated the book checksum: current ``books`` pushes carry ``"checksum": 0`` and
  ``books5``/``bbo-tbt`` none. A checksum of 0 or an absent one is therefore treated as "not sent"
  (counted in ``checksums_unverified``), never as a mismatch; non-zero checksums (the recording,
  the simulator, any venue that still sends them) are verified.
- ``bbo-tbt`` did not exist in the 2022 subscription; the recording uses ``tickers`` for the top of
  book, whose ``ts`` is not tied to a book sequence.

Derivatives channels (issue 15; swaps and futures only, spot and options subscribe none of them, and
the demo symbols are therefore the swaps ``BTC-USDT-SWAP``/``ETH-USDT-SWAP``):
- ``funding`` (swaps): ``funding-rate`` ``{fundingRate, nextFundingRate, fundingTime, nextFundingTime,
  ts, ...}``: ``funding_rate`` is ``fundingRate`` ("current funding rate"), ``predicted_rate`` is
  ``nextFundingRate`` when it is not ``""`` (the page now marks that field "no longer supported" and
  OKX sends ``""``: null), ``next_funding_time`` is ``fundingTime`` ("settlement time"; the page's
  older text called it the upcoming settlement), ``ts_exchange`` is ``ts`` ("data return time").
  ``nextFundingTime`` (the settlement after it) is not stored. OKX pushes it every 30 to 90 s (and
  once right after the subscription).
- ``mark``: ``mark-price`` ``{instType, instId, markPx, ts}`` (every 200 ms when the mark changes,
  every 10 s otherwise), and ``index-tickers`` subscribed with the index's
  instId (``BTC-USDT`` for ``BTC-USDT-SWAP``, ``BTC-USD`` for ``BTC-USD-SWAP`` and ``BTC-USD-250926``)
  ``{instId, idxPx, open24h, high24h, low24h, sodUtc0, sodUtc8, ts}`` (every 100 ms on a change, else
  once a minute). Each mark push gives one ``mark_price`` row at its ``ts`` whose
  ``index_price`` is the latest ``idxPx`` this connection received for that index (null before the
  first; the two channels are pushed separately, so the index can be up to one index push older).
  Index pushes give no row.
- ``open_interest``: ``open-interest`` ``{instType, instId, oi, oiCcy, oiUsd, ts}`` (every 3 s when it
  changes): ``oi`` in contracts (the venue's unit), ``open_interest_value`` ``oiUsd`` ("open interest in
  number of USD"; older copies of the page list no ``oiUsd``: null when absent).
- ``liquidations``: ``liquidation-orders`` is subscribed per instrument type (``{"channel":
  "liquidation-orders", "instType": "SWAP"}``; ``FUTURES`` for dated futures), and pushes
  ``[{instId, instType, uly, details: [{side, posSide, bkPx, sz, bkLoss, ts}]}]`` for every instrument of
  that type: rows are kept only for instruments this connection subscribed (learnt from the
  acknowledgements, so a replay keeps the same ones; a connection that subscribed no instrument keeps
  all), one per detail: ``side`` is the liquidation order's side (``posSide`` ``short`` is closed by a
  ``buy``): the taker side the schema asks for; price ``bkPx``; size ``sz`` (contracts); time ``ts``;
  OKX gives no id. OKX notes that these pushes are not in chronological order and are not every
  liquidation on OKX.
Sources (checked 2026-12-05): https://www.okx.com/docs-v5/en/#public-data-websocket-liquidation-orders-channel
(read in a stored copy of that page dated 2026-07-19), https://www.okx.com/docs-v5/en/#public-data-websocket-funding-rate-channel,
https://www.okx.com/docs-v5/en/#public-data-websocket-mark-price-channel,
https://www.okx.com/docs-v5/en/#public-data-websocket-index-tickers-channel,
https://www.okx.com/docs-v5/en/#public-data-websocket-open-interest-channel: field names, descriptions and
cadences above confirmed 2026-12-05 from two stored markdown copies of the "Public Market Data WebSocket
API" section of that page (an older one, whose open-interest example
``{"instType":"SWAP","instId":"LTC-USD-SWAP","oi":"5000","oiCcy":"555.55","ts":"1597026383085"}`` has no
``oiUsd`` and is a test, and a newer one listing ``oiUsd``, ``formulaType``, ``interestRate``,
``impactValue`` and the "no longer supported" ``nextFundingRate``).

Symbols: spot ``BTC-USDT`` stays ``BTC-USDT``; swaps ``BTC-USDT-SWAP`` become ``BTC-USDT-PERP``; dated
futures and options keep OKX's names (``BTC-USD-220527``, ``BTC-USD-261225-100000-C``). Instruments
(reference data, :mod:`.okx_instruments`): spot, swaps, futures, and the options of every underlying
that ``public/underlying`` lists (every margin family of it); options carry the market channels only (trades, book, bbo).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from aiohttp import web

from schemas import Flags, RecordBuffer

from ..base import CHANNELS, DialectOptions, ExchangeDialect, Normaliser, Subscription
from ..book import ASK, BID, L2Book, SymbolBooks, SyncedBook, parse_levels
from ..checksum import book_crc32, colon_level, to_signed32
from ..dedupe import RecentTradeIds
from ..events import (
    ParseError,
    check_int64,
    check_symbol,
    decode_json,
    emit_event,
    funding_rate,
    ms_to_ns,
    non_negative_size,
    positive_price,
)
from ..instruments import Instrument
from ..pacing import VenueLimits
from ..simulator import ClientSession, ExchangeSimulator, MarketModel, MarketStep, SimulatorConfig
from . import okx_instruments
from .binance import split_binance_symbol

if TYPE_CHECKING:
    import aiohttp

EXCHANGE = "okx"
WS_PATH = "/ws/v5/public"
#: Book levels per side covered by the OKX checksum.
CHECKSUM_DEPTH = 25
BOOK_CHANNELS = frozenset({"books", "books50-l2-tbt", "books-l2-tbt"})
#: tick-by-tick books: only for logged-in accounts of a VIP tier, never offered by the public collector
LOGIN_BOOK_CHANNELS = frozenset({"books50-l2-tbt", "books-l2-tbt"})
PUBLIC_BOOK_CHANNELS = BOOK_CHANNELS - LOGIN_BOOK_CHANNELS
BBO_CHANNELS = frozenset({"bbo-tbt", "tickers"})
#: Subscription arguments per subscribe request (OKX limits one request to 64 KB of text).
ARGS_PER_REQUEST = 100
#: instrument types whose instruments carry the derivatives channels here (spot and options do not)
DERIVATIVE_INST_TYPES = ("SWAP", "FUTURES")
#: acknowledged instIds remembered per connection (bounded against a hostile stream of acks)
MAX_SUBSCRIBED_INSTRUMENTS = 100_000
#: the liquidation order's side (``details[].side``) -> our taker side
LIQUIDATION_SIDES = {"buy": "buy", "sell": "sell"}


def inst_type(inst_id: str) -> str:
    """``BTC-USDT`` SPOT, ``BTC-USDT-SWAP`` SWAP, ``BTC-USD-220527`` FUTURES, 5 parts OPTION."""
    parts = inst_id.split("-")
    if parts[-1] == "SWAP":
        return "SWAP"
    if len(parts) == 3 and parts[2].isdigit():
        return "FUTURES"
    if len(parts) == 5:
        return "OPTION"
    return "SPOT"


def index_of(inst_id: str) -> str:
    """The index instrument (``index-tickers`` instId) of a swap or future: ``BTC-USDT-SWAP`` -> ``BTC-USDT``."""
    return "-".join(inst_id.split("-")[:2])


def okx_checksum(book: L2Book) -> int:
    """OKX's signed CRC32 of a book's best 25 levels per side, bid/ask interleaved (wire strings)."""
    return to_signed32(book_crc32(book, CHECKSUM_DEPTH, colon_level, interleave=True, separator=":"))


def normalise_inst_id(inst_id: str) -> str:
    """``BTC-USDT-SWAP`` -> ``BTC-USDT-PERP``; spot, futures and options keep OKX's name."""
    if inst_id.endswith("-SWAP"):
        return inst_id[: -len("-SWAP")] + "-PERP"
    return inst_id


def _normalise_wire_inst_id(inst_id: Any) -> str:
    if not isinstance(inst_id, str):
        raise ParseError(f"instId is not a string: {str(inst_id)[:40]!r}")
    return normalise_inst_id(inst_id)


def _seq(value: Any, what: str, symbol: str) -> int | None:
    if value is None:
        return None
    return check_int64(value, what, symbol, "book")


def _or_flags(rows: list[Any], start: int, flags: int) -> None:
    """Adds ``flags`` to the flags column of ``rows[start:]`` (book rows; flags is the last column)."""
    for i in range(start, len(rows)):
        row = rows[i]
        rows[i] = (*row[:-1], row[-1] | flags)


def _optional_price(value: Any, what: str) -> float | None:
    # OKX sends "" for an empty side of the ticker.
    if value == "" or value is None:
        return None
    return positive_price(value, what)


def _optional_size(value: Any, what: str) -> float | None:
    if value == "" or value is None:
        return None
    return non_negative_size(value, what)


class OkxNormaliser(Normaliser):
    """OKX v5 public frames -> records (see the module docstring for the rules)."""

    exchange: ClassVar[str] = EXCHANGE

    def __init__(self, verify_checksums: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verify_checksums = verify_checksums
        self.symbols = SymbolBooks(self.exchange, _normalise_wire_inst_id, self.limits)
        self.books = self.symbols.books  # instId -> book
        self.trade_ids = RecentTradeIds()
        #: instIds whose trades subscription was acknowledged and whose first push is still to come
        self.trade_snapshot_due: set[str] = set()
        #: newest exchange time seen on this connection (ns); tells a replayed last trade from a new one
        self.newest_ts = 0
        self.checksums_verified = 0
        self.checksums_unverified = 0
        self.updates_skipped = 0
        #: index instId -> latest ``idxPx`` (``index-tickers``), paired with the next mark price
        self.index_prices: dict[str, float] = {}
        #: instIds this connection subscribed (from the acknowledgements): ``liquidation-orders`` is
        #: per instrument type, so liquidations of instruments outside the subscription are not ours
        self.subscribed_instruments: set[str] = set()
        #: liquidations of instruments this connection did not subscribe (skipped)
        self.liquidations_elsewhere = 0

    # -- frames --------------------------------------------------------------------------------
    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        if frame == b"pong" or frame == "pong":
            return  # answer to our application ping
        msg = decode_json(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not a JSON object")
        data = msg.get("data")
        if data is None:
            self.on_event(ts_recv, msg, out)
            return
        arg = msg.get("arg")
        if not isinstance(arg, dict) or not isinstance(data, list):
            raise ParseError("push without arg object or data list")
        channel = arg.get("channel")
        inst_id = arg.get("instId")
        if channel == "trades":
            self.on_trades(ts_recv, inst_id, data, out)
        elif channel in BOOK_CHANNELS:
            self.on_book(ts_recv, inst_id, msg.get("action"), data, out)
        elif channel == "bbo-tbt":
            self.on_bbo_tbt(ts_recv, inst_id, data, out)
        elif channel == "tickers":
            self.on_tickers(ts_recv, inst_id, data, out)
        elif channel == "mark-price":
            self.on_mark_price(ts_recv, inst_id, data, out)
        elif channel == "index-tickers":
            self.on_index_tickers(inst_id, data)
        elif channel == "funding-rate":
            self.on_funding_rate(ts_recv, inst_id, data, out)
        elif channel == "open-interest":
            self.on_open_interest(ts_recv, inst_id, data, out)
        elif channel == "liquidation-orders":
            self.on_liquidation_orders(ts_recv, data, out)
        else:
            raise ParseError(f"unknown channel {str(channel)[:60]!r}")

    def on_event(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        """Control messages: subscription acknowledgements, errors, notices."""
        event = msg.get("event")
        arg = msg.get("arg")
        if event == "subscribe":
            if isinstance(arg, dict) and isinstance(arg.get("instId"), str):
                if arg.get("channel") == "trades":
                    self.trade_snapshot_due.add(arg["instId"])
                if len(self.subscribed_instruments) < MAX_SUBSCRIBED_INSTRUMENTS:
                    self.subscribed_instruments.add(arg["instId"])
            return
        if event in ("unsubscribe", "channel-conn-count", "login"):
            return
        if event in ("error", "notice", "channel-conn-count-error"):
            # An exchange-side refusal or announcement (e.g. a service upgrade that will close us).
            kind = "exchange_error" if event != "notice" else "notice"
            emit_event(
                out,
                self.exchange,
                None,
                "connection",
                ts_recv,
                kind,
                {"event": event, "code": str(msg.get("code"))[:20], "msg": str(msg.get("msg"))[:500]},
            )
            return
        raise ParseError(f"unknown message (event {str(event)[:40]!r}, no data)")

    # -- trades --------------------------------------------------------------------------------
    def on_trades(self, ts_recv: int, inst_id: Any, data: list[Any], out: RecordBuffer) -> None:
        """A trades push: one row per trade; repeats (by tradeId) dropped; subscribe replays flagged."""
        symbol = self.symbols.name(inst_id)
        parsed = []
        for t in data:
            if t.get("instId", inst_id) != inst_id:
                raise ParseError("trade instId differs from the channel's", symbol, "trades")
            trade_id = t["tradeId"]
            if not isinstance(trade_id, str) or not trade_id or len(trade_id) > 64:
                raise ParseError(f"bad tradeId {str(trade_id)[:40]!r}", symbol, "trades")
            side = t["side"]
            if side != "buy" and side != "sell":
                raise ParseError(f"bad trade side {str(side)[:20]!r}", symbol, "trades")
            parsed.append(
                (trade_id, positive_price(t["px"]), positive_price(t["sz"], "size"), side, ms_to_ns(t["ts"]))
            )
        snapshot_due = inst_id in self.trade_snapshot_due
        self.trade_snapshot_due.discard(inst_id)
        for trade_id, price, size, side, ts_exchange in parsed:
            if self.trade_ids.seen(inst_id, trade_id):
                emit_event(out, self.exchange, symbol, "trades", ts_recv, "duplicate", {"trade_id": trade_id})
                continue
            flags = int(Flags.SNAPSHOT) if snapshot_due and ts_exchange <= self.newest_ts else 0
            self.emit_trade(out, symbol, ts_exchange, ts_recv, trade_id, price, size, side, flags)
            if ts_exchange > self.newest_ts:
                self.newest_ts = ts_exchange

    # -- book ----------------------------------------------------------------------------------
    def on_book(self, ts_recv: int, inst_id: Any, action: Any, data: list[Any], out: RecordBuffer) -> None:
        """A books push: snapshot or update, under the sequence and checksum rules."""
        book = self.symbols.book(inst_id)
        if action != "snapshot" and action != "update":
            raise ParseError(f"unknown book action {str(action)[:20]!r}", book.symbol, "book")
        for entry in data:
            bids, asks = entry["bids"], entry["asks"]
            if not isinstance(bids, list) or not isinstance(asks, list):
                raise ParseError("book bids/asks are not lists", book.symbol, "book")
            ts_exchange = ms_to_ns(entry["ts"])
            seq = _seq(entry.get("seqId"), "seqId", book.symbol)
            prev = _seq(entry.get("prevSeqId"), "prevSeqId", book.symbol)
            checksum = entry.get("checksum")
            if checksum is not None and (not isinstance(checksum, int) or isinstance(checksum, bool)):
                raise ParseError("checksum is not an integer", book.symbol, "book")
            rows = out.book
            before = len(rows)
            if action == "snapshot":
                book.apply_snapshot(out, ts_exchange, ts_recv, bids, asks, seq)
            else:
                if not book.synced:
                    self.validate_levels(bids, asks)  # not applied, but a bad one is still a parse error
                    self.updates_skipped += 1  # waiting for the snapshot of a (re)subscription
                    continue
                last = book.last_seq
                if seq is not None and prev is not None and last is not None and prev != last:
                    if seq <= last and prev < last and seq >= prev:
                        self.validate_levels(bids, asks)
                        repeat = {"seqId": seq, "prevSeqId": prev, "last_seqId": last}
                        self.book_event(out, book, ts_recv, "duplicate", repeat)
                        continue
                    self.validate_levels(bids, asks)
                    broken = {"expected_prevSeqId": last, "prevSeqId": prev, "seqId": seq}
                    self.break_book(out, book, inst_id, ts_recv, "gap", broken)
                    continue
                book.apply_update(out, ts_exchange, ts_recv, bids, asks, seq)
                book.last_seq = seq
            if ts_exchange > self.newest_ts:
                self.newest_ts = ts_exchange
            flags = self.time_flags.flags(ts_exchange, ts_recv)
            if flags:
                _or_flags(rows, before, flags)
            if checksum and self.verify_checksums:
                expected = okx_checksum(book.book)
                self.checksums_verified += 1
                if expected != checksum:
                    _or_flags(rows, before, int(Flags.MAYBE_BAD_BOOK))
                    mismatch = {"checksum": checksum, "computed": expected, "seqId": seq, "action": action}
                    self.break_book(out, book, inst_id, ts_recv, "checksum_mismatch", mismatch)
                    continue
            else:
                self.checksums_unverified += 1
            if book.book.is_crossed():
                crossed = {"bid": book.book.best_bid(), "ask": book.book.best_ask(), "seqId": seq}
                self.book_event(out, book, ts_recv, "crossed_book", crossed)

    def validate_levels(self, bids: list[Any], asks: list[Any]) -> None:
        """:class:`ParseError` when levels that are not applied now could not be applied."""
        limits = self.limits
        parse_levels(bids, limits.max_price, limits.max_size)
        parse_levels(asks, limits.max_price, limits.max_size)

    def book_event(
        self, out: RecordBuffer, book: SyncedBook, ts_recv: int, kind: str, detail: dict[str, Any]
    ) -> None:
        """A feed event about one book that leaves it in sync (duplicate, crossed book)."""
        emit_event(out, self.exchange, book.symbol, "book", ts_recv, kind, detail)

    def break_book(
        self,
        out: RecordBuffer,
        book: SyncedBook,
        inst_id: str,
        ts_recv: int,
        kind: str,
        detail: dict[str, Any],
    ) -> None:
        """A gap or checksum failure: the book is cleared and renewed by resubscribing (that one only)."""
        book.gap(out, ts_recv, kind, detail)
        self.resubscribe_requests.add(inst_id)

    # -- best bid/offer ------------------------------------------------------------------------
    def on_bbo_tbt(self, ts_recv: int, inst_id: Any, data: list[Any], out: RecordBuffer) -> None:
        """A ``bbo-tbt`` push: best level of each side, with the book's ``seqId``."""
        symbol = self.symbols.name(inst_id)
        for entry in data:
            bids, asks = entry["bids"], entry["asks"]
            if not isinstance(bids, list) or not isinstance(asks, list):
                raise ParseError("bbo bids/asks are not lists", symbol, "bbo")
            bid_price = bid_size = ask_price = ask_size = None
            if bids:
                bid_price, bid_size = positive_price(bids[0][0], "bid price"), non_negative_size(bids[0][1])
            if asks:
                ask_price, ask_size = positive_price(asks[0][0], "ask price"), non_negative_size(asks[0][1])
            seq = entry.get("seqId")
            if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
                raise ParseError("seqId is not an integer", symbol, "bbo")
            self.bbo_row(
                out, symbol, ms_to_ns(entry["ts"]), ts_recv, bid_price, bid_size, ask_price, ask_size, seq
            )

    def on_tickers(self, ts_recv: int, inst_id: Any, data: list[Any], out: RecordBuffer) -> None:
        """A ``tickers`` push: best bid/offer without a sequence."""
        symbol = self.symbols.name(inst_id)
        for t in data:
            bid_price = _optional_price(t["bidPx"], "bid price")
            bid_size = _optional_size(t["bidSz"], "bid size")
            ask_price = _optional_price(t["askPx"], "ask price")
            ask_size = _optional_size(t["askSz"], "ask size")
            self.bbo_row(
                out, symbol, ms_to_ns(t["ts"]), ts_recv, bid_price, bid_size, ask_price, ask_size, None
            )

    def bbo_row(
        self,
        out: RecordBuffer,
        symbol: str,
        ts_exchange: int,
        ts_recv: int,
        bid_price: float | None,
        bid_size: float | None,
        ask_price: float | None,
        ask_size: float | None,
        seq: int | None,
    ) -> None:
        """Appends one ``bbo`` row (either bbo channel) and advances the newest exchange time."""
        if ts_exchange > self.newest_ts:
            self.newest_ts = ts_exchange
        self.emit_bbo(out, symbol, ts_exchange, ts_recv, bid_price, bid_size, ask_price, ask_size, seq)

    # -- derivatives channels --------------------------------------------------------------------
    def on_mark_price(self, ts_recv: int, inst_id: Any, data: list[Any], out: RecordBuffer) -> None:
        """A ``mark-price`` push: a ``mark_price`` row, with the latest index price of its index."""
        symbol = self.symbols.name(inst_id)
        index = self.index_prices.get(index_of(inst_id))
        rows = [(ms_to_ns(m["ts"]), positive_price(m["markPx"], "markPx")) for m in data]
        for ts_exchange, mark in rows:
            self.emit_mark_price(out, symbol, ts_exchange, ts_recv, mark, index)

    def on_index_tickers(self, inst_id: Any, data: list[Any]) -> None:
        """An ``index-tickers`` push: remembered for the next mark price of that index (no row)."""
        if not isinstance(inst_id, str):
            raise ParseError("index-tickers instId is not a string", channel="mark")
        for entry in data:
            self.index_prices[inst_id] = positive_price(entry["idxPx"], "idxPx")

    def on_funding_rate(self, ts_recv: int, inst_id: Any, data: list[Any], out: RecordBuffer) -> None:
        """A ``funding-rate`` push: the current period's rate, the predicted next one when sent, and
        the time it is settled (``fundingTime``)."""
        symbol = self.symbols.name(inst_id)
        rows = []
        for f in data:
            predicted = f.get("nextFundingRate")
            rows.append(
                (
                    ms_to_ns(f["ts"]),
                    funding_rate(f["fundingRate"], symbol, "fundingRate"),
                    None if predicted in (None, "") else funding_rate(predicted, symbol, "nextFundingRate"),
                    ms_to_ns(f["fundingTime"]),
                )
            )
        for ts_exchange, rate, predicted_rate, next_time in rows:
            self.emit_funding(out, symbol, ts_exchange, ts_recv, rate, predicted_rate, next_time)

    def on_open_interest(self, ts_recv: int, inst_id: Any, data: list[Any], out: RecordBuffer) -> None:
        """An ``open-interest`` push: ``oi`` (contracts) and ``oiUsd`` (its value in USD)."""
        symbol = self.symbols.name(inst_id)
        rows = [
            (ms_to_ns(o["ts"]), non_negative_size(o["oi"], "oi"), _optional_size(o.get("oiUsd"), "oiUsd"))
            for o in data
        ]
        for ts_exchange, oi, value in rows:
            self.emit_open_interest(out, symbol, ts_exchange, ts_recv, oi, value)

    def on_liquidation_orders(self, ts_recv: int, data: list[Any], out: RecordBuffer) -> None:
        """A ``liquidation-orders`` push (one instrument type): one row per liquidation of the
        instruments this connection subscribed (all of them when it subscribed none by instId)."""
        rows = []
        for entry in data:
            inst_id = entry["instId"]
            if self.subscribed_instruments and inst_id not in self.subscribed_instruments:
                self.liquidations_elsewhere += 1
                continue
            symbol = self.symbols.name(inst_id)
            details = entry["details"]
            if not isinstance(details, list):
                raise ParseError("liquidation details is not a list", symbol, "liquidations")
            for d in details:
                side = LIQUIDATION_SIDES.get(d["side"]) if isinstance(d["side"], str) else None
                if side is None:
                    raise ParseError(f"unknown side {str(d['side'])[:20]!r}", symbol, "liquidations")
                price = positive_price(d["bkPx"], "bkPx")
                size = positive_price(d["sz"], "sz")
                rows.append((symbol, ms_to_ns(d["ts"]), side, price, size))
        for symbol, ts_exchange, side, price, size in rows:  # all or nothing: a bad one adds no row
            self.emit_liquidation(out, symbol, ts_exchange, ts_recv, None, side, price, size)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """Books and subscription state start over on the next connection (trade ids are kept)."""
        for book in self.books.values():
            book.reset()
        self.trade_snapshot_due.clear()
        self.resubscribe_requests.clear()
        self.index_prices.clear()


class OkxDialect(ExchangeDialect):
    """OKX v5 public: endpoint, subscribe/resubscribe frames, application ping, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://ws.okx.com:8443"
    book_checksum: ClassVar[bool] = True
    #: perpetual swaps: the demo shows every channel (spot instruments have no derivatives channels)
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTC-USDT-SWAP", "ETH-USDT-SWAP")
    default_rest_url: ClassVar[str | None] = None  # books come over the websocket
    #: channel subscriptions per connection (OKX limits request size, not a count; keep requests small)
    max_streams_per_connection: ClassVar[int] = 300
    #: OKX closes a connection silent for 30 s; it answers the text ``ping`` with ``pong``.
    app_ping: ClassVar[tuple[str, float] | None] = ("ping", 20.0)
    #: 3 connection requests/s per IP; 480 subscribe/unsubscribe/login requests per hour per connection
    limits: ClassVar[VenueLimits] = VenueLimits(
        connections_per_window=3, connection_window_s=1.0, subscribe_requests_per_hour=480
    )
    #: swaps and futures carry the derivatives channels (spot instruments subscribe none of them)
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, "funding", "mark", "open_interest", "liquidations")

    def __init__(self, options: DialectOptions | None = None) -> None:
        super().__init__(options)
        extra = self.options.extra
        self.book_channel = str(extra.get("book_channel", "books"))
        self.bbo_channel = str(extra.get("bbo_channel", "bbo-tbt"))
        if self.book_channel in LOGIN_BOOK_CHANNELS:
            raise ValueError(
                f"okx book_channel {self.book_channel!r} needs a logged-in VIP account (OKX answers "
                f"'60011 Please log in'); the public collector offers 'books' (400 levels, 100 ms)"
            )
        if self.book_channel not in PUBLIC_BOOK_CHANNELS:
            raise ValueError(
                f"okx book_channel must be one of {sorted(PUBLIC_BOOK_CHANNELS)}, not {self.book_channel!r}"
            )
        if self.bbo_channel not in BBO_CHANNELS:
            raise ValueError(
                f"okx bbo_channel must be one of {sorted(BBO_CHANNELS)}, not {self.bbo_channel!r}"
            )

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USDT-PERP`` -> ``BTC-USDT-SWAP``; ``btcusdt`` -> ``BTC-USDT``; OKX ids unchanged."""
        upper = symbol.upper().replace("/", "-")
        if upper.endswith("-PERP"):
            return upper[: -len("-PERP")] + "-SWAP"
        if "-" not in upper:
            base, quote = split_binance_symbol(upper)
            return f"{base}-{quote}"
        return upper

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(normalise_inst_id(native.upper()))

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        base = ws_url.rstrip("/")
        return base if base.endswith(WS_PATH) else base + WS_PATH

    def channel_names(self, sub: Subscription) -> list[str]:
        """OKX channel names of a subscription's market channels."""
        names = {"trades": "trades", "book": self.book_channel, "bbo": self.bbo_channel}
        return [names[c] for c in sub.channels if c in names]

    def subscription_args(self, sub: Subscription) -> list[dict[str, str]]:
        """Every subscribe argument of a subscription: market channels per instrument; derivatives
        channels for swaps and futures only (``funding-rate`` for swaps; ``mark-price`` with the
        ``index-tickers`` of its index; ``open-interest``), and one ``liquidation-orders`` per
        instrument type. Listed once each, in that order."""
        market = self.channel_names(sub)
        args: list[dict[str, str]] = []
        seen: set[tuple[str, str]] = set()
        liquidation_types: list[str] = []

        def add(channel: str, key: str, value: str) -> None:
            if (channel, value) not in seen:
                seen.add((channel, value))
                args.append({"channel": channel, key: value})

        for s in sub.symbols:
            for name in market:
                add(name, "instId", s)
            kind = inst_type(s)
            if kind not in DERIVATIVE_INST_TYPES:
                continue
            for c in sub.channels:
                if c == "funding" and kind == "SWAP":
                    add("funding-rate", "instId", s)
                elif c == "mark":
                    add("index-tickers", "instId", index_of(s))
                    add("mark-price", "instId", s)
                elif c == "open_interest":
                    add("open-interest", "instId", s)
                elif c == "liquidations" and kind not in liquidation_types:
                    liquidation_types.append(kind)
        for kind in liquidation_types:
            add("liquidation-orders", "instType", kind)
        return args

    def _requests(self, op: str, args: list[dict[str, str]]) -> list[str]:
        return [
            orjson.dumps({"op": op, "args": args[i : i + ARGS_PER_REQUEST]}).decode()
            for i in range(0, len(args), ARGS_PER_REQUEST)
        ]

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        return self._requests("subscribe", self.subscription_args(sub))

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        """Unsubscribe then subscribe the book of some instruments: OKX answers with a fresh snapshot."""
        if "book" not in sub.channels:
            return []
        args = [{"channel": self.book_channel, "instId": s} for s in native_symbols]
        return self._requests("unsubscribe", args) + self._requests("subscribe", args)

    def new_normaliser(self) -> Normaliser:
        return OkxNormaliser(verify_checksums=self.options.verify_checksums)

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return OkxSimulator(self, config)

    # -- instruments (collectors/venues/okx_instruments.py) --------------------------------------
    instruments_rest_url: ClassVar[str | None] = "https://www.okx.com"

    def instruments_paths(self) -> list[str]:
        return [f"{okx_instruments.PATH}?instType={t}" for t in okx_instruments.INST_TYPES]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return okx_instruments.parse_okx_instruments(self, body, ts_recv)

    async def fetch_instruments(
        self,
        http: aiohttp.ClientSession,
        rest_url: str,
        spend: Callable[[int], Awaitable[None]] | None = None,
    ) -> list[Instrument]:
        """Spot, swaps and futures (:meth:`instruments_paths`), then the options of every underlying
        ``public/underlying`` lists (:func:`.okx_instruments.fetch_options`)."""
        out = await super().fetch_instruments(http, rest_url, spend)
        out.extend(await okx_instruments.fetch_options(self, http, rest_url, spend))
        return out


#: OKX channel name -> our channel
SIM_CHANNELS = {
    "trades": "trades",
    "books": "book",
    "books50-l2-tbt": "book",
    "books-l2-tbt": "book",
    "bbo-tbt": "bbo",
    "tickers": "bbo",
    "funding-rate": "funding",
    "mark-price": "mark",
    "open-interest": "open_interest",
}
#: simulator: seconds between two pushes of the slower derivatives channels (OKX: funding every 30 to
#: 90 s, open interest every 3 s); mark and index prices are pushed once a second here
SIM_FUNDING_EVERY_S = 30
SIM_OPEN_INTEREST_EVERY_S = 3
#: simulator: one trade in this many (by id) comes from a liquidation order
SIM_LIQUIDATION_EVERY = 4


class OkxSimulator(ExchangeSimulator):
    """OKX v5 public on loopback: ``/ws/v5/public``, subscribe/unsubscribe, ping/pong, book snapshots
    with ``seqId``/``prevSeqId`` and checksums, the last trade replayed on subscribe."""

    ws_paths = (WS_PATH,)

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.last_trade: dict[str, tuple[str, str, str, str, int]] = {}  # instId -> (id, px, sz, side, ms)
        self._rendered: tuple[MarketStep, dict[str, list[str]]] | None = None
        #: per instrument: the second of its last mark/index push
        self._derivative_second: dict[str, int] = {}

    # -- client requests -------------------------------------------------------------------------
    async def on_message(self, session: ClientSession, text: str) -> None:
        if text == "ping":
            self.send(session, "pong")
            return
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.send(session, '{"event":"error","code":"60012","msg":"Invalid request"}')
            return
        op = msg.get("op") if isinstance(msg, dict) else None
        args = msg.get("args") if isinstance(msg, dict) else None
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
            self.send(session, '{"event":"error","code":"60012","msg":"Invalid request"}')
            return
        if not self.subscribe_request(session, len(args)):
            self.send(session, '{"event":"error","code":"60014","msg":"Requests too frequent."}')
            return
        replays: list[str] = []
        for arg in args:
            channel = arg.get("channel") if isinstance(arg, dict) else None
            inst_id = arg.get("instId") if isinstance(arg, dict) else None
            if channel in ("index-tickers", "liquidation-orders") and self.derivative_subscription(
                session, op, arg
            ):
                continue
            ours = SIM_CHANNELS.get(str(channel))
            if ours is None or inst_id not in self.markets:
                self.send(
                    session,
                    orjson.dumps(
                        {
                            "event": "error",
                            "code": "60018",
                            "msg": f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist.",
                        }
                    ).decode(),
                )
                continue
            names: dict[str, str] = session.state.setdefault("names", {})
            if op == "unsubscribe":
                session.subscriptions.discard((ours, inst_id))
                self.send(session, orjson.dumps({"event": "unsubscribe", "arg": arg}).decode())
                continue
            session.subscriptions.add((ours, inst_id))
            names[ours] = str(channel)
            self.send(session, orjson.dumps({"event": "subscribe", "arg": arg, "connId": "sim"}).decode())
            if ours == "book":
                self.send(session, self.book_snapshot_frame(str(channel), inst_id))
            elif ours == "trades" and inst_id in self.last_trade:
                replays.append(self.trade_frame(inst_id, *self.last_trade[inst_id]))
            elif ours in ("funding", "open_interest"):  # the current value, right after the ack
                ms = self.now_exchange_ns() // 1_000_000
                model = self.markets[inst_id]
                make = self.funding_frame if ours == "funding" else self.open_interest_frame
                self.send(session, make(inst_id, model, ms))
        # OKX pushes the latest trade of each instrument right after a trades subscription.
        for frame in replays:
            self.send(session, frame)

    def derivative_subscription(self, session: ClientSession, op: Any, arg: dict[str, Any]) -> bool:
        """``index-tickers`` (by index instId) and ``liquidation-orders`` (by instType): True when
        served (acknowledged), False for an argument this simulator does not know (an error then)."""
        channel = arg.get("channel")
        if channel == "index-tickers":
            key = arg.get("instId")
            known = any(index_of(m) == key for m in self.markets if inst_type(m) in DERIVATIVE_INST_TYPES)
            subscription = ("index", str(key))
        else:
            key = arg.get("instType")
            known = key in ("SWAP", "FUTURES", "MARGIN", "OPTION")
            subscription = ("liquidations", str(key))
        if not known:
            return False
        if op == "unsubscribe":
            session.subscriptions.discard(subscription)
            self.send(session, orjson.dumps({"event": "unsubscribe", "arg": arg}).decode())
        else:
            session.subscriptions.add(subscription)
            self.send(session, orjson.dumps({"event": "subscribe", "arg": arg, "connId": "sim"}).decode())
        return True

    def funding_frame(self, inst_id: str, model: MarketModel, ms: int) -> str:
        """A ``funding-rate`` push (the current period settles at the next 8-hour boundary)."""
        interval = 8 * 3600 * 1000
        settle = (ms // interval + 1) * interval
        entry = {
            "formulaType": "withRate",
            "fundingRate": "0.0001" if model.update_id % 2 else "-0.00002",
            "fundingTime": str(settle),
            "instId": inst_id,
            "instType": "SWAP",
            "method": "current_period",
            "maxFundingRate": "0.00375",
            "minFundingRate": "-0.00375",
            "nextFundingRate": "",
            "nextFundingTime": str(settle + interval),
            "premium": "0.0001",
            "settFundingRate": "0.0001",
            "settState": "settled",
            "ts": str(ms),
        }
        return orjson.dumps({"arg": {"channel": "funding-rate", "instId": inst_id}, "data": [entry]}).decode()

    def open_interest_frame(self, inst_id: str, model: MarketModel, ms: int) -> str:
        """An ``open-interest`` push: contracts, coins and USD."""
        (bp, _), (ap, _) = model.best()
        mid = (float(bp) + float(ap)) / 2
        oi = 100_000 + model.update_id % 9_973
        entry = {
            "instId": inst_id,
            "instType": inst_type(inst_id),
            "oi": str(oi),
            "oiCcy": f"{oi * 0.01:.2f}",
            "oiUsd": f"{oi * 0.01 * mid:.2f}",
            "ts": str(ms),
        }
        return orjson.dumps(
            {"arg": {"channel": "open-interest", "instId": inst_id}, "data": [entry]}
        ).decode()

    def derivative_frames(self, step: MarketStep) -> dict[str, list[str]]:
        """One step's derivatives pushes (swaps and futures only), keyed by channel."""
        inst_id, ms, model = step.symbol, step.ts_ns // 1_000_000, step.model
        kind = inst_type(inst_id)
        if kind not in DERIVATIVE_INST_TYPES:
            return {}
        frames: dict[str, list[str]] = {}
        second = ms // 1000
        if self._derivative_second.get(inst_id) != second:
            self._derivative_second[inst_id] = second
            (bp, _), (ap, _) = model.best()
            mid = (float(bp) + float(ap)) / 2
            index = index_of(inst_id)
            frames["index-tickers"] = [
                orjson.dumps(
                    {
                        "arg": {"channel": "index-tickers", "instId": index},
                        "data": [{"instId": index, "idxPx": f"{mid * 0.9999:.2f}", "ts": str(ms)}],
                    }
                ).decode()
            ]
            frames["mark-price"] = [
                orjson.dumps(
                    {
                        "arg": {"channel": "mark-price", "instId": inst_id},
                        "data": [
                            {"instType": kind, "instId": inst_id, "markPx": f"{mid:.2f}", "ts": str(ms)}
                        ],
                    }
                ).decode()
            ]
            if kind == "SWAP" and second % SIM_FUNDING_EVERY_S == 0:
                frames["funding-rate"] = [self.funding_frame(inst_id, model, ms)]
            if second % SIM_OPEN_INTEREST_EVERY_S == 0:
                frames["open-interest"] = [self.open_interest_frame(inst_id, model, ms)]
        details = [
            {
                "bkLoss": "0",
                "bkPx": t.price,
                "ccy": "",
                "posSide": "net",
                "side": t.side,
                "sz": str(max(1, round(float(t.size) * 100))),
                "ts": str(ms),
            }
            for t in step.trades
            if t.trade_id % SIM_LIQUIDATION_EVERY == 0
        ]
        if details:
            entry = {
                "details": details,
                "instFamily": index_of(inst_id),
                "instId": inst_id,
                "instType": kind,
                "uly": index_of(inst_id),
            }
            frames["liquidation-orders"] = [
                orjson.dumps(
                    {"arg": {"channel": "liquidation-orders", "instType": kind}, "data": [entry]}
                ).decode()
            ]
        return frames

    # -- frames ----------------------------------------------------------------------------------
    def book_snapshot_frame(self, channel: str, inst_id: str) -> str:
        """A ``books`` snapshot of the current market (``prevSeqId`` -1, with checksum)."""
        model = self.markets[inst_id]
        bids, asks = model.top(400)
        entry = {
            "asks": [[p, s, "0", "1"] for p, s in asks],
            "bids": [[p, s, "0", "1"] for p, s in bids],
            "ts": str(self.now_exchange_ns() // 1_000_000),
            "checksum": model_checksum(model),
            "prevSeqId": -1,
            "seqId": model.update_id,
        }
        return orjson.dumps(
            {"arg": {"channel": channel, "instId": inst_id}, "action": "snapshot", "data": [entry]}
        ).decode()

    def trade_frame(self, inst_id: str, trade_id: str, px: str, sz: str, side: str, ms: int) -> str:
        """One ``trades`` push."""
        return orjson.dumps(
            {
                "arg": {"channel": "trades", "instId": inst_id},
                "data": [
                    {
                        "instId": inst_id,
                        "tradeId": trade_id,
                        "px": px,
                        "sz": sz,
                        "side": side,
                        "ts": str(ms),
                        "count": "1",
                        "source": "0",
                    }
                ],
            }
        ).decode()

    def step_frames(self, step: MarketStep) -> dict[str, list[str]]:
        """Frames of one market step per OKX channel (rendered once, shared by every client)."""
        if self._rendered is not None and self._rendered[0] is step:
            return self._rendered[1]
        inst_id, ms = step.symbol, step.ts_ns // 1_000_000
        model = step.model
        trades = []
        for t in step.trades:
            trades.append(self.trade_frame(inst_id, str(t.trade_id), t.price, t.size, t.side, ms))
            self.last_trade[inst_id] = (str(t.trade_id), t.price, t.size, t.side, ms)
        checksum = model_checksum(model)
        if step.corrupt_checksum:
            checksum = to_signed32(checksum ^ 0x5A5A5A5A)
        update = {
            "asks": [[p, s, "0", "0" if float(s) == 0 else "1"] for p, s in step.asks],
            "bids": [[p, s, "0", "0" if float(s) == 0 else "1"] for p, s in step.bids],
            "ts": str(ms),
            "checksum": checksum,
            "prevSeqId": step.first_update_id - 1,
            "seqId": step.update_id,
        }
        (bp, bq), (ap, aq) = model.best()
        frames: dict[str, list[str]] = {"trades": trades}
        for channel in ("books", "books50-l2-tbt", "books-l2-tbt"):
            frames[channel] = [
                orjson.dumps(
                    {"arg": {"channel": channel, "instId": inst_id}, "action": "update", "data": [update]}
                ).decode()
            ]
        frames["bbo-tbt"] = [
            orjson.dumps(
                {
                    "arg": {"channel": "bbo-tbt", "instId": inst_id},
                    "data": [
                        {
                            "asks": [[ap, aq, "0", "1"]],
                            "bids": [[bp, bq, "0", "1"]],
                            "ts": str(ms),
                            "seqId": step.update_id,
                        }
                    ],
                }
            ).decode()
        ]
        frames["tickers"] = [
            orjson.dumps(
                {
                    "arg": {"channel": "tickers", "instId": inst_id},
                    "data": [
                        {
                            "instType": "SWAP" if inst_id.endswith("-SWAP") else "SPOT",
                            "instId": inst_id,
                            "last": self.last_trade.get(inst_id, ("", bp))[1],
                            "askPx": ap,
                            "askSz": aq,
                            "bidPx": bp,
                            "bidSz": bq,
                            "ts": str(ms),
                        }
                    ],
                }
            ).decode()
        ]
        frames.update(self.derivative_frames(step))
        self._rendered = (step, frames)
        return frames

    def instrument_routes(self) -> list[web.RouteDef]:
        return [
            web.get(okx_instruments.PATH, self.instruments_handler),
            *self.instruments_routes_of(
                [okx_instruments.UNDERLYING_PATH], lambda: okx_instruments.underlying_body(self.markets)
            ),
        ]

    async def instruments_handler(self, request: web.Request) -> web.Response:
        """``GET /api/v5/public/instruments?instType=..``: this simulator's markets of that type (options:
        of the ``uly`` or ``instFamily`` asked for, one of which OKX requires for them)."""
        fault = self.instruments_fault_response()
        if fault is not None:
            return fault
        inst_type = request.query.get("instType", "")
        family = request.query.get("instFamily", "").upper()
        underlying = request.query.get("uly", "").upper()
        if inst_type not in (*okx_instruments.INST_TYPES, "OPTION"):
            return web.json_response({"code": "51000", "msg": "Parameter instType error", "data": []})
        if inst_type == "OPTION" and not (family or underlying):
            return web.json_response(
                {"code": "50014", "msg": "Parameter instFamily can not be empty.", "data": []}
            )
        body = okx_instruments.okx_instruments_body(inst_type, self.markets, family, underlying)
        return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        frames = self.step_frames(step)
        sym = step.symbol
        names: dict[str, str] = session.state.get("names", {})
        other = frames[names.get("bbo", "bbo-tbt")] if session.subscribed("bbo", sym) else []
        if len(frames) > 6:  # this step has derivatives pushes
            other = list(other)
            kind = inst_type(sym)
            if "index-tickers" in frames and session.subscribed("index", index_of(sym)):
                other += frames["index-tickers"]
            for channel, ours in (
                ("mark-price", "mark"),
                ("funding-rate", "funding"),
                ("open-interest", "open_interest"),
            ):
                if channel in frames and session.subscribed(ours, sym):
                    other += frames[channel]
            if "liquidation-orders" in frames and session.subscribed("liquidations", kind):
                other += frames["liquidation-orders"]
        return (
            frames["trades"] if session.subscribed("trades", sym) else [],
            frames[names.get("book", "books")] if session.subscribed("book", sym) else [],
            other,
        )


def model_checksum(model: MarketModel) -> int:
    """The OKX checksum of a simulated market's current book (its best 25 levels per side)."""
    book = L2Book()
    bids, asks = model.top(CHECKSUM_DEPTH)
    for side, levels in ((BID, bids), (ASK, asks)):
        for p, s in levels:
            book.set_level(side, float(p), float(s), p, s)
    return okx_checksum(book)


DIALECT_CLASS = OkxDialect

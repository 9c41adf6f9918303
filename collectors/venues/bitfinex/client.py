"""Bitfinex spot and perpetuals (exchange id ``bitfinex``): public websocket v2, ``wss://api-pub.bitfinex.com/ws/2``.

One id covers both markets, as they share one endpoint, one protocol and one symbol space (``tBTCUSD``
spot, ``tBTCF0:USTF0`` perpetual); tardis.dev also files both under ``bitfinex``.

Protocol, as Bitfinex documents it (checked 2026-12-05):
- the server greets with ``{"event":"info","version":2,...}``; a ``conf`` event sets per-connection
  flags. We send ``{"event":"conf","flags":229376}``: ``SEQ_ALL`` (65536) appends one sequence number,
  counting every message of the connection (heartbeats included), to every array message;
  ``TIMESTAMP`` (32768) then appends the message's millisecond time (``[CHAN_ID, ..., SEQ, MTS]``: the
  documentation names the flag without showing the layout; this is how tardis.dev's recordings of
  Bitfinex, made with the same two flags, read it), which becomes ``ts_exchange`` of book and bbo rows;
  ``OB_CHECKSUM`` (131072) makes the server send ``[CHAN_ID,"cs",CHECKSUM,SEQ,MTS]`` after book changes.
  The flags actually in force are read from the server's ``conf`` answer, so captures made with other
  flags (the shared recording: ``SEQ_ALL`` only) replay as they were received.
- subscribe one channel per frame; the answer ``{"event":"subscribed","chanId":N,...}`` maps the
  numeric channel id of every later ``[N, payload, SEQ]`` frame. ``[N,"hb",SEQ]`` is a heartbeat.
  Unsubscribe takes the channel id: ``{"event":"unsubscribe","chanId":N}``.
- info codes: 20051 (server stop/restart: please reconnect) is recorded as ``reconnect_requested`` and
  the connection reconnects (``Normaliser.reconnect_request``); 20060/20061 (maintenance start/end) as
  ``maintenance_start``/``maintenance_end``. ``{"event":"error",...}`` becomes ``venue_error``.
- limits: 25 channel subscriptions per connection; 20 connections per minute on ``api-pub``.

Channels:
- ``book`` (``prec P0, freq F0, len 25``; ``len`` 1, 100 or 250 with ``DialectOptions.book_depth``):
  snapshot ``[N, [[PRICE, COUNT, AMOUNT], ...]]``, then one level per message ``[N, [PRICE, COUNT,
  AMOUNT]]``; ``AMOUNT > 0`` is a bid, ``< 0`` an ask; ``COUNT 0`` removes the level (``AMOUNT`` 1 for
  bids, -1 for asks). Book rows carry the connection sequence.
- checksum: CRC32 of the best 25 bids and asks interleaved (bid 1, ask 1, bid 2, ...), each level as
  ``PRICE:AMOUNT`` (asks with their negative amount), all joined with ``:``, compared as a **signed**
  32-bit integer. The numbers are printed as JavaScript prints them (Bitfinex's reference code is
  JavaScript): shortest round-trip digits, integers without ``.0``, exponent form below 1e-6. Checked
  against the two books and checksums of Bitfinex's own Python client tests
  (https://github.com/bitfinexcom/bitfinex-api-py, ``bfxapi/tests/test_ws_orderbook.py``).
- sequence (``gap_scope = "connection"``): every message's ``SEQ`` must be the previous one + 1. A jump
  cannot say whose message was lost, so every book of the connection gets a ``gap`` and is resubscribed
  (unsubscribe by channel id, then subscribe; the new snapshot is the resync). A checksum mismatch
  resubscribes that one book. A sequence that goes back is a ``parse_error`` (the frame is dropped);
  50 in a row are taken as the server's new count (a bogus value cannot freeze the connection).
- ``trades``: snapshot ``[N, [[ID, MTS, AMOUNT, PRICE], ...]]`` (recent trades, replayed on every
  subscribe), then ``[N, "te", [ID, MTS, AMOUNT, PRICE]]`` at execution and ``[N, "tu", [...]]`` for the
  same trade once stored: one row per ``ID`` (repeats dropped, across reconnects too). The sign of
  ``AMOUNT`` is the taker's side (> 0 bought, < 0 sold); size is its absolute value.
- ``ticker`` -> ``bbo``: ``[BID, BID_SIZE, ASK, ASK_SIZE, ...]``. The v2 reference documents
  ``BID_SIZE`` and ``ASK_SIZE`` as the sum of the 25 best levels (v1 said "size of the last highest
  bid"), not the best level's size (the shared recording shows it: ticker bid size 76.17 against 0.69 at
  the best bid), so bbo rows carry the best prices and **null sizes**; the sizes at the top are in the
  ``book`` dataset.
- ``status`` (perpetuals, derivatives channels ``funding``, ``mark``, ``open_interest``):
  ``key deriv:tBTCF0:USTF0`` sends ``[TIME_MS, _, DERIV_PRICE, SPOT_PRICE, _, INSURANCE_FUND_BALANCE, _,
  NEXT_FUNDING_EVT_MTS, NEXT_FUNDING_ACCRUED, NEXT_FUNDING_STEP, _, CURRENT_FUNDING, _, _, MARK_PRICE, _,
  _, OPEN_INTEREST, ...]``: funding = ``CURRENT_FUNDING``, predicted = ``NEXT_FUNDING_ACCRUED``, next
  funding time; mark = ``MARK_PRICE`` with index ``SPOT_PRICE``; open interest in contracts (base units).
- ``status`` ``key liq:global`` (``liquidations``): ``[["pos", POS_ID, MTS, _, SYMBOL, AMOUNT, BASE_PRICE,
  _, IS_MATCH, IS_MARKET_SOLD, _, LIQUIDATION_PRICE], ...]`` for every market, perpetuals and margin
  positions on spot pairs alike. ``IS_MATCH`` is 0 for the trigger and 1 for the market execution, so one
  position can come twice: one row per ``POS_ID``, from its first message, at ``LIQUIDATION_PRICE``; size
  ``|AMOUNT|`` (the position's amount); side is the liquidation order's: a long position (``AMOUNT > 0``)
  is closed by a sell. Rows are kept only for symbols this connection subscribed, so several connections
  never write the same liquidation twice.
- funding: ``CURRENT_FUNDING`` is the rate applied in the current 8-hour period, ``NEXT_FUNDING_ACCRUED``
  the rate accrued so far for the next one (stored as ``predicted_rate``).

Reference data (the ``instruments`` dataset, ``all`` and globs): :mod:`.instruments`.

Symbols: ``tBTCUSD`` -> ``BTC-USD``, ``tAAVE:USD`` -> ``AAVE-USD``, ``tBTCF0:USTF0`` -> ``BTC-USDT-PERP``
(``UST`` is Bitfinex's code for USDT; other codes are kept). Funding currencies (``fUSD``) are not covered.

Sources: https://docs.bitfinex.com/docs/ws-general, https://docs.bitfinex.com/docs/ws-public,
https://docs.bitfinex.com/reference/ws-public-books, https://docs.bitfinex.com/reference/ws-public-trades,
https://docs.bitfinex.com/reference/ws-public-ticker, https://docs.bitfinex.com/reference/ws-public-status,
https://docs.bitfinex.com/docs/ws-websocket-checksum (all checked 2026-12-05). Checked against the shared
recording ``bitfinex/bitfinex_cryptofeed`` (2021-04-17, ``SEQ_ALL`` on, checksums off).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar

import orjson

from schemas import Flags, RecordBuffer

from ...base import CHANNELS, DialectOptions, ExchangeDialect, Normaliser, Subscription
from ...book import ASK, BID, ResyncWatch, SymbolBooks, SyncedBook
from ...checksum import book_crc32, colon_level, colon_negated_level, to_signed32
from ...dedupe import RecentTradeIds
from ...events import ParseError, check_symbol, emit_event, funding_rate, ms_to_ns, positive_price
from ...instruments import Instrument
from ...simulator import ExchangeSimulator, SimulatorConfig

EXCHANGE = "bitfinex"
FLAG_TIMESTAMP = 32768
FLAG_SEQ_ALL = 65536
FLAG_OB_CHECKSUM = 131072
CONF_FLAGS = FLAG_TIMESTAMP | FLAG_SEQ_ALL | FLAG_OB_CHECKSUM
#: levels per side the checksum covers
CHECKSUM_DEPTH = 25
#: book length subscribed unless ``DialectOptions.book_depth`` asks for another
DEFAULT_BOOK_LENGTH = 25
#: sequence numbers behind the expected one, in a row, after which the server's count is taken as is
MAX_BACKWARDS = 50
#: Bitfinex currency codes that differ from the usual ones
_CODES = {"UST": "USDT"}
_NATIVE_CODES = {v: k for k, v in _CODES.items()}
_INFO_EVENTS = {20051: "reconnect_requested", 20060: "maintenance_start", 20061: "maintenance_end"}
_DERIV = ("funding", "mark", "open_interest")


def js_number(value: float | int) -> str:
    """A JSON number printed as JavaScript's ``String(x)`` prints it (what Bitfinex's checksum uses)."""
    if isinstance(value, int):
        return str(value)
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits_t, exponent = Decimal(repr(abs(value))).as_tuple()[1:]
    digits = "".join(map(str, digits_t)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    # value = 0.<digits> x 10^n
    n = exponent + len("".join(map(str, digits_t)))
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def book_checksum(book: SyncedBook) -> int:
    """Bitfinex's signed CRC32 of a book: best 25 bids and asks interleaved, ``price:amount`` each."""
    crc = book_crc32(
        book.book, CHECKSUM_DEPTH, colon_level, ask_text=colon_negated_level, interleave=True, separator=":"
    )
    return to_signed32(crc)


def _number(value: Any, what: str) -> float | int:
    """A JSON number (not a string, not a bool), finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(f"{what} is not a number: {str(value)[:40]!r}")
    if isinstance(value, float) and not (-1e300 < value < 1e300):
        raise ParseError(f"{what} out of range: {str(value)[:40]!r}")
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (0 <= value < 2**63):
        raise ParseError(f"bad {what} {str(value)[:40]!r}")
    return value


def normalise_pair(native: Any) -> str:
    """``tBTCUSD`` -> ``BTC-USD``, ``tAAVE:USD`` -> ``AAVE-USD``, ``tBTCF0:USTF0`` -> ``BTC-USDT-PERP``."""
    if not isinstance(native, str) or len(native) < 4 or native[0] != "t":
        raise ParseError(f"not a Bitfinex trading pair: {str(native)[:40]!r}")
    pair = native[1:]
    if ":" in pair:
        base, _, quote = pair.partition(":")
    elif len(pair) == 6:
        base, quote = pair[:3], pair[3:]
    else:
        raise ParseError(f"not a Bitfinex trading pair: {native[:40]!r}")
    suffix = ""
    if base.endswith("F0") and quote.endswith("F0"):
        base, quote, suffix = base[:-2], quote[:-2], "-PERP"
    if not base or not quote:
        raise ParseError(f"not a Bitfinex trading pair: {native[:40]!r}")
    return f"{_CODES.get(base, base)}-{_CODES.get(quote, quote)}{suffix}"


def is_perpetual(native: str) -> bool:
    """True for ``t<BASE>F0:<QUOTE>F0`` pairs."""
    return native.startswith("t") and ":" in native and native.endswith("F0") and "F0:" in native


class BitfinexNormaliser(Normaliser):
    """Bitfinex v2 frames -> records."""

    exchange: ClassVar[str] = EXCHANGE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbols = SymbolBooks(self.exchange, normalise_pair)
        self.trade_ids = RecentTradeIds()
        self.liquidation_ids = RecentTradeIds()
        #: chanId -> (channel, native symbol or "liq:global")
        self.chans: dict[int, tuple[str, str]] = {}
        #: native symbols this connection subscribed (liquidations are kept for these only)
        self.subscribed_natives: set[str] = set()
        self.flags = 0
        self.last_seq: int | None = None
        self.backwards = 0
        #: book channel ids asked to be unsubscribed (their late messages are not applied)
        self.retiring: set[int] = set()
        self.watch = ResyncWatch()

    # -- framing ---------------------------------------------------------------------------------
    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        msg = orjson.loads(frame)
        if isinstance(msg, dict):
            self.on_event(ts_recv, msg, out)
            return
        if not isinstance(msg, list) or len(msg) < 2:
            raise ParseError("frame is neither an event nor a channel message")
        chan_id = msg[0]
        seq, mts, body = self.trailer(msg)
        if seq is not None and not self.check_seq(ts_recv, seq, out):
            return
        ts_exchange = ms_to_ns(mts) if mts is not None else None
        head = body[0] if body else None
        if head == "hb":
            return  # Bitfinex sends heartbeats even on a channel whose "subscribed" answer is still to come
        chan = self.chans.get(chan_id) if isinstance(chan_id, int) and not isinstance(chan_id, bool) else None
        if chan is None:
            raise ParseError(f"message on an unknown channel {str(chan_id)[:40]!r}")
        channel, native = chan
        if channel == "book":
            if head == "cs":
                self.on_checksum(ts_recv, chan_id, native, body[1], out)
            else:
                self.on_book(ts_recv, ts_exchange, chan_id, native, head, seq, out)
        elif channel == "trades":
            if head in ("te", "tu"):
                self.on_trades(ts_recv, native, [body[1]], out, 0)
            elif isinstance(head, list) and (not head or isinstance(head[0], list)):
                self.on_trades(ts_recv, native, head, out, int(Flags.SNAPSHOT))  # replayed on subscribe
            else:
                raise ParseError(f"unknown trades message {str(head)[:40]!r}", channel="trades")
        elif channel == "ticker":
            self.on_ticker(ts_recv, ts_exchange, native, head, seq, out)
        elif channel == "deriv":
            self.on_status(ts_recv, native, head, out)
        elif channel == "liq":
            self.on_liquidations(ts_recv, head, out)

    def trailer(self, msg: list[Any]) -> tuple[int | None, Any, list[Any]]:
        """Splits a channel message into (sequence, millisecond time as sent, body) by the connection's flags.

        ``SEQ_ALL`` appends the sequence number, ``TIMESTAMP`` then a millisecond time (``[..., SEQ, MTS]``).
        A heartbeat is accepted with or without the time.
        """
        seq_all = bool(self.flags & FLAG_SEQ_ALL)
        stamped = bool(self.flags & FLAG_TIMESTAMP)
        trail = seq_all + stamped
        if msg[1] == "hb" and len(msg) == 2 + seq_all:
            trail = seq_all
        if len(msg) < 2 + trail:
            raise ParseError("channel message without its sequence number or time")
        body = msg[1 : len(msg) - trail]
        mts = msg[-1] if stamped and trail > seq_all else None
        seq = _int(msg[1 + len(body)], "sequence number") if seq_all else None
        return seq, mts, body

    def check_seq(self, ts_recv: int, seq: int, out: RecordBuffer) -> bool:
        """Applies the connection sequence rule; False when the frame must be dropped."""
        last = self.last_seq
        if last is None or seq == last + 1:
            self.last_seq = seq
            self.backwards = 0
            return True
        if seq <= last:
            self.backwards += 1
            if self.backwards < MAX_BACKWARDS:
                raise ParseError(f"sequence went back: {seq} after {last}")
            detail = {"expected": last + 1, "got": seq, "reason": "sequence restarted"}
        else:
            detail = {"expected": last + 1, "got": seq}
        self.last_seq = seq
        self.backwards = 0
        for chan_id, (channel, native) in self.chans.items():
            if channel != "book" or chan_id in self.retiring:
                continue  # a book already being resubscribed gets its new snapshot anyway
            book = self.symbols.book(native)
            if book.synced:
                book.gap(out, ts_recv, "gap", detail)
            self.resubscribe(native, chan_id)
        return True

    def resubscribe(self, native: str, chan_id: int) -> None:
        """Asks for the book channel ``chan_id`` to be replaced by a new subscription (a new snapshot)."""
        self.retiring.add(chan_id)
        self.resubscribe_requests.add(f"{native}#{chan_id}")

    # -- events ----------------------------------------------------------------------------------
    def on_event(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        event = msg.get("event")
        if event == "subscribed":
            self.on_subscribed(msg)
        elif event == "unsubscribed":
            chan_id = msg.get("chanId")
            if isinstance(chan_id, int):
                self.chans.pop(chan_id, None)
                self.retiring.discard(chan_id)
        elif event == "conf":
            if msg.get("status") == "OK":
                self.flags = _int(msg.get("flags", 0), "conf flags")
            else:
                emit_event(out, self.exchange, None, "connection", ts_recv, "venue_error", {"conf": msg})
        elif event == "info":
            code = msg.get("code")
            kind = _INFO_EVENTS.get(code) if isinstance(code, int) else None
            if kind == "reconnect_requested":
                self.reconnect_request = "venue asked to reconnect (20051)"
            if kind is not None:
                emit_event(
                    out,
                    self.exchange,
                    None,
                    "connection",
                    ts_recv,
                    kind,
                    {"code": code, "msg": str(msg.get("msg"))[:200]},
                )
            elif "version" not in msg:
                emit_event(
                    out, self.exchange, None, "connection", ts_recv, "venue_info", {"info": str(msg)[:500]}
                )
        elif event == "error":
            emit_event(
                out,
                self.exchange,
                None,
                "connection",
                ts_recv,
                "venue_error",
                {"code": str(msg.get("code"))[:20], "msg": str(msg.get("msg"))[:200]},
            )
        elif event == "pong":
            return
        else:
            raise ParseError(f"unknown event {str(event)[:40]!r}")

    def on_subscribed(self, msg: dict[str, Any]) -> None:
        chan_id = _int(msg["chanId"], "chanId")
        channel = msg["channel"]
        if channel in ("book", "trades", "ticker"):
            native = msg["symbol"]
            self.symbols.name(native)  # validates
            self.chans[chan_id] = (channel, native)
            self.subscribed_natives.add(native)
            if channel == "book":
                self.watch.done(native)
        elif channel == "status":
            key = msg["key"]
            if key == "liq:global":
                self.chans[chan_id] = ("liq", key)
            elif isinstance(key, str) and key.startswith("deriv:"):
                native = key[len("deriv:") :]
                self.symbols.name(native)
                self.chans[chan_id] = ("deriv", native)
                self.subscribed_natives.add(native)
            else:
                raise ParseError(f"unknown status key {str(key)[:40]!r}")
        else:
            raise ParseError(f"unknown channel {str(channel)[:40]!r}")

    # -- book ------------------------------------------------------------------------------------
    def level(self, entry: Any) -> tuple[str, int, str, str]:
        """``[PRICE, COUNT, AMOUNT]`` -> (side, count, price text, |amount| text), validated (within the
        sanity bounds even when the book is not synced and the entry would not be applied)."""
        if not isinstance(entry, list) or len(entry) < 3:
            raise ParseError("book entry is not [PRICE, COUNT, AMOUNT]", channel="book")
        price = _number(entry[0], "price")
        count = _int(entry[1], "count")
        amount = _number(entry[2], "amount")
        if not 0 < price < self.limits.max_price or not abs(amount) < self.limits.max_size:
            raise ParseError(f"level out of range: {price!r} x {amount!r}", channel="book")
        if amount == 0:
            raise ParseError("book entry with amount 0", channel="book")
        return (BID if amount > 0 else ASK), count, js_number(price), js_number(abs(amount))

    def on_book(
        self,
        ts_recv: int,
        ts_exchange: int | None,
        chan_id: int,
        native: str,
        payload: Any,
        seq: int | None,
        out: RecordBuffer,
    ) -> None:
        book = self.symbols.book(native)
        if not isinstance(payload, list):
            raise ParseError("book payload is not a list", book.symbol, "book")
        snapshot = not payload or isinstance(payload[0], list)
        # validated first: a bad frame is a parse error even on a channel that is being replaced
        levels = [self.level(e) for e in payload] if snapshot else [self.level(payload)]
        if chan_id in self.retiring:
            # a channel we asked to drop; if it keeps sending, the request is repeated now and then
            self.watch.check(
                out, self.exchange, f"{native}#{chan_id}", book.symbol, ts_recv, self.resubscribe_requests
            )
            return
        if snapshot:
            bids = [(p, s) for side, _, p, s in levels if side == BID]
            asks = [(p, s) for side, _, p, s in levels if side == ASK]
            book.apply_snapshot(out, ts_exchange, ts_recv, bids, asks, seq)
            self.watch.done(native)
            return
        side, count, price, size = levels[0]
        if not book.synced:
            self.watch.check(
                out, self.exchange, f"{native}#{chan_id}", book.symbol, ts_recv, self.resubscribe_requests
            )
            return
        level = [(price, size if count > 0 else "0")]
        flags = self.time_flags.flags(ts_exchange, ts_recv) if ts_exchange is not None else 0
        if side == BID:
            book.apply_update(out, ts_exchange, ts_recv, level, [], seq, flags)
        else:
            book.apply_update(out, ts_exchange, ts_recv, [], level, seq, flags)
        book.last_seq = seq

    def on_checksum(self, ts_recv: int, chan_id: int, native: str, value: Any, out: RecordBuffer) -> None:
        book = self.symbols.book(native)
        if isinstance(value, bool) or not isinstance(value, int) or not (-(2**31) <= value < 2**31):
            raise ParseError(f"bad checksum {str(value)[:40]!r}", book.symbol, "book")
        if not book.synced or chan_id in self.retiring:
            return
        ours = book_checksum(book)
        if ours != value:
            book.gap(out, ts_recv, "checksum_mismatch", {"expected": value, "computed": ours})
            self.resubscribe(native, chan_id)

    # -- trades, ticker, status ----------------------------------------------------------------
    def on_trades(self, ts_recv: int, native: str, entries: list[Any], out: RecordBuffer, flags: int) -> None:
        """Trades of one message; ``flags`` SNAPSHOT for the recent trades a subscription replays."""
        symbol = self.symbols.name(native)
        parsed = []
        for t in entries:  # validate the whole message before any row is kept
            if not isinstance(t, list) or len(t) < 4:
                raise ParseError("trade is not [ID, MTS, AMOUNT, PRICE]", symbol, "trades")
            trade_id = str(_int(t[0], "trade id"))
            ts_exchange = ms_to_ns(t[1])
            amount = _number(t[2], "amount")
            if amount == 0:
                raise ParseError("trade with amount 0", symbol, "trades")
            price = positive_price(_number(t[3], "price"))
            parsed.append((trade_id, ts_exchange, price, abs(float(amount)), "buy" if amount > 0 else "sell"))
        for trade_id, ts_exchange, price, size, side in parsed:
            if self.trade_ids.seen(native, trade_id):
                continue  # the "tu" of a "te", or a trade replayed by a new subscription
            self.emit_trade(out, symbol, ts_exchange, ts_recv, trade_id, price, size, side, flags)

    def on_ticker(
        self,
        ts_recv: int,
        ts_exchange: int | None,
        native: str,
        payload: Any,
        seq: int | None,
        out: RecordBuffer,
    ) -> None:
        symbol = self.symbols.name(native)
        if not isinstance(payload, list) or len(payload) < 4:
            raise ParseError("ticker is not [BID, BID_SIZE, ASK, ASK_SIZE, ...]", symbol, "bbo")
        bid = positive_price(_number(payload[0], "bid"), "bid")
        ask = positive_price(_number(payload[2], "ask"), "ask")
        _number(payload[1], "bid size")
        _number(payload[3], "ask size")
        # BID_SIZE/ASK_SIZE are sums of the 25 best levels, not the top's size: kept out (docstring)
        self.emit_bbo(out, symbol, ts_exchange, ts_recv, bid, None, ask, None, seq)

    def on_status(self, ts_recv: int, native: str, payload: Any, out: RecordBuffer) -> None:
        symbol = self.symbols.name(native)
        if not isinstance(payload, list) or len(payload) < 18:
            raise ParseError("derivatives status is too short", symbol, "funding")
        ts_exchange = ms_to_ns(payload[0])
        index = payload[3]
        index_price = (
            positive_price(_number(index, "spot price"), "spot price") if index is not None else None
        )
        next_ts = payload[7]
        next_funding = ms_to_ns(next_ts) if next_ts is not None else None
        accrued = payload[8]
        predicted = funding_rate(accrued, symbol) if accrued is not None else None
        funding = funding_rate(payload[11], symbol)
        mark = positive_price(_number(payload[14], "mark price"), "mark price")
        oi = _number(payload[17], "open interest")
        if oi < 0:
            raise ParseError(f"open interest out of range: {oi!r}", symbol, "open_interest")
        self.emit_funding(out, symbol, ts_exchange, ts_recv, funding, predicted, next_funding)
        self.emit_mark_price(out, symbol, ts_exchange, ts_recv, mark, index_price)
        self.emit_open_interest(out, symbol, ts_exchange, ts_recv, float(oi))

    def on_liquidations(self, ts_recv: int, payload: Any, out: RecordBuffer) -> None:
        if not isinstance(payload, list):
            raise ParseError("liquidations payload is not a list", channel="liquidations")
        parsed = []
        for entry in payload:
            if not isinstance(entry, list) or len(entry) < 12 or entry[0] != "pos":
                raise ParseError("liquidation is not a 'pos' entry", channel="liquidations")
            pos_id = str(_int(entry[1], "position id"))
            ts_exchange = ms_to_ns(entry[2])
            native = entry[4]
            symbol = self.symbols.name(native)
            amount = _number(entry[5], "amount")
            if amount == 0:
                raise ParseError("liquidation with amount 0", symbol, "liquidations")
            raw_price = entry[11] if entry[11] is not None else entry[6]
            price = positive_price(_number(raw_price, "liquidation price"), "liquidation price")
            parsed.append(
                (
                    native,
                    symbol,
                    pos_id,
                    ts_exchange,
                    "sell" if amount > 0 else "buy",
                    price,
                    abs(float(amount)),
                )
            )
        for native, symbol, pos_id, ts_exchange, side, price, size in parsed:
            if native not in self.subscribed_natives or self.liquidation_ids.seen(native, pos_id):
                continue
            self.emit_liquidation(out, symbol, ts_exchange, ts_recv, pos_id, side, price, size)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """Channel ids and the sequence are per connection; books wait for the new snapshots."""
        for book in self.symbols.books.values():
            book.reset()
        self.chans.clear()
        self.retiring.clear()
        self.subscribed_natives.clear()
        self.last_seq = None
        self.backwards = 0
        self.flags = 0


class BitfinexDialect(ExchangeDialect):
    """Bitfinex v2: endpoint, conf flags, subscriptions, resubscription by channel id, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://api-pub.bitfinex.com"
    default_rest_url: ClassVar[str | None] = "https://api-pub.bitfinex.com"
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, "funding", "mark", "open_interest", "liquidations")
    #: perpetuals, so that the demo carries the derivatives channels (spot pairs work the same way)
    demo_symbols: ClassVar[tuple[str, ...]] = ("tBTCF0:USTF0", "tETHF0:USTF0")
    book_checksum: ClassVar[bool] = True
    gap_scope: ClassVar[str] = "connection"
    max_streams_per_connection: ClassVar[int] = 25
    app_ping: ClassVar[tuple[str, float] | None] = None

    #: book lengths Bitfinex offers (``len``); the checksum covers the best 25 levels whatever the length
    book_depths: ClassVar[tuple[int, ...]] = (1, 25, 100, 250)

    def __init__(self, options: DialectOptions | None = None) -> None:
        super().__init__(options)
        depth = self.options.book_depth or DEFAULT_BOOK_LENGTH
        if depth not in self.book_depths:
            raise ValueError(
                f"bitfinex: book depth {depth} not offered; choose one of {', '.join(map(str, self.book_depths))}"
            )
        self.book_depth = depth
        #: native pair -> the price its tick is taken at, from the latest tickers answer
        self.instrument_prices: dict[str, float] = {}

    def request_symbol(self, request: str) -> str:
        """Resubscription requests are keyed ``<native>#<chanId>`` (the channel to unsubscribe)."""
        return request.partition("#")[0]

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USD`` -> ``tBTCUSD``, ``AAVE-USD`` -> ``tAAVE:USD``, ``BTC-USDT-PERP`` -> ``tBTCF0:USTF0``."""
        text = symbol.strip()
        if text.startswith("t") and "-" not in text:
            return text
        parts = text.upper().split("-")
        perp = len(parts) == 3 and parts[2] == "PERP"
        if len(parts) != 2 and not perp:
            raise ValueError(f"not a Bitfinex symbol: {symbol!r}")
        base, quote = (_NATIVE_CODES.get(p, p) for p in parts[:2])
        if perp:
            return f"t{base}F0:{quote}F0"
        return f"t{base}{quote}" if len(base) == 3 and len(quote) == 3 else f"t{base}:{quote}"

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(normalise_pair(native))

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        return f"{ws_url.rstrip('/')}/ws/2"

    def book_frame(self, native: str) -> str:
        """The book subscription: price levels (``P0``), in real time (``F0``), ``book_depth`` long."""
        return orjson.dumps(
            {
                "event": "subscribe",
                "channel": "book",
                "symbol": native,
                "prec": "P0",
                "freq": "F0",
                "len": str(self.book_depth),
            }
        ).decode()

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        frames = [orjson.dumps({"event": "conf", "flags": CONF_FLAGS}).decode()]
        for native in sub.symbols:
            if "book" in sub.channels:
                frames.append(self.book_frame(native))
            if "trades" in sub.channels:
                frames.append(
                    orjson.dumps({"event": "subscribe", "channel": "trades", "symbol": native}).decode()
                )
            if "bbo" in sub.channels:
                frames.append(
                    orjson.dumps({"event": "subscribe", "channel": "ticker", "symbol": native}).decode()
                )
            if is_perpetual(native) and set(_DERIV) & set(sub.channels):
                frames.append(
                    orjson.dumps(
                        {"event": "subscribe", "channel": "status", "key": f"deriv:{native}"}
                    ).decode()
                )
        if "liquidations" in sub.channels:  # margin positions on spot pairs are liquidated too
            frames.append(
                orjson.dumps({"event": "subscribe", "channel": "status", "key": "liq:global"}).decode()
            )
        return frames

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        """Requests are ``<native>#<chanId>``: unsubscribe that channel id, then subscribe the book again."""
        frames: list[str] = []
        for request in native_symbols:
            native, _, chan = request.partition("#")
            if chan.isdigit():
                frames.append(orjson.dumps({"event": "unsubscribe", "chanId": int(chan)}).decode())
            frames.append(self.book_frame(native))
        return frames

    def new_normaliser(self) -> Normaliser:
        return BitfinexNormaliser()

    # -- instruments (collectors/venues/bitfinex/instruments.py) ---------------------------------
    def instruments_paths(self) -> list[str]:
        from . import instruments

        return [instruments.TICKERS_PATH, instruments.PAIRS_PATH, instruments.FUTURES_PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        """A tickers answer records the prices (no instrument); a pair info answer gives instruments
        with their tick at those prices (the fetch asks for the tickers first)."""
        from . import instruments

        if instruments.is_tickers(body):
            self.instrument_prices = instruments.parse_tickers(body)
            return []
        return instruments.parse_pairs(self, body, ts_recv, self.instrument_prices)

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        from .simulator import BitfinexSimulator

        return BitfinexSimulator(self, config)

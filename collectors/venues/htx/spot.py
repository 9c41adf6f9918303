"""HTX spot (exchange id ``htx``): trades and bbo on ``/ws``, the incremental book on ``/feed``.

Documentation followed (checked 2026-12-05): https://www.htx.com/en-us/opend/newApiPages/?id=662
(websocket market data: GZIP, heartbeat, sub/unsub/req, "the limitation of single connection is
100 ms" for ``req``) and https://www.htx.com/en-us/opend/newApiPages/?id=7ec5362b-7773-11ed-9966-0242ac110003
(``market.$symbol.mbp.$levels``); what HTX spot and swaps share is in :mod:`.common`.

Two endpoints: ``wss://api.huobi.pro/ws`` carries ``market.$symbol.trade.detail`` and
``market.$symbol.bbo``; the incremental book ``market.$symbol.mbp.$levels`` and its ``req`` snapshot
are served only on ``wss://api.huobi.pro/feed``. :meth:`HtxSpotDialect.channel_groups` therefore puts
``book`` on connections of its own and :meth:`HtxSpotDialect.connection_url` picks the path.

Book (levels 5, 20, 150 or 400; default 150, the only depth offered for every symbol that the ``req``
snapshot also serves; 20 only for some symbols, 400 has no ``req``): as documented,
1. subscribe the incremental channel and buffer its messages;
2. ``{"req": "market.$symbol.mbp.$levels", "id": ...}`` on the same connection; the answer
   ``{"rep": ..., "status": "ok", "data": {"seqNum", "bids", "asks"}}`` is the snapshot;
3. align it with the buffered message whose ``prevSeqNum`` equals the snapshot's ``seqNum``
   (buffered messages with ``seqNum <= `` the snapshot's are already in it); a snapshot older than
   every buffered message cannot be joined: another ``req`` is sent;
4. afterwards each message's ``prevSeqNum`` must equal the ``seqNum`` of the previous one: a mismatch
   is a ``gap`` of that symbol only (book cleared, messages buffered again, a new ``req``, then a
   ``resync`` at the next epoch); a message at or before the book's ``seqNum`` is a repeat
   (``duplicate`` event, ignored, also when the sequence goes backwards);
5. size 0 removes a level; the 150/400-level channel also sends messages with empty sides (nothing
   changed) that only advance the sequence.
``req`` answers that are errors (e.g. ``429 too many request``) are recorded (``snapshot_error``) and
asked again with the next message of that symbol; a symbol whose snapshot does not come is asked again
every :data:`REQ_AGAIN_AFTER` messages. Requests are paced 100 ms apart by the connection
(``request_interval_s``). Book rows carry ``seq = seqNum``; ``ts_exchange`` is the message ``ts``
(the ``req`` answer's ``ts`` when present, else null).

bbo: ``market.$symbol.bbo`` (tick by tick): ``bid``/``bidSize``/``ask``/``askSize``, ``quoteTime``
(ts_exchange) and ``seqId`` (seq). Trades: ``tradeId`` (see :mod:`.common`).

Symbols: native ``btcusdt`` <-> ``BTC-USDT``; the quote is found by suffix (:data:`QUOTES`).

The shared recording (2021, cryptofeed) uses ``market.$symbol.depth.step0`` (a full book per
message, read as described in :mod:`.common`) and ``trade.detail`` items that carry both ``id`` and
``tradeId``; it has no ``bbo`` and no ``mbp``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from schemas import RecordBuffer

from ...base import Subscription
from ...book import SyncedBook, parse_levels
from ...events import ParseError, emit_event, frame_text_for_event, ms_to_ns, non_negative_size
from ...instruments import Instrument
from ...simulator import ExchangeSimulator, SimulatorConfig
from .. import htx_gate_instruments
from .common import KIND_INCREMENTAL, HtxDialect, HtxNormaliser, int_field

EXCHANGE = "htx"

#: Quote assets of HTX spot symbols, longest first (``yfihusd`` is YFI/HUSD, ``fil3susdt`` FIL3S/USDT).
QUOTES: tuple[str, ...] = (
    "usdt",
    "usdc",
    "usdd",
    "husd",
    "tusd",
    "btc",
    "eth",
    "trx",
    "eur",
    "gbp",
    "brl",
    "try",
    "ht",
)
#: Messages a symbol receives while waiting for its ``req`` snapshot before it is asked again.
REQ_AGAIN_AFTER = 50
#: Messages buffered per symbol while waiting for a snapshot (older ones are dropped first).
MAX_BUFFERED = 2_000
#: ``req`` ids name the symbol they ask for: ``mbp:<native>``.
REQ_ID_PREFIX = "mbp:"


def split_quote(native: str) -> tuple[str, str]:
    """``btcusdt`` -> ``("btc", "usdt")``; :class:`ParseError` when no known quote fits."""
    for quote in QUOTES:
        if native.endswith(quote) and len(native) > len(quote):
            return native[: -len(quote)], quote
    raise ParseError(f"cannot split symbol {native[:40]!r} into base and quote")


class HtxSpotNormaliser(HtxNormaliser):
    """HTX spot frames -> records (rules in the module docstring)."""

    exchange: ClassVar[str] = EXCHANGE
    trade_id_field: ClassVar[str] = "tradeId"
    request_again_after: ClassVar[int] = REQ_AGAIN_AFTER

    def normalise_native(self, native: str) -> str:
        if not isinstance(native, str) or native != native.lower():
            raise ParseError(f"spot symbol is not lower case: {str(native)[:40]!r}")
        base, quote = split_quote(native)
        return f"{base.upper()}-{quote.upper()}"

    def incremental_channel(self, rest: str) -> bool:
        return rest.startswith("mbp.") and rest[4:].isdigit()

    def on_bbo(
        self, ts_recv: int, msg: dict[str, Any], tick: dict[str, Any], symbol: str, out: RecordBuffer
    ) -> None:
        bid_p = non_negative_size(tick["bid"], "bid price")
        ask_p = non_negative_size(tick["ask"], "ask price")
        bid_s = non_negative_size(tick["bidSize"], "bid size")
        ask_s = non_negative_size(tick["askSize"], "ask size")
        seq = tick.get("seqId")
        self.emit_bbo(
            out,
            symbol,
            ms_to_ns(tick["quoteTime"]),
            ts_recv,
            bid_p or None,
            bid_s if bid_p else None,
            ask_p or None,
            ask_s if ask_p else None,
            seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        )

    # -- the mbp book ------------------------------------------------------------------------------
    def on_incremental(
        self,
        ts_recv: int,
        msg: dict[str, Any],
        tick: dict[str, Any],
        native: str,
        symbol: str,
        out: RecordBuffer,
    ) -> None:
        seq = int_field(tick["seqNum"], "seqNum", symbol)
        prev = int_field(tick["prevSeqNum"], "prevSeqNum", symbol)
        bids = parse_levels(tick.get("bids") or ())
        asks = parse_levels(tick.get("asks") or ())
        ts_exchange = ms_to_ns(msg["ts"])
        book = self.symbol_books.book(native)
        if not book.synced:
            self.buffer(book, (ts_exchange, ts_recv, seq, prev, bids, asks))
            if native in self.requested:
                self.watch.check(out, self.exchange, native, symbol, ts_recv, self.resubscribe_requests)
            else:
                self.request(native)
            return
        last = book.last_seq
        assert last is not None
        if prev == last:
            self.apply(book, ts_exchange, ts_recv, seq, bids, asks, out)
        elif seq <= last:
            emit_event(
                out, self.exchange, symbol, "book", ts_recv, "duplicate", {"seqNum": seq, "last": last}
            )
        else:
            book.gap(out, ts_recv, "gap", {"expected_prevSeqNum": last, "prevSeqNum": prev, "seqNum": seq})
            self.buffer(book, (ts_exchange, ts_recv, seq, prev, bids, asks))
            self.request(native)

    @staticmethod
    def buffer(book: SyncedBook, update: tuple[Any, ...]) -> None:
        pending = book.pending
        if len(pending) >= MAX_BUFFERED:
            del pending[0]
        pending.append(update)

    def apply(
        self,
        book: SyncedBook,
        ts_exchange: int | None,
        ts_recv: int,
        seq: int,
        bids: Sequence[tuple[float, float, str, str]],
        asks: Sequence[tuple[float, float, str, str]],
        out: RecordBuffer,
    ) -> None:
        flags = self.time_flags.flags(ts_exchange, ts_recv)
        start = len(out.book)
        if bids:
            book.apply_parsed(out, ts_exchange, ts_recv, "bid", bids, seq)
        if asks:
            book.apply_parsed(out, ts_exchange, ts_recv, "ask", asks, seq)
        if flags:
            rows = out.book
            for i in range(start, len(rows)):
                rows[i] = (*rows[i][:-1], rows[i][-1] | flags)
        book.last_seq = seq
        book.check_crossed(out, ts_recv, {"seqNum": seq})

    def on_reply(self, ts_recv: int, msg: dict[str, Any], frame: bytes, out: RecordBuffer) -> bool:
        """The answer to a ``req``: a snapshot to align with the buffered messages, or an error."""
        rep = msg.get("rep")
        req_id = msg.get("id")
        if rep is None:
            if not (isinstance(req_id, str) and req_id.startswith(REQ_ID_PREFIX)):
                return False  # an error about something else (a subscription)
            native = req_id[len(REQ_ID_PREFIX) :]
        else:
            kind, native, _ = self.channel_info(rep)
            if kind != KIND_INCREMENTAL:
                raise ParseError(f"unexpected req answer {str(rep)[:80]!r}")
        symbol = self.symbol_books.name(native)
        if msg.get("status") != "ok":
            self.requested.discard(native)  # asked again with the symbol's next message
            detail = {
                "err_code": str(msg.get("err-code"))[:100],
                "err_msg": str(msg.get("err-msg"))[:500],
                **frame_text_for_event(frame),
            }
            emit_event(out, self.exchange, symbol, "book", ts_recv, "snapshot_error", detail)
            return True
        data = msg["data"]
        if not isinstance(data, dict):
            raise ParseError("req answer data is not an object", symbol, "book")
        seq = int_field(data["seqNum"], "seqNum", symbol)
        bids = data.get("bids") or []
        asks = data.get("asks") or []
        parse_levels(bids)
        parse_levels(asks)
        ts = msg.get("ts")
        ts_exchange = None if ts is None else ms_to_ns(ts)
        book = self.symbol_books.book(native)
        self.requested.discard(native)
        if book.synced:
            return True  # an answer nobody waits for any more (asked twice): the book is live
        pending = [u for u in book.pending if u[2] > seq]
        if pending and pending[0][3] != seq:
            # The snapshot is older than the first buffered message still needed: it cannot be joined.
            book.pending[:] = pending
            emit_event(
                out,
                self.exchange,
                symbol,
                "book",
                ts_recv,
                "snapshot_unaligned",
                {"seqNum": seq, "first_prevSeqNum": pending[0][3]},
            )
            self.request(native)
            return True
        flags = self.time_flags.flags(ts_exchange, ts_recv)
        start = len(out.book)
        book.apply_snapshot(out, ts_exchange, ts_recv, bids, asks, seq)
        if flags:
            rows = out.book
            for i in range(start, len(rows)):
                rows[i] = (*rows[i][:-1], rows[i][-1] | flags)
        self.watch.done(native)
        book.pending.clear()
        for ts_ex, ts_rcv, useq, uprev, ubids, uasks in pending:
            last = book.last_seq
            if uprev != last:
                book.gap(
                    out, ts_recv, "gap", {"expected_prevSeqNum": last, "prevSeqNum": uprev, "seqNum": useq}
                )
                self.buffer(book, (ts_ex, ts_rcv, useq, uprev, ubids, uasks))
                self.request(native)
                break
            self.apply(book, ts_ex, ts_rcv, useq, ubids, uasks, out)
        return True


class HtxSpotDialect(HtxDialect):
    """HTX spot: endpoints, topics, ``req`` snapshots, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://api.huobi.pro"
    demo_symbols: ClassVar[tuple[str, ...]] = ("btcusdt", "ethusdt")
    normaliser_class: ClassVar[type[HtxNormaliser]] = HtxSpotNormaliser
    book_depths: ClassVar[tuple[int, ...]] = (5, 20, 150)
    default_book_depth: ClassVar[int] = 150
    #: one ``req`` per 100 ms per connection (documented limit)
    request_interval_s: ClassVar[float] = 0.1
    #: endpoint paths: the incremental book and its ``req`` only on ``/feed``
    ws_path: ClassVar[str] = "/ws"
    feed_path: ClassVar[str] = "/feed"

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USDT``, ``BTC/USDT``, ``BTCUSDT`` -> ``btcusdt``."""
        return symbol.strip().replace("-", "").replace("/", "").lower()

    def channel_groups(self, channels: Sequence[str]) -> list[tuple[str, ...]]:
        other = tuple(c for c in channels if c != "book")
        groups = [other] if other else []
        if "book" in channels:
            groups.append(("book",))
        return groups

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        base = ws_url.rstrip("/")
        for path in (self.ws_path, self.feed_path):
            if base.endswith(path):
                base = base[: -len(path)]
        return base + (self.feed_path if "book" in sub.channels else self.ws_path)

    def topics(self, native: str, channels: Sequence[str]) -> list[str]:
        names = {
            "trades": f"market.{native}.trade.detail",
            "book": f"market.{native}.mbp.{self.book_depth}",
            "bbo": f"market.{native}.bbo",
        }
        return [names[c] for c in channels]

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        """``req`` snapshots of the incremental book (same connection as its subscription)."""
        if "book" not in sub.channels:
            return []
        return [
            f'{{"req":"market.{n}.mbp.{self.book_depth}","id":"{REQ_ID_PREFIX}{n}"}}' for n in native_symbols
        ]

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        from .simulator import HtxSpotSimulator

        return HtxSpotSimulator(self, config)

    # -- instruments (collectors/venues/htx_gate_instruments.py) ---------------------------------
    instruments_rest_url: ClassVar[str | None] = "https://api.huobi.pro"

    def instruments_paths(self) -> list[str]:
        return [htx_gate_instruments.HTX_PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return htx_gate_instruments.parse_htx_symbols(self, body, ts_recv)


DIALECT_CLASS = HtxSpotDialect

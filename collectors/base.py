"""What every exchange module provides: a :class:`Normaliser` (frames -> records) and an
:class:`ExchangeDialect` (endpoints, subscriptions, REST snapshots, and the simulator side).

The normaliser is deterministic: given the same frames (including injected snapshot frames and
disconnect markers) it produces the same records, which is what makes capture-then-replay equal to
the live run. Everything that touches the network lives in the dialect and in
:mod:`collectors.connection`, never in the normaliser.
"""

from __future__ import annotations

import abc
import operator
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import orjson

from schemas import Flags, RecordBuffer, base_width

from . import book as _book
from .events import (
    INT64_MAX,
    INT64_MIN,
    MAX_ABS_FUNDING_RATE,
    EventThrottle,
    Limits,
    ParseError,
    check_int64,
    emit_event,
    frame_text_for_event,
)
from .pacing import VenueLimits

if TYPE_CHECKING:
    import aiohttp

    from .instruments import Instrument
    from .simulator import ExchangeSimulator, SimulatorConfig

#: Latency above which a record is OUTDATED, by default (DESIGN.md, "Quality").
DEFAULT_OUTDATED_CUTOFF_NS = 2_500_000_000
#: A latency floor below minus this means the host clock is behind the exchange's (BAD_TS_RECV).
DEFAULT_CLOCK_TOLERANCE_NS = 50_000_000
#: Frames larger than this are rejected as parse errors (websocket max size is set above it).
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
#: Seconds without data before a channel is stale (trades adapt to each symbol's pace above this).
#: The one declaration: the connection layer's settings and ``[thresholds]`` both read it.
#: Derivatives channels: mark prices come every few seconds; funding and open interest on some venues
#: only every 30-90 s (OKX) or per REST poll; ``liquidations`` happen when they happen and are never stale.
DEFAULT_STALE_AFTER_S: dict[str, float] = {
    "book": 5.0,
    "bbo": 5.0,
    "trades": 60.0,
    "mark": 30.0,
    "funding": 120.0,
    "open_interest": 120.0,
}
#: Recycle a connection whose channel has been stale this long (0 disables).
DEFAULT_RECYCLE_AFTER_S = 30.0
#: A planned rotation happens this long before a venue's forced disconnect.
ROTATION_MARGIN_S = 3600.0

#: Receive times before this (2010-01-01) come from a host clock that was never set: exchange times
#: cannot be judged against them (see :meth:`TimeFlagger.flags`).
PLAUSIBLE_RECV_NS = 1_262_304_000 * 1_000_000_000

#: Market-data channels, which every venue offers (the default subscription).
CHANNELS: tuple[str, ...] = ("trades", "book", "bbo")
#: Derivatives channels (issue 15), offered by derivative venues that declare them in
#: :attr:`ExchangeDialect.channels`; their datasets are in ``schemas.DATASET_CHANNELS``.
DERIVATIVE_CHANNELS: tuple[str, ...] = ("funding", "mark", "open_interest", "liquidations")
#: Channels whose silence says nothing about the feed's health (a quiet market has no liquidations):
#: the connection's watchdog never calls them stale.
EVENT_CHANNELS: tuple[str, ...] = ("liquidations",)
#: Replies a normaliser keeps for the connection to send (a replay never sends them: bounded).
MAX_PENDING_REPLIES = 64
_SNAPSHOT = int(Flags.SNAPSHOT)
#: The symbol column of trade, book and bbo rows.
_SYMBOL = operator.itemgetter(1)


class TimeFlagger:
    """Per-record time flags from raw latency ``ts_recv - ts_exchange``, aware of the host clock.

    NEG_LATENCY marks a record received before its exchange time. The flagger also keeps a floor:
    the highest of the per-second latency minima of the last :attr:`FLOOR_SECONDS` seconds that had
    timed records (a robust "fastest message", that one stray timestamp cannot move). A floor below
    ``-clock_tolerance_ns`` proves the host clock is behind the exchange's (nothing arrives before it
    is sent): from then on every record gets BAD_TS_RECV, and OUTDATED is judged on latency above
    that floor, so a host clock 1.27 s behind neither flags every record nor hides 1.27 s of
    staleness. A positive floor is never subtracted: it cannot be told apart from data that is old
    (the 30 s incident), so OUTDATED then uses raw latency. The live quality layer keeps its own,
    slower floor for the clock-offset estimate.

    Deterministic given the frames (it uses their timestamps, never the wall clock), so a replay
    sets exactly the flags the live run set.
    """

    #: seconds of per-second minima behind the floor
    FLOOR_SECONDS = 8

    __slots__ = (
        "_minima",
        "_second",
        "_second_min",
        "clock_tolerance_ns",
        "floor_ns",
        "max_skew_ns",
        "outdated_cutoff_ns",
        "skew_last",
        "skewed",
    )

    def __init__(
        self,
        outdated_cutoff_ns: int = DEFAULT_OUTDATED_CUTOFF_NS,
        clock_tolerance_ns: int = DEFAULT_CLOCK_TOLERANCE_NS,
        max_skew_ns: int = Limits().max_ts_skew_ns,
    ) -> None:
        self.outdated_cutoff_ns = outdated_cutoff_ns
        self.clock_tolerance_ns = clock_tolerance_ns
        #: an exchange time further than this from the receive time is BAD_TS_EXCHANGE
        self.max_skew_ns = max_skew_ns
        #: records flagged BAD_TS_EXCHANGE so far, and the (ts_exchange, ts_recv) of the latest
        self.skewed = 0
        self.skew_last: tuple[int, int] = (0, 0)
        #: current floor (ns); 0 until the first timed record
        self.floor_ns = 0
        self._minima: list[int] = []
        self._second = -1
        self._second_min = 0

    def flags(self, ts_exchange: int | None, ts_recv: int, history: bool = False) -> int:
        """Flags for a record with these timestamps.

        An exchange time that does not fit int64 (or is not an integer) is a :class:`ParseError`; one
        ``max_skew_ns`` or more away from a plausible receive time is kept and flagged BAD_TS_EXCHANGE,
        unless the record is ``history`` the venue replays (SNAPSHOT trades: days old is no clock
        error there, just OUTDATED).
        """
        host_behind = self.floor_ns < -self.clock_tolerance_ns
        if ts_exchange is None:
            return int(Flags.BAD_TS_RECV) if host_behind else 0
        latency = ts_recv - ts_exchange
        if not -self.max_skew_ns < latency < self.max_skew_ns:
            check_int64(ts_exchange, "exchange timestamp")
            if history and latency > 0:
                return int(Flags.OUTDATED) | (int(Flags.BAD_TS_RECV) if host_behind else 0)
            if ts_recv >= PLAUSIBLE_RECV_NS:
                return self._skewed(ts_exchange, ts_recv, latency, host_behind)
        second = ts_recv // 1_000_000_000
        if second != self._second:
            self._close_second(second, latency)
            host_behind = self.floor_ns < -self.clock_tolerance_ns
        elif latency < self._second_min:
            self._second_min = latency
            if latency < self.floor_ns and len(self._minima) < self.FLOOR_SECONDS:
                # still learning (first seconds of a connection): follow the minimum at once
                self.floor_ns = latency
                host_behind = self.floor_ns < -self.clock_tolerance_ns
        flags = 0
        if latency < 0:
            flags |= int(Flags.NEG_LATENCY)
        if host_behind:
            flags |= int(Flags.BAD_TS_RECV)
            if latency - self.floor_ns > self.outdated_cutoff_ns:
                flags |= int(Flags.OUTDATED)
        elif latency > self.outdated_cutoff_ns:
            flags |= int(Flags.OUTDATED)
        return flags

    def _skewed(self, ts_exchange: int, ts_recv: int, latency: int, host_behind: bool) -> int:
        """An exchange time a day (``max_skew_ns``) or more away: kept and flagged BAD_TS_EXCHANGE if it
        fits the column, :class:`ParseError` if not. It never moves the latency floor."""
        self.skewed += 1
        self.skew_last = (ts_exchange, ts_recv)
        flags = int(Flags.BAD_TS_EXCHANGE)
        if latency < 0:
            flags |= int(Flags.NEG_LATENCY)
        elif latency > self.outdated_cutoff_ns:
            flags |= int(Flags.OUTDATED)
        if host_behind:
            flags |= int(Flags.BAD_TS_RECV)
        return flags

    def _close_second(self, second: int, latency: int) -> None:
        if self._second >= 0:
            self._minima.append(self._second_min)
            if len(self._minima) > self.FLOOR_SECONDS:
                del self._minima[0]
            self.floor_ns = max(self._minima)
        else:
            self.floor_ns = latency
        self._second = second
        self._second_min = latency
        if len(self._minima) < self.FLOOR_SECONDS and latency < self.floor_ns:
            self.floor_ns = latency


def new_time_flagger(outdated_cutoff_ns: int = DEFAULT_OUTDATED_CUTOFF_NS) -> TimeFlagger:
    """A :class:`TimeFlagger`: the compiled ``collectors._booknative.TimeFlags`` (same attributes, same
    flags; compiled frame scanners read and move its state) when the native implementation is active
    (:data:`collectors.book.IMPLEMENTATION`), else this module's reference class.

    The compiled one takes integer timestamps (an exchange time that is not an integer is the
    reference's ParseError from ``check_int64`` even within the skew bound, where the reference would
    go on with it; no parser here produces one)."""
    native = _book._native
    if native is None:
        return TimeFlagger(outdated_cutoff_ns)
    flagger: TimeFlagger = native.TimeFlags(
        outdated_cutoff_ns, DEFAULT_CLOCK_TOLERANCE_NS, Limits().max_ts_skew_ns
    )
    return flagger


#: The datasets a :func:`new_record_buffer` holds as columns: the market data, nearly every row.
COLUMNAR_DATASETS: tuple[str, ...] = ("trades", "book", "bbo")


def new_record_buffer() -> RecordBuffer:
    """An empty :class:`~schemas.RecordBuffer` whose trades, book and bbo rows are held as columns
    (``collectors._booknative.ColumnRows``: numbers unboxed, no tuple per row; the frame scanner and the
    book engine append rows from their cells, and Arrow batches are built from the columns) when the
    native implementation is active (:data:`collectors.book.IMPLEMENTATION`), else a plain one.

    The stores behave as the lists they replace for every normaliser (append, extend, len, index,
    slice, assignment at an index, iteration, comparison with lists); a row of unusual values, or
    another list operation, turns a store into a plain list of the same tuples (issue 18 part 2;
    bench/RESULTS.md, "Columnar record buffers")."""
    native = _book._native
    if native is None:
        return RecordBuffer()
    from streaming.codec import field_codes  # here: streaming imports collectors' siblings only lazily

    buf = RecordBuffer()
    for dataset in COLUMNAR_DATASETS:
        setattr(buf, dataset, native.ColumnRows(field_codes(dataset), base_width(dataset)))
    return buf


class Normaliser(abc.ABC):
    """Turns one connection's frames into records. One instance per connection (or replay).

    Subclasses implement :meth:`handle`, decoding with :func:`~collectors.events.decode_json` and
    emitting rows only through :meth:`emit_trade`, :meth:`emit_bbo` and the book engine, which
    validate every value (issue 12). An exception of any type raised there becomes a ``parse_error``
    feed event carrying the frame; the normaliser keeps going, so one bad frame never stops the other
    symbols.

    When :meth:`subscribe` names the connection's symbols, trade, book and bbo rows of any other
    symbol are dropped (counted in ``unsubscribed_rows``, and an ``unsubscribed_symbol`` event at most
    once per second of receive time): a hostile feed cannot add symbols to the lake. The capture
    records the subscription (:meth:`CaptureWriter.write_subscription
    <collectors.capture.CaptureWriter.write_subscription>`), so a replay drops the same rows.
    """

    exchange: ClassVar[str]

    def __init__(
        self,
        outdated_cutoff_ns: int = DEFAULT_OUTDATED_CUTOFF_NS,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self.time_flags = new_time_flagger(outdated_cutoff_ns)
        self.max_frame_bytes = max_frame_bytes
        #: native symbols whose book needs a REST snapshot (the live connection fetches them)
        self.snapshot_requests: set[str] = set()
        #: native symbols whose subscription must be renewed (exchanges that resync by resubscribing)
        self.resubscribe_requests: set[str] = set()
        #: frames the connection must send back at once (answers to the exchange's application pings)
        self.replies: deque[str] = deque(maxlen=MAX_PENDING_REPLIES)
        #: set when the venue announced that it will close this connection soon (e.g. Binance's
        #: ``serverShutdown``): the connection layer rotates to a new connection at once
        self.rotation_requested = False
        #: set (to a reason) when the venue asks clients to reconnect; the live connection then recycles
        #: its socket (a replay ignores it: the capture already holds the disconnect that followed)
        self.reconnect_request: str | None = None
        self.frames = 0
        self.parse_errors = 0
        #: sanity bounds; the same object is handed to this normaliser's books (see :meth:`configure`)
        self.limits = Limits()
        #: normalised symbols of the subscription (None: accept every symbol, e.g. an old capture)
        self.subscribed: frozenset[str] | None = None
        self.unsubscribed_rows = 0
        self.crossed_bbo = 0
        self.throttle = EventThrottle()
        self._skew_reported = 0

    def configure(self, limits: Limits) -> None:
        """Applies the run's sanity bounds (``DialectOptions.limits``) to this normaliser and its books."""
        self.limits.update(limits)
        self.time_flags.max_skew_ns = limits.max_ts_skew_ns

    def subscribe(self, symbols: Iterable[str] | None) -> None:
        """The normalised symbols this connection subscribed to (None accepts every symbol)."""
        self.subscribed = None if symbols is None else frozenset(symbols)

    def on_frame(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        """Normalises one frame received at ``ts_recv`` (ns) into ``out``."""
        self.frames += 1
        if len(frame) > self.max_frame_bytes:
            self.parse_error(out, ts_recv, frame, f"oversized frame ({len(frame)} bytes)")
            return
        subscribed = self.subscribed
        if subscribed is not None:
            trades, book, bbo = out.trades, out.book, out.bbo
            n_trades, n_book, n_bbo = len(trades), len(book), len(bbo)
        try:
            self.handle(ts_recv, frame, out)
        except ParseError as exc:
            self.parse_error(out, ts_recv, frame, exc.reason, exc.symbol, exc.channel)
        except orjson.JSONDecodeError as exc:
            self.parse_error(out, ts_recv, frame, f"malformed JSON: {exc}")
        except Exception as exc:  # any normaliser failure is a parse error, never a crash
            self.parse_error(out, ts_recv, frame, f"{type(exc).__name__}: {str(exc)[:300]}")
        # The symbols of the new rows, checked in C (slices, chain, map, issuperset): every frame.
        if subscribed is not None and not subscribed.issuperset(
            map(_SYMBOL, chain(trades[n_trades:], book[n_book:], bbo[n_bbo:]))
        ):
            self._drop_unsubscribed(out, ts_recv, (n_trades, n_book, n_bbo))
        if self.time_flags.skewed != self._skew_reported:
            self._report_skew(out, ts_recv)

    def on_frames(self, items: Sequence[Any], start: int, stop: int, out: RecordBuffer) -> None:
        """:meth:`on_frame` for each ``(ts_recv, frame)`` pair of ``items[start:stop]``, in order.

        A replay's runs of frames come through here (``collectors.capture.iter_units``); a normaliser
        with a compiled frame scanner replaces it with the scanner's, which loops in C."""
        on_frame = self.on_frame
        for ts_recv, frame in items[start:stop]:
            on_frame(ts_recv, frame, out)

    def _drop_unsubscribed(self, out: RecordBuffer, ts_recv: int, starts: tuple[int, int, int]) -> None:
        allowed = self.subscribed
        assert allowed is not None
        dropped: dict[str, int] = {}
        for rows, start in zip((out.trades, out.book, out.bbo), starts, strict=True):
            if len(rows) == start or {r[1] for r in rows[start:]} <= allowed:
                continue
            kept = []
            for r in rows[start:]:
                if r[1] in allowed:
                    kept.append(r)
                else:
                    dropped[r[1]] = dropped.get(r[1], 0) + 1
            del rows[start:]
            rows.extend(kept)
        if not dropped:
            return
        n = sum(dropped.values())
        self.unsubscribed_rows += n
        held = self.throttle.due("unsubscribed_symbol", ts_recv)
        if held:
            emit_event(
                out,
                self.exchange,
                None,
                "unknown",
                ts_recv,
                "unsubscribed_symbol",
                {
                    "symbols": sorted(str(s)[:64] for s in dropped)[:10],
                    "rows": n,
                    "frames": held,
                    "rows_total": self.unsubscribed_rows,
                },
            )

    def _report_skew(self, out: RecordBuffer, ts_recv: int) -> None:
        tf = self.time_flags
        if self.throttle.due("bad_ts_exchange", ts_recv):
            ts_exchange, at = tf.skew_last
            emit_event(
                out,
                self.exchange,
                None,
                "unknown",
                ts_recv,
                "bad_ts_exchange",
                {
                    "ts_exchange": ts_exchange,
                    "ts_recv": at,
                    "skew_s": round((at - ts_exchange) / 1e9, 3),
                    "max_skew_s": tf.max_skew_ns / 1e9,
                    "records": tf.skewed - self._skew_reported,
                },
            )
            self._skew_reported = tf.skewed

    def emit_trade(
        self,
        out: RecordBuffer,
        symbol: str,
        ts_exchange: int | None,
        ts_recv: int,
        trade_id: str,
        price: float,
        size: float,
        side: str | None,
        flags: int = 0,
    ) -> None:
        """Appends one ``trades`` row: the time flags of its timestamps OR-ed with ``flags``.

        Every venue's trades pass through here, so checks that apply to all of them live in one place:
        price and size finite, positive and below :attr:`limits` (:class:`ParseError` otherwise), a
        string (or null) trade id, and the exchange time (see :class:`TimeFlagger`).
        """
        limits = self.limits
        if not (0.0 < price < limits.max_price and 0.0 < size < limits.max_size):
            raise ParseError(f"trade price/size out of range: {price!r} x {size!r}", symbol, "trades")
        if trade_id is not None and trade_id.__class__ is not str:
            raise ParseError(f"trade id is not text: {str(trade_id)[:40]!r}", symbol, "trades")
        flags |= self.time_flags.flags(ts_exchange, ts_recv, bool(flags & _SNAPSHOT))
        out.trades.append((self.exchange, symbol, ts_exchange, ts_recv, trade_id, price, size, side, flags))

    def emit_bbo(
        self,
        out: RecordBuffer,
        symbol: str,
        ts_exchange: int | None,
        ts_recv: int,
        bid_price: float | None,
        bid_size: float | None,
        ask_price: float | None,
        ask_size: float | None,
        seq: int | None,
        flags: int = 0,
    ) -> None:
        """Appends one ``bbo`` row (an empty side is ``None`` price and size): the time flags of its
        timestamps OR-ed with ``flags``. Every venue's best bid/offer passes through here.

        Prices in ``(0, max_price)``, sizes in ``[0, max_size)`` and ``seq`` a 64-bit integer, else
        :class:`ParseError`. A crossed bbo (bid >= ask) is kept as sent, flagged MAYBE_BAD_BOOK, and
        reported by a ``crossed_book`` event (at most one per symbol per second of receive time).
        """
        limits = self.limits
        max_price, max_size = limits.max_price, limits.max_size
        if bid_price is not None:
            if not 0.0 < bid_price < max_price or not (bid_size is None or 0.0 <= bid_size < max_size):
                raise ParseError(f"bid out of range: {bid_price!r} x {bid_size!r}", symbol, "bbo")
        elif bid_size is not None:
            raise ParseError(f"bid size {bid_size!r} without a price", symbol, "bbo")
        if ask_price is not None:
            if not 0.0 < ask_price < max_price or not (ask_size is None or 0.0 <= ask_size < max_size):
                raise ParseError(f"ask out of range: {ask_price!r} x {ask_size!r}", symbol, "bbo")
            if bid_price is not None and bid_price >= ask_price:
                flags |= self._crossed_bbo(out, symbol, ts_recv, bid_price, ask_price, seq)
        elif ask_size is not None:
            raise ParseError(f"ask size {ask_size!r} without a price", symbol, "bbo")
        if seq is not None and (seq.__class__ is not int or not INT64_MIN <= seq <= INT64_MAX):
            raise ParseError(f"bbo sequence is not a 64-bit integer: {str(seq)[:40]!r}", symbol, "bbo")
        flags |= self.time_flags.flags(ts_exchange, ts_recv)
        out.bbo.append(
            (
                self.exchange,
                symbol,
                ts_exchange,
                ts_recv,
                bid_price,
                bid_size,
                ask_price,
                ask_size,
                seq,
                flags,
            )
        )

    def emit_funding(
        self,
        out: RecordBuffer,
        symbol: str,
        ts_exchange: int | None,
        ts_recv: int,
        funding_rate: float,
        predicted_rate: float | None = None,
        next_funding_time: int | None = None,
        flags: int = 0,
    ) -> None:
        """Appends one ``funding`` row (the rate as a fraction per funding interval), with time flags."""
        bound = MAX_ABS_FUNDING_RATE
        if not -bound < funding_rate < bound or (
            predicted_rate is not None and not -bound < predicted_rate < bound
        ):
            raise ParseError(
                f"funding rate out of range: {funding_rate!r} / {predicted_rate!r}", symbol, "funding"
            )
        if next_funding_time is not None:
            check_int64(next_funding_time, "next funding time", symbol, "funding")
        flags |= self.time_flags.flags(ts_exchange, ts_recv)
        out.funding.append(
            (
                self.exchange,
                symbol,
                ts_exchange,
                ts_recv,
                funding_rate,
                predicted_rate,
                next_funding_time,
                flags,
            )
        )

    def emit_mark_price(
        self,
        out: RecordBuffer,
        symbol: str,
        ts_exchange: int | None,
        ts_recv: int,
        mark_price: float,
        index_price: float | None = None,
        flags: int = 0,
    ) -> None:
        """Appends one ``mark_price`` row, with time flags."""
        self._check_price(mark_price, symbol, "mark")
        if index_price is not None:
            self._check_price(index_price, symbol, "mark")
        flags |= self.time_flags.flags(ts_exchange, ts_recv)
        out.mark_price.append((self.exchange, symbol, ts_exchange, ts_recv, mark_price, index_price, flags))

    def emit_open_interest(
        self,
        out: RecordBuffer,
        symbol: str,
        ts_exchange: int | None,
        ts_recv: int,
        open_interest: float,
        open_interest_value: float | None = None,
        flags: int = 0,
    ) -> None:
        """Appends one ``open_interest`` row (in the venue's unit, stated in instruments), with time flags."""
        for value in (open_interest, open_interest_value):
            if value is not None and not 0.0 <= value < self.limits.max_size * self.limits.max_price:
                raise ParseError(f"open interest out of range: {value!r}", symbol, "open_interest")
        flags |= self.time_flags.flags(ts_exchange, ts_recv)
        out.open_interest.append(
            (self.exchange, symbol, ts_exchange, ts_recv, open_interest, open_interest_value, flags)
        )

    def emit_liquidation(
        self,
        out: RecordBuffer,
        symbol: str,
        ts_exchange: int | None,
        ts_recv: int,
        liquidation_id: str | None,
        side: str | None,
        price: float,
        size: float,
        flags: int = 0,
    ) -> None:
        """Appends one ``liquidations`` row (``side``: the liquidation order's taker side), with time flags."""
        self._check_price(price, symbol, "liquidations")
        if not 0.0 < size < self.limits.max_size:
            raise ParseError(f"liquidation size out of range: {size!r}", symbol, "liquidations")
        flags |= self.time_flags.flags(ts_exchange, ts_recv)
        out.liquidations.append(
            (self.exchange, symbol, ts_exchange, ts_recv, liquidation_id, side, price, size, flags)
        )

    def _check_price(self, price: float, symbol: str, channel: str) -> None:
        """A derivatives price: finite, positive and below :attr:`limits` (:class:`ParseError` otherwise)."""
        if not 0.0 < price < self.limits.max_price:
            raise ParseError(f"price out of range: {price!r}", symbol, channel)

    def _crossed_bbo(
        self, out: RecordBuffer, symbol: str, ts_recv: int, bid: float, ask: float, seq: int | None
    ) -> int:
        self.crossed_bbo += 1
        held = self.throttle.due(("crossed_bbo", symbol), ts_recv)
        if held:
            emit_event(
                out,
                self.exchange,
                symbol,
                "bbo",
                ts_recv,
                "crossed_book",
                {"bid": bid, "ask": ask, "seq": seq if seq.__class__ is int else None, "occurrences": held},
            )
        return int(Flags.MAYBE_BAD_BOOK)

    @abc.abstractmethod
    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        """Parses and normalises one frame (exchange-specific)."""

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """Called at a disconnect (an empty capture line): books must be rebuilt from a new snapshot."""

    def parse_error(
        self,
        out: RecordBuffer,
        ts_recv: int,
        frame: str | bytes,
        reason: str,
        symbol: str | None = None,
        channel: str = "unknown",
    ) -> None:
        """Records a frame that could not be normalised, keeping the frame itself."""
        self.parse_errors += 1
        if symbol is not None and self.subscribed is not None and symbol not in self.subscribed:
            symbol = None  # not a symbol of ours: it stays in the kept frame, not in the symbol column
        emit_event(
            out,
            self.exchange,
            symbol,
            channel,
            ts_recv,
            "parse_error",
            {"reason": reason, **frame_text_for_event(frame)},
        )


T = TypeVar("T")


def unique_streams(natives: Sequence[str], channels: Sequence[str], name: Callable[[str, str], T]) -> list[T]:
    """The venue's stream names of some symbols and our channels, in order, each once (several of our
    channels may share one venue stream, as funding, mark and open interest often do)."""
    return list(dict.fromkeys(name(native, channel) for native in natives for channel in channels))


@dataclass(frozen=True)
class Subscription:
    """What one connection carries: native symbols and channels (subset of :data:`CHANNELS`)."""

    symbols: tuple[str, ...]
    channels: tuple[str, ...] = CHANNELS


@dataclass
class DialectOptions:
    """Per-run options a dialect honours (book depth, checksum verification, the OUTDATED cutoff).

    ``outdated_cutoff_ns`` reaches every normaliser's :class:`TimeFlagger` (see
    :meth:`ExchangeDialect.make_normaliser`), so ``[thresholds] outdated_cutoff_s`` sets the OUTDATED
    flag written into the lake, live and in replay alike.
    """

    verify_checksums: bool = True
    book_depth: int | None = None
    outdated_cutoff_ns: int = DEFAULT_OUTDATED_CUTOFF_NS
    #: sanity bounds of prices, sizes and exchange times (``[thresholds]`` of the configuration)
    limits: Limits = field(default_factory=Limits)
    extra: dict[str, Any] = field(default_factory=dict)


class ExchangeDialect(abc.ABC):
    """One exchange's whole dialect: client side (endpoints, subscribe, snapshots) and simulator side.

    Registered in :mod:`collectors.registry` under :attr:`exchange_id`.
    """

    exchange_id: ClassVar[str]
    default_ws_url: ClassVar[str]
    default_rest_url: ClassVar[str | None] = None
    #: True when book updates carry a sequence that makes a lost update detectable (a ``gap``); False
    #: for venues that send the whole book every time (nothing to lose between two messages)
    sequenced_book: ClassVar[bool] = True
    #: True when the venue sends a book checksum that the normaliser verifies (``checksum_mismatch``);
    #: on a venue without sequence numbers, that checksum is also how a lost update is found
    book_checksum: ClassVar[bool] = False
    #: what a lost book update breaks: ``"symbol"`` (per-symbol sequences) or ``"connection"`` (one
    #: sequence for the whole connection, which cannot say whose update was lost: every book resyncs)
    gap_scope: ClassVar[str] = "symbol"
    #: channels this venue offers: the market channels, and the derivatives channels it carries
    channels: ClassVar[tuple[str, ...]] = CHANNELS
    #: native symbols the simulator serves and ``ticktape demo`` captures (two liquid pairs)
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTCUSDT", "ETHUSDT")
    #: streams/topics allowed on one connection (subscriptions are split across connections above it)
    max_streams_per_connection: ClassVar[int] = 200
    #: application-level ping: (frame text, interval seconds), or None when websocket pings suffice
    app_ping: ClassVar[tuple[str, float] | None] = None
    #: HTTP headers of the websocket handshake (a venue option set per connection), or None
    ws_headers: ClassVar[dict[str, str] | None] = None
    #: least seconds between two :meth:`resubscribe_frames` requests sent on one connection (venues that
    #: limit requests per connection); 0 sends them at once
    request_interval_s: ClassVar[float] = 0.0
    #: the venue's documented limits on connecting and sending (enforced by :mod:`collectors.pacing`
    #: in the client and by the simulator)
    limits: ClassVar[VenueLimits] = VenueLimits()
    #: seconds after which the venue closes every connection (Binance and Bitget: 24 h), or None
    forced_disconnect_s: ClassVar[float | None] = None
    #: True when book rows' ``seq`` is the venue's own update id, the same on every connection (a
    #: rotation then hands a book over at a matching update id instead of resyncing it)
    book_handover_by_seq: ClassVar[bool] = False
    #: seconds to wait after the websocket opens before the first request (venues whose request limits
    #: count from the connection's first second and that document such a pause); 0 sends at once
    subscribe_delay_s: ClassVar[float] = 0.0
    #: least seconds between two REST polls of one key (:meth:`rest_polls`; the connection also keeps
    #: polls within a share of the exchange's REST budget, see :mod:`collectors.connection`)
    poll_interval_s: ClassVar[float] = 10.0

    def __init__(self, options: DialectOptions | None = None) -> None:
        self.options = options or DialectOptions()

    def rotation_age_s(self) -> float:
        """Age (s) at which a connection is rotated by default: before the venue's forced disconnect
        (``forced_disconnect_s`` minus :data:`ROTATION_MARGIN_S`, at least half of it), else 0 (never)."""
        forced = self.forced_disconnect_s
        if not forced:
            return 0.0
        return max(forced / 2, forced - ROTATION_MARGIN_S)

    @abc.abstractmethod
    def native_symbol(self, symbol: str) -> str:
        """The exchange's own symbol for a user-given one (native or normalised, e.g. BTCUSDT or BTC-USDT)."""

    @abc.abstractmethod
    def normalise_symbol(self, native: str) -> str:
        """The normalised symbol (DESIGN.md) of a native one."""

    @abc.abstractmethod
    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        """The websocket URL to open for a subscription (exchanges with URL-based streams put them here)."""

    async def prepare_connection(
        self, http: aiohttp.ClientSession, rest_url: str | None, ws_url: str, sub: Subscription
    ) -> str:
        """The websocket URL for one connection attempt, called before every (re)connect.

        Defaults to :meth:`connection_url`. Venues that hand out a per-connection endpoint and token
        over REST (KuCoin's ``bullet-public``) override it. The URL may carry a secret in its query
        string: the connection layer never logs or records more than :func:`connection._redact`
        leaves of it. Raises ``aiohttp.ClientError`` (``ClientResponseError`` with 429/418 pauses
        the exchange's REST budget), ``TimeoutError`` or ``ValueError``; the attempt then counts as
        a failed connect and is retried with backoff.
        """
        return self.connection_url(ws_url, sub)

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        """Frames to send right after connecting (empty when the URL carries the subscription)."""
        return []

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        """Frames that renew the book subscription of some symbols (exchanges that resync this way)."""
        return []

    def channel_groups(self, channels: Sequence[str]) -> list[tuple[str, ...]]:
        """Channels that share connections: one group by default. A venue that serves some channels
        on another endpoint returns one group per endpoint; :meth:`connection_url` then picks the
        endpoint from ``sub.channels``."""
        return [tuple(channels)]

    def streams_per_symbol(self, group: Sequence[str]) -> int:
        """Streams (topics) one symbol takes on a connection of this channel group: one per channel by
        default. 0 for a group whose one subscription serves every symbol (Bitget's v3 liquidations):
        it then gets a single connection however many symbols there are, since each extra connection
        would receive the same whole stream again."""
        return len(group)

    def decode_binary(self, data: bytes) -> bytes:
        """A received frame as it is captured and normalised (DESIGN.md, "Raw capture format").

        For venues whose frames are compressed or encoded: the connection calls it with every frame's
        bytes (it reads frames undecoded, so text frames arrive here too and must pass unchanged) and
        only when a dialect overrides it. It must be bounded (a decompression bomb must not exhaust
        memory); a frame it cannot decode is returned as ``b64:`` + base64 of the raw bytes, which the
        normaliser turns into a ``parse_error``, live and on replay alike. Default: ``data`` unchanged.
        """
        return data

    @abc.abstractmethod
    def new_normaliser(self) -> Normaliser:
        """A fresh normaliser for one connection or one replay (exchange-specific construction)."""

    def make_normaliser(self, symbols: Sequence[str] | None = None) -> Normaliser:
        """A fresh normaliser configured with this dialect's options (the OUTDATED cutoff, sanity bounds)
        and, when given, the native ``symbols`` subscribed (rows of any other symbol are dropped, see
        :class:`Normaliser`). The one place run options reach a normaliser: every command path that
        normalises (collect, replay, renormalise) makes its normalisers here, so a venue's own
        :meth:`new_normaliser` only constructs."""
        normaliser = self.new_normaliser()
        normaliser.time_flags.outdated_cutoff_ns = self.options.outdated_cutoff_ns
        normaliser.configure(self.options.limits)
        if symbols is not None:
            normaliser.subscribe(self.subscribed_names(symbols))
        return normaliser

    def request_symbol(self, request: str) -> str:
        """The native symbol a snapshot or resubscription request is for (the request is the native
        symbol itself unless a venue keys requests otherwise, as bitfinex does by channel id)."""
        return request

    def subscribed_names(self, native_symbols: Sequence[str]) -> list[str]:
        """Normalised names of native symbols (those that cannot be normalised are left out)."""
        names = []
        for native in native_symbols:
            try:
                names.append(self.normalise_symbol(native))
            except ValueError:
                continue
        return names

    async def fetch_snapshot(self, http: aiohttp.ClientSession, rest_url: str, native_symbol: str) -> str:
        """Fetches a REST book snapshot and returns it wrapped as a generated frame (capture format).

        Only exchanges whose book sync needs REST implement this. Raises ``aiohttp.ClientResponseError``
        on HTTP errors (the connection layer handles 429/418 and ``Retry-After``).
        """
        raise NotImplementedError(f"{self.exchange_id} does not use REST snapshots")

    def snapshot_request_weight(self, native_symbol: str) -> int:
        """Request weight of one snapshot call (for the per-exchange REST budget)."""
        return 1

    # -- instruments (reference data, collectors/instruments.py) ---------------------------------
    #: REST base of the instrument metadata when it differs from ``default_rest_url`` (venues whose
    #: books need no REST have no ``default_rest_url``), or None
    instruments_rest_url: ClassVar[str | None] = None

    def instruments_paths(self) -> list[str]:
        """REST paths (with query) whose responses together list every instrument; empty: the venue
        has no instruments endpoint here (symbol discovery is then unavailable)."""
        return []

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        """The instruments of one response body of :meth:`instruments_paths` (pure: tests feed it
        recorded and documented bodies). Raises ValueError (or KeyError/TypeError) on a body that is
        not the venue's instrument list; an instrument whose fields are unusable is left out."""
        raise NotImplementedError(f"{self.exchange_id} has no instruments parser")

    def instruments_request_weight(self, path: str) -> int:
        """Weight of one instruments request in the venue's REST budget."""
        return 1

    def instruments_request_json(self, path: str) -> Any:
        """JSON body to POST to ``path`` for venues whose instruments come from a POST (Hyperliquid's
        ``/info``); None (the default): the path is fetched with a GET."""
        return None

    async def fetch_instruments(
        self,
        http: aiohttp.ClientSession,
        rest_url: str,
        spend: Callable[[int], Awaitable[None]] | None = None,
    ) -> list[Instrument]:
        """Fetches and parses every instrument (each path of :meth:`instruments_paths` in turn).

        ``spend(weight)`` is awaited before each request (the collector passes its REST budget's
        ``acquire``). Raises ``aiohttp.ClientResponseError`` on HTTP errors (429/418 pause the venue's
        REST budget in the caller) and ValueError on a body that cannot be parsed.
        """
        out: list[Instrument] = []
        for path in self.instruments_paths():
            body = await self.instruments_body(http, rest_url, path, spend)
            out.extend(self.parse_instruments(body, time.time_ns()))
        return out

    async def instruments_body(
        self,
        http: aiohttp.ClientSession,
        rest_url: str,
        path: str,
        spend: Callable[[int], Awaitable[None]] | None = None,
    ) -> bytes:
        """One instruments request (``spend`` its weight first; a GET, or a POST of
        :meth:`instruments_request_json`): the answer's body. Raises ``aiohttp.ClientResponseError`` on
        HTTP errors. Venues whose fetch takes several dependent requests build on it."""
        if spend is not None:
            await spend(self.instruments_request_weight(path))
        url, payload = rest_url.rstrip("/") + path, self.instruments_request_json(path)
        request = http.get(url) if payload is None else http.post(url, json=payload)
        async with request as resp:
            resp.raise_for_status()
            return await resp.read()

    def rest_polls(self, sub: Subscription) -> list[tuple[str, str]]:
        """``(channel, key)`` pairs a connection polls over REST, for channels the venue offers only
        there (Binance futures' open interest). Each answer is injected into the stream as a generated
        frame (DESIGN.md capture format), so a replay gives the live records. Default: none."""
        return []

    def poll_request_weight(self, channel: str, key: str) -> int:
        """Request weight of one REST poll (for the per-exchange REST budget)."""
        return 1

    async def fetch_poll(self, http: aiohttp.ClientSession, rest_url: str, channel: str, key: str) -> str:
        """Fetches one REST poll and returns it wrapped as a generated frame (capture format).

        Raises ``aiohttp.ClientResponseError`` on HTTP errors (429/418 pause the REST budget)."""
        raise NotImplementedError(f"{self.exchange_id} polls nothing over REST")

    @abc.abstractmethod
    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        """A simulator speaking this dialect's protocol (websocket and REST) on loopback."""

"""The L2 book engine shared by every exchange module.

:class:`L2Book` holds one symbol's price levels, sorted, keeping the exact wire strings of price and
size (checksums are computed over them). :class:`SyncedBook` adds what every sequenced feed needs: an
epoch that increments at every resync, the last applied sequence number, the MAYBE_BAD_BOOK window
between a detected gap and the next snapshot, and emission of ``book`` rows and gap/resync events.
Exchange modules own their sequence rules and call into this engine; they never re-implement it.

Two implementations of the level store and level parsing, one behaviour: the compiled
``collectors._booknative`` (C, built by ``make install``; a side is a ``Levels``, a sorted array of
prices) and the pure-Python code in this module (a side is a ``SortedDict``), which is the reference
and the fallback. The compiled code handles the plain inputs (lists of string/number levels, 64-bit
positions) and hands everything else, every invalid input included, to the reference code here, so
errors and events are the reference's own. Both produce identical rows, events and books
(``tests/collectors/test_native_book.py``). :data:`IMPLEMENTATION` names the active one:
``native`` unless the extension is missing or ``TICKTAPE_PURE_PYTHON=1``; :func:`use_implementation`
switches it for books created afterwards (each book keeps the store it was created with).
"""

from __future__ import annotations

import importlib
import itertools
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, TypeAlias

from sortedcontainers import SortedDict

from schemas import Flags, RecordBuffer

from . import events as _events
from .events import INT64_MAX, INT64_MIN, Limits, ParseError, check_symbol, emit_event

BID = "bid"
ASK = "ask"

#: The compiled module (None when it is not built: the reference code then serves everything).
_booknative: Any
try:
    _booknative = importlib.import_module(f"{__package__}._booknative")
except ImportError as exc:  # not built (make install says why)
    _booknative = None
    #: why the compiled engine is not available (None when it is)
    NATIVE_ERROR: str | None = f"{type(exc).__name__}: {exc}"
else:
    NATIVE_ERROR = None

#: One side's levels: ``price -> (size, price_str, size_str)``, best first: a ``SortedDict`` (pure
#: Python) or a ``collectors._booknative.Levels`` (same mapping API: ``get``, ``pop``, ``popitem``,
#: ``peekitem``, ``keys``/``values``/``items`` best first, ``in``, ``len``, item get/set/delete).
LevelMap: TypeAlias = Any

#: The active implementation: ``"native"`` or ``"python"``.
IMPLEMENTATION = (
    "python"
    if _booknative is None or os.environ.get("TICKTAPE_PURE_PYTHON", "") not in ("", "0")
    else "native"
)
_native: Any = _booknative if IMPLEMENTATION == "native" else None


def use_implementation(name: str) -> str:
    """Selects ``"native"`` or ``"python"`` for books created, levels parsed, checksums
    (:mod:`collectors.checksum`) and the JSON depth guard (:func:`collectors.events.json_too_deep`)
    from now on; returns the previous one. :class:`RuntimeError` for ``native`` when the extension is not built."""
    global IMPLEMENTATION, _native
    if name not in ("native", "python"):
        raise ValueError(f"unknown book implementation {name!r} (native or python)")
    if name == "native" and _booknative is None:
        raise RuntimeError(f"the compiled book engine is not available ({NATIVE_ERROR})")
    previous = IMPLEMENTATION
    IMPLEMENTATION = name
    _native = _booknative if name == "native" else None
    # the JSON depth guard of collectors.events follows the same choice
    _events._native_too_deep = _booknative.json_too_deep if name == "native" else None
    return previous


def _neg(price: float) -> float:
    return -price


#: SortedDict is a dict subclass whose key list only changes when a key is added or removed.
_dict_setitem = dict.__setitem__
_DEFAULT_LIMITS = Limits()


def parse_levels(
    levels: Iterable[Sequence[Any]],
    max_price: float = _DEFAULT_LIMITS.max_price,
    max_size: float = _DEFAULT_LIMITS.max_size,
) -> list[tuple[float, float, str, str]]:
    """Parses wire levels ``[price_str, size_str, ...]`` into ``(price, size, price_str, size_str)``.

    Validates everything before anything is applied, so a bad level never leaves a half-updated book:
    prices in ``(0, max_price)``, sizes in ``[0, max_size)`` (0 removes a level).
    """
    if _native is not None:
        parsed: list[tuple[float, float, str, str]] | None = _native.parse_levels(levels, max_price, max_size)
        if parsed is not None:
            return parsed
    return parse_levels_reference(levels, max_price, max_size)


def parse_levels_reference(
    levels: Iterable[Sequence[Any]],
    max_price: float = _DEFAULT_LIMITS.max_price,
    max_size: float = _DEFAULT_LIMITS.max_size,
) -> list[tuple[float, float, str, str]]:
    """:func:`parse_levels` in pure Python: the reference (and what raises every parse error)."""
    parsed = []
    try:
        for level in levels:
            p_str, s_str = level[0], level[1]
            price = float(p_str)
            size = float(s_str)
            if not (0.0 < price < max_price) or not (0.0 <= size < max_size):
                raise ParseError(
                    f"level out of range: {str(p_str)[:40]!r} x {str(s_str)[:40]!r}", channel="book"
                )
            parsed.append((price, size, p_str if isinstance(p_str, str) else repr(p_str), str(s_str)))
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        if isinstance(exc, ParseError):
            raise
        raise ParseError(f"malformed book level: {exc}", channel="book") from None
    return parsed


def _check_position(symbol: str, ts_exchange: Any, seq: Any) -> None:
    """:class:`ParseError` unless ``ts_exchange`` and ``seq`` are null or 64-bit integers (not booleans)."""
    if seq is not None and (seq.__class__ is not int or not INT64_MIN <= seq <= INT64_MAX):
        raise ParseError(f"book sequence is not a 64-bit integer: {str(seq)[:40]!r}", symbol, "book")
    if ts_exchange is not None and (
        ts_exchange.__class__ is not int or not INT64_MIN <= ts_exchange <= INT64_MAX
    ):
        raise ParseError(
            f"book exchange time is not a 64-bit integer: {str(ts_exchange)[:40]!r}", symbol, "book"
        )


class L2Book:
    """Price levels of one symbol: ``price -> (size, price_str, size_str)`` per side, best first.

    The sides are compiled ``Levels`` when the native implementation is active at creation
    (``native`` is True), else ``SortedDict``; both offer the same mapping API (:data:`LevelMap`).
    """

    __slots__ = ("asks", "bids", "native")

    def __init__(self) -> None:
        self.bids: LevelMap
        self.asks: LevelMap
        if _native is not None:
            self.bids = _native.Levels(True)
            self.asks = _native.Levels(False)
            self.native = True
        else:
            self.bids = SortedDict(_neg)
            self.asks = SortedDict()
            self.native = False

    def clear(self) -> None:
        """Removes every level."""
        self.bids.clear()
        self.asks.clear()

    def side(self, side: str) -> LevelMap:
        """The level map of ``bid`` or ``ask``."""
        return self.bids if side == BID else self.asks

    def set_level(
        self, side: str, price: float, size: float, price_str: str = "", size_str: str = ""
    ) -> None:
        """Sets a level's size; size 0 removes it."""
        levels = self.bids if side == BID else self.asks
        if size == 0.0:
            levels.pop(price, None)
        else:
            levels[price] = (size, price_str, size_str)

    def best_bid(self) -> tuple[float, float] | None:
        """Best bid ``(price, size)`` or None."""
        if not self.bids:
            return None
        price, (size, _, _) = self.bids.peekitem(0)
        return price, size

    def best_ask(self) -> tuple[float, float] | None:
        """Best ask ``(price, size)`` or None."""
        if not self.asks:
            return None
        price, (size, _, _) = self.asks.peekitem(0)
        return price, size

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask."""
        if self.native:
            crossed: bool = _booknative.crossed(self.bids, self.asks)
            return crossed
        if not self.bids or not self.asks:
            return False
        bid: float = self.bids.peekitem(0)[0]
        ask: float = self.asks.peekitem(0)[0]
        return bid >= ask

    def top(self, side: str, depth: int) -> list[tuple[float, float, str, str]]:
        """The best ``depth`` levels of a side as ``(price, size, price_str, size_str)``."""
        levels = self.bids if side == BID else self.asks
        if self.native:
            top: list[tuple[float, float, str, str]] = levels.top(depth)
            return top
        return [(p, v[0], v[1], v[2]) for p, v in itertools.islice(levels.items(), depth)]

    def depth(self, side: str) -> int:
        """Number of levels on a side."""
        return len(self.bids if side == BID else self.asks)


class SyncedBook:
    """A symbol's book plus its synchronisation state, and the rows/events it emits.

    ``synced`` is False until the first snapshot (and again after a gap). ``epoch`` starts at 0 with the
    first snapshot and increments at every later snapshot that resets the book (a resync).

    Every change is validated before the book is touched: levels by :func:`parse_levels` against
    ``limits`` (the normaliser's sanity bounds), ``seq`` and ``ts_exchange`` as 64-bit integers.
    """

    __slots__ = (
        "book",
        "epoch",
        "exchange",
        "last_seq",
        "limits",
        "maybe_bad",
        "pending",
        "snapshots",
        "symbol",
        "synced",
    )

    def __init__(self, exchange: str, symbol: str, limits: Limits | None = None) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.limits = limits or _DEFAULT_LIMITS
        self.book = L2Book()
        self.epoch = -1  # becomes 0 at the first snapshot
        self.snapshots = 0
        self.synced = False
        self.last_seq: int | None = None
        self.maybe_bad = False
        self.pending: list[Any] = []  # updates buffered while waiting for a snapshot

    @property
    def flags(self) -> int:
        """Flags that every book row of this symbol carries right now."""
        return Flags.MAYBE_BAD_BOOK if self.maybe_bad else 0

    def apply_snapshot(
        self,
        out: RecordBuffer,
        ts_exchange: int | None,
        ts_recv: int,
        bids: Iterable[Sequence[Any]],
        asks: Iterable[Sequence[Any]],
        seq: int | None,
        reason: str = "snapshot",
    ) -> None:
        """Resets the book to a snapshot and emits its levels as ``is_snapshot`` rows.

        ``bids``/``asks`` hold ``[price_str, size_str, ...]`` as sent by the exchange. A snapshot after
        the first one is a resync: ``epoch + 1`` and a ``resync`` feed event.
        """
        _check_position(self.symbol, ts_exchange, seq)
        limits = self.limits
        parsed_bids = parse_levels(bids, limits.max_price, limits.max_size)
        parsed_asks = parse_levels(asks, limits.max_price, limits.max_size)
        self.snapshots += 1
        self.epoch += 1
        if self.snapshots > 1:
            emit_event(
                out,
                self.exchange,
                self.symbol,
                "book",
                ts_recv,
                "resync",
                {"epoch": self.epoch, "seq": seq, "reason": reason},
            )
        self.book.clear()
        self.synced = True
        self.maybe_bad = False
        self.last_seq = seq
        flags = int(Flags.SNAPSHOT)
        rows = out.book
        book = self.book
        ex, sym, epoch = self.exchange, self.symbol, self.epoch
        for side, levels in ((BID, parsed_bids), (ASK, parsed_asks)):
            if book.native and _booknative.apply_parsed(
                book.bids if side == BID else book.asks,
                rows,
                ex,
                sym,
                ts_exchange,
                ts_recv,
                side,
                levels,
                seq,
                epoch,
                flags,
                True,
            ):
                continue
            for price, size, p_str, s_str in levels:
                if size == 0.0:
                    continue  # some snapshots list empty levels; they do not exist
                book.set_level(side, price, size, p_str, s_str)
                rows.append((ex, sym, ts_exchange, ts_recv, side, price, size, True, seq, epoch, flags))

    def apply_levels(
        self,
        out: RecordBuffer,
        ts_exchange: int | None,
        ts_recv: int,
        side: str,
        levels: Iterable[Sequence[Any]],
        seq: int | None,
    ) -> None:
        """Applies level changes ``[price_str, size_str, ...]`` of one side and emits a row for each.

        Raises :class:`ParseError` (before changing anything) when a level is malformed.
        """
        limits = self.limits
        self.apply_parsed(
            out, ts_exchange, ts_recv, side, parse_levels(levels, limits.max_price, limits.max_size), seq
        )

    def apply_parsed(
        self,
        out: RecordBuffer,
        ts_exchange: int | None,
        ts_recv: int,
        side: str,
        parsed: Sequence[tuple[float, float, str, str]],
        seq: int | None,
    ) -> None:
        """Like :meth:`apply_levels` for levels already validated by :func:`parse_levels`.

        For feeds whose one message mixes sides and event times: the whole message is validated once,
        then applied in runs that share a side and a timestamp.
        """
        _check_position(self.symbol, ts_exchange, seq)
        self._apply_rows(out, ts_exchange, ts_recv, side, parsed, seq, self.flags)

    def _apply_rows(
        self,
        out: RecordBuffer,
        ts_exchange: int | None,
        ts_recv: int,
        side: str,
        parsed: Sequence[tuple[float, float, str, str]],
        seq: int | None,
        flags: int,
    ) -> None:
        """Applies validated levels of one side with the given row flags (no position check)."""
        book = self.book
        rows = out.book
        ex, sym, epoch = self.exchange, self.symbol, self.epoch
        if book.native and _booknative.apply_parsed(
            book.bids if side == BID else book.asks,
            rows,
            ex,
            sym,
            ts_exchange,
            ts_recv,
            side,
            parsed,
            seq,
            epoch,
            flags,
            False,
        ):
            return
        for price, size, p_str, s_str in parsed:
            book.set_level(side, price, size, p_str, s_str)
            rows.append((ex, sym, ts_exchange, ts_recv, side, price, size, False, seq, epoch, flags))

    def apply_update(
        self,
        out: RecordBuffer,
        ts_exchange: int | None,
        ts_recv: int,
        bids: Iterable[Sequence[Any]],
        asks: Iterable[Sequence[Any]],
        seq: int | None,
        extra_flags: int = 0,
    ) -> None:
        """Applies a two-sided update; both sides are validated before either is applied.

        ``extra_flags`` (e.g. the time flags of the message) are OR-ed into every row's flags.
        """
        book = self.book
        limits = self.limits
        if book.native:
            # The whole update in C; False (nothing done) for anything but plain valid input.
            if _booknative.apply_update(
                book.bids,
                book.asks,
                out.book,
                self.exchange,
                self.symbol,
                ts_exchange,
                ts_recv,
                bids,
                asks,
                seq,
                self.epoch,
                self.flags | extra_flags,
                limits.max_price,
                limits.max_size,
                BID,
                ASK,
            ):
                return
            _check_position(self.symbol, ts_exchange, seq)
            parsed_bids = parse_levels_reference(bids, limits.max_price, limits.max_size)
            parsed_asks = parse_levels_reference(asks, limits.max_price, limits.max_size)
            flags = self.flags | extra_flags
            for side, parsed in ((BID, parsed_bids), (ASK, parsed_asks)):
                self._apply_rows(out, ts_exchange, ts_recv, side, parsed, seq, flags)
            return
        _check_position(self.symbol, ts_exchange, seq)
        parsed_bids = parse_levels(bids, limits.max_price, limits.max_size)
        parsed_asks = parse_levels(asks, limits.max_price, limits.max_size)
        append = out.book.append
        ex, sym, epoch, flags = self.exchange, self.symbol, self.epoch, self.flags | extra_flags
        # L2Book.set_level inlined: this loop runs once per level of every update (the hot path).
        for side, levels, parsed in ((BID, book.bids, parsed_bids), (ASK, book.asks, parsed_asks)):
            for price, size, p_str, s_str in parsed:
                if size == 0.0:
                    levels.pop(price, None)
                elif price in levels:
                    # An existing level keeps its place in the sorted keys: a plain dict store skips
                    # SortedDict.__setitem__'s membership test and key-list bookkeeping.
                    _dict_setitem(levels, price, (size, p_str, s_str))
                else:
                    levels[price] = (size, p_str, s_str)
                append((ex, sym, ts_exchange, ts_recv, side, price, size, False, seq, epoch, flags))

    def apply_full_book(
        self,
        out: RecordBuffer,
        ts_exchange: int | None,
        ts_recv: int,
        bids: Iterable[Sequence[Any]],
        asks: Iterable[Sequence[Any]],
        seq: int | None,
        extra_flags: int = 0,
    ) -> None:
        """Applies a message that carries the whole (top of the) book, as some venues send every time.

        The first one of an epoch is the snapshot (``is_snapshot`` rows, a ``resync`` after the first
        epoch); later ones emit only what changed against the held book (size 0 for a level that is no
        longer listed), so the ``book`` dataset stays a stream of changes that rebuilds every message
        exactly, and a full book per message is not mistaken for a resync.
        """
        if not self.synced:
            before = len(out.book)
            self.apply_snapshot(out, ts_exchange, ts_recv, bids, asks, seq)
            add_flags(out.book, before, extra_flags)  # the message's time flags hold for its snapshot too
            return
        parsed = {BID: parse_levels(bids), ASK: parse_levels(asks)}
        append = out.book.append
        ex, sym, epoch, flags = self.exchange, self.symbol, self.epoch, self.flags | extra_flags
        for side, levels in ((BID, self.book.bids), (ASK, self.book.asks)):
            listed: dict[float, tuple[float, str, str]] = {}
            for price, size, p_str, s_str in parsed[side]:
                if size != 0.0:
                    listed[price] = (size, p_str, s_str)
            for price in [p for p in levels if p not in listed]:
                del levels[price]
                append((ex, sym, ts_exchange, ts_recv, side, price, 0.0, False, seq, epoch, flags))
            for price, (size, p_str, s_str) in listed.items():
                held = levels.get(price)
                if held is not None and held[0] == size:
                    continue
                levels[price] = (size, p_str, s_str)
                append((ex, sym, ts_exchange, ts_recv, side, price, size, False, seq, epoch, flags))
        self.last_seq = seq

    def check_crossed(self, out: RecordBuffer, ts_recv: int, detail: dict[str, Any]) -> bool:
        """Emits ``crossed_book`` (with ``detail``) when the synced book's best bid >= best ask."""
        if not self.synced:
            return False
        book = self.book
        if not (_booknative.crossed(book.bids, book.asks) if book.native else book.is_crossed()):
            return False
        emit_event(
            out,
            self.exchange,
            self.symbol,
            "book",
            ts_recv,
            "crossed_book",
            {"bid": self.book.best_bid(), "ask": self.book.best_ask(), **detail},
        )
        return True

    def gap(self, out: RecordBuffer, ts_recv: int, kind: str, detail: dict[str, Any]) -> None:
        """Marks the book broken (a ``gap`` or ``checksum_mismatch``): clears it and waits for a snapshot.

        Rows emitted until the next snapshot carry MAYBE_BAD_BOOK.
        """
        emit_event(out, self.exchange, self.symbol, "book", ts_recv, kind, {**detail, "epoch": self.epoch})
        self.book.clear()
        self.synced = False
        self.maybe_bad = True
        self.pending.clear()
        self.last_seq = None

    def reset(self) -> None:
        """Forgets the book after a disconnect: the next snapshot starts a new epoch."""
        self.book.clear()
        self.synced = False
        self.pending.clear()
        self.last_seq = None


def add_flags(rows: list[tuple[Any, ...]], start: int, flags: int) -> None:
    """ORs ``flags`` into the last column (``flags``) of ``rows[start:]`` (rows are tuples)."""
    if flags:
        for i in range(start, len(rows)):
            row = rows[i]
            rows[i] = (*row[:-1], row[-1] | flags)


class SymbolBooks:
    """One connection's native symbols: their normalised names (validated once, cached) and books.

    Normalisers keep one of these so that symbol normalisation and validation (``check_symbol``, which
    rejects anything that could escape the lake directory) run once per symbol, not once per frame.
    """

    __slots__ = ("books", "exchange", "limits", "names", "normalise_native")

    def __init__(
        self, exchange: str, normalise_native: Callable[[Any], str], limits: Limits | None = None
    ) -> None:
        self.exchange = exchange
        self.normalise_native = normalise_native
        #: the normaliser's sanity bounds, shared with every book created here
        self.limits = limits or _DEFAULT_LIMITS
        self.names: dict[Any, str] = {}
        self.books: dict[str, SyncedBook] = {}

    def name(self, native: Any) -> str:
        """The normalised symbol of a native one; :class:`ParseError` when it is not acceptable."""
        sym = self.names.get(native)
        if sym is None:
            sym = check_symbol(self.normalise_native(native))
            self.names[native] = sym
        return sym

    def book(self, native: str) -> SyncedBook:
        """The synced book of a native symbol (created on first use)."""
        book = self.books.get(native)
        if book is None:
            book = SyncedBook(self.exchange, self.name(native), self.limits)
            self.books[native] = book
        return book


class ResyncWatch:
    """Counts the updates a symbol receives while it waits for its resync snapshot.

    For exchanges that resync by resubscribing: if the new snapshot never comes (the request or its
    answer was lost), the book would stay unusable while updates keep arriving. Every ``every``
    updates without a snapshot, :meth:`update` says to ask again. Counting frames, not time, keeps a
    replay identical to the live run.
    """

    __slots__ = ("every", "waiting")

    def __init__(self, every: int = 1000) -> None:
        self.every = every
        self.waiting: dict[str, int] = {}

    def update(self, native: str) -> int:
        """Notes one more update while waiting; returns the count when it is time to ask again, else 0."""
        count = self.waiting.get(native, 0) + 1
        self.waiting[native] = count
        return count if count % self.every == 0 else 0

    def check(
        self, out: RecordBuffer, exchange: str, native: str, symbol: str, ts_recv: int, requests: set[str]
    ) -> None:
        """Notes one more update while waiting; when the snapshot is overdue, asks again (adds ``native``
        to the normaliser's ``requests``) and records a ``resync_retry`` event."""
        waited = self.update(native)
        if waited:
            requests.add(native)
            emit_event(out, exchange, symbol, "book", ts_recv, "resync_retry", {"updates_waited": waited})

    def done(self, native: str) -> None:
        """The snapshot arrived."""
        self.waiting.pop(native, None)


class ConnectionSequence:
    """Mixin for normalisers whose venue numbers every message of a connection with one counter (every
    channel and product: ``ExchangeDialect.gap_scope == "connection"``, Coinbase's ``sequence_num``).

    A jump means messages were lost, but the counter cannot say whose: every synced book of the
    connection is marked broken (one ``gap`` per book, flagged ``unattributed``; a connection-wide
    ``gap`` only when no book could carry it, so one loss is not counted twice) and every book is asked
    for again by resubscribing. The normaliser provides ``exchange``, ``books``, ``resubscribe_requests``,
    ``last_seq`` (None after a disconnect) and ``sequence_gaps``.
    """

    exchange: ClassVar[str]
    books: dict[str, SyncedBook]
    resubscribe_requests: set[str]
    last_seq: int | None
    sequence_gaps: int
    #: the venue's name of the counter, in feed-event details
    sequence_field: ClassVar[str] = "sequence"

    def check_sequence(self, ts_recv: int, seq: int, out: RecordBuffer) -> bool:
        """Connection-wide continuity of the counter; False when the message must be skipped."""
        last = self.last_seq
        if last is None or seq == last + 1:
            self.last_seq = seq
            return True
        if seq == last:
            emit_event(
                out, self.exchange, None, "connection", ts_recv, "duplicate", {self.sequence_field: seq}
            )
            return False
        self.sequence_gaps += 1
        detail: dict[str, Any] = {"expected": last + 1, self.sequence_field: seq}
        if seq > last:
            detail["missing"] = seq - last - 1
            self.last_seq = seq
        else:
            detail["reason"] = "sequence went backwards (reordered message)"
        marked = 0
        for native, book in self.books.items():
            if book.synced:
                book.gap(out, ts_recv, "gap", {**detail, "unattributed": True})
                marked += 1
            # A book still waiting may have lost its very snapshot: ask for every one again.
            self.resubscribe_requests.add(native)
        if not marked:
            emit_event(out, self.exchange, None, "connection", ts_recv, "gap", detail)
        return True

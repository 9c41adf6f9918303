"""Live feed quality in the collector process: :class:`QualityTracker`.

The collector calls :meth:`QualityTracker.observe` with every batch of rows before publishing them.
That runs on the hot path, so per row it does a handful of integer operations on one small object per
(exchange, channel, symbol): count, last times, raw latency minimum, two bucket increments (raw latency
and latency above the clock floor) and the outdated count. Everything else (the floor, rolling windows,
scores, states, the ``quality`` dataset rows) happens once a second in :meth:`QualityTracker.snapshot`,
which exactly one owner calls (``QualityServer`` does unless told not to, or :meth:`QualityTracker.run`).

Book rows of one frame share their timestamps; consecutive book rows of the same symbol with the same
``ts_recv`` and ``ts_exchange`` count as one message, so a 400-level snapshot is one message, not 400.
"""

from __future__ import annotations

import asyncio
import bisect
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas import DATASET_CHANNELS, Flags, RecordBuffer

from .scoring import (
    NS,
    ClockFloor,
    QualityConfig,
    State,
    StateMachine,
    WindowFigures,
    components,
    event_figures,
    finite_or_none,
    freshness_weight,
    gate_reasons,
    histogram_quantile,
    latency_edges_s,
    raw_state,
    score,
)

log = logging.getLogger(__name__)

#: derivatives datasets observed as channels of their own: (dataset, channel)
_DERIVATIVE_CHANNELS: tuple[tuple[str, str], ...] = tuple(
    (ds, ch) for ds, ch in DATASET_CHANNELS.items() if ds not in ("trades", "book", "bbo")
)
#: feed event kinds with their own counters (others are counted too, under their own kind)
EVENT_KINDS: tuple[str, ...] = (
    "connect", "disconnect", "gap", "resync", "checksum_mismatch", "crossed_book", "stale", "outdated",
    "parse_error", "duplicate", "dropped",
)  # fmt: skip
#: distinct event kinds kept per exchange before the rest are counted as "other" (bounded labels)
MAX_EVENT_KINDS = 48
#: points of per-exchange history kept for the dashboard charts (one per snapshot)
HISTORY_POINTS = 180

_DUPLICATE = int(Flags.DUPLICATE)
#: "no latency seen" (kept an int so the hot path compares without a None check)
NO_MIN = 1 << 62


class _SymbolStats:
    """Counters of one (exchange, channel, symbol) since the last snapshot, plus its last times."""

    __slots__ = (
        "corr_hist",
        "corr_max",
        "corr_min",
        "corr_sum",
        "duplicates",
        "last_exch",
        "last_recv",
        "last_timed",
        "messages",
        "negative",
        "outdated",
        "raw_hist",
        "raw_min",
        "raw_sum",
        "timed",
    )

    def __init__(self, buckets: int) -> None:
        self.messages = 0
        self.timed = 0
        self.duplicates = 0
        self.outdated = 0
        self.negative = 0
        self.raw_sum = 0
        self.corr_sum = 0
        self.corr_max = -NO_MIN
        self.corr_min = NO_MIN
        self.raw_min = NO_MIN
        self.last_recv = 0
        self.last_exch = 0
        self.last_timed = 0
        self.raw_hist = [0] * buckets
        self.corr_hist = [0] * buckets

    def reset(self) -> None:
        self.messages = self.timed = self.duplicates = self.outdated = self.negative = 0
        self.raw_sum = self.corr_sum = 0
        self.corr_max = -NO_MIN
        self.corr_min = NO_MIN
        self.raw_min = NO_MIN
        n = len(self.raw_hist)
        self.raw_hist[:] = bytes(n)  # n zeros, in C
        self.corr_hist[:] = bytes(n)


@dataclass
class _Counts:
    """Cumulative counters of one (exchange, channel), exported to Prometheus."""

    messages: int = 0
    timed: int = 0
    outdated: int = 0
    duplicates: int = 0
    negative: int = 0
    raw_sum_ns: int = 0
    corr_sum_ns: int = 0
    corr_max_ns: int = -NO_MIN
    corr_min_ns: int = NO_MIN
    raw_hist: list[int] = field(default_factory=list)
    corr_hist: list[int] = field(default_factory=list)
    last_recv: int = 0
    last_exch: int = 0
    last_timed: int = 0
    #: messages per second over the last snapshot interval
    rate: float = 0.0


@dataclass
class _Second:
    """One snapshot interval of one exchange (an entry of the rolling score window)."""

    t_ns: int
    messages: int
    timed: int
    outdated: int
    duplicates: int
    events: dict[str, int]
    corr_hist: list[int]
    #: extreme latencies above the floor (ns): quantiles interpolated in a wide bucket stay within them
    corr_max_ns: int = -NO_MIN
    corr_min_ns: int = NO_MIN


@dataclass
class _Closed:
    """One exchange's interval, closed by a snapshot, before it is scored."""

    ex: _Exchange
    second: _Second
    channels: dict[str, _Counts]
    symbol_rows: list[tuple[Any, ...]]
    floor_ns: int | None
    gaps: dict[str, int]


@dataclass
class ExchangeView:
    """Everything known about one exchange at the last snapshot (the /api/quality object)."""

    exchange: str
    state: State
    score: float
    reasons: list[str]
    freshness_weight: float
    components: dict[str, float]
    figures: WindowFigures
    latency_p50_s: float | None
    clock_offset_estimate_s: float | None
    clock_suspect: str | None
    channels: dict[str, dict[str, Any]]
    totals: dict[str, int]


class _Exchange:
    """Per-exchange state: floor, rolling window, state machine, event counters."""

    def __init__(self, name: str, config: QualityConfig, buckets: int) -> None:
        self.name = name
        self.floor = ClockFloor(config)
        self.bootstrapping = True
        self.machine = StateMachine(config)
        self.window: deque[_Second] = deque()
        self.win_messages = 0
        self.win_timed = 0
        self.win_outdated = 0
        self.win_duplicates = 0
        self.win_events: dict[str, int] = {}
        self.win_corr_hist = [0] * buckets
        self.events_total: dict[tuple[str, str], int] = {}
        #: feed events since the last snapshot, per (channel, kind)
        self.pending_events: dict[tuple[str, str], int] = {}
        self.symbol_gaps: dict[tuple[str, str], int] = {}
        self.last_recv = 0
        self.last_exch = 0
        self.last_timed_recv = 0
        self.stale_at = 0
        self.had_data = False
        self.baseline_rate: float | None = None
        #: message rates of the last intervals (the rate judged against the baseline)
        self.recent: deque[float] = deque(maxlen=10)
        self.view: ExchangeView | None = None
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_POINTS)
        self.connections = 0
        self.interval_lag_ns: int | None = None


class QualityTracker:
    """Per-exchange and per-channel feed quality from the rows a collector produces.

    ``observe`` on every batch (hot path); ``snapshot`` once a second (windows, floor, scores, the
    ``quality`` dataset rows); ``exchanges()`` / ``api()`` for the HTTP layer.
    """

    def __init__(
        self,
        config: QualityConfig | None = None,
        exchanges: Iterable[str] = (),
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config or QualityConfig()
        self.clock = clock
        self.edges_s = latency_edges_s(self.config)
        self._edges_ns = [round(e * NS) for e in self.edges_s]
        self._buckets = len(self._edges_ns) + 1
        self._cutoff_ns = int(self.config.outdated_cutoff_s * NS)
        self._symbols: dict[tuple[str, str, str], _SymbolStats] = {}
        self._counts: dict[tuple[str, str], _Counts] = {}
        self._exchanges: dict[str, _Exchange] = {}
        self._last_snapshot_ns: int | None = None
        self._skip_intervals = 0
        #: how far behind this process itself was at the last snapshot (seconds), and how often
        self.collector_lag_s = 0.0
        self.host_stalls = 0
        for name in exchanges:
            self._exchange(name)

    # ---------------------------------------------------------------- hot path

    def _exchange(self, name: str) -> _Exchange:
        ex = self._exchanges.get(name)
        if ex is None:
            ex = self._exchanges[name] = _Exchange(name, self.config, self._buckets)
        return ex

    def expect(self, exchanges: Iterable[str]) -> None:
        """Registers exchanges before their first row, so that a feed that never starts shows as silent."""
        for name in exchanges:
            self._exchange(name)

    def observe(self, records: RecordBuffer) -> None:
        """Accounts for one batch of rows (tuples in ``.avsc`` field order) produced by a collector."""
        if records.trades:
            self._observe_rows("trades", records.trades, False)
        if records.book:
            self._observe_rows("book", records.book, True)
        if records.bbo:
            self._observe_rows("bbo", records.bbo, False)
        for dataset, channel in _DERIVATIVE_CHANNELS:
            rows = records.rows(dataset)
            if rows:
                self._observe_rows(channel, rows, False)
        if records.feed_events:
            self._observe_events(records.feed_events)

    def _observe_rows(self, channel: str, rows: list[tuple[Any, ...]], per_frame: bool) -> None:
        edges = self._edges_ns
        cutoff = self._cutoff_ns
        bisect_left = bisect.bisect_left
        # (exchange, symbol) -> its stats, exchange state and floor: one dict lookup per row
        touched: dict[tuple[str, str], tuple[_SymbolStats, _Exchange, int]] = {}
        st: _SymbolStats | None = None
        ex: _Exchange | None = None
        floor = 0
        cur: tuple[str, str] | None = None
        prev_recv = prev_exch = -1
        for row in rows:
            ts_exchange = row[2]
            ts_recv = row[3]
            if cur is None or row[0] != cur[0] or row[1] != cur[1]:
                cur = (row[0], row[1])
                got = touched.get(cur)
                if got is None:
                    got = touched[cur] = self._stats_for(cur[0], channel, cur[1])
                st, ex, floor = got
                prev_recv = prev_exch = -1
            assert st is not None and ex is not None
            if per_frame and ts_recv == prev_recv and ts_exchange == prev_exch:
                continue  # another level of the same book frame
            prev_recv = ts_recv
            prev_exch = ts_exchange if ts_exchange is not None else -2
            st.messages += 1
            if ts_recv > st.last_recv:
                st.last_recv = ts_recv
            if row[-1] & _DUPLICATE:
                st.duplicates += 1
            if ts_exchange is None:
                continue
            latency = ts_recv - ts_exchange
            st.timed += 1
            # event age is about the newest *received* message (30 s-old frames make it 30 s at once)
            st.last_exch = ts_exchange
            st.last_timed = ts_recv
            if latency < st.raw_min:
                st.raw_min = latency
            st.raw_sum += latency
            st.raw_hist[bisect_left(edges, latency)] += 1
            if latency < 0:
                st.negative += 1
            if ex.bootstrapping:
                floor = ex.floor.bootstrap(latency)
                touched[cur] = (st, ex, floor)
            above = latency - floor
            st.corr_sum += above
            if above > st.corr_max:
                st.corr_max = above
            if above < st.corr_min:
                st.corr_min = above
            st.corr_hist[bisect_left(edges, above)] += 1
            if above > cutoff:
                st.outdated += 1
        for st, ex, _ in touched.values():
            self._touch(ex, st)

    def _stats_for(self, exchange: str, channel: str, symbol: str) -> tuple[_SymbolStats, _Exchange, int]:
        key = (exchange, channel, symbol)
        st = self._symbols.get(key)
        if st is None:
            st = self._symbols[key] = _SymbolStats(self._buckets)
        ex = self._exchanges.get(exchange) or self._exchange(exchange)
        return st, ex, ex.floor.floor_ns if ex.floor.floor_ns is not None else 0

    def _touch(self, ex: _Exchange, st: _SymbolStats) -> None:
        # Per batch, not per row: the exchange-level last times that the ages are computed from.
        if st.last_recv > ex.last_recv:
            ex.last_recv = st.last_recv
            ex.had_data = True
        if st.last_timed >= ex.last_timed_recv and st.last_timed:
            ex.last_exch = st.last_exch
            ex.last_timed_recv = st.last_timed

    def _observe_events(self, rows: list[tuple[Any, ...]]) -> None:
        for exchange, symbol, channel, ts_recv, kind, _detail in rows:
            ex = self._exchanges.get(exchange) or self._exchange(exchange)
            if kind not in EVENT_KINDS and len({k for _, k in ex.events_total}) >= MAX_EVENT_KINDS:
                kind = "other"
            key = (channel, kind)
            ex.events_total[key] = ex.events_total.get(key, 0) + 1
            ex.pending_events[key] = ex.pending_events.get(key, 0) + 1
            if kind == "gap" and symbol is not None:
                skey = (symbol, channel)
                ex.symbol_gaps[skey] = ex.symbol_gaps.get(skey, 0) + 1
            elif kind == "stale":
                ex.stale_at = max(ex.stale_at, ts_recv)
            elif kind == "connect":
                ex.connections += 1
            elif kind == "disconnect":
                ex.connections = max(0, ex.connections - 1)

    # ---------------------------------------------------------------- once a second

    def snapshot(self, now_ns: int | None = None, loop_lag_s: float = 0.0) -> list[tuple[Any, ...]]:
        """Closes the interval since the last call: updates floors, windows, scores and states, and
        returns ``quality`` dataset rows (schema order): one per exchange (channel ``all``), one per
        exchange and channel, and one per symbol and channel that had messages or gaps.

        ``loop_lag_s`` is how late this call is (the caller's own stall, see :meth:`run`)."""
        now = self.clock() if now_ns is None else now_ns
        start = self._last_snapshot_ns
        if start is None or start >= now:
            # first call (or a clock that went back): assume the nominal one-second interval
            start = now - NS
        self._last_snapshot_ns = now
        interval_s = (now - start) / NS
        per_exchange: dict[str, list[tuple[str, str, _SymbolStats]]] = {}
        for (exchange, channel, symbol), st in self._symbols.items():
            per_exchange.setdefault(exchange, []).append((channel, symbol, st))
        closed = [self._close_interval(ex, per_exchange.get(name, []), start, now, interval_s)
                  for name, ex in self._exchanges.items()]  # fmt: skip

        # Our own stall: when this process (or its host) could not read its sockets in time, every
        # exchange looks late at once. Seen as a late tick, or as every exchange's median latency
        # above the floor rising together (three exchanges at least); that interval and the next one,
        # whose frames were stamped after the backlog, are kept out of the latency and rate scores.
        medians = [
            q
            for c in closed
            if c.second.timed >= 5 and (q := self._above_q(0.5, c.second.corr_hist)) is not None
        ]
        common = min(medians) if len(medians) >= 3 else 0.0
        self.collector_lag_s = max(loop_lag_s, common)
        if self.collector_lag_s > self.config.host_stall_s:
            self.host_stalls += 1
            self._skip_intervals = 2
        skip = self._skip_intervals > 0
        self._skip_intervals = max(0, self._skip_intervals - 1)

        rows: list[tuple[Any, ...]] = []
        for c in closed:
            ex = c.ex
            self._push_second(ex, c.second, skip)
            rate: float | None = None
            if not skip:
                ex.recent.append(c.second.messages / interval_s)
                rate = sum(ex.recent) / len(ex.recent)
                if ex.baseline_rate is None:
                    ex.baseline_rate = rate if rate > 0 else None
                else:
                    # EWMA over ~5 minutes: the feed's own normal rate, against which drops are judged.
                    ex.baseline_rate += (rate - ex.baseline_rate) * min(1.0, interval_s / 300.0)
            view = self._evaluate(ex, now, rate)
            rows.append(self._exchange_row(ex, view, start, now, c.second))
            for channel, interval in sorted(c.channels.items()):
                gaps = c.gaps.get(channel, 0)
                rows.append(self._channel_row(ex, view, channel, start, now, interval, c.floor_ns, gaps))
            rows.extend(c.symbol_rows)
        return rows

    def _close_interval(
        self,
        ex: _Exchange,
        entries: list[tuple[str, str, _SymbolStats]],
        start: int,
        now: int,
        interval_s: float,
    ) -> _Closed:
        name = ex.name
        # 1. the clock floor from this interval's minimum raw latency
        minima = [st.raw_min for _, _, st in entries if st.raw_min != NO_MIN]
        if minima:
            ex.floor.add_second(now // NS, min(minima))
            ex.bootstrapping = False
        floor_ns = ex.floor.floor_ns
        ex.interval_lag_ns = min(minima) - (floor_ns or 0) if minima else None
        # 2. fold symbol counters into channel totals and this interval's exchange figures
        by_kind: dict[str, int] = {}
        gaps_by_channel: dict[str, int] = {}
        for (channel, kind), n in ex.pending_events.items():
            by_kind[kind] = by_kind.get(kind, 0) + n
            if kind == "gap":
                gaps_by_channel[channel] = gaps_by_channel.get(channel, 0) + n
        ex.pending_events.clear()
        second = _Second(now, 0, 0, 0, 0, by_kind, [0] * self._buckets)
        channel_interval: dict[str, _Counts] = {}
        symbol_rows: list[tuple[Any, ...]] = []
        for channel, symbol, st in entries:
            counts = self._counts.get((name, channel))
            if counts is None:
                counts = self._counts[(name, channel)] = _Counts(
                    raw_hist=[0] * self._buckets, corr_hist=[0] * self._buckets
                )
            interval = channel_interval.get(channel)
            if interval is None:
                interval = channel_interval[channel] = _Counts(
                    raw_hist=[0] * self._buckets, corr_hist=[0] * self._buckets
                )
            gaps = ex.symbol_gaps.pop((symbol, channel), 0)
            if st.messages or gaps:
                symbol_rows.append(self._row(name, symbol, channel, start, now, st, floor_ns, gaps, now))
            if st.messages:
                for agg in (counts, interval):
                    agg.messages += st.messages
                    agg.timed += st.timed
                    agg.outdated += st.outdated
                    agg.duplicates += st.duplicates
                    agg.negative += st.negative
                    agg.raw_sum_ns += st.raw_sum
                    agg.corr_sum_ns += st.corr_sum
                    agg.corr_max_ns = max(agg.corr_max_ns, st.corr_max)
                    agg.corr_min_ns = min(agg.corr_min_ns, st.corr_min)
                    _add_sparse(agg.raw_hist, st.raw_hist)
                    _add_sparse(agg.corr_hist, st.corr_hist)
                second.messages += st.messages
                second.timed += st.timed
                second.outdated += st.outdated
                second.duplicates += st.duplicates
                _add_sparse(second.corr_hist, st.corr_hist)
                second.corr_max_ns = max(second.corr_max_ns, st.corr_max)
                second.corr_min_ns = min(second.corr_min_ns, st.corr_min)
            counts.last_recv = max(counts.last_recv, st.last_recv)
            if st.last_timed >= counts.last_timed and st.last_timed:
                counts.last_exch, counts.last_timed = st.last_exch, st.last_timed
            if st.messages:
                st.reset()
        for (ex_name, channel), counts in self._counts.items():
            if ex_name == name:
                got = channel_interval.get(channel)
                counts.rate = (got.messages if got else 0) / interval_s
        return _Closed(ex, second, channel_interval, symbol_rows, floor_ns, gaps_by_channel)

    def _push_second(self, ex: _Exchange, second: _Second, host_stalled: bool) -> None:
        horizon = second.t_ns - self.config.score_window_s * NS
        if host_stalled:
            # counts and events stay; latency figures of our own stall do not judge the exchange
            second = _Second(second.t_ns, second.messages, 0, 0, second.duplicates, second.events,
                             [0] * self._buckets)  # fmt: skip
        ex.window.append(second)
        self._fold(ex, second, 1)
        while ex.window and ex.window[0].t_ns <= horizon:
            self._fold(ex, ex.window.popleft(), -1)

    @staticmethod
    def _fold(ex: _Exchange, s: _Second, sign: int) -> None:
        ex.win_messages += sign * s.messages
        ex.win_timed += sign * s.timed
        ex.win_outdated += sign * s.outdated
        ex.win_duplicates += sign * s.duplicates
        for kind, n in s.events.items():
            ex.win_events[kind] = ex.win_events.get(kind, 0) + sign * n
        hist = ex.win_corr_hist
        for i, c in enumerate(s.corr_hist):
            if c:
                hist[i] += sign * c

    def _ages(self, ex: _Exchange, now: int) -> tuple[float | None, float | None, float | None]:
        floor = ex.floor.floor_ns or 0
        receive_age = (now - ex.last_recv) / NS if ex.last_recv else None
        event_age = (now - ex.last_exch - floor) / NS if ex.last_exch else None
        timed_age = (now - ex.last_timed_recv) / NS if ex.last_timed_recv else None
        return receive_age, event_age, timed_age

    def _evaluate(self, ex: _Exchange, now: int, rate: float | None) -> ExchangeView:
        cfg = self.config
        window_max = max((s.corr_max_ns for s in ex.window), default=-NO_MIN)
        window_min = min((s.corr_min_ns for s in ex.window), default=NO_MIN)
        receive_age, event_age, timed_age = self._ages(ex, now)
        floor_s = ex.floor.floor_ns / NS if ex.floor.floor_ns is not None else None
        ev = ex.win_events
        figures = WindowFigures(
            messages=ex.win_messages,
            timed_messages=ex.win_timed,
            outdated=ex.win_outdated,
            duplicates=ex.win_duplicates + ev.get("duplicate", 0),
            **event_figures(ev),
            latency_p99_s=self._above_q(0.99, ex.win_corr_hist, window_max, window_min),
            clock_offset_s=floor_s,
            receive_age_s=receive_age,
            event_age_s=event_age,
            timed_receive_age_s=timed_age,
            interval_lag_s=ex.interval_lag_ns / NS if ex.interval_lag_ns is not None else None,
            stalled=ex.stale_at > ex.last_recv,
            message_rate=rate,
            baseline_rate=ex.baseline_rate,
        )
        value, reasons = score(figures, cfg, ex.name)
        gated = bool(gate_reasons(figures, cfg, ex.name))
        target = raw_state(value, gated, cfg)
        # Before its first row an exchange is EXCLUDE ("no data"), outside the state machine, so
        # that the first real evaluation is adopted at once instead of waiting out the recovery.
        state: State = ex.machine.update(target, now) if ex.had_data else "EXCLUDE"
        clock_suspect = None
        if floor_s is not None and floor_s < -cfg.clock_tolerance_s:
            clock_suspect = f"host clock behind {ex.name} by {-floor_s:.3f} s: raw latency untrusted"
        elif floor_s is not None and floor_s > cfg.clock_bad_s:
            clock_suspect = f"latency floor {floor_s:.3f} s: host clock ahead or {ex.name} time behind"
        channels: dict[str, dict[str, Any]] = {}
        for (name, channel), counts in self._counts.items():
            if name != ex.name:
                continue
            channels[channel] = {
                "messages_total": counts.messages,
                "messages_per_s": round(counts.rate, 3),
                "receive_age_s": _round((now - counts.last_recv) / NS if counts.last_recv else None),
                "event_age_s": _round(
                    (now - counts.last_exch - (ex.floor.floor_ns or 0)) / NS if counts.last_exch else None
                ),
            }
        totals = {
            f"{kind}": 0 for kind in ("gap", "resync", "checksum_mismatch", "crossed_book", "duplicate")
        }
        for (_channel, kind), n in ex.events_total.items():
            totals[kind] = totals.get(kind, 0) + n
        view = ExchangeView(
            exchange=ex.name,
            state=state,
            score=value,
            reasons=reasons,
            freshness_weight=freshness_weight(state, event_age, cfg, ex.name),
            components={k: round(v, 4) for k, v in components(figures, cfg).items()},
            figures=figures,
            latency_p50_s=self._above_q(0.5, ex.win_corr_hist, window_max, window_min),
            clock_offset_estimate_s=floor_s,
            clock_suspect=clock_suspect,
            channels=channels,
            totals=totals,
        )
        ex.view = view
        ex.history.append(
            {
                "t": round(now / NS, 3),
                "score": value,
                "state": state,
                "event_age_s": _round(event_age),
                "receive_age_s": _round(receive_age),
                "latency_p99_s": _round(figures.latency_p99_s),
            }
        )
        return view

    def _row(
        self,
        exchange: str,
        symbol: str,
        channel: str,
        start: int,
        now: int,
        st: _SymbolStats,
        floor_ns: int | None,
        gaps: int,
        at: int,
    ) -> tuple[Any, ...]:
        floor = floor_ns or 0
        figures = WindowFigures(
            messages=st.messages,
            timed_messages=st.timed,
            outdated=st.outdated,
            duplicates=st.duplicates,
            gaps=gaps,
            latency_p99_s=self._above_q(0.99, st.corr_hist, st.corr_max, st.corr_min),
            clock_offset_s=floor_ns / NS if floor_ns is not None else None,
            receive_age_s=(at - st.last_recv) / NS if st.last_recv else None,
            event_age_s=(at - st.last_exch - floor) / NS if st.last_exch else None,
            timed_receive_age_s=(at - st.last_timed) / NS if st.last_timed else None,
        )
        value, _ = score(figures, self.config, exchange)
        state = raw_state(value, bool(gate_reasons(figures, self.config, exchange)), self.config)
        return self._quality_row(
            exchange,
            symbol,
            channel,
            start,
            now,
            figures,
            st.corr_hist,
            value,
            state,
            st.corr_max,
            st.corr_min,
        )

    def _quality_row(
        self,
        exchange: str,
        symbol: str | None,
        channel: str,
        start: int,
        now: int,
        f: WindowFigures,
        corr_hist: list[int],
        value: float,
        state: str,
        max_ns: int = -NO_MIN,
        min_ns: int = NO_MIN,
    ) -> tuple[Any, ...]:
        return (
            exchange,
            symbol,
            channel,
            now,  # ts_recv: when the row was computed
            start,
            now,
            f.messages,
            finite_or_none(self._above_q(0.5, corr_hist, max_ns, min_ns)),
            finite_or_none(f.latency_p99_s),
            f.clock_offset_s,
            f.event_age_s,
            f.receive_age_s,
            f.outdated / f.timed_messages if f.timed_messages else None,
            f.gaps,
            f.duplicates,
            float(value),
            state,
        )

    def _exchange_row(
        self, ex: _Exchange, view: ExchangeView, start: int, now: int, second: _Second
    ) -> tuple[Any, ...]:
        f = WindowFigures(
            messages=second.messages,
            timed_messages=second.timed,
            outdated=second.outdated,
            duplicates=second.duplicates + second.events.get("duplicate", 0),
            gaps=second.events.get("gap", 0),
            latency_p99_s=self._above_q(0.99, second.corr_hist, second.corr_max_ns, second.corr_min_ns),
            clock_offset_s=view.clock_offset_estimate_s,
            receive_age_s=view.figures.receive_age_s,
            event_age_s=view.figures.event_age_s,
        )
        return self._quality_row(
            ex.name,
            None,
            "all",
            start,
            now,
            f,
            second.corr_hist,
            view.score,
            view.state,
            second.corr_max_ns,
            second.corr_min_ns,
        )

    def _channel_row(
        self,
        ex: _Exchange,
        view: ExchangeView,
        channel: str,
        start: int,
        now: int,
        interval: _Counts,
        floor_ns: int | None,
        gaps: int,
    ) -> tuple[Any, ...]:
        counts = self._counts[(ex.name, channel)]
        floor = floor_ns or 0
        f = WindowFigures(
            messages=interval.messages,
            timed_messages=interval.timed,
            outdated=interval.outdated,
            duplicates=interval.duplicates,
            gaps=gaps,
            latency_p99_s=self._above_q(0.99, interval.corr_hist, interval.corr_max_ns, interval.corr_min_ns),
            clock_offset_s=view.clock_offset_estimate_s,
            receive_age_s=(now - counts.last_recv) / NS if counts.last_recv else None,
            event_age_s=(now - counts.last_exch - floor) / NS if counts.last_exch else None,
        )
        return self._quality_row(
            ex.name,
            None,
            channel,
            start,
            now,
            f,
            interval.corr_hist,
            view.score,
            view.state,
            interval.corr_max_ns,
            interval.corr_min_ns,
        )

    def _above_q(
        self, q: float, hist: list[int], max_ns: int = -NO_MIN, min_ns: int = NO_MIN
    ) -> float | None:
        # Latency above the floor is reported as >= 0: messages below a floor that has not yet
        # caught up (it rises slowly on purpose) are "as fast as the floor", never negative latency.
        # Interpolation inside a wide bucket (30-45 s) stays within the values actually seen.
        value = histogram_quantile(q, self.edges_s, hist)
        if value is None:
            return None
        if max_ns != -NO_MIN:
            value = min(value, max_ns / NS)
        if min_ns != NO_MIN:
            value = max(value, min_ns / NS)
        return max(0.0, value)

    # ---------------------------------------------------------------- readers

    def exchanges(self) -> list[ExchangeView]:
        """The view of every exchange as of the last snapshot (sorted by exchange id)."""
        out = []
        for name in sorted(self._exchanges):
            ex = self._exchanges[name]
            if ex.view is None:
                self._evaluate(ex, self.clock(), 0.0)
            assert ex.view is not None
            out.append(ex.view)
        return out

    def api(self, now_ns: int | None = None, history: bool = False) -> list[dict[str, Any]]:
        """The ``/api/quality`` document: one object per exchange. Ages are computed at ``now``."""
        now = self.clock() if now_ns is None else now_ns
        out = []
        for view in self.exchanges():
            ex = self._exchanges[view.exchange]
            receive_age, event_age, _ = self._ages(ex, now)
            f = view.figures
            item: dict[str, Any] = {
                "exchange": view.exchange,
                "state": view.state,
                "score": view.score,
                "freshness_weight": view.freshness_weight,
                "reasons": view.reasons,
                "receive_age_s": _round(receive_age),
                "event_age_s": _round(event_age),
                "latency_p50_s": _round(view.latency_p50_s),
                "latency_p99_s": _round(f.latency_p99_s),
                "clock_offset_estimate_s": _round(view.clock_offset_estimate_s),
                "clock_suspect": view.clock_suspect,
                "outdated_ratio": _round(f.outdated / f.timed_messages if f.timed_messages else None),
                "gaps": f.gaps,
                "resyncs": f.resyncs,
                "checksum_failures": f.checksum_failures,
                "crossed_books": f.crossed_books,
                "duplicates": f.duplicates,
                "parse_errors": f.parse_errors,
                "messages": f.messages,
                "messages_per_s": _round(f.message_rate),
                "baseline_messages_per_s": _round(f.baseline_rate),
                "window_s": self.config.score_window_s,
                "limits": limits_for(self.config, view.exchange),
                "connections": ex.connections,
                "collector_lag_s": _round(self.collector_lag_s),
                "components": view.components,
                "channels": view.channels,
                "totals": view.totals,
            }
            if history:
                item["history"] = list(ex.history)
            out.append(item)
        return out

    def prometheus_view(self) -> tuple[dict[tuple[str, str], _Counts], dict[str, _Exchange]]:
        """Internal counters for :mod:`quality.metrics` (read-only use)."""
        return self._counts, self._exchanges

    async def run(
        self,
        on_rows: Callable[[list[tuple[Any, ...]]], Awaitable[None] | None] | None = None,
        interval_s: float = 1.0,
    ) -> None:
        """Calls :meth:`snapshot` every ``interval_s`` until cancelled, passing the rows to ``on_rows``
        (e.g. a publisher of the ``quality`` dataset). A failing ``on_rows`` is logged, never fatal."""
        loop = asyncio.get_running_loop()
        next_at = loop.time() + interval_s
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            lag = max(0.0, loop.time() - next_at)
            next_at += interval_s
            if next_at < loop.time():
                next_at = loop.time() + interval_s  # fell behind by whole intervals: no burst of ticks
            rows = self.snapshot(loop_lag_s=lag)
            if on_rows is not None:
                try:
                    result = on_rows(rows)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("publishing quality rows failed")


def _add_sparse(total: list[int], part: list[int]) -> None:
    # Latency histograms are sparse (a few buckets hold everything): skip the empty ones.
    for i, c in enumerate(part):
        if c:
            total[i] += c


def limits_for(config: QualityConfig, exchange: str) -> dict[str, float]:
    """The thresholds that apply to one exchange (shown by the dashboard next to its figures)."""
    return {
        "outdated_cutoff_s": config.outdated_cutoff_s,
        "event_age_limit_s": config.event_age_limit(exchange),
        "silent_after_s": config.silent_after_s,
        "ok_score": config.ok_score,
        "exclude_score": config.exclude_score,
    }


def _round(x: float | None, digits: int = 6) -> float | None:
    x = finite_or_none(x)
    return None if x is None else round(x, digits)

"""Thresholds, the clock-offset floor, the 0-100 health score and the OK/DEGRADED/EXCLUDE states.

Shared by the live tracker (:mod:`quality.live`) and the batch report over the lake
(:mod:`quality.batch`), so a replayed day is judged by exactly the rules that judged it live.

Clock offset (the "floor")
--------------------------
Raw latency ``ts_recv - ts_exchange`` mixes two things: what the network and the exchange add, and the
difference between the host clock and the exchange clock. The second one is a constant (or a slow
drift); its best estimate is the *floor* of raw latency, the fastest messages. We estimate it per
exchange from one minimum per second, kept for ``floor_window_s`` (10 minutes by default), and take a
low quantile (5 %) of those minima so that one message with a wild timestamp cannot move it.

A floor that adapted freely would hide the very incident ticktape exists for: an exchange whose frames
suddenly carry 30 s-old timestamps raises every per-second minimum by 30 s, and a plain rolling
minimum would call that "clock offset" once the window has turned over. Two rules prevent it:

* the quantile moves only when 95 % of the window is late (9.5 minutes once the 10-minute window
  is full; 95 % of the seconds seen so far on a younger feed);
* after that the floor may *rise* by at most ``floor_rise_per_s`` (2 ms per second: four times the
  fastest slew NTP applies to a clock), so absorbing 30 s would take more than four hours, while
  the incident is reported, scored and alerted from its first seconds.

The floor may *drop* as soon as the quantile drops: a host clock that steps back, or an exchange
clock that runs ahead, shows up within the 5 % of the window. A floor below ``-clock_tolerance_s``
means the host clock is behind (latency cannot be negative): ``ts_recv`` is not trustworthy. A
floor above ``outdated_cutoff_s`` cannot be told apart from data that was old from the start, so
it closes the freshness gate: either way the exchange's times cannot be traded on.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from collectors.base import DEFAULT_OUTDATED_CUTOFF_NS

State = Literal["OK", "DEGRADED", "EXCLUDE"]
STATES: tuple[State, ...] = ("OK", "DEGRADED", "EXCLUDE")
_RANK: dict[str, int] = {"EXCLUDE": 0, "DEGRADED": 1, "OK": 2}

NS = 1_000_000_000

#: Score weights of the components (they add up to 100). Freshness is a gate, not a weight.
WEIGHTS: dict[str, float] = {
    "latency": 30.0,
    "completeness": 20.0,
    "integrity": 20.0,
    "clock": 15.0,
    "duplicates": 15.0,
}


@dataclass(frozen=True)
class QualityConfig:
    """Every threshold of the quality layer (seconds unless named otherwise)."""

    #: latency above the floor beyond which a message is OUTDATED (DESIGN.md: 2.5 s); the same
    #: cutoff sets the OUTDATED flag in every normaliser (``DialectOptions.outdated_cutoff_ns``)
    outdated_cutoff_s: float = DEFAULT_OUTDATED_CUTOFF_NS / 1e9
    #: latency above the floor that still earns the full latency score
    latency_good_s: float = 0.25
    #: outdated share of the window at which the latency component reaches 0
    outdated_ratio_limit: float = 0.10
    #: event age (above the floor) that closes the freshness gate while messages keep arriving
    event_age_limit_s: float = 5.0
    #: receive age beyond which an exchange is silent (gate closed)
    silent_after_s: float = 10.0
    #: |clock offset| up to which the clock component is full
    clock_tolerance_s: float = 0.05
    #: |clock offset| at which the clock component reaches 0
    clock_bad_s: float = 1.0
    #: seconds of per-second latency minima behind the floor estimate
    floor_window_s: int = 600
    #: low quantile of those minima that is the floor
    floor_quantile: float = 0.05
    #: fastest rise of the floor, seconds per second
    floor_rise_per_s: float = 0.002
    #: window of the score and of the rolling figures in /api/quality
    score_window_s: int = 60
    #: a better state must hold this long before the state improves (hysteresis)
    recovery_s: float = 10.0
    ok_score: float = 90.0
    exclude_score: float = 70.0
    #: our own lag (late snapshot, or every exchange late at once) beyond which latency is not scored
    host_stall_s: float = 0.1
    #: message rate below this share of its own baseline costs completeness
    rate_drop_ratio: float = 0.25
    #: duplicate share at which the duplicates component reaches 0
    duplicate_ratio_limit: float = 0.01
    #: per-exchange overrides of ``event_age_limit_s`` (venues that are slow by nature)
    event_age_limits: dict[str, float] = field(default_factory=dict)

    def event_age_limit(self, exchange: str) -> float:
        """The event-age limit of one exchange."""
        return self.event_age_limits.get(exchange, self.event_age_limit_s)


def latency_edges_s(config: QualityConfig | None = None) -> tuple[float, ...]:
    """Histogram bucket edges (seconds) for latency: negative values counted, an edge on every threshold."""
    cfg = config or QualityConfig()
    positive = {
        0.0005, 0.001, 0.002, 0.0035, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
        0.15, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.5, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0,
        60.0, 120.0, 300.0,
    }  # fmt: skip
    thresholds = {cfg.outdated_cutoff_s, cfg.latency_good_s, cfg.event_age_limit_s, cfg.clock_tolerance_s,
                  cfg.clock_bad_s, cfg.silent_after_s, *cfg.event_age_limits.values()}  # fmt: skip
    positive |= thresholds
    negative = {-x for x in (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)}
    negative |= {-x for x in thresholds}
    return tuple(sorted(negative | {0.0} | positive))


def histogram_quantile(q: float, edges: tuple[float, ...], counts: list[int]) -> float | None:
    """Quantile ``q`` of a bucketed distribution (bucket ``i`` holds values ``<= edges[i]``).

    Interpolates linearly inside the bucket; the overflow bucket reports the last edge.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, c in enumerate(counts):
        if c and seen + c >= rank:
            if i >= len(edges):
                return edges[-1]
            upper = edges[i]
            lower = edges[i - 1] if i > 0 else upper
            return lower + (upper - lower) * ((rank - seen) / c)
        seen += c
    return edges[-1]


class ClockFloor:
    """Clock-offset estimate of one exchange from per-second latency minima (see module doc)."""

    __slots__ = ("_minima", "_quantile", "_rise_ns_per_s", "floor_ns", "last_s", "window_min_ns")

    def __init__(self, config: QualityConfig) -> None:
        self._minima: deque[int] = deque(maxlen=max(1, config.floor_window_s))
        self._quantile = config.floor_quantile
        self._rise_ns_per_s = config.floor_rise_per_s * NS
        #: current estimate (ns), None until the first latency is seen
        self.floor_ns: int | None = None
        #: second (epoch) of the last update
        self.last_s: int | None = None
        #: the smallest per-second minimum in the window (what a plain rolling minimum would say)
        self.window_min_ns: int | None = None

    def bootstrap(self, latency_ns: int) -> int:
        """Before the first full second: the running minimum (returns the floor to use now)."""
        if self.floor_ns is None or latency_ns < self.floor_ns:
            self.floor_ns = latency_ns
        return self.floor_ns

    def add_second(self, second: int, minimum_ns: int) -> int:
        """Feeds the minimum raw latency of one second; returns the updated floor (ns)."""
        self._minima.append(minimum_ns)
        ordered = sorted(self._minima)
        target = ordered[min(len(ordered) - 1, int(self._quantile * len(ordered)))]
        self.window_min_ns = ordered[0]
        elapsed = 1 if self.last_s is None else max(1, second - self.last_s)
        self.last_s = second
        if self.floor_ns is None or target <= self.floor_ns or len(self._minima) == 1:
            self.floor_ns = target
        else:
            self.floor_ns = min(target, self.floor_ns + int(self._rise_ns_per_s * elapsed))
        return self.floor_ns


@dataclass
class WindowFigures:
    """What the score is computed from: counts over a window and ages at its end."""

    messages: int = 0
    timed_messages: int = 0
    outdated: int = 0
    duplicates: int = 0
    gaps: int = 0
    resyncs: int = 0
    checksum_failures: int = 0
    crossed_books: int = 0
    parse_errors: int = 0
    dropped: int = 0
    latency_p99_s: float | None = None
    clock_offset_s: float | None = None
    receive_age_s: float | None = None
    event_age_s: float | None = None
    timed_receive_age_s: float | None = None
    #: smallest latency above the floor in the last interval: every message then was at least this old
    interval_lag_s: float | None = None
    stalled: bool = False
    message_rate: float | None = None
    baseline_rate: float | None = None


class EventFigures(TypedDict):
    """The :class:`WindowFigures` counts that come from feed events."""

    gaps: int
    resyncs: int
    checksum_failures: int
    crossed_books: int
    parse_errors: int
    dropped: int


def event_figures(events: Mapping[str, int]) -> EventFigures:
    """Feed-event counts (``kind -> count``) as :class:`WindowFigures` fields: the one place that
    says which event kinds the score counts."""
    return EventFigures(
        gaps=events.get("gap", 0),
        resyncs=events.get("resync", 0),
        checksum_failures=events.get("checksum_mismatch", 0),
        crossed_books=events.get("crossed_book", 0),
        parse_errors=events.get("parse_error", 0),
        dropped=events.get("dropped", 0),
    )


def _linear(value: float, good: float, bad: float) -> float:
    """1 at ``value <= good``, 0 at ``value >= bad``, linear between."""
    if value <= good:
        return 1.0
    if value >= bad:
        return 0.0
    return 1.0 - (value - good) / (bad - good)


def gate_reasons(f: WindowFigures, config: QualityConfig, exchange: str = "") -> list[str]:
    """Why the freshness gate is closed (empty when open)."""
    reasons = []
    if f.receive_age_s is None:
        reasons.append("no data")
    elif f.receive_age_s > config.silent_after_s:
        reasons.append("silent")
    if f.stalled:
        reasons.append("stalled")
    limit = config.event_age_limit(exchange)
    flowing = f.timed_receive_age_s is not None and f.timed_receive_age_s <= limit
    behind = f.event_age_s is not None and f.event_age_s > limit
    if (flowing and behind) or (f.interval_lag_s is not None and f.interval_lag_s > limit):
        reasons.append("event time behind")
    if f.clock_offset_s is not None and f.clock_offset_s > config.outdated_cutoff_s:
        reasons.append("latency floor above outdated cutoff")
    return reasons


def components(f: WindowFigures, config: QualityConfig) -> dict[str, float]:
    """Each score component in [0, 1]."""
    latency = 1.0
    if f.latency_p99_s is not None:
        latency = _linear(f.latency_p99_s, config.latency_good_s, config.outdated_cutoff_s)
    if f.timed_messages:
        latency = min(latency, _linear(f.outdated / f.timed_messages, 0.0, config.outdated_ratio_limit))
    completeness = max(0.0, 1.0 - 0.25 * f.gaps - 0.1 * f.parse_errors - (0.5 if f.dropped else 0.0))
    if f.message_rate is not None and f.baseline_rate and f.baseline_rate >= 1.0:
        ratio = f.message_rate / f.baseline_rate
        if ratio < config.rate_drop_ratio:
            completeness *= ratio / config.rate_drop_ratio
    integrity = max(0.0, 1.0 - 0.34 * (f.checksum_failures + f.crossed_books) - 0.2 * f.resyncs)
    clock = 1.0
    if f.clock_offset_s is not None:
        clock = _linear(abs(f.clock_offset_s), config.clock_tolerance_s, config.clock_bad_s)
    duplicates = 1.0
    if f.messages:
        duplicates = _linear(f.duplicates / f.messages, 0.0, config.duplicate_ratio_limit)
    return {
        "latency": latency,
        "completeness": completeness,
        "integrity": integrity,
        "clock": clock,
        "duplicates": duplicates,
    }


def score(f: WindowFigures, config: QualityConfig, exchange: str = "") -> tuple[float, list[str]]:
    """The 0-100 health score and the reasons it is not 100 (gate reasons first)."""
    gate = gate_reasons(f, config, exchange)
    parts = components(f, config)
    reasons = list(gate)
    reasons += [f"{name} {value:.2f}" for name, value in parts.items() if value < 1.0]
    if gate:
        return 0.0, reasons
    total = sum(WEIGHTS[name] * value for name, value in parts.items())
    return round(total, 2), reasons


def raw_state(value: float, gated: bool, config: QualityConfig) -> State:
    """The state a score maps to, without hysteresis."""
    if gated or value < config.exclude_score:
        return "EXCLUDE"
    if value < config.ok_score:
        return "DEGRADED"
    return "OK"


class StateMachine:
    """OK / DEGRADED / EXCLUDE with hysteresis: worse at once, better only after ``recovery_s``."""

    __slots__ = ("_candidate", "_recovery_ns", "_since_ns", "state")

    def __init__(self, config: QualityConfig) -> None:
        self._recovery_ns = int(config.recovery_s * NS)
        self.state: State | None = None
        self._candidate: State | None = None
        self._since_ns = 0

    def update(self, target: State, now_ns: int) -> State:
        """Moves towards ``target`` and returns the current state."""
        if self.state is None or _RANK[target] < _RANK[self.state]:
            self.state = target
            self._candidate = None
        elif _RANK[target] > _RANK[self.state]:
            if self._candidate != target:
                self._candidate = target
                self._since_ns = now_ns
            elif now_ns - self._since_ns >= self._recovery_ns:
                self.state = target
                self._candidate = None
        else:
            self._candidate = None
        return self.state


def freshness_weight(
    state: State, event_age_s: float | None, config: QualityConfig, exchange: str = ""
) -> float:
    """Weight in [0, 1] that trading code applies to an exchange's data: 0 when EXCLUDE, else falls
    linearly from 1 (event age at most ``latency_good_s``) to 0 (event age at the limit)."""
    if state == "EXCLUDE" or event_age_s is None:
        return 0.0
    return round(_linear(event_age_s, config.latency_good_s, config.event_age_limit(exchange)), 4)


def finite_or_none(x: float | None) -> float | None:
    """``x`` unless it is None, NaN or infinite (JSON and Avro friendly)."""
    if x is None or math.isnan(x) or math.isinf(x):
        return None
    return x

"""Prometheus exposition of a :class:`~quality.live.QualityTracker`.

A custom collector reads the tracker's counters at scrape time, so the hot path never touches a
prometheus-client object (no locks, no per-row label lookups). Labels are ``exchange``, ``channel``
and, for feed events, ``kind``: never a symbol (per-symbol detail is in the ``quality`` dataset).
Histogram buckets are :func:`quality.scoring.latency_edges_s`: negative edges count messages stamped
before they were sent (a host clock behind the exchange), and every threshold is an edge, so
``histogram_quantile`` and bucket ratios are exact at the thresholds the alerts use.

Metric names are documented in ``infra/prometheus/README.md``; alert rules depend on them.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from .live import QualityTracker
from .scoring import NS, STATES

LABELS = ["exchange", "channel"]


class TrackerCollector(Collector):
    """Exports one tracker's live figures (register it in a ``CollectorRegistry``)."""

    def __init__(self, tracker: QualityTracker) -> None:
        self.tracker = tracker
        self._les = [floatToGoString(e) for e in tracker.edges_s] + ["+Inf"]

    def _buckets(self, hist: list[int]) -> list[tuple[str, float]]:
        total = 0
        out = []
        for le, count in zip(self._les, hist, strict=True):
            total += count
            out.append((le, float(total)))
        return out

    def collect(self) -> Iterator[Metric]:
        """One consistent scrape of every metric."""
        counts, exchanges = self.tracker.prometheus_view()
        raw = HistogramMetricFamily(
            "ticktape_latency_seconds",
            "Raw latency ts_recv - ts_exchange (includes clock offset)",
            labels=LABELS,
        )
        above = HistogramMetricFamily(
            "ticktape_latency_above_floor_seconds",
            "Latency above the clock-offset floor: what the exchange and the network add",
            labels=LABELS,
        )
        messages = CounterMetricFamily(
            "ticktape_messages", "Messages received (book frames count once)", labels=LABELS
        )
        timed = CounterMetricFamily(
            "ticktape_timed_messages", "Messages carrying an exchange timestamp", labels=LABELS
        )
        outdated = CounterMetricFamily(
            "ticktape_outdated_messages",
            "Messages whose latency above the floor exceeds the cutoff",
            labels=LABELS,
        )
        duplicates = CounterMetricFamily(
            "ticktape_duplicate_messages", "Messages flagged DUPLICATE", labels=LABELS
        )
        negative = CounterMetricFamily(
            "ticktape_negative_latency_messages",
            "Messages received before their exchange timestamp",
            labels=LABELS,
        )
        rate = GaugeMetricFamily("ticktape_message_rate", "Messages per second, last interval", labels=LABELS)
        for (exchange, channel), c in sorted(counts.items()):
            labels = [exchange, channel]
            raw.add_metric(labels, self._buckets(c.raw_hist), c.raw_sum_ns / NS)
            above.add_metric(labels, self._buckets(c.corr_hist), c.corr_sum_ns / NS)
            messages.add_metric(labels, c.messages)
            timed.add_metric(labels, c.timed)
            outdated.add_metric(labels, c.outdated)
            duplicates.add_metric(labels, c.duplicates)
            negative.add_metric(labels, c.negative)
            rate.add_metric(labels, c.rate)
        yield from (raw, above, messages, timed, outdated, duplicates, negative, rate)

        events = CounterMetricFamily(
            "ticktape_feed_events",
            "Feed events (gap, resync, checksum_mismatch, ...)",
            labels=[*LABELS, "kind"],
        )
        for name, ex in sorted(exchanges.items()):
            for (channel, kind), n in sorted(ex.events_total.items()):
                events.add_metric([name, channel, kind], n)
        yield events

        receive_age = GaugeMetricFamily(
            "ticktape_receive_age_seconds",
            "now - last ts_recv (channel=all: the whole exchange)",
            labels=LABELS,
        )
        event_age = GaugeMetricFamily(
            "ticktape_event_age_seconds",
            "now - ts_exchange of the last message, above the clock floor (channel=all: the whole exchange)",
            labels=LABELS,
        )
        ex_labels = ["exchange"]
        offset = GaugeMetricFamily(
            "ticktape_clock_offset_estimate_seconds",
            "Latency floor: host clock minus exchange clock",
            labels=ex_labels,
        )
        ratio = GaugeMetricFamily(
            "ticktape_outdated_ratio", "Outdated share over the score window", labels=ex_labels
        )
        p99 = GaugeMetricFamily(
            "ticktape_latency_p99_seconds",
            "p99 latency above the floor over the score window",
            labels=ex_labels,
        )
        score = GaugeMetricFamily("ticktape_quality_score", "Health score 0-100", labels=ex_labels)
        state = GaugeMetricFamily(
            "ticktape_quality_state", "1 for the exchange's current state", labels=["exchange", "state"]
        )
        weight = GaugeMetricFamily(
            "ticktape_freshness_weight",
            "Weight trading code applies to the exchange's data",
            labels=ex_labels,
        )
        baseline = GaugeMetricFamily(
            "ticktape_message_rate_baseline", "The exchange's own normal message rate", labels=ex_labels
        )
        connections = GaugeMetricFamily(
            "ticktape_connections", "Open connections (connect - disconnect)", labels=ex_labels
        )
        for item in self.tracker.api():
            name = item["exchange"]
            if item["receive_age_s"] is not None:
                receive_age.add_metric([name, "all"], item["receive_age_s"])
            if item["event_age_s"] is not None:
                event_age.add_metric([name, "all"], item["event_age_s"])
            for channel, ch in sorted(item["channels"].items()):
                if ch["receive_age_s"] is not None:
                    receive_age.add_metric([name, channel], ch["receive_age_s"])
                if ch["event_age_s"] is not None:
                    event_age.add_metric([name, channel], ch["event_age_s"])
            if item["clock_offset_estimate_s"] is not None:
                offset.add_metric([name], item["clock_offset_estimate_s"])
            if item["outdated_ratio"] is not None:
                ratio.add_metric([name], item["outdated_ratio"])
            if item["latency_p99_s"] is not None:
                p99.add_metric([name], item["latency_p99_s"])
            if item["baseline_messages_per_s"] is not None:
                baseline.add_metric([name], item["baseline_messages_per_s"])
            score.add_metric([name], item["score"])
            weight.add_metric([name], item["freshness_weight"])
            connections.add_metric([name], item["connections"])
            for s in STATES:
                state.add_metric([name, s], 1.0 if item["state"] == s else 0.0)
        yield from (receive_age, event_age, offset, ratio, p99, score, state, weight, baseline, connections)
        yield GaugeMetricFamily(
            "ticktape_collector_lag_seconds",
            "How late this process itself was at the last snapshot (late tick, or every exchange late at once)",
            value=self.tracker.collector_lag_s,
        )
        yield CounterMetricFamily(
            "ticktape_host_stalls",
            "Snapshots at which this process was stalled (latency of those intervals is not scored)",
            value=self.tracker.host_stalls,
        )


def tracker_registry(tracker: QualityTracker, registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """A registry (new, or the one given) with the tracker's collector registered in it."""
    registry = registry if registry is not None else CollectorRegistry()
    registry.register(TrackerCollector(tracker))
    return registry

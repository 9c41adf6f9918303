"""What the quality exporter serves, for tests that check rules and dashboards against it."""

from __future__ import annotations

import re
import time

from prometheus_client import generate_latest

from quality.live import QualityTracker
from quality.metrics import tracker_registry
from schemas import RecordBuffer

#: metrics that other processes export (sink, sync: see infra/prometheus/README.md)
EXTERNAL = {
    "ticktape_sink_lag_seconds",
    "ticktape_sync_failures_total",
    "ticktape_sync_last_success_timestamp_seconds",
}


def exposition() -> str:
    """A /metrics text of a tracker that has seen a trade and a gap."""
    tracker = QualityTracker()
    now = time.time_ns()
    out = RecordBuffer()
    out.trades.append(("okx", "BTC-USDT", now - 5_000_000, now, "1", 1.0, 1.0, "buy", 0))
    out.feed_events.append(("okx", "BTC-USDT", "book", now, "gap", "{}"))
    tracker.observe(out)
    tracker.snapshot()
    return generate_latest(tracker_registry(tracker)).decode()


def served_names() -> set[str]:
    """Metric names (with their _bucket/_total/... suffixes) the exporter serves."""
    return set(re.findall(r"^(ticktape_[a-z_]+)", exposition(), re.M))


def ticktape_names(text: str) -> set[str]:
    """ticktape metric names used in PromQL text (not the ``level:metric:op`` recording rule names)."""
    return set(re.findall(r"(?<![:\w])(ticktape_[a-z_0-9]+)", text))

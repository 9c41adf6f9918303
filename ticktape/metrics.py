"""Prometheus metrics of the process plumbing: connections, the output queue, REST budget, publishers.

The quality layer exports what the records say (latency, ages, gaps); this exports what the machinery
did: reconnects, stale channels, recycles, queue depth and drops, snapshot errors, REST budget waits
and bans, rows published and dropped by the transport. Read at scrape time from the plain counters the
collectors and publishers keep, so the hot path never touches a prometheus-client object.
Labels: ``exchange`` (and ``transport``) only; where a process runs collector replicas (issue 17:
``collect --replica``, ``demo --replicas``) the collector metrics add ``replica`` (a handful of
values: one per replica, never per symbol), so each replica's connection health is its own series.
The sink exports what replica arbitration did: duplicates dropped, gaps one replica covered for
another, and gaps no replica had (the merged stream's).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PromCollector
from prometheus_client.registry import CollectorRegistry

from collectors.connection import Collector
from quality.server import IDLE_TIMEOUT_S, PortInUseError, app_runner, port_message
from storage.sink import SinkStats
from streaming.base import Publisher


class PipelineCollector(PromCollector):
    """Exports the counters of a process's collectors and publisher."""

    def __init__(
        self,
        collectors: Sequence[Collector],
        publisher: Publisher | None,
        transport: str,
        replicas: Mapping[Collector, str] | None = None,
    ) -> None:
        self.collectors = collectors  # read at scrape time: may grow after registration
        self.publisher = publisher
        self.transport = transport
        #: the replica of each collector that is one (read at scrape time too)
        self.replicas = replicas if replicas is not None else {}

    def collect(self) -> Iterator[Metric]:
        """One scrape of every pipeline metric."""
        counters = {
            "connects": ("ticktape_connects_total", "Websocket connections opened"),
            "disconnects": ("ticktape_disconnects_total", "Websocket connections lost or closed"),
            "frames": ("ticktape_frames_total", "Frames received"),
            "bytes": ("ticktape_received_bytes_total", "Frame bytes received"),
            "stale_events": (
                "ticktape_stale_channels_total",
                "Channels that went stale (no data past the threshold)",
            ),
            "recycles": (
                "ticktape_connection_recycles_total",
                "Connections recycled because a channel stayed stale",
            ),
            "snapshots_fetched": ("ticktape_rest_snapshots_total", "REST book snapshots fetched"),
            "snapshot_errors": (
                "ticktape_rest_errors_total",
                "REST snapshot requests that failed (429/418 included)",
            ),
            "dropped_rows": (
                "ticktape_queue_dropped_rows_total",
                "Rows dropped by a full output queue (drop-oldest)",
            ),
            "pacing_wait_s": (
                "ticktape_pacing_wait_seconds_total",
                "Seconds spent waiting for the venue's connection and message limits (pacing)",
            ),
            "pacing_waits": (
                "ticktape_pacing_waits_total",
                "Connects and sends that waited for a venue limit",
            ),
        }
        by_replica = bool(self.replicas)
        names = ["exchange", "replica"] if by_replica else ["exchange"]
        families = {
            key: CounterMetricFamily(name, doc, labels=names) for key, (name, doc) in counters.items()
        }
        depth = GaugeMetricFamily(
            "ticktape_queue_depth", "Frames whose records wait in the output queue", labels=names
        )
        depth_max = GaugeMetricFamily(
            "ticktape_queue_depth_max", "Deepest the output queue has been (frames)", labels=names
        )
        rotations = CounterMetricFamily(
            "ticktape_connection_rotations_total", "Planned connection rotations", labels=names
        )
        budget_used = GaugeMetricFamily(
            "ticktape_rest_budget_used",
            "REST request weight spent in the current window",
            labels=names,
        )
        budget_limit = GaugeMetricFamily(
            "ticktape_rest_budget_limit", "REST request weight allowed per window", labels=names
        )
        budget_bans = CounterMetricFamily(
            "ticktape_rest_backoffs_total",
            "429/418 answers that paused every REST request",
            labels=names,
        )
        for collector in self.collectors:
            ex = [collector.exchange]
            if by_replica:
                ex.append(self.replicas.get(collector, ""))
            stats = collector.stats
            for key, family in families.items():
                family.add_metric(ex, float(getattr(stats, key)))
            depth.add_metric(ex, float(len(collector.output)))
            depth_max.add_metric(ex, float(stats.max_queue_depth))
            rotations.add_metric(ex, float(collector.rotations))
            budget_used.add_metric(ex, float(collector.budget.used()))
            budget_limit.add_metric(ex, float(collector.budget.limit))
            budget_bans.add_metric(ex, float(collector.budget.rejections))
        yield from families.values()
        yield from (depth, depth_max, rotations, budget_used, budget_limit, budget_bans)
        if self.publisher is not None:
            pub_stats = self.publisher.stats
            labels = [self.transport]
            published = CounterMetricFamily(
                "ticktape_published_rows_total", "Rows handed to the transport", labels=["transport"]
            )
            published.add_metric(labels, float(pub_stats.published_rows))
            dropped = CounterMetricFamily(
                "ticktape_publisher_dropped_rows_total",
                "Rows the publisher dropped (queue policy)",
                labels=["transport"],
            )
            dropped.add_metric(labels, float(pub_stats.dropped_rows))
            errors = CounterMetricFamily(
                "ticktape_publisher_errors_total", "Delivery failures", labels=["transport"]
            )
            errors.add_metric(labels, float(pub_stats.errors))
            queued = GaugeMetricFamily(
                "ticktape_publisher_queue_depth", "Rows waiting in the publisher", labels=["transport"]
            )
            queued.add_metric(labels, float(pub_stats.queue_depth))
            yield from (published, dropped, errors, queued)


def pipeline_registry(
    collectors: Sequence[Collector],
    publisher: Publisher | None,
    transport: str,
    registry: CollectorRegistry | None = None,
    replicas: Mapping[Collector, str] | None = None,
) -> CollectorRegistry:
    """A registry (new, or the one given) with the pipeline collector registered in it (``replicas``:
    the replica of each collector that is one: the collector metrics then carry a ``replica`` label)."""
    registry = registry if registry is not None else CollectorRegistry()
    registry.register(PipelineCollector(collectors, publisher, transport, replicas))
    return registry


class SinkCollector(PromCollector):
    """Exports a sink's progress; ``ticktape_sink_lag_seconds`` drives the TicktapeSinkLag alert."""

    def __init__(self, stats: SinkStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        """One scrape of the sink metrics."""
        st = self.stats
        lag = GaugeMetricFamily(
            "ticktape_sink_lag_seconds",
            "Now minus the receive time of the newest record committed to the lake",
        )
        if st.newest_committed_ts_recv is not None:
            lag.add_metric([], max(0.0, (time.time_ns() - st.newest_committed_ts_recv) / 1e9))
        yield lag
        rows = CounterMetricFamily(
            "ticktape_sink_rows_total", "Rows committed to the lake", labels=["dataset"]
        )
        for dataset, n in sorted(st.rows.items()):
            rows.add_metric([dataset], float(n))
        yield rows
        for name, doc, value in (
            ("ticktape_sink_files_total", "Parquet files committed", st.files),
            ("ticktape_sink_bytes_total", "Parquet bytes committed", st.bytes),
            ("ticktape_sink_units_total", "Units (position ranges) committed", st.units),
            (
                "ticktape_sink_rejected_rows_total",
                "Rows kept aside (invalid exchange id or time)",
                st.rejected_rows,
            ),
            (
                "ticktape_sink_orphans_removed_total",
                "Files of interrupted writes removed at start",
                st.orphans_removed,
            ),
            (
                "ticktape_sink_log_corrupt_total",
                "Damaged log ranges met (skipped with --skip-corrupt, else the sink stopped there)",
                st.log_corrupt,
            ),
            (
                "ticktape_sink_replica_covers_total",
                "Book gaps of one collector replica that another replica's updates covered",
                st.arbitration.covers,
            ),
            (
                "ticktape_sink_merged_gaps_total",
                "Book gaps no replica covered (the merged stream resynced there)",
                st.arbitration.merged_gaps,
            ),
        ):
            family = CounterMetricFamily(name, doc)
            family.add_metric([], float(value))
            yield family
        duplicates = CounterMetricFamily(
            "ticktape_sink_replica_duplicates_total",
            "Rows of collector replicas left out of the lake because another replica's copy is in it",
            labels=["dataset"],
        )
        for dataset, n in sorted(st.arbitration.duplicates.items()):
            duplicates.add_metric([dataset], float(n))
        yield duplicates


class SinkMetricsServer:
    """A minimal /metrics endpoint for the sink role (bound to 127.0.0.1 by default)."""

    def __init__(
        self, stats: SinkStats, host: str = "127.0.0.1", port: int = 0, idle_timeout_s: float = IDLE_TIMEOUT_S
    ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.registry = CollectorRegistry()
        self.registry.register(SinkCollector(stats))
        self.stats = stats
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        failure = self.stats.failure
        if failure is not None:
            return web.Response(status=503, text=f"unhealthy: {failure}\n")
        return web.Response(text="ok\n")

    async def start(self) -> None:
        """Binds and serves."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        self._runner = app_runner(app, self.idle_timeout_s)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise PortInUseError(
                exc.errno, port_message("metrics", self.host, self.port, exc, "--metrics-port")
            ) from exc
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stops serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

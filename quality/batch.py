"""Quality over captured data: the live metrics, recomputed from the lake with DuckDB.

Takes a DuckDB connection that has one view per dataset (``trades``, ``book``, ``bbo``,
``feed_events``, with the lake's ``exchange`` and ``date`` partition columns), as
``storage.catalog`` opens it; this module never reads files itself, so it works on a local or an S3
lake alike. The rules are the live ones (:mod:`quality.scoring`):

* messages: one per trade and bbo row, one per book *frame* (rows of the same symbol with the same
  ``ts_recv`` and ``ts_exchange``), as the live tracker counts them;
* the clock floor is replayed second by second through :class:`~quality.scoring.ClockFloor`, and
  latency above the floor is taken against the floor of its own second; the reported
  ``clock_offset_estimate_s`` is the median floor over the period;
* the score uses the same components; its freshness gate closes on a silence longer than
  ``silent_after_s`` (the longest gap between two messages of the exchange) or a p99 latency above
  the floor beyond the event-age limit (data that was old for more than 1 % of the period).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from schemas import DATASET_CHANNELS

from .scoring import (
    NS,
    ClockFloor,
    QualityConfig,
    WindowFigures,
    event_figures,
    gate_reasons,
    raw_state,
    score,
)

#: (dataset, channel) of the data datasets, in report order.
CHANNELS: tuple[tuple[str, str], ...] = tuple(DATASET_CHANNELS.items())


@dataclass(frozen=True)
class LakeFilter:
    """Which part of the lake to report on (None: everything)."""

    exchange: str | None = None
    date: str | None = None  # YYYY-MM-DD

    def where(self) -> tuple[str, list[Any]]:
        """A SQL condition over the partition columns and its parameters."""
        clauses = ["true"]
        params: list[Any] = []
        if self.exchange is not None:
            clauses.append("exchange = ?")
            params.append(self.exchange)
        if self.date is not None:
            clauses.append("date = CAST(? AS DATE)")
            params.append(self.date)
        return " AND ".join(clauses), params


def _messages_sql(where: str) -> str:
    def part(dataset: str, channel: str, per_frame: bool) -> str:
        if per_frame:
            return (
                f"SELECT exchange, '{channel}' AS channel, epoch_ns(ts_recv) AS recv, "
                "epoch_ns(ts_recv) - epoch_ns(ts_exchange) AS lat, bit_or(flags) AS flags "
                f"FROM {dataset} WHERE {where} GROUP BY exchange, symbol, ts_recv, ts_exchange"
            )
        return (
            f"SELECT exchange, '{channel}' AS channel, epoch_ns(ts_recv) AS recv, "
            f"epoch_ns(ts_recv) - epoch_ns(ts_exchange) AS lat, flags FROM {dataset} WHERE {where}"
        )

    union = " UNION ALL ".join(part(ds, ch, ds == "book") for ds, ch in CHANNELS)
    return (
        "CREATE OR REPLACE TEMP TABLE _tt_msgs AS SELECT exchange, channel, recv, lat, "
        f"(flags & 4) <> 0 AS dup, recv // {NS} AS sec FROM ({union})"
    )


def lake_quality(
    con: duckdb.DuckDBPyConnection,
    config: QualityConfig | None = None,
    where: LakeFilter | None = None,
) -> list[dict[str, Any]]:
    """Per exchange (channel ``all``) and per exchange and channel: the quality report of the lake."""
    cfg = config or QualityConfig()
    flt = where or LakeFilter()
    cond, params = flt.where()
    # Each dataset's SELECT carries the filter, so the parameters repeat once per channel.
    con.execute(_messages_sql(cond), params * len(CHANNELS))
    floors = _floors(con, cfg)
    con.register("_tt_floors", floors)
    cutoff = int(cfg.outdated_cutoff_s * NS)
    stats = con.execute(
        f"""
        WITH j AS (
            SELECT m.*, CASE WHEN m.lat IS NULL THEN NULL ELSE greatest(m.lat - f.floor_ns, 0) END AS above,
                   m.lat - f.floor_ns > {cutoff} AS is_outdated
            FROM _tt_msgs m LEFT JOIN _tt_floors f ON m.exchange = f.exchange AND m.sec = f.sec
        )
        SELECT m.exchange, coalesce(m.channel, 'all') AS channel, count(*) AS messages,
               count(m.lat) AS timed,
               quantile_cont(m.above, 0.5) / {NS} AS p50,
               quantile_cont(m.above, 0.99) / {NS} AS p99,
               max(m.above) / {NS} AS pmax,
               min(m.lat) / {NS} AS raw_min,
               quantile_cont(m.lat, 0.5) / {NS} AS raw_p50,
               count_if(m.is_outdated) AS outdated,
               count_if(m.lat < 0) AS negative,
               count_if(m.dup) AS duplicates,
               min(m.recv) AS first_recv, max(m.recv) AS last_recv
        FROM j AS m
        GROUP BY GROUPING SETS ((m.exchange, m.channel), (m.exchange))
        ORDER BY m.exchange, channel
        """
    ).fetchall()
    gaps = dict(
        con.execute(
            """
            SELECT exchange, max(recv - prev) / 1e9 FROM (
                SELECT exchange, recv, lag(recv) OVER (PARTITION BY exchange ORDER BY recv) AS prev
                FROM _tt_msgs)
            GROUP BY exchange
            """
        ).fetchall()
    )
    events: dict[tuple[str, str], dict[str, int]] = {}
    for exchange, channel, kind, n in con.execute(
        f"SELECT exchange, channel, kind, count(*) FROM feed_events WHERE {cond} GROUP BY ALL", params
    ).fetchall():
        for key in ((exchange, channel), (exchange, "all")):
            bucket = events.setdefault(key, {})
            bucket[kind] = bucket.get(kind, 0) + n
    offsets: dict[str, list[int]] = {}
    for exchange, floor in zip(
        floors.column("exchange").to_pylist(), floors.column("floor_ns").to_pylist(), strict=True
    ):
        offsets.setdefault(exchange, []).append(floor)
    con.execute("DROP TABLE IF EXISTS _tt_msgs")
    con.unregister("_tt_floors")

    report = []
    for (
        exchange,
        channel,
        messages,
        timed,
        p50,
        p99,
        pmax,
        raw_min,
        raw_p50,
        outdated,
        negative,
        dups,
        first,
        last,
    ) in stats:
        ev = events.get((exchange, channel), {})
        floor_list = offsets.get(exchange)
        offset = statistics.median(floor_list) / NS if floor_list else None
        figures = WindowFigures(
            messages=messages,
            timed_messages=timed,
            outdated=outdated,
            duplicates=dups + ev.get("duplicate", 0),
            **event_figures(ev),
            latency_p99_s=p99,
            clock_offset_s=offset,
            receive_age_s=gaps.get(exchange) or 0.0,
            event_age_s=p99,
            timed_receive_age_s=0.0 if timed else None,
        )
        value, reasons = score(figures, cfg, exchange)
        state = raw_state(value, bool(gate_reasons(figures, cfg, exchange)), cfg)
        suspect = None
        if offset is not None and abs(offset) > cfg.clock_tolerance_s:
            who = (
                "host clock behind the exchange"
                if offset < 0
                else "host clock ahead, or exchange time behind"
            )
            suspect = f"clock offset {offset:+.3f} s ({who}): raw latency untrusted, latency reported above the floor"
        report.append(
            {
                "exchange": exchange,
                "channel": channel,
                "messages": messages,
                "timed_messages": timed,
                "latency_p50_s": _r(p50),
                "latency_p99_s": _r(p99),
                "latency_max_s": _r(pmax),
                "raw_latency_min_s": _r(raw_min),
                "raw_latency_p50_s": _r(raw_p50),
                "negative_raw_latencies": negative,
                "clock_offset_estimate_s": _r(offset),
                "clock_suspect": suspect,
                "outdated_ratio": _r(outdated / timed) if timed else None,
                "gaps": figures.gaps,
                "resyncs": figures.resyncs,
                "checksum_failures": figures.checksum_failures,
                "crossed_books": figures.crossed_books,
                "parse_errors": figures.parse_errors,
                "duplicates": figures.duplicates,
                "max_receive_gap_s": _r(gaps.get(exchange)),
                "first_ts_recv": first,
                "last_ts_recv": last,
                "score": value,
                "state": state,
                "reasons": reasons,
            }
        )
    return report


def lake_series(
    con: duckdb.DuckDBPyConnection,
    config: QualityConfig | None = None,
    where: LakeFilter | None = None,
    bucket_s: int = 60,
) -> list[dict[str, Any]]:
    """Per exchange and ``bucket_s`` bucket of receive time (``t``, ns): messages, latency p50/p99/max
    above the clock floor (s), outdated messages; the rules of :func:`lake_quality`, over time."""
    cfg = config or QualityConfig()
    cond, params = (where or LakeFilter()).where()
    con.execute(_messages_sql(cond), params * len(CHANNELS))
    con.register("_tt_floors", _floors(con, cfg))
    cutoff, bucket = int(cfg.outdated_cutoff_s * NS), int(bucket_s * NS)
    try:
        cur = con.execute(
            f"""
            WITH j AS (
                SELECT m.exchange, m.recv, m.lat,
                       CASE WHEN m.lat IS NULL THEN NULL ELSE greatest(m.lat - f.floor_ns, 0) END AS above,
                       m.lat - f.floor_ns > {cutoff} AS is_outdated
                FROM _tt_msgs m LEFT JOIN _tt_floors f ON m.exchange = f.exchange AND m.sec = f.sec
            )
            SELECT exchange, recv // {bucket} * {bucket} AS t, count(*) AS messages, count(lat) AS timed,
                   quantile_cont(above, 0.5) / {NS} AS p50, quantile_cont(above, 0.99) / {NS} AS p99,
                   max(above) / {NS} AS pmax, count_if(is_outdated) AS outdated
            FROM j GROUP BY ALL ORDER BY ALL
            """
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.execute("DROP TABLE IF EXISTS _tt_msgs")
        con.unregister("_tt_floors")


def _floors(con: duckdb.DuckDBPyConnection, cfg: QualityConfig) -> pa.Table:
    """The floor of every second that had timed messages, replayed per exchange as the live run would."""
    minima = con.execute(
        "SELECT exchange, sec, min(lat) FROM _tt_msgs WHERE lat IS NOT NULL GROUP BY ALL ORDER BY exchange, sec"
    ).fetchall()
    exchanges: list[str] = []
    seconds: list[int] = []
    values: list[int] = []
    floor: ClockFloor | None = None
    current = None
    for exchange, sec, minimum in minima:
        if exchange != current:
            current, floor = exchange, ClockFloor(cfg)
        assert floor is not None
        exchanges.append(exchange)
        seconds.append(sec)
        values.append(floor.add_second(sec, minimum))
    return pa.table(
        {
            "exchange": pa.array(exchanges, pa.string()),
            "sec": pa.array(seconds, pa.int64()),
            "floor_ns": pa.array(values, pa.int64()),
        }
    )


def _r(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(float(x), digits)


TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("exchange", "exchange"),
    ("channel", "channel"),
    ("messages", "messages"),
    ("latency_p50_s", "p50 s"),
    ("latency_p99_s", "p99 s"),
    ("clock_offset_estimate_s", "clock offset s"),
    ("outdated_ratio", "outdated"),
    ("gaps", "gaps"),
    ("duplicates", "dups"),
    ("score", "score"),
    ("state", "state"),
)


def format_table(report: list[dict[str, Any]]) -> str:
    """The report as an aligned text table, then one line per clock warning and per non-OK reason."""
    header = [title for _, title in TABLE_COLUMNS]
    body = []
    for item in report:
        cells = []
        for key, _ in TABLE_COLUMNS:
            value = item[key]
            if value is None:
                cells.append("-")
            elif key == "outdated_ratio":
                cells.append(f"{value:.2%}")
            elif isinstance(value, float):
                cells.append(f"{value:.4f}" if key != "score" else f"{value:.1f}")
            else:
                cells.append(str(value))
        body.append(cells)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in [header, *body]]  # fmt: skip
    notes = []
    for item in report:
        if item["channel"] != "all":
            continue
        if item["clock_suspect"]:
            notes.append(f"{item['exchange']}: {item['clock_suspect']}")
        if item["state"] != "OK" and item["reasons"]:
            notes.append(f"{item['exchange']}: {item['state']}: {', '.join(item['reasons'])}")
    return "\n".join(lines + (["", *notes] if notes else []))

"""``ticktape report``: one day of the lake as one self-contained HTML page, per exchange.

Per exchange: latency p50/p99 above the clock floor, event age, message rate, outdated share, gaps and
resyncs over the day, and the day's state changes. The figures come from the ``quality`` dataset (the
rows the live tracker wrote, second by second) and ``feed_events``; for an exchange without quality
rows (a replayed capture) they are recomputed from its trades, book and bbo with the rules of
``ticktape quality`` (:func:`quality.batch.lake_series`), and the page says so.

The page loads nothing: CSS inline, charts inline SVG, no script. ``ticktape validate`` (the daily
job's last step) writes it beside the day's validation results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ticktape.config import enable_config

if TYPE_CHECKING:
    import duckdb

    from quality.scoring import QualityConfig
    from ticktape.lake import Lake

NS = 1_000_000_000
#: Points per chart at most: the bucket is the first of these (seconds) that keeps under it.
MAX_POINTS = 360
BUCKETS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
CHART_W, CHART_H = 390, 150
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 58, 10, 22, 20
COLORS = {"p50": "#2b6cb0", "p99": "#c05621", "age": "#6b46c1", "rate": "#2f855a", "outdated": "#c53030",
          "gap": "#c53030", "resync": "#2b6cb0", "limit": "#c53030"}  # fmt: skip


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``report`` subcommand."""
    p = subparsers.add_parser(
        "report",
        help="one day of the lake as a self-contained HTML page: latency, event age, rate, gaps, states",
        description=(
            "Writes one HTML page (inline CSS and SVG charts, nothing loaded from the network) with, per "
            "exchange, the day's latency p50/p99 above the clock floor, event age, message rate, "
            "outdated share, gaps and resyncs over time, and its state changes."
        ),
    )
    p.add_argument("--lake", required=True, help="lake directory or s3://BUCKET/PREFIX")
    p.add_argument("--endpoint-url", help="S3 endpoint (S3-compatible stores, moto, MinIO)")
    p.add_argument("--date", help="the UTC day (YYYY-MM-DD; default: the last day with data)")
    p.add_argument("--exchange", action="append", help="only this exchange (repeatable)")
    p.add_argument("--out", type=Path, help="the HTML file to write (default report-<date>.html)")
    p.set_defaults(func=run)
    enable_config(p, "report")


@dataclass
class ExchangeDay:
    """What the page shows of one exchange."""

    exchange: str
    summary: dict[str, Any] = field(default_factory=dict)
    source: str = "quality rows"
    points: list[dict[str, Any]] = field(default_factory=list)  # t (ns), p50, p99, age, rate, outdated
    events: dict[int, dict[str, int]] = field(default_factory=dict)  # t -> kind -> count
    event_totals: dict[str, int] = field(default_factory=dict)
    changes: list[tuple[int, str | None, str, float | None]] = field(default_factory=list)


@dataclass
class DayReport:
    """The whole page's data."""

    lake: str
    day: str
    bucket_s: int
    start_ns: int
    end_ns: int
    age_limit_s: float
    exchanges: list[ExchangeDay]


def bucket_for(span_ns: int) -> int:
    """The chart bucket (s) for a span of data: the smallest that gives at most MAX_POINTS points."""
    for b in BUCKETS_S:
        if span_ns / (b * NS) <= MAX_POINTS:
            return b
    return BUCKETS_S[-1]


def gather(lake: Lake, day: str, cfg: QualityConfig, only: list[str] | None = None) -> DayReport:
    """Reads the day's figures of every exchange (or of ``only``)."""
    from quality.batch import LakeFilter, lake_quality, lake_series

    con: duckdb.DuckDBPyConnection = lake.catalog.con
    inventory = lake.inventory()
    names = [
        ex for ex in inventory.exchange_ids() if (only is None or ex in only) and day in inventory.days(ex)
    ]
    span = con.execute(
        "SELECT min(lo), max(hi) FROM ("
        + " UNION ALL ".join(
            f"SELECT epoch_ns(min(ts_recv)) AS lo, epoch_ns(max(ts_recv)) AS hi FROM {ds} WHERE date = CAST(? AS DATE)"
            for ds in ("trades", "book", "bbo", "feed_events", "quality")
        )
        + ")",
        [day] * 5,
    ).fetchone()
    start = int(span[0]) if span and span[0] is not None else 0
    end = int(span[1]) if span and span[1] is not None else start
    bucket_s = bucket_for(end - start)
    b = bucket_s * NS
    start, end = start // b * b, (end // b + 1) * b
    by_ex = {ex: ExchangeDay(ex) for ex in names}
    for row in lake_quality(con, cfg, LakeFilter(date=day)):
        if row["channel"] == "all" and row["exchange"] in by_ex:
            by_ex[row["exchange"]].summary = row
    q = con.execute(
        f"SELECT exchange, epoch_ns(window_end) // {b} * {b} AS t, avg(latency_p50_s) AS p50, "
        "max(latency_p99_s) AS p99, max(event_age_s) AS age, "
        f"sum(messages) / {bucket_s}.0 AS rate, avg(outdated_ratio) AS outdated "
        "FROM quality WHERE date = CAST(? AS DATE) AND channel = 'all' AND symbol IS NULL "
        "GROUP BY ALL ORDER BY ALL",
        [day],
    ).fetchall()
    for ex, t, p50, p99, age, rate, outdated in q:
        if ex in by_ex:
            by_ex[ex].points.append(
                {"t": t, "p50": p50, "p99": p99, "age": age, "rate": rate, "outdated": outdated}
            )
    missing = [ex for ex, d in by_ex.items() if not d.points]
    for ex in missing:
        d = by_ex[ex]
        d.source = "recomputed from trades, book and bbo (no quality rows for this day)"
        for r in lake_series(con, cfg, LakeFilter(exchange=ex, date=day), bucket_s):
            d.points.append(
                {"t": r["t"], "p50": r["p50"], "p99": r["p99"], "age": r["pmax"],
                 "rate": r["messages"] / bucket_s, "outdated": r["outdated"] / r["timed"] if r["timed"] else None}
            )  # fmt: skip
    for ex, t, kind, n in con.execute(
        f"SELECT exchange, epoch_ns(ts_recv) // {b} * {b}, kind, count(*) FROM feed_events "
        "WHERE date = CAST(? AS DATE) GROUP BY ALL ORDER BY ALL",
        [day],
    ).fetchall():
        if ex in by_ex:
            d = by_ex[ex]
            d.event_totals[kind] = d.event_totals.get(kind, 0) + n
            if kind in ("gap", "resync"):
                d.events.setdefault(t, {})[kind] = n
    for ex, t, state, prev, score in con.execute(
        "SELECT exchange, t, state, prev, score FROM (SELECT exchange, epoch_ns(ts_recv) AS t, state, score, "
        "lag(state) OVER (PARTITION BY exchange ORDER BY ts_recv) AS prev FROM quality "
        "WHERE date = CAST(? AS DATE) AND channel = 'all' AND symbol IS NULL) "
        "WHERE prev IS DISTINCT FROM state ORDER BY exchange, t",
        [day],
    ).fetchall():
        if ex in by_ex:
            by_ex[ex].changes.append((t, prev, state, score))
    return DayReport(lake.url, day, bucket_s, start, end, cfg.event_age_limit_s, list(by_ex.values()))


# ---- rendering -----------------------------------------------------------------------------------


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _hhmm(ns: int, with_seconds: bool) -> str:
    stamp = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=ns // NS)
    return stamp.strftime("%H:%M:%S" if with_seconds else "%H:%M")


def _nice_max(value: float) -> float:
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * exp:
            return m * exp
    return 10 * exp


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:.3g} %"
    text = f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def svg_chart(
    title: str,
    series: list[tuple[str, str, list[tuple[int, float | None]]]],
    start: int,
    end: int,
    unit: str,
    limit: tuple[str, float] | None = None,
    bars: bool = False,
) -> str:
    """One inline SVG chart: lines (or bars) over [start, end), y from 0, labels in the margins."""
    w, h = CHART_W, CHART_H
    pw, ph = w - MARGIN_L - MARGIN_R, h - MARGIN_T - MARGIN_B
    values = [v for _, _, pts in series for _, v in pts if v is not None]
    top = max(values, default=0.0)
    if limit is not None:
        top = max(top, limit[1])
    ymax = _nice_max(top * 1.05)
    if unit == "%":
        ymax = min(ymax, 1.0)  # a share never goes past 100 %
    span = max(end - start, 1)

    def x(t: int) -> float:
        return MARGIN_L + (t - start) / span * pw

    def y(v: float) -> float:
        return MARGIN_T + ph - min(v, ymax) / ymax * ph

    parts = [
        f'<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{_e(title)}">',
        f'<text class="title" x="{MARGIN_L}" y="13">{_e(title)}</text>',
        f'<rect class="plot" x="{MARGIN_L}" y="{MARGIN_T}" width="{pw}" height="{ph}"/>',
        f'<text class="axis" x="{MARGIN_L - 4}" y="{MARGIN_T + 8}" text-anchor="end">{_e(_fmt(ymax, unit))}</text>',
        f'<text class="axis" x="{MARGIN_L - 4}" y="{MARGIN_T + ph}" text-anchor="end">0</text>',
    ]
    secs = span < 3 * 3600 * NS
    for frac, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")):
        t = start + int(span * frac)
        parts.append(
            f'<text class="axis" x="{x(t):.1f}" y="{h - 5}" text-anchor="{anchor}">{_hhmm(t, secs)}</text>'
        )
    # legend at the top right, above the plot: never over a line
    lx = w - MARGIN_R
    legend = [(name, color, "") for name, color, _ in series]
    if limit is not None:
        legend.append((f"{limit[0]} {_fmt(limit[1], unit)}", COLORS["limit"], "dash"))
    for name, color, style in reversed(legend):
        parts.append(
            f'<text class="legend {style}" x="{lx}" y="13" text-anchor="end" fill="{color}">{_e(name)}</text>'
        )
        lx -= 7 * len(name) + 14
    if limit is not None:
        ly = y(limit[1])
        parts.append(
            f'<line class="limit" x1="{MARGIN_L}" x2="{MARGIN_L + pw}" y1="{ly:.1f}" y2="{ly:.1f}" '
            f'stroke="{COLORS["limit"]}"/>'
        )
    bw = 2.0
    for k, (name, color, pts) in enumerate(series):
        if bars:
            for t, v in pts:
                if v:  # the series side by side, so that equal buckets do not hide one another
                    parts.append(
                        f'<rect class="bar {_e(name)}" x="{x(t) + k * bw:.1f}" y="{y(v):.1f}" width="{bw:.1f}" '
                        f'height="{MARGIN_T + ph - y(v):.1f}" fill="{color}"/>'
                    )
            continue
        run: list[str] = []
        for t, v in [*pts, (end, None)]:
            if v is None:
                if len(run) == 1:
                    run.append(run[0])  # a lone point still shows
                if run:
                    parts.append(f'<polyline points="{" ".join(run)}" stroke="{color}"/>')
                run = []
            else:
                run.append(f"{x(t):.1f},{y(v):.1f}")
    if not values:
        parts.append(
            f'<text class="axis" x="{MARGIN_L + pw / 2}" y="{MARGIN_T + ph / 2}" text-anchor="middle">no data</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


CSS = """
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: #1a202c; background: #f7fafc; }
header { padding: 12px 20px; background: #1a202c; color: #fff; }
h1 { margin: 0; font-size: 20px; } h1 small { color: #a0aec0; font-weight: normal; }
main { padding: 12px 20px; }
table { border-collapse: collapse; background: #fff; margin: 8px 0 16px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e2e8f0; text-align: right; white-space: nowrap; }
th { color: #718096; font-size: 12px; text-transform: uppercase; }
td.l, th.l { text-align: left; } td.why { white-space: normal; max-width: 420px; color: #4a5568; font-size: 12px; }
.state { display: inline-block; min-width: 80px; text-align: center; border-radius: 4px; color: #fff; font-weight: 700; font-size: 12px; }
.OK { background: #1f9d55; } .DEGRADED { background: #d69e2e; } .EXCLUDE { background: #c53030; }
section.exchange { background: #fff; padding: 8px 12px 12px; margin: 0 0 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
section.exchange h2 { margin: 4px 0; font-size: 17px; } .source { color: #718096; font-size: 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 8px 18px; }
svg.chart { display: block; } svg.chart .plot { fill: #fafafa; stroke: #e2e8f0; }
svg.chart polyline { fill: none; stroke-width: 1.5; } svg.chart .title { font-size: 12px; font-weight: 600; fill: #2d3748; }
svg.chart .axis { font-size: 10px; fill: #718096; } svg.chart .legend { font-size: 11px; }
svg.chart .legend.dash { text-decoration: underline dashed; }
svg.chart line.limit { stroke-dasharray: 4 3; stroke-width: 1; }
.changes td { font-size: 12px; }
"""


def render(report: DayReport) -> str:
    """The HTML page."""
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>ticktape report {_e(report.day)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>ticktape · {_e(report.day)} <small>{_e(report.lake)} · "
        f"{len(report.exchanges)} exchange(s) · charts in {report.bucket_s} s buckets, UTC</small></h1></header><main>",
    ]
    head = ("exchange", "state", "score", "messages", "p50 s", "p99 s", "clock offset s", "outdated",
            "gaps", "resyncs", "why")  # fmt: skip
    out.append(
        "<table class=summary><thead><tr>"
        + "".join(f'<th class="{"l" if i in (0, 10) else ""}">{_e(c)}</th>' for i, c in enumerate(head))
        + "</tr></thead><tbody>"
    )
    for d in report.exchanges:
        s = d.summary

        def num(key: str, digits: int = 4, s: dict[str, Any] = s) -> str:
            v = s.get(key)
            return "-" if v is None else f"{v:.{digits}f}"

        state = s.get("state", "-")
        outdated = s.get("outdated_ratio")
        out.append(
            f'<tr data-exchange="{_e(d.exchange)}"><td class=l><a href="#ex-{_e(d.exchange)}">{_e(d.exchange)}</a></td>'
            f'<td><span class="state {_e(state)}">{_e(state)}</span></td><td>{num("score", 1)}</td>'
            f"<td>{s.get('messages', 0):,}</td><td>{num('latency_p50_s')}</td><td>{num('latency_p99_s')}</td>"
            f"<td>{num('clock_offset_estimate_s')}</td>"
            f"<td>{'-' if outdated is None else f'{outdated:.2%}'}</td>"
            f"<td>{d.event_totals.get('gap', 0)}</td><td>{d.event_totals.get('resync', 0)}</td>"
            f'<td class="why">{_e(", ".join(s.get("reasons") or []))}</td></tr>'
        )
    out.append("</tbody></table>")
    start, end = report.start_ns, report.end_ns
    for d in report.exchanges:
        pts = d.points

        def line(key: str, pts: list[dict[str, Any]] = pts) -> list[tuple[int, float | None]]:
            return [(p["t"], p[key]) for p in pts]

        ev_times = sorted(d.events)
        charts = [
            svg_chart(
                "latency above the clock floor",
                [("p50", COLORS["p50"], line("p50")), ("p99", COLORS["p99"], line("p99"))],
                start,
                end,
                "s",
            ),
            svg_chart(
                "event age",
                [("event age", COLORS["age"], line("age"))],
                start,
                end,
                "s",
                limit=("limit", report.age_limit_s),
            ),
            svg_chart("message rate", [("msg/s", COLORS["rate"], line("rate"))], start, end, "/s"),
            svg_chart(
                "outdated share", [("outdated", COLORS["outdated"], line("outdated"))], start, end, "%"
            ),
            svg_chart(
                f"gaps and resyncs per {report.bucket_s} s",
                [
                    (kind, COLORS[kind], [(t, float(d.events[t].get(kind, 0))) for t in ev_times])
                    for kind in ("gap", "resync")
                ],
                start,
                end,
                "",
                bars=True,
            ),
        ]
        others = ", ".join(f"{k} {n}" for k, n in sorted(d.event_totals.items()))
        out.append(
            f'<section class="exchange" id="ex-{_e(d.exchange)}" data-exchange="{_e(d.exchange)}">'
            f"<h2>{_e(d.exchange)}</h2><div class=source>figures: {_e(d.source)}"
            f"{' · feed events: ' + _e(others) if others else ''}</div>"
            f'<div class="charts">{"".join(charts)}</div>'
        )
        if d.changes:
            out.append(
                '<table class="changes"><thead><tr><th class=l>time (UTC)</th><th class=l>from</th>'
                "<th class=l>to</th><th>score</th></tr></thead><tbody>"
            )
            for t, prev, state, score in d.changes:
                out.append(
                    f"<tr><td class=l>{_e(_iso(t))}</td><td class=l>{_e(prev or '(start)')}</td>"
                    f'<td class=l><span class="state {_e(state)}">{_e(state)}</span></td>'
                    f"<td>{'-' if score is None else f'{score:.1f}'}</td></tr>"
                )
            out.append("</tbody></table>")
        else:
            out.append("<p class=source>state changes: none recorded (no quality rows this day)</p>")
        out.append("</section>")
    out.append("</main></body></html>\n")
    return "".join(out)


def _iso(ns: int) -> str:
    from storage.lake import iso_ns

    return iso_ns(ns)


def write_report(lake: Lake, day: str, out: Path, cfg: QualityConfig, only: list[str] | None = None) -> int:
    """Writes the page of ``day`` to ``out``; returns the number of exchanges on it."""
    from storage.lake import ensure_dir

    report = gather(lake, day, cfg, only)
    ensure_dir(out.parent.resolve(), durable=False)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render(report), encoding="utf-8")
    tmp.replace(out)
    return len(report.exchanges)


def run(args: argparse.Namespace) -> int:
    """Writes the page; 2 on a bad argument, a lake, exchange or day that does not exist."""
    import duckdb

    from ticktape.config import quality_config_of
    from ticktape.lake import LakeLookupError, open_lake

    try:
        lake = open_lake(args.lake, endpoint_url=args.endpoint_url)
    except (FileNotFoundError, ValueError) as exc:
        print(f"ticktape report: {exc}", file=sys.stderr)
        return 2
    with lake:
        try:
            for ex in args.exchange or []:
                lake.check_exchange(ex)
            if args.date:
                day = lake.check_day(args.date)
            else:
                days = lake.inventory().days()
                if not days:
                    raise LakeLookupError(f"the lake {args.lake} holds no data yet")
                day = days[-1]
            out = args.out or Path(f"report-{day}.html")
            n = write_report(lake, day, out, quality_config_of(args), args.exchange)
        except LakeLookupError as exc:
            print(f"ticktape report: {exc}", file=sys.stderr)
            return 2
        except (duckdb.Error, OSError) as exc:
            print(f"ticktape report: {exc}", file=sys.stderr)
            return 1
    print(f"report of {day}: {n} exchange(s) -> {out}")
    return 0

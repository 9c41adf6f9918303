"""``ticktape report``: a self-contained page per day, rendered in headless Chromium; from quality rows
(a lake the live tracker wrote) and, for a replayed capture without them, recomputed from the data."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from quality.live import QualityTracker
from schemas import RECORD_DATASETS, RecordBuffer, rows_to_arrow
from storage.sink import UnitWriter
from tests.quality.test_server import ARTIFACTS, chromium_binary
from tests.storage.lakegen import day_start_ns, run_command
from ticktape.commands import report as report_command
from ticktape.commands.replay import replay_to_lake

NS = 1_000_000_000
MS = 1_000_000
DAY = "2026-12-01"
EXCHANGES = ("binance", "bybit", "okx")


def write_tracked_day(lake: Path) -> None:
    """Two minutes of three exchanges through the live tracker: okx 30 s behind from the second
    minute on, bybit with two gaps and resyncs; the data, feed events and quality rows go to the lake."""
    import datetime as dt

    tracker = QualityTracker(exchanges=list(EXCHANGES))
    kept = RecordBuffer()
    t0 = day_start_ns(dt.date.fromisoformat(DAY)) + 12 * 3600 * NS
    for s in range(120):
        t = t0 + s * NS
        out = RecordBuffer()
        for ex in EXCHANGES:
            lag = 30 * NS if ex == "okx" and s >= 60 else 0
            for i in range(10):
                tr = t + i * 100 * MS
                te = tr - 4 * MS - lag
                out.bbo.append((ex, "BTC-USDT", te, tr, 1.0, 1.0, 1.1, 1.0, s * 10 + i, 0))
                out.trades.append((ex, "BTC-USDT", te, tr, f"{s}-{i}", 1.0, 0.5, "buy", 0))
        if s in (30, 90):
            out.feed_events.append(("bybit", "BTC-USDT", "book", t, "gap", "{}"))
            out.feed_events.append(("bybit", "BTC-USDT", "book", t + NS // 2, "resync", "{}"))
        tracker.observe(out)
        kept.extend(out)
        kept.quality.extend(tracker.snapshot(t + NS))
    tables = {ds: rows_to_arrow(ds, kept.rows(ds)) for ds in RECORD_DATASETS if kept.rows(ds)}
    UnitWriter(lake, durable=False).write_unit("test", 0, 0, tables)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> Path:
    lake = tmp_path_factory.mktemp("lake")
    write_tracked_day(lake)
    replay_to_lake(samples / "binance" / "ethusdt_20240808.capture.gz", "binance", lake)
    return lake


def chromium(page: Path, tmp: Path, shot: Path | None = None) -> str:
    cmd = [
        chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        f"--user-data-dir={tmp}",
    ]  # fmt: skip
    if shot is not None:
        cmd += ["--window-size=1280,2400", f"--screenshot={shot}"]
    else:
        cmd += ["--dump-dom"]
    res = subprocess.run([*cmd, page.as_uri()], capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def sections(dom: str) -> dict[str, str]:
    parts = re.split(r'<section class="exchange" id="ex-[\w-]+" data-exchange="([\w-]+)">', dom)
    return {parts[i]: parts[i + 1].split("</section>")[0] for i in range(1, len(parts), 2)}


def test_report_of_a_tracked_day_renders_a_chart_per_exchange(lake: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    assert (
        run_command(report_command, ["report", "--lake", str(lake), "--date", DAY, "--out", str(page)]) == 0
    )
    text = page.read_text()
    # self-contained: nothing to fetch
    assert not re.search(r"<script|<link|<img|<iframe|src=|url\(|@import|https?://", text)
    dom = chromium(page, tmp_path / "a")
    by_ex = sections(dom)
    assert sorted(by_ex) == list(EXCHANGES)  # binance's replayed day is another date
    for ex, body in by_ex.items():
        assert body.count('<svg class="chart"') == 5, ex
        assert "figures: quality rows" in body
        latency = body.split('<svg class="chart"')[1]
        assert latency.count("<polyline") >= 1, ex  # latency p50/p99 drawn
        rate = body.split('<svg class="chart"')[3]
        assert "message rate" in rate and "<polyline" in rate
    # the limit line is drawn where the legend says: at the event-age limit (5 s) on the axis
    age = by_ex["okx"].split('<svg class="chart"')[2]
    assert "limit 5 s" in age and 'class="limit"' in age
    # okx's state change and bybit's gaps and resyncs
    assert re.search(r"\(start\)</td>.*?OK</span>.*?>OK<.*?EXCLUDE</span>", by_ex["okx"], re.S) or (
        "EXCLUDE</span>" in by_ex["okx"].split('class="changes"')[1]
    )
    assert "gap 2" in by_ex["bybit"] and "resync 2" in by_ex["bybit"]
    gaps_chart = by_ex["bybit"].split('<svg class="chart"')[5]
    assert (
        gaps_chart.count('<rect class="bar gap"') == 2 and gaps_chart.count('<rect class="bar resync"') == 2
    )
    summary = dom.split("</table>")[0]
    assert re.search(r'data-exchange="okx">.*?EXCLUDE', summary, re.S)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    chromium(page, tmp_path / "b", shot)
    assert shot.stat().st_size > 20_000


def test_report_of_a_replayed_day_is_recomputed_from_the_data(lake: Path, tmp_path: Path) -> None:
    page = tmp_path / "replayed.html"
    assert (
        run_command(
            report_command, ["report", "--lake", str(lake), "--date", "2024-08-08", "--out", str(page)]
        )
        == 0
    )
    by_ex = sections(chromium(page, tmp_path / "c"))
    assert list(by_ex) == ["binance"]
    body = by_ex["binance"]
    assert "recomputed from trades, book and bbo" in body
    assert body.split('<svg class="chart"')[1].count("<polyline") >= 2  # p50 and p99
    assert "state changes: none recorded" in body


def test_report_of_a_day_without_data_lists_the_days(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(report_command, ["report", "--lake", str(lake), "--date", "2020-01-01"]) == 2
    assert capsys.readouterr().err.strip().endswith("days with data: 2024-08-08, 2026-12-01")
    assert run_command(report_command, ["report", "--lake", str(lake), "--exchange", "okex"]) == 2
    assert "it holds: okx" in capsys.readouterr().err


REPORT_LAYOUT_JS = """
(() => [...document.querySelectorAll('svg.chart')].map((svg) => {
  const r = svg.getBoundingClientRect();
  const plot = svg.querySelector('rect.plot').getBBox();
  return {right: r.right, plotTop: plot.y, plotLeft: plot.x, plotBottom: plot.y + plot.height,
          texts: [...svg.querySelectorAll('text')].map((t) => { const b = t.getBBox();
            return {text: t.textContent, left: b.x, right: b.x + b.width, top: b.y, bottom: b.y + b.height}; })};
}))()
"""


def test_report_labels_stay_clear_of_each_other_and_of_the_plots(lake: Path, tmp_path: Path) -> None:
    from tests.quality.cdp import Chromium

    page = tmp_path / "report.html"
    assert (
        run_command(report_command, ["report", "--lake", str(lake), "--date", DAY, "--out", str(page)]) == 0
    )
    with Chromium(tmp_path / "profile") as browser:
        browser.open(page.as_uri(), 1280, 900, "document.readyState === 'complete'")
        charts = browser.evaluate(REPORT_LAYOUT_JS)
    assert len(charts) == 5 * len(EXCHANGES)
    for chart in charts:
        assert chart["right"] <= 1280
        texts = chart["texts"]
        for i, a in enumerate(texts):
            # titles, legends and axis labels lie outside the plot area (or, "no data", alone in it)
            outside = (
                a["bottom"] <= chart["plotTop"] + 0.5
                or a["top"] >= chart["plotBottom"] - 0.5
                or a["right"] <= chart["plotLeft"] + 0.5
            )
            assert outside or a["text"] == "no data", a
            for b in texts[i + 1 :]:
                apart = (
                    a["right"] <= b["left"]
                    or b["right"] <= a["left"]
                    or a["bottom"] <= b["top"]
                    or b["bottom"] <= a["top"]
                )
                assert apart, (a, b)

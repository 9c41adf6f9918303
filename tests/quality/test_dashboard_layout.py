"""The dashboard's layout in headless Chromium, measured (tests/quality/cdp.py): 30 venues at 1280 px,
the WHY column on screen and wrapping by words, chart labels clear of the lines, the dashed limit line
drawn on every row at the limit its label names. The screenshot goes to test-artifacts/."""

from __future__ import annotations

import asyncio
import time

from quality.live import QualityTracker
from quality.server import QualityServer
from schemas import RecordBuffer
from tests.quality.cdp import Chromium
from tests.quality.test_server import ARTIFACTS

NS = 1_000_000_000
MS = 1_000_000
# 30 venue ids as long as real ones get (the registered ones and those of ../shared/samples)
VENUES = [
    "binance", "binance-futures", "binance-delivery", "bitfinex", "bitflyer", "bitget", "bitstamp",
    "bybit", "bybit-spot", "coinbase", "crypto-com", "deribit", "gate", "gate-futures", "gemini", "htx",
    "htx-swap", "hyperliquid", "kraken", "kraken-futures", "kucoin", "kucoin-futures", "okx", "okx-swap",
    "phemex", "poloniex", "upbit", "bitmex", "mexc-futures", "whitebit-futures",
]  # fmt: skip
LAGGING = set(VENUES[3:7])  # 30 s behind: EXCLUDE, "event time behind"
SKEWED = set(VENUES[10:12])  # host clock 1.27 s behind: a long clock warning in WHY
GAPPY = set(VENUES[15:18])  # gaps every second: DEGRADED
WIDTH = 1280

LAYOUT_JS = """
(() => {
  const box = (e) => { const r = e.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height}; };
  const rows = [...document.querySelectorAll('#rows tr')].map((tr) => ({
    exchange: tr.dataset.exchange, state: tr.dataset.state, box: box(tr),
    cells: [...tr.children].map(box),
    why: {...box(tr.querySelector('td.why')), text: tr.querySelector('td.why').textContent,
          fontSize: parseFloat(getComputedStyle(tr.querySelector('td.why')).fontSize),
          lines: (() => { const range = document.createRange();
            range.selectNodeContents(tr.querySelector('td.why')); return range.getClientRects().length; })()},
    charts: [...tr.querySelectorAll('svg.spark')].map((svg) => {
      const plot = svg.querySelector('rect.plot').getBBox();
      const line = svg.querySelector('line.limit');
      const poly = svg.querySelector('polyline');
      const ys = poly ? poly.getAttribute('points').split(' ').map((p) => +p.split(',')[1]) : [];
      return {field: svg.dataset.field, plotTop: plot.y, plotBottom: plot.y + plot.height,
              limitY: line ? +line.getAttribute('y1') : null,
              limitLabel: (svg.querySelector('text.limit-label') || {}).textContent || null,
              texts: [...svg.querySelectorAll('text')].map((t) => { const b = t.getBBox();
                return {top: b.y, bottom: b.y + b.height, left: b.x, right: b.x + b.width}; }),
              width: svg.getBoundingClientRect().width, lineTop: ys.length ? Math.min(...ys) : null,
              lineBottom: ys.length ? Math.max(...ys) : null};
    }),
  }));
  return {viewport: document.documentElement.clientWidth, scrollWidth: document.documentElement.scrollWidth,
          header: [...document.querySelectorAll('thead th')].map(box), rows};
})()
"""


def feed(tracker: QualityTracker, seconds: int) -> None:
    now = time.time_ns()
    for s in range(seconds, 0, -1):
        t = now - s * NS
        out = RecordBuffer()
        for venue in VENUES:
            lag = 30 * NS if venue in LAGGING and s < seconds // 2 else 0
            skew = -1_270 * MS if venue in SKEWED else 0
            for i in range(10):
                tr = t + i * 100 * MS
                te = tr - 4 * MS - (i % 3) * MS - lag - skew
                out.bbo.append((venue, "BTC-USDT", te, tr, 1.0, 1.0, 1.1, 1.0, i, 0))
            if venue in GAPPY:
                out.feed_events.append((venue, "BTC-USDT", "book", t, "gap", "{}"))
        tracker.observe(out)
        tracker.snapshot(t + NS)


def test_thirty_venues_fit_1280px_with_why_visible_and_charts_labelled_clear_of_lines(tmp_path):
    tracker = QualityTracker()
    feed(tracker, 60)
    shot = ARTIFACTS / "dashboard-30-venues.png"
    ARTIFACTS.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)

    def drive(url: str) -> dict:
        with Chromium(tmp_path / "profile") as browser:
            browser.open(url, WIDTH, 900, "!!document.body && document.body.dataset.loaded === 'true'")
            layout = browser.evaluate(LAYOUT_JS)
            browser.screenshot(shot)
            return layout

    async def main() -> dict:
        server = QualityServer(tracker, port=0, drive=False)
        await server.start()
        try:
            return await asyncio.to_thread(drive, server.url + "/")
        finally:
            await server.stop()

    layout = asyncio.run(main())
    print("page width", layout["scrollWidth"], "of", layout["viewport"])
    rows = layout["rows"]
    assert [r["exchange"] for r in rows] == sorted(VENUES) or len(rows) == 30
    states = {r["exchange"]: r["state"] for r in rows}
    assert {states[v] for v in LAGGING} == {"EXCLUDE"}
    assert layout["scrollWidth"] <= layout["viewport"] == WIDTH  # nothing off-screen to the right
    for th in layout["header"]:
        assert th["right"] <= WIDTH
    previous_bottom = 0.0
    for r in rows:
        assert r["box"]["top"] >= previous_bottom - 0.5, r["exchange"]  # rows do not overlap
        previous_bottom = r["box"]["bottom"]
        assert r["box"]["height"] <= 80, (r["exchange"], r["box"])  # 30 rows stay readable on a page or two
        for a, b in zip(r["cells"], r["cells"][1:], strict=False):
            assert a["right"] <= b["left"] + 0.5, r["exchange"]  # cells side by side, no overlap
            assert b["right"] <= WIDTH
        why = r["why"]
        assert why["right"] <= WIDTH and why["width"] >= 190, why  # WHY on screen, a readable width
        assert why["fontSize"] >= 12
        if why["text"]:
            # the text's line boxes: it wraps by words, never a letter or two per line
            assert len(why["text"]) / why["lines"] >= 15, (r["exchange"], why)
        assert [c["field"] for c in r["charts"]] == ["latency_p99_s", "event_age_s"]
        for chart in r["charts"]:
            # the limit is drawn on every row, OK ones too, inside the plot, labelled with its value
            assert chart["limitY"] is not None, (r["exchange"], chart)
            assert chart["plotTop"] <= chart["limitY"] <= chart["plotBottom"]
            expected = "limit 2.5 s" if chart["field"] == "latency_p99_s" else "limit 5 s"
            assert chart["limitLabel"] == expected
            # every label sits in the band above the plot: clear of the line and of the limit
            for text in chart["texts"]:
                assert text["bottom"] <= chart["plotTop"] + 0.5, (r["exchange"], chart)
            assert chart["lineTop"] is not None and chart["lineTop"] >= chart["plotTop"]
            # the labels of one chart do not overlap each other
            left, right = sorted(chart["texts"], key=lambda t: t["left"])
            assert left["right"] <= right["left"], (r["exchange"], chart)
    assert shot.stat().st_size > 30_000

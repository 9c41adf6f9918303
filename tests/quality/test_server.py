"""QualityServer over real HTTP: /metrics, /api/quality, and the dashboard in headless Chromium."""

from __future__ import annotations

import asyncio
import re
import shutil
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from quality.live import QualityTracker
from quality.server import QualityServer
from schemas import RecordBuffer
from tests.support.services import ROOT

NS = 1_000_000_000
MS = 1_000_000
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
REQUIRED = (
    "exchange", "state", "score", "receive_age_s", "event_age_s", "latency_p50_s", "latency_p99_s",
    "clock_offset_estimate_s", "outdated_ratio", "gaps",
)  # fmt: skip


def feed(tracker: QualityTracker, seconds: int, lagging: str, skewed: str) -> None:
    """``seconds`` of synthetic history ending now: three exchanges fresh, one 30 s behind, one skewed."""
    now = time.time_ns()
    for s in range(seconds, 0, -1):
        t = now - s * NS
        out = RecordBuffer()
        for exchange in ("binance", "bybit", lagging, skewed):
            lag = 30 * NS if exchange == lagging and s < seconds // 2 else 0
            skew = -1_270 * MS if exchange == skewed else 0
            for i in range(10):
                tr = t + i * 100 * MS
                te = tr - 4 * MS - lag - skew
                out.bbo.append((exchange, "BTC-USDT", te, tr, 1.0, 1.0, 1.1, 1.0, i, 0))
                out.bbo.append((exchange, "ETH-USDT", te, tr, 1.0, 1.0, 1.1, 1.0, i, 0))
        out.feed_events.append(("bybit", "BTC-USDT", "book", t, "gap", "{}"))
        tracker.observe(out)
        tracker.snapshot(t + NS)


async def serve(tracker: QualityTracker) -> QualityServer:
    server = QualityServer(tracker, port=0, drive=False)
    await server.start()
    return server


def test_metrics_and_api():
    async def main():
        tracker = QualityTracker()
        feed(tracker, 20, lagging="okx", skewed="kraken")
        server = await serve(tracker)
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(server.url + "/metrics") as r:
                    assert r.status == 200
                    text = await r.text()
                async with http.get(server.url + "/api/quality") as r:
                    api = await r.json()
                async with http.get(server.url + "/api/quality/okx") as r:
                    one = await r.json()
                    assert len(one["history"]) == 20
                async with http.get(server.url + "/api/quality/nope") as r:
                    assert r.status == 404
                async with http.get(server.url + "/") as r:
                    assert "ticktape" in await r.text()
                async with http.get(server.url + "/static/dashboard.js") as r:
                    assert r.status == 200
        finally:
            await server.stop()
        return text, api

    text, api = asyncio.run(main())
    assert server_binds_loopback_by_default()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for family in families.values():
        for sample in family.samples:
            assert "symbol" not in sample.labels  # no per-symbol Prometheus labels
    latency = families["ticktape_latency_seconds"]
    kraken_buckets = {
        s.labels["le"]: s.value
        for s in latency.samples
        if s.name.endswith("_bucket") and s.labels["exchange"] == "kraken"
    }
    # kraken's host clock is 1.27 s behind: every raw latency is negative, and counted as such
    assert kraken_buckets["-1.0"] == kraken_buckets["+Inf"] == 400
    assert kraken_buckets["-2.5"] == 0
    assert "2.5" in kraken_buckets and "5.0" in kraken_buckets  # edges on the thresholds
    states = {
        s.labels["exchange"]: s.labels["state"]
        for s in families["ticktape_quality_state"].samples
        if s.value == 1.0
    }
    assert states == {"binance": "OK", "bybit": "DEGRADED", "kraken": "DEGRADED", "okx": "EXCLUDE"}
    events = [s for s in families["ticktape_feed_events"].samples if s.name == "ticktape_feed_events_total"]
    assert any(
        s.labels == {"exchange": "bybit", "channel": "book", "kind": "gap"} and s.value == 20 for s in events
    )
    offsets = {
        s.labels["exchange"]: s.value for s in families["ticktape_clock_offset_estimate_seconds"].samples
    }
    assert abs(offsets["kraken"] + 1.266) < 0.002

    by_name = {item["exchange"]: item for item in api}
    assert sorted(by_name) == ["binance", "bybit", "kraken", "okx"]
    for item in api:
        for key in REQUIRED:
            assert key in item
    assert by_name["okx"]["event_age_s"] > 29
    assert by_name["okx"]["reasons"][0] == "event time behind"
    assert by_name["kraken"]["latency_p50_s"] >= 0
    assert by_name["bybit"]["gaps"] > 0


def server_binds_loopback_by_default() -> bool:
    return QualityServer(QualityTracker()).host == "127.0.0.1"


def chromium_binary() -> str:
    """Debian's chromium; its absence fails the test (CI must have it)."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (make system-deps)")
    return CHROMIUM


def test_dashboard_renders_every_exchange_in_headless_chromium(tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "quality-dashboard.png"
    shot.unlink(missing_ok=True)

    async def main():
        tracker = QualityTracker()
        feed(tracker, 60, lagging="okx", skewed="kraken")
        server = await serve(tracker)
        binary = chromium_binary()
        common = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            "--virtual-time-budget=4000",
        ]  # fmt: skip
        try:
            dom = await run(*common, f"--user-data-dir={tmp_path / 'a'}", "--dump-dom", server.url + "/")
            await run(
                *common,
                f"--user-data-dir={tmp_path / 'b'}",
                "--window-size=1500,420",
                f"--screenshot={shot}",
                server.url + "/",
            )
        finally:
            await server.stop()
        return dom

    dom = asyncio.run(main())
    rows = re.findall(r'<tr class="(\w+)" data-exchange="([\w-]+)" data-state="(\w+)">', dom)
    assert {(ex, state) for _, ex, state in rows} == {
        ("binance", "OK"),
        ("bybit", "DEGRADED"),
        ("kraken", "DEGRADED"),
        ("okx", "EXCLUDE"),
    }
    for _, _, state in rows:
        assert f'<span class="state {state}">{state}</span>' in dom
    assert dom.count('<svg class="spark"') == 8
    assert dom.count("<polyline") == 8  # both charts of every row have a line
    assert "event time behind" in dom
    assert shot.is_file() and shot.stat().st_size > 10_000


async def run(*cmd: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()

"""Pipeline metrics on /metrics: connections, queue depth, REST budget, publisher."""

from __future__ import annotations

import asyncio

import aiohttp

from collectors.connection import Collector
from collectors.registry import get_dialect
from collectors.simulator import SimulatorConfig
from quality.live import QualityTracker
from quality.server import QualityServer
from schemas import RecordBuffer
from ticktape.metrics import pipeline_registry


async def test_metrics_expose_connections_queue_and_budget() -> None:
    dialect = get_dialect("binance")
    sim = dialect.simulator(SimulatorConfig(symbols=("BTCUSDT",), rate_hz=40))
    await sim.start()
    tracker = QualityTracker(exchanges=["binance"])
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    collector = Collector(
        dialect, ["BTCUSDT"], sink, ws_url=sim.ws_url, rest_url=sim.rest_url, observers=[tracker.observe]
    )
    server = QualityServer(tracker, port=0, registry=pipeline_registry([collector], None, "local"))
    await server.start()
    await collector.start()
    try:
        await collector.wait_connected()
        for _ in range(100):
            if collector.stats.snapshots_fetched:
                break
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as resp:
            text = await resp.text()
    finally:
        await collector.stop()
        await server.stop()
        await sim.stop()
    assert 'ticktape_connects_total{exchange="binance"} 1.0' in text
    assert 'ticktape_rest_snapshots_total{exchange="binance"} 1.0' in text
    # one depth snapshot (weight 50) and the instruments fetch at start (exchangeInfo, weight 20)
    assert 'ticktape_rest_budget_used{exchange="binance"} 70.0' in text
    assert 'ticktape_queue_depth{exchange="binance"}' in text
    assert "ticktape_host_stalls_total" in text  # the quality layer's metrics share the page


def test_sink_exports_lag_rows_and_files(tmp_path) -> None:
    import subprocess
    import sys
    import time
    import urllib.request

    from schemas import rows_to_arrow
    from streaming.local import LocalLogWriter
    from tests.support.services import ROOT, free_port, wait_for_port

    now = time.time_ns()
    writer = LocalLogWriter(tmp_path / "log")
    writer.append(
        "trades", rows_to_arrow("trades", [("binance", "BTC-USDT", now, now, "1", 1.0, 1.0, "buy", 0)])
    )
    writer.close()
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ticktape.cli",
            "sink",
            "--log",
            str(tmp_path / "log"),
            "--lake",
            str(tmp_path / "lake"),
            "--flush-idle",
            "0.2",
            "--metrics-port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc=proc, timeout_s=60)
        deadline = time.monotonic() + 30
        text = ""
        while "\nticktape_sink_lag_seconds " not in text and time.monotonic() < deadline:
            time.sleep(0.2)
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    assert 'ticktape_sink_rows_total{dataset="trades"} 1.0' in text
    lag = float(text.split("\nticktape_sink_lag_seconds ")[1].split()[0])
    assert 0.0 <= lag < 120.0

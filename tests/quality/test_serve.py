"""``ticktape serve`` consumes a running deployment's transport and serves its quality."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request

from schemas import RecordBuffer
from streaming import open_publisher
from tests.support.services import ROOT, free_port, wait_for_port

MS = 1_000_000


def get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def test_serve_reads_the_local_log_and_serves_quality(tmp_path):
    log_dir = tmp_path / "log"
    port = free_port()

    async def publish(seconds: float) -> None:
        publisher = open_publisher("local", log_dir=log_dir)
        await publisher.start()
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            now = time.time_ns()
            out = RecordBuffer()
            out.trades.append(("bybit", "BTC-USDT", now - 4 * MS, now, str(i), 1.0, 1.0, "buy", 0))
            out.bbo.append(("bybit", "BTC-USDT", now - 4 * MS, now, 1.0, 1.0, 1.1, 1.0, i, 0))
            await publisher.publish(out)
            await publisher.flush()
            i += 1
            await asyncio.sleep(0.05)
        await publisher.close()

    async def backlog() -> None:
        publisher = open_publisher("local", log_dir=log_dir)
        await publisher.start()
        old = time.time_ns() - 3_600 * 10**9
        out = RecordBuffer()
        for i in range(500):
            out.trades.append(
                ("bybit", "BTC-USDT", old + i * MS, old + i * MS + 4 * MS, str(i), 1.0, 1.0, None, 0)
            )
        await publisher.publish(out)
        await publisher.close()

    asyncio.run(backlog())  # an hour-old backlog: skipped, not scored
    proc = subprocess.Popen(
        [sys.executable, "-m", "ticktape.cli", "serve", "--transport", "local", "--log", str(log_dir),
         "--port", str(port), "--exchanges", "bybit,kraken", "--duration", "60"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for_port(port, timeout_s=60, proc=proc)  # type: ignore[arg-type]
        asyncio.run(publish(4.0))
        doc = {item["exchange"]: item for item in json.loads(get(f"http://127.0.0.1:{port}/api/quality"))}
        metrics = get(f"http://127.0.0.1:{port}/metrics")
        page = get(f"http://127.0.0.1:{port}/")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert doc["bybit"]["state"] == "OK", doc["bybit"]
    assert doc["bybit"]["receive_age_s"] < 2 and doc["bybit"]["latency_p50_s"] < 0.1
    assert doc["bybit"]["channels"]["trades"]["messages_total"] < 200  # the 500-row stale backlog was skipped
    assert doc["kraken"]["state"] == "EXCLUDE" and doc["kraken"]["reasons"] == ["no data"]
    assert 'ticktape_messages_total{channel="trades",exchange="bybit"}' in metrics
    assert "ticktape" in page

"""Honest failures: every user-facing error is a line or two naming what failed and what to do,
never a traceback; credentials inside URLs never printed; HTTP servers time out idle and slow clients."""

from __future__ import annotations

import asyncio
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from quality.live import QualityTracker
from quality.scoring import QualityConfig
from quality.server import QualityServer
from schemas import rows_to_arrow
from storage.sink import SinkStats
from streaming.local import LocalLogWriter
from tests.support.services import ROOT, free_port
from ticktape.cli import main
from ticktape.config import mask_secrets
from ticktape.metrics import SinkMetricsServer

SAMPLE = ROOT.parent / "shared" / "samples" / "binance" / "ethusdt_20240808.capture.gz"
T0 = 1_723_161_254_024_619_568


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err


def assert_honest(err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["simulate", "--exchange", "binance", "--port", "{port}", "--duration", "1"], "--port"),
        (["demo", "--port", "{port}", "--duration", "1", "--exchanges", "binance"], "--port"),
        (["serve", "--port", "{port}", "--log", "{tmp}/log", "--duration", "1"], "--port"),
        (
            ["sink", "--log", "{tmp}/log", "--lake", "{tmp}/lake", "--metrics-port", "{port}"],
            "--metrics-port",
        ),
    ],
    ids=["simulate", "demo", "serve", "sink-metrics"],
)
def test_busy_port_names_the_address_and_the_flag(
    argv: list[str],
    flag: str,
    busy_port: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = run_main(capsys, *(a.format(port=busy_port, tmp=tmp_path) for a in argv))
    assert code == 1
    assert_honest(err, f"127.0.0.1', {busy_port}", "address already in use", flag)
    assert len([line for line in err.splitlines() if line.startswith("ticktape") or "--port" in line]) <= 2


def test_disk_full_names_the_file(tmp_path: Path) -> None:
    """The sink writing a lake on a volume with no room: the path is named (file size limit = full disk)."""
    log_dir, lake = tmp_path / "log", tmp_path / "lake"
    with LocalLogWriter(log_dir) as w:
        w.append(
            "trades",
            rows_to_arrow(
                "trades",
                [("binance", "BTC-USDT", T0, T0, str(i), 1.0 + i, 1.0, "buy", 0) for i in range(20_000)],
            ),
        )

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ticktape.cli",
            "sink",
            "--log",
            str(log_dir),
            "--lake",
            str(lake),
            "--until-idle",
            "0.3",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        preexec_fn=limit,
        timeout=120,
    )
    assert proc.returncode == 1
    assert_honest(proc.stderr, "ticktape sink: ", f"cannot write {lake}/trades/exchange=binance/")


def test_kafka_unreachable_names_the_bootstrap_servers(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    code, err = run_main(
        capsys,
        "replay",
        "--exchange",
        "binance",
        "--input",
        str(SAMPLE),
        "--transport",
        "kafka",
        "--kafka-bootstrap",
        f"127.0.0.1:{port}",
    )
    assert code == 1
    assert_honest(err, f"Kafka unreachable at 127.0.0.1:{port}", "--kafka-bootstrap")


def test_collect_without_network_says_so_and_a_bounded_run_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens: connection refused, retried with backoff
    url = f"ws://trader:hunter2@127.0.0.1:{port}/ws?token=s3cr3t"
    code, err = run_main(
        capsys,
        "collect",
        "--exchange",
        "binance",
        "--symbols",
        "BTCUSDT",
        "--ws-url",
        url,
        "--duration",
        "2",
        "--log",
        str(tmp_path / "log"),
    )
    assert code == 1
    # The console log (in-process, pytest holds the log handler) says what fails, masked.
    assert "binance: cannot connect to ws://trader:***@127.0.0.1" in caplog.text
    assert "retrying with backoff" in caplog.text
    assert_honest(err, "no frame received in 2 s from binance")
    assert "hunter2" not in err + caplog.text and "s3cr3t" not in err + caplog.text


def test_config_show_and_errors_mask_url_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ticktape.toml"
    config.write_text(
        '[transport.kinesis]\nendpoint_url = "http://AKIA:wJalr@127.0.0.1:9000/?X-Amz-Signature=abc123"\n'
    )
    code = main(["config", "show", str(config)])
    captured = capsys.readouterr()
    assert code == 0
    assert "http://AKIA:***@127.0.0.1:9000/?X-Amz-Signature=***" in captured.out
    assert "wJalr" not in captured.out + captured.err and "abc123" not in captured.out + captured.err
    assert (
        mask_secrets("wss://tok@ex.com/ws and https://h/x?api_key=K&q=1")
        == "wss://***@ex.com/ws and https://h/x?api_key=***&q=1"
    )


async def _raw_closed_within(port: int, payload: bytes, seconds: float) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(), seconds)
    except TimeoutError:
        return False
    finally:
        writer.close()
    return data == b""


@pytest.mark.parametrize("server", ["sink-metrics", "quality"])
async def test_http_servers_send_nosniff_and_drop_idle_and_slow_clients(server: str) -> None:
    stats = SinkStats()
    srv: SinkMetricsServer | QualityServer
    if server == "sink-metrics":
        srv = SinkMetricsServer(stats, port=0, idle_timeout_s=0.5)
    else:
        srv = QualityServer(QualityTracker(QualityConfig()), port=0, drive=False, idle_timeout_s=0.5)
    await srv.start()
    try:
        async with aiohttp.ClientSession() as session:
            for path in ("/healthz", "/metrics", "/no-such-page"):
                async with session.get(f"http://127.0.0.1:{srv.port}{path}") as resp:
                    assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        started = time.monotonic()
        # Connected, sends nothing; then a request whose headers never finish (slowloris).
        assert await _raw_closed_within(srv.port, b"", 5)
        assert await _raw_closed_within(srv.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", 5)
        assert time.monotonic() - started < 5
        if server == "sink-metrics":
            stats.failure = "log damaged"
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{srv.port}/healthz") as resp,
            ):
                assert resp.status == 503 and "log damaged" in await resp.text()
    finally:
        await srv.stop()

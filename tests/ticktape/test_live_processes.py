"""Collector and sink as separate processes against the simulator over a real websocket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from tests.support.services import ROOT, free_port, wait_for_port

TICKTAPE = [sys.executable, "-m", "ticktape.cli"]


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*TICKTAPE, *args],
        cwd=ROOT,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_collect_and_sink_processes_fill_a_queryable_lake(tmp_path: Path) -> None:
    port = free_port()
    sim = _start(
        [
            "simulate",
            "--exchange",
            "binance",
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--port",
            str(port),
            "--rate",
            "40",
        ],
        tmp_path / "sim.out",
    )
    try:
        wait_for_port(port, proc=sim)
        log_dir, lake = tmp_path / "log", tmp_path / "lake"
        collect = _start(
            [
                "collect",
                "--exchange",
                "binance",
                "--symbols",
                "BTCUSDT,ETH-USDT",
                "--ws-url",
                f"ws://127.0.0.1:{port}",
                "--rest-url",
                f"http://127.0.0.1:{port}",
                "--transport",
                "local",
                "--log",
                str(log_dir),
                "--capture",
                str(tmp_path / "cap.gz"),
            ],
            tmp_path / "collect.out",
        )
        sink = _start(
            ["sink", "--transport", "local", "--log", str(log_dir), "--lake", str(lake), "--until-idle", "8"],
            tmp_path / "sink.out",
        )
        deadline = time.monotonic() + 60
        while b"collecting binance" not in (tmp_path / "collect.out").read_bytes():
            assert collect.poll() is None and time.monotonic() < deadline, (
                tmp_path / "collect.out"
            ).read_text()
            time.sleep(0.1)
        time.sleep(3)
        collect.send_signal(signal.SIGTERM)  # graceful: flushes the log, exit 0
        assert collect.wait(timeout=30) == 0, (tmp_path / "collect.out").read_text()
        assert sink.wait(timeout=60) == 0, (tmp_path / "sink.out").read_text()
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    con = duckdb.connect()
    glob = lambda d: f"read_parquet('{lake}/{d}/**/*.parquet', hive_partitioning = true)"  # noqa: E731
    symbols = con.execute(f"SELECT DISTINCT symbol FROM {glob('bbo')} ORDER BY 1").fetchall()
    assert symbols == [("BTC-USDT",), ("ETH-USDT",)]
    n_trades = con.execute(f"SELECT count(*) FROM {glob('trades')}").fetchone()
    assert n_trades is not None and n_trades[0] > 10
    snap = con.execute(f"SELECT count(DISTINCT symbol) FROM {glob('book')} WHERE is_snapshot").fetchone()
    assert snap == (2,)
    kinds = {k for (k,) in con.execute(f"SELECT DISTINCT kind FROM {glob('feed_events')}").fetchall()}
    assert {"connect", "disconnect"} <= kinds and "gap" not in kinds
    # every row the collector published reached the lake: the capture replays to the same trades
    from collectors.capture import replay_capture
    from collectors.registry import get_dialect

    replayed = replay_capture(get_dialect("binance").new_normaliser(), tmp_path / "cap.gz")
    assert n_trades[0] == len(replayed.trades)


def test_collect_runs_a_configured_group_of_exchanges_in_one_process(tmp_path: Path) -> None:
    from tests.support.services import free_port as _free

    ports = {"binance": _free(), "okx": _free()}
    sims = [
        _start(
            ["simulate", "--exchange", ex, "--port", str(port), "--rate", "30"], tmp_path / f"sim-{ex}.out"
        )
        for ex, port in ports.items()
    ]
    config = tmp_path / "ticktape.toml"
    config.write_text(
        f"""
[[collectors]]
exchange = "binance"
symbols = ["BTCUSDT"]
group = "majors"
ws_url = "ws://127.0.0.1:{ports["binance"]}"
rest_url = "http://127.0.0.1:{ports["binance"]}"

[[collectors]]
exchange = "okx"
symbols = ["BTC-USDT-SWAP"]  # the okx simulator serves its demo swaps
group = "majors"
ws_url = "ws://127.0.0.1:{ports["okx"]}"
"""
    )
    try:
        for sim, port in zip(sims, ports.values(), strict=True):
            wait_for_port(port, proc=sim)
        log_dir = tmp_path / "log"
        out = tmp_path / "collect.out"
        collect = _start(
            [
                "collect",
                "--config",
                str(config),
                "--group",
                "majors",
                "--transport",
                "local",
                "--log",
                str(log_dir),
                "--duration",
                "4",
            ],
            out,
        )
        assert collect.wait(timeout=90) == 0, out.read_text()
    finally:
        for sim in sims:
            sim.terminate()
            sim.wait(timeout=10)
    from streaming.local import read_log

    exchanges = set()
    for _, dataset, table in read_log(log_dir):
        if dataset == "bbo":
            exchanges.update(table.column("exchange").to_pylist())
    assert exchanges == {"binance", "okx"}


def test_collect_binance_futures_from_a_base_url_uses_the_routed_public_path(tmp_path: Path) -> None:
    """Acceptance (issue 13): ``ticktape collect --exchange binance-futures`` with ``--ws-url`` a base URL,
    against a simulator that routes as Binance does since 2026-04-23 (no depth on unrouted paths)."""
    from collectors.capture import replay_capture
    from collectors.registry import get_dialect
    from tests.collectors.book_replay import assert_tops_match_bbo

    port = free_port()
    sim = _start(
        ["simulate", "--exchange", "binance-futures", "--symbols", "BTCUSDT,ETHUSDT", "--port", str(port)],
        tmp_path / "sim.out",
    )
    log_dir, lake, capture = tmp_path / "log", tmp_path / "lake", tmp_path / "cap.gz"
    try:
        wait_for_port(port, proc=sim)
        collect = _start(
            [
                "collect",
                "--exchange",
                "binance-futures",
                "--symbols",
                "BTCUSDT,ETH-USDT-PERP",
                "--ws-url",
                f"ws://127.0.0.1:{port}",
                "--rest-url",
                f"http://127.0.0.1:{port}",
                "--duration",
                "5",
                "--transport",
                "local",
                "--log",
                str(log_dir),
                "--capture",
                str(capture),
            ],
            tmp_path / "collect.out",
        )
        assert collect.wait(timeout=60) == 0, (tmp_path / "collect.out").read_text()
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    sink = _start(
        ["sink", "--transport", "local", "--log", str(log_dir), "--lake", str(lake), "--until-idle", "3"],
        tmp_path / "sink.out",
    )
    assert sink.wait(timeout=60) == 0, (tmp_path / "sink.out").read_text()
    con = duckdb.connect()
    events = f"read_parquet('{lake}/feed_events/**/*.parquet', hive_partitioning = true)"
    urls = {
        u
        for (u,) in con.execute(
            f"SELECT json_extract_string(detail, '$.url') FROM {events} WHERE kind = 'connect'"
        ).fetchall()
    }
    assert urls == {f"ws://127.0.0.1:{port}/public/stream"}, urls  # never an unrouted path
    records = replay_capture(get_dialect("binance-futures").new_normaliser(), capture)
    for symbol in ("BTC-USDT-PERP", "ETH-USDT-PERP"):
        for rows in (records.trades, records.book, records.bbo):
            assert any(r[1] == symbol for r in rows)
    assert assert_tops_match_bbo(records.book, records.bbo) > 50

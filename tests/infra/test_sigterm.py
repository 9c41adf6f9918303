"""Graceful shutdown per role: each role runs as its own process, configured the way containers are
(``TICKTAPE_CONFIG`` plus ``TICKTAPE_*`` variables, no flags), gets SIGTERM while it works, exits 0,
and nothing is lost: every row the collector published reaches the lake exactly once, and a compaction
interrupted mid-way leaves the lake's rows unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from tests.support.services import ROOT, SAMPLES, free_port, wait_for_port

TICKTAPE = [sys.executable, "-m", "ticktape.cli"]
SAMPLE = SAMPLES / "binance" / "ethusdt_20240808.capture.gz"


class Role:
    """One ticktape process with its output in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], out: Path) -> None:
        self.name = name
        self.out = out
        self.proc = subprocess.Popen(
            [*TICKTAPE, *argv],
            cwd=ROOT,
            stdout=open(out, "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not re.search(pattern, self.text()):
            assert self.proc.poll() is None, f"{self.name} exited {self.proc.returncode}:\n{self.text()}"
            assert time.monotonic() < deadline, (
                f"{self.name}: no {pattern!r} after {timeout_s}s:\n{self.text()}"
            )
            time.sleep(0.05)

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM, then the exit code (failing the test if it does not exit in time)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"{self.name} ignored SIGTERM for {timeout_s}s:\n{self.text()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_ticktape(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs a ticktape command to its end."""
    return subprocess.run(
        [*TICKTAPE, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def _quality(port: int, exchange: str) -> dict[str, Any]:
    """``/api/quality``'s object for one exchange ({} while the server is not answering yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/quality", timeout=5) as response:
            items = json.loads(response.read())
    except (OSError, ValueError):
        return {}
    return next((item for item in items if item.get("exchange") == exchange), {})


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[int]:
    """A simulated Binance on a free loopback port."""
    port = free_port()
    sim = Role(
        "simulate",
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
        {},
        tmp_path / "simulate.out",
    )
    try:
        wait_for_port(port, proc=sim.proc)
        yield port
    finally:
        sim.kill()


def lake_tables(lake: Path) -> dict[str, pa.Table]:
    """Every dataset of a lake, all rows in a canonical order."""
    out = {}
    con = duckdb.connect()
    for dataset in sorted(p.name for p in lake.iterdir() if p.is_dir() and not p.name.startswith("_")):
        files = sorted(str(f) for f in (lake / dataset).rglob("*.parquet"))
        if files:
            out[dataset] = con.sql(
                "SELECT * EXCLUDE (exchange, date) FROM read_parquet($files, hive_partitioning = true) ORDER BY ALL",
                params={"files": files},
            ).to_arrow_table()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["local", "kafka"])
def test_collect_and_sink_stop_on_sigterm_and_lose_nothing(
    transport: str, simulator: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    lake, log = tmp_path / "lake", tmp_path / "log"
    if transport == "kafka":
        broker = request.getfixturevalue("kafka_broker")
        run = uuid.uuid4().hex[:8]
        transport_toml = (
            f'[transport]\nkind = "kafka"\n[transport.kafka]\nbootstrap = "{broker.address}"\n'
            f'topic_prefix = "sigterm-{run}"\ngroup_id = "sigterm-{run}"\n'
        )
    else:
        transport_toml = f'[transport]\nkind = "local"\n[transport.local]\nlog_dir = "{log}"\n'
    config = tmp_path / "ticktape.toml"
    config.write_text(
        transport_toml
        + f"""
[lake]
path = "{lake}"
[sink]
# small units, so that the sink is between commits when SIGTERM arrives
flush_entries = 5
flush_idle = 0.5
[[collectors]]
group = "spot"
exchange = "binance"
symbols = ["BTCUSDT", "ETHUSDT"]
ws_url = "ws://127.0.0.1:{simulator}"
rest_url = "http://127.0.0.1:{simulator}"
"""
    )
    http_port = free_port()
    env = {"TICKTAPE_CONFIG": str(config)}
    collect = Role(
        "collect",
        ["collect"],
        {**env, "TICKTAPE_COLLECT_GROUP": "spot", "TICKTAPE_SERVER_PORT": str(http_port)},
        tmp_path / "collect.out",
    )
    sink = serve = None
    try:
        collect.wait_for("collecting binance")
        # the container health check passes against the live collector
        health = subprocess.run(
            [sys.executable, str(ROOT / "infra" / "healthcheck.py")],
            env={"TICKTAPE_SERVER_PORT": str(http_port)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert health.returncode == 0, health.stdout
        sink = Role("sink", ["sink"], env, tmp_path / "sink.out")
        serve_port = free_port()
        serve = Role(
            "serve", ["serve"], {**env, "TICKTAPE_SERVER_PORT": str(serve_port)}, tmp_path / "serve.out"
        )
        sink.wait_for(r"committed \S+ \d+\.\.\d+")
        # SIGTERM the sink while the collector keeps publishing
        assert sink.terminate() == 0, sink.text()
        # serve, which consumes the same records for the fleet's dashboard, has seen binance by now
        wait_for_port(serve_port, proc=serve.proc)
        deadline = time.monotonic() + 30
        while (age := _quality(serve_port, "binance").get("receive_age_s")) is None or age > 5:
            assert time.monotonic() < deadline, f"serve never saw binance live:\n{serve.text()}"
            time.sleep(0.2)
        assert serve.terminate() == 0, serve.text()
        time.sleep(1.0)
        assert collect.terminate() == 0, collect.text()
        published = int(re.search(r"([\d,]+) rows published", collect.text()).group(1).replace(",", ""))  # type: ignore[union-attr]
        assert published > 0
        # a fresh sink drains what is left: the lake then holds every published row exactly once
        rest = Role("sink", ["sink"], {**env, "TICKTAPE_SINK_UNTIL_IDLE": "2"}, tmp_path / "sink2.out")
        assert rest.proc.wait(timeout=120) == 0, rest.text()
    finally:
        collect.kill()
        for role in (sink, serve):
            if role is not None:
                role.kill()
    tables = lake_tables(lake)
    # the collector's own rows; the quality dataset (published each second by the tracker) comes on top
    assert sum(t.num_rows for name, t in tables.items() if name != "quality") == published
    trades = tables["trades"]
    keys = set(zip(trades["symbol"].to_pylist(), trades["trade_id"].to_pylist(), strict=True))
    assert len(keys) == trades.num_rows, "a trade was written twice"


@pytest.fixture(scope="module")
def replayed_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake with one closed day: the shared Binance recording, replayed."""
    lake = tmp_path_factory.mktemp("replayed") / "lake"
    replay = run_ticktape("replay", "--exchange", "binance", "--input", str(SAMPLE), "--lake", str(lake))
    assert replay.returncode == 0, replay.stderr
    return lake


@pytest.mark.slow
def test_compact_stops_on_sigterm_with_the_lake_unchanged(replayed_lake: Path, tmp_path: Path) -> None:
    before = lake_tables(replayed_lake)
    assert before["book"].num_rows > 100_000
    work = tmp_path / "work"
    shutil.copytree(replayed_lake, work)
    compact = Role("compact", ["compact"], {"TICKTAPE_LAKE_PATH": str(work)}, tmp_path / "compact.out")
    try:
        # the first partition is done and the next one is being merged
        compact.wait_for(r"files -> ")
        assert compact.terminate() == 0, compact.text()
    finally:
        compact.kill()
    during = lake_tables(work)
    assert during.keys() == before.keys()
    for dataset, table in before.items():
        assert during[dataset].equals(table), f"{dataset}: rows changed by an interrupted compaction"
    # a second run finishes the job, and the rows are still the same
    again = run_ticktape("compact", "--lake", str(work))
    assert again.returncode == 0, again.stdout + again.stderr
    after = lake_tables(work)
    for dataset, table in before.items():
        assert after[dataset].equals(table), dataset
    assert all(f.name.startswith("compacted-") for f in (work / "book").rglob("*.parquet"))


@pytest.mark.slow
def test_sync_stops_on_sigterm_and_a_rerun_completes_and_verifies(
    replayed_lake: Path, moto: Any, tmp_path: Path
) -> None:
    import boto3

    bucket = f"ticktape-sigterm-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1").create_bucket(Bucket=bucket)
    env = {
        "TICKTAPE_LAKE_PATH": str(replayed_lake),
        "TICKTAPE_S3_URL": f"s3://{bucket}/lake",
        "TICKTAPE_S3_ENDPOINT_URL": moto.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    sync = Role("sync", ["sync", "--no-progress"], env, tmp_path / "sync.out")
    try:
        # credentials found: the uploads of the day start now
        sync.wait_for(r"Found credentials")
        assert sync.terminate() == 0, sync.text()
    finally:
        sync.kill()
    # whatever the first run left, the second one finishes the day, verifies it and writes the manifest
    again = run_ticktape("sync", "--no-progress", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2024-08-08: ok" in again.stdout and "manifest" in again.stdout, again.stdout
    third = run_ticktape("sync", "--no-progress", env=env)
    assert third.returncode == 0 and " 0 uploaded" in third.stdout, third.stdout + third.stderr


@pytest.mark.slow
def test_validate_stops_on_sigterm(replayed_lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "validation"
    env = {"TICKTAPE_LAKE_PATH": str(replayed_lake), "TICKTAPE_VALIDATE_OUT": str(out)}
    validate = Role("validate", ["validate", "--date", "2024-08-08"], env, tmp_path / "validate.out")
    try:
        # the first suite has run; the others are in progress
        validate.wait_for(r"trades\.binance: passed", timeout_s=120)
        assert validate.terminate() == 0, validate.text()
    finally:
        validate.kill()

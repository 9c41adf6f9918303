"""``ticktape demo`` into a lake that already holds data: it says so and counts this run only;
``--fresh`` empties a lake ticktape made, and refuses any other directory."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

from tests.storage.lakegen import write_trade_day
from ticktape.lake import open_lake

OLD_DAY = dt.date(2026, 11, 1)


def demo(lake: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable, "-m", "ticktape.cli", "--log-level", "WARNING", "demo", "--lake", str(lake),
        "--exchanges", "binance", "--duration", "3", "--port", "0", "--status-every", "0", *extra,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def captured_trades(stdout: str) -> int:
    m = re.search(r"^\s+binance\s+(\d+)\s+\d+", stdout, re.M)
    assert m, stdout
    return int(m.group(1))


def test_demo_counts_this_run_only_and_fresh_empties_a_ticktape_lake(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_trade_day(lake, "binance", OLD_DAY, n=5_000, files=2, stream="earlier")  # an earlier run
    res = demo(lake)
    assert res.returncode == 0, res.stderr
    assert "already holds data from earlier runs" in res.stdout and "--fresh" in res.stdout
    assert "(this run only)" in res.stdout
    this_run = captured_trades(res.stdout)
    with open_lake(str(lake)) as opened:
        total = opened.sql("SELECT count(*) AS n FROM trades").column("n")[0].as_py()
    assert 0 < this_run == total - 5_000

    fresh = demo(lake, "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert f"emptied {lake}" in fresh.stdout and "already holds data" not in fresh.stdout
    with open_lake(str(lake)) as opened:
        assert opened.days("binance") == [dt.datetime.now(dt.UTC).date()]  # the old day is gone
        total = opened.sql("SELECT count(*) AS n FROM trades").column("n")[0].as_py()
    assert total == captured_trades(fresh.stdout)


def test_fresh_refuses_a_directory_ticktape_did_not_make(tmp_path: Path) -> None:
    lake = tmp_path / "mine"
    write_trade_day(lake, "binance", OLD_DAY, n=100, files=1)
    (lake / "thesis.tex").write_text("do not delete")
    res = demo(lake, "--fresh")
    assert res.returncode == 2
    assert "holds what ticktape did not write (thesis.tex)" in res.stderr and "Traceback" not in res.stderr
    assert (lake / "thesis.tex").read_text() == "do not delete"
    assert any((lake / "trades").rglob("*.parquet"))

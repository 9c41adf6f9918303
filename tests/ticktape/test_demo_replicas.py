"""``ticktape demo --replicas 2``: two replicas per venue lose their links at staggered moments; the
summary shows each replica's disconnects and gaps it had covered, and the merged book gap-free."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ticktape.commands.demo import outage_times
from ticktape.lake import open_lake


def test_demo_with_two_replicas_shows_each_replica_and_a_gap_free_merged_book(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    cmd = [
        sys.executable, "-m", "ticktape.cli", "--log-level", "ERROR", "demo", "--lake", str(lake),
        "--exchanges", "binance,okx", "--duration", "9", "--replicas", "2", "--outage-s", "1",
        "--port", "0", "--status-every", "0",
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "outage: replica a" in out and "outage: replica b" in out
    for exchange in ("binance", "okx"):
        for replica in ("a", "b"):
            m = re.search(rf"^\s+{exchange}\s+{replica}\s+(\d+)\s+(\d+)\s+(\d+)", out, re.M)
            assert m, out
            assert int(m.group(1)) >= 1  # its own link loss
            assert int(m.group(3)) >= 1  # ... covered by the other replica
        assert re.search(rf"^\s+{exchange}\s+merged\s+-\s+0\s+-\s+gap-free$", out, re.M), out
    with open_lake(str(lake)) as opened:
        dup = (
            opened.sql("SELECT count(*) - count(DISTINCT (exchange, symbol, trade_id)) AS n FROM trades")
            .column("n")[0]
            .as_py()
        )
        replicas = opened.sql("SELECT DISTINCT replica FROM book ORDER BY 1").column("replica").to_pylist()
    assert dup == 0 and replicas == ["a", "b"]


def test_outages_never_overlap_and_too_short_a_run_is_refused() -> None:
    times = outage_times(45.0, 2, 3.0)
    assert times == [13.5, 28.5]
    assert times[1] - times[0] > 3.0
    with pytest.raises(ValueError, match="too short"):
        outage_times(4.0, 3, 3.0)

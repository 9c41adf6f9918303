"""Common mistakes get a short message naming what exists, and no traceback: unknown exchange, unknown
symbol, a day without data, a capture of another exchange, an open day to compact; `query` limits its
table output."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import subprocess
import sys
from pathlib import Path

import pytest

from tests.storage.lakegen import day_start_ns, write_sink_file, write_trade_day
from ticktape.cli import main

DAY = dt.date(2026, 12, 1)


def ticktape(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs a command in a process of its own (what a user sees, traceback included)."""
    return subprocess.run(
        [sys.executable, "-m", "ticktape.cli", *args], capture_output=True, text=True, timeout=120
    )


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs a command in this process (faster); an exception escaping it fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("lake")
    write_trade_day(lake, "binance", DAY, n=1_500, files=1)
    t = day_start_ns(DAY) + 3_600 * 10**9
    rows = []
    for i, (side, price) in enumerate((("bid", 100.0), ("ask", 101.0))):
        rows.append(("binance-futures", "ETH-USDT-PERP", t, t + 1_000, side, price, 1.0, True, 1, 0, 16))
        rows.append(
            ("binance-futures", "ETH-USDT-PERP", t + 10**9, t + 10**9 + i, side, price, 2.0, False, 2, 0, 0)
        )
    write_sink_file(lake, "book", rows, "local", 0, len(rows) - 1)
    return lake


def short_error(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_unknown_exchange_lists_the_closest_first(lake: Path) -> None:
    res = ticktape("quality", "--lake", str(lake), "--exchange", "binanse")
    assert res.returncode == 2
    assert short_error(res) == (
        f"ticktape quality: no exchange 'binanse' in the lake {lake}; it holds: binance, binance-futures"
    )
    res = ticktape("replay", "--exchange", "bybt", "--input", "README.md", "--lake", str(lake))
    assert res.returncode == 2
    assert "known (closest first): bybit, bybit-spot" in short_error(res)


def test_unknown_symbol_names_the_closest_symbols(lake: Path) -> None:
    res = run(
        "book", "--lake", str(lake), "--exchange", "binance-futures", "--symbol", "ETH-USDT", "--at",
        "2026-12-01T01:00:05Z",
    )  # fmt: skip
    assert res.returncode == 2
    assert short_error(res).endswith("closest symbols: ETH-USDT-PERP")
    ok = run(
        "book", "--lake", str(lake), "--exchange", "binance-futures", "--symbol", "ETH-USDT-PERP", "--at",
        "2026-12-01T01:00:05Z",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "at 2026-12-01T01:00:05.000000000Z" in ok.stdout


def test_a_day_without_data_lists_the_days_with_data(lake: Path) -> None:
    res = run("quality", "--lake", str(lake), "--date", "2020-01-01")
    assert res.returncode == 2
    assert short_error(res).endswith("days with data: 2026-12-01")
    res = run(
        "book", "--lake", str(lake), "--exchange", "binance-futures", "--symbol", "ETH-USDT-PERP", "--at",
        "2026-11-01T00:00:00Z",
    )  # fmt: skip
    assert res.returncode == 1
    assert (
        "no snapshot" in res.stdout
        and "book data of ETH-USDT-PERP on binance-futures: 2026-12-01" in res.stdout
    )
    assert "at 2026-11-01T00:00:00.000000000Z" in res.stdout  # times print as ISO 8601


def test_replay_refuses_a_capture_of_another_exchange(tmp_path: Path, samples: Path) -> None:
    binance = samples / "binance" / "ethusdt_20240808.capture.gz"
    lake = tmp_path / "lake"
    for exchange, capture in (("okx", binance), ("okx", Path("README.md")), ("kraken", binance)):
        res = ticktape("replay", "--exchange", exchange, "--input", str(capture), "--lake", str(lake))
        assert res.returncode == 3
        assert f"does not look like a capture of {exchange}" in short_error(res)
        assert "--force" in res.stderr
        assert not lake.exists()  # nothing written
    forced = ticktape("replay", "--exchange", "okx", "--input", "README.md", "--lake", str(lake), "--force")
    assert forced.returncode == 0, forced.stderr
    assert any(lake.glob("feed_events/exchange=okx/*/*.parquet"))


def test_compact_an_open_day_mentions_closed_before(lake: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    res = run("compact", "--lake", str(lake), "--date", today.isoformat())
    assert res.returncode == 2
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    assert f"--closed-before {tomorrow}" in short_error(res)
    res = run("compact", "--lake", str(lake), "--date", "2020-01-01")
    assert res.returncode == 2
    assert short_error(res).endswith("days with data: 2026-12-01")


def test_query_limits_table_output_but_not_exports(lake: Path) -> None:
    res = run("query", "--lake", str(lake), "SELECT trade_id FROM trades")
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert len(lines) == 2 + 1_000 + 1
    assert lines[-1].startswith("(1,500 rows; the first 1,000 shown, 500 left out")
    res = run("query", "--lake", str(lake), "--limit", "5", "SELECT trade_id FROM trades")
    assert len(res.stdout.splitlines()) == 2 + 5 + 1
    res = run("query", "--lake", str(lake), "--limit", "0", "SELECT trade_id FROM trades")
    assert res.stdout.splitlines()[-1] == "(1500 rows)"
    csv = run("query", "--lake", str(lake), "--format", "csv", "SELECT trade_id FROM trades")
    assert len(csv.stdout.splitlines()) == 1 + 1_500
    js = run("query", "--lake", str(lake), "--format", "json", "SELECT trade_id FROM trades")
    assert js.stdout.count('"trade_id"') == 1_500


def test_a_reader_that_stops_early_gets_no_traceback(lake: Path) -> None:
    # `ticktape query ... | head -1`: the pipe closes while the command still writes
    proc = subprocess.Popen(
        [sys.executable, "-m", "ticktape.cli", "query", "--lake", str(lake), "--format", "csv",
         "SELECT t.*, r.range FROM trades t, range(20) r"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith("exchange,symbol")
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err

"""``ticktape replay`` on the real Binance sample: straight into the lake, and through the local log and a
separate ``ticktape sink`` process."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from collectors.capture import read_capture
from schemas import RECORD_DATASETS, RecordBuffer, rows_to_arrow
from storage.sink import last_committed
from streaming.local import LocalLogWriter, list_segments
from ticktape.commands.replay import ReplayStats, replay_stream_id, replay_to_lake

SAMPLE = ("binance", "ethusdt_20240808.capture.gz")


def ticktape(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [sys.executable, "-m", "ticktape.cli", *args], capture_output=True, text=True, timeout=300
    )
    if check:
        assert res.returncode == 0, res.stderr
    return res


def query(lake: Path, sql: str) -> list[tuple]:
    """Runs SQL with one view per dataset over the lake (hive partitions, as DESIGN.md says)."""
    con = duckdb.connect()
    for ds in RECORD_DATASETS:
        if (lake / ds).is_dir():
            con.execute(
                f"create view {ds} as select * from read_parquet('{lake}/{ds}/**/*.parquet', hive_partitioning = true)"
            )
    return con.sql(sql).fetchall()


def all_rows(lake: Path, dataset: str) -> list[tuple]:
    # Timestamps as integer ns: exact, and fetching TIMESTAMPTZ values would need pytz.
    con = duckdb.connect()
    cols = con.sql(
        f"select * from read_parquet('{lake}/{dataset}/**/*.parquet', hive_partitioning = true) limit 0"
    ).columns
    select = ", ".join(f"epoch_ns({c})" if c.startswith("ts_") else c for c in cols)
    return sorted(
        con.sql(
            f"select {select} from read_parquet('{lake}/{dataset}/**/*.parquet', hive_partitioning = true)"
        ).fetchall(),
        key=repr,
    )


@pytest.fixture(scope="module")
def sample(samples: Path) -> Path:
    return samples.joinpath(*SAMPLE)


@pytest.fixture(scope="module")
def frames(sample: Path) -> list[tuple[int, dict]]:
    return [(item[0], orjson.loads(item[1])) for item in read_capture(sample) if isinstance(item, tuple)]


@pytest.fixture(scope="module")
def direct_lake(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    lake = tmp_path_factory.mktemp("direct") / "lake"
    res = ticktape("replay", "--exchange", "binance", "--input", str(sample), "--lake", str(lake))
    yield lake, res.stdout


def test_direct_replay_counts_and_values(
    direct_lake: tuple[Path, str], frames: list[tuple[int, dict]]
) -> None:
    lake, stdout = direct_lake
    trade_frames = [(ts, f["data"]) for ts, f in frames if f["stream"].endswith("@trade")]
    ticker_frames = [f for _, f in frames if f["stream"].endswith("@bookTicker")]
    counts = dict(
        query(lake, "select 'trades', count(*) from trades union all select 'bbo', count(*) from bbo")
    )
    assert counts == {"trades": len(trade_frames), "bbo": len(ticker_frames)}
    assert len(trade_frames) > 1000 and len(ticker_frames) > 1000
    got = set(
        query(
            lake,
            "select trade_id, price, size, side, epoch_ns(ts_exchange), epoch_ns(ts_recv), symbol, exchange "
            "from trades",
        )
    )
    expected = {
        (
            str(d["t"]),
            float(d["p"]),
            float(d["q"]),
            "sell" if d["m"] else "buy",
            d["T"] * 1_000_000,
            ts,
            "ETH-USDT",
            "binance",
        )
        for ts, d in trade_frames
    }
    assert got == expected
    assert query(lake, "select count(*) from book")[0][0] > 100_000
    if (lake / "feed_events").is_dir():
        assert query(lake, "select count(*) from feed_events where kind = 'gap'") == [(0,)]
    for line in (f"trades {len(trade_frames):>12,}", f"bbo {len(ticker_frames):>12,}"):
        assert line.replace(" ", "") in stdout.replace(" ", "")


def test_date_partitions_follow_ts_recv_in_utc(direct_lake: tuple[Path, str]) -> None:
    lake, _ = direct_lake
    for ds in ("trades", "book", "bbo"):
        bad = query(
            lake,
            f"select count(*) from {ds} "
            f"where date - DATE '1970-01-01' <> cast(floor(epoch_ns(ts_recv) / 86400e9) as bigint)",
        )
        assert bad == [(0,)], ds
        assert query(lake, f"select distinct cast(date as varchar), exchange from {ds}") == [
            ("2024-08-08", "binance")
        ]
    files = sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*.parquet"))
    assert all(f.split("/")[1:3] == ["exchange=binance", "date=2024-08-08"] for f in files)


def test_replay_via_local_log_and_sink_process_equals_direct(
    direct_lake: tuple[Path, str], sample: Path, tmp_path: Path
) -> None:
    direct, _ = direct_lake
    log_dir, lake = tmp_path / "log", tmp_path / "lake"
    res = ticktape(
        "replay",
        "--exchange",
        "binance",
        "--input",
        str(sample),
        "--transport",
        "local",
        "--log",
        str(log_dir),
    )
    assert "dropped rows 0" in res.stdout
    # A torn tail, as a crash in the middle of a write leaves it: the first 200 bytes of the entry that
    # the next append writes (its own entry number, so it is the true next entry cut short).
    seg = list_segments(log_dir)[-1][1]
    data = seg.read_bytes()
    scratch = tmp_path / "scratch-log"
    shutil.copytree(log_dir, scratch)
    with LocalLogWriter(scratch) as w:
        w.append(
            "feed_events", rows_to_arrow("feed_events", [("binance", None, "connection", 1, "connect", "{}")])
        )
    appended = (scratch / seg.name).read_bytes()[len(data) :]
    assert len(appended) > 200
    with open(seg, "ab") as fh:
        fh.write(appended[:200])
    ticktape("sink", "--transport", "local", "--log", str(log_dir), "--lake", str(lake), "--until-idle", "1")
    for ds in ("trades", "book", "bbo"):
        assert all_rows(lake, ds) == all_rows(direct, ds), ds

    # The next writer truncates the torn tail and appends; the sink picks up exactly the new rows.
    event = ("binance", None, "connection", 1723161254024619568, "connect", "{}")
    buf = RecordBuffer(feed_events=[event])
    with LocalLogWriter(log_dir) as w:
        assert w.truncated_bytes == 200
        w.append("feed_events", rows_to_arrow("feed_events", buf.feed_events))
    ticktape("sink", "--log", str(log_dir), "--lake", str(lake), "--until-idle", "1")
    assert query(lake, "select kind, count(*) from feed_events group by kind") == [("connect", 1)]
    assert all_rows(lake, "trades") == all_rows(direct, "trades")


def test_interrupted_replay_resumes_and_repeats_add_nothing(sample: Path, tmp_path: Path) -> None:
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    stats, stream = replay_to_lake(sample, "binance", whole, unit_lines=5000)
    assert stats.units == 7 and stream == replay_stream_id("binance", sample)

    class Interrupt(Exception):
        pass

    def interrupt(s: ReplayStats) -> None:
        if s.lines >= 20_000:
            raise Interrupt

    with pytest.raises(Interrupt):
        replay_to_lake(sample, "binance", broken, unit_lines=5000, progress=interrupt)
    # interrupted at line 24,576 (progress is reported every 8,192 lines): units up to 20,000 are in
    assert last_committed(broken, stream) == 20_000
    stats, _ = replay_to_lake(sample, "binance", broken, unit_lines=5000)
    assert stats.skipped_lines == 20_000 and stats.units == 3
    again, _ = replay_to_lake(sample, "binance", broken, unit_lines=5000)
    assert again.units == 0 and again.skipped_lines == again.lines

    def files(lake: Path) -> dict[str, bytes]:
        return {p.relative_to(lake).as_posix(): p.read_bytes() for p in lake.rglob("*.parquet")}

    assert files(broken) == files(whole)


@pytest.mark.parametrize("step", ["encode_unit", "commit_encoded"])
def test_a_unit_that_fails_to_be_written_stops_the_commits_after_it(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Units are encoded two at a time and committed in order: when one fails (encoding, or writing
    its files), no later unit commits (its marker would skip the failed unit's lines), the error is
    the replay's, and a second replay resumes after the last commit to the lake of an unbroken one."""
    from storage.sink import UnitWriter

    whole, broken = tmp_path / "whole", tmp_path / "broken"
    _, stream = replay_to_lake(sample, "binance", whole, unit_lines=5000)
    real = getattr(UnitWriter, step)

    def failing(self: UnitWriter, *args: Any) -> Any:
        first = args[1] if step == "encode_unit" else args[0].first  # (stream, first, ...) or (EncodedUnit,)
        if first > 10_000:
            raise OSError(28, "No space left on device")
        return real(self, *args)

    monkeypatch.setattr(UnitWriter, step, failing)
    with pytest.raises(OSError, match="No space left"):
        replay_to_lake(sample, "binance", broken, unit_lines=5000)
    assert last_committed(broken, stream) == 10_000
    monkeypatch.undo()
    stats, _ = replay_to_lake(sample, "binance", broken, unit_lines=5000)
    assert stats.skipped_lines == 10_000

    def files(lake: Path) -> dict[str, bytes]:
        return {p.relative_to(lake).as_posix(): p.read_bytes() for p in lake.rglob("*.parquet")}

    assert files(broken) == files(whole)


def test_bad_capture_lines_become_parse_errors(sample: Path, tmp_path: Path) -> None:
    with gzip.open(sample, "rb") as fh:
        good = [next(fh) for _ in range(40)]
    trade_line = next(line for line in good if b"@trade" in line)
    ts = int(trade_line.split(b" ", 1)[0])
    evil = trade_line.replace(b'"s":"ETHUSDT"', b'"s":"../../ETHUSDT"')
    lines = [
        b"not-a-capture-line\n",  # before any frame: dated by the first frame
        *good[:20],
        b"\n",  # a disconnect
        b"12x45 {}\n",
        b'%d {"stream":"ethusdt@trade","data":{"e":"trade"\n' % ts,  # truncated JSON
        evil,
        *good[20:],
    ]
    capture = tmp_path / "bad.capture"
    capture.write_bytes(b"".join(lines))
    lake = tmp_path / "lake"
    res = ticktape("replay", "--exchange", "binance", "--input", str(capture), "--lake", str(lake))
    assert "2 bad capture line(s)" in res.stdout
    errors = query(lake, "select epoch_ns(ts_recv), detail from feed_events where kind = 'parse_error'")
    details = [orjson.loads(d) for _, d in errors]
    assert any("capture line 1:" in d["reason"] for d in details)
    assert any("capture line 23:" in d["reason"] for d in details)
    assert any("invalid symbol" in d["reason"] and "../../ETHUSDT" in d["frame"] for d in details)
    assert any(d["reason"].startswith("malformed JSON") for d in details)
    assert len(errors) >= 4
    assert all(t > 1_700_000_000 * 10**9 for t, _ in errors)
    n_trades = sum(1 for line in good if b"@trade" in line)
    assert query(lake, "select count(*) from trades") == [(n_trades,)]
    assert not (tmp_path / "ETHUSDT").exists()


def test_replay_command_errors(sample: Path, tmp_path: Path) -> None:
    res = ticktape("replay", "--exchange", "binance", "--input", str(sample), check=False)
    assert res.returncode == 2 and "either --lake" in res.stderr
    res = ticktape(
        "replay", "--exchange", "nope", "--input", str(sample), "--lake", str(tmp_path), check=False
    )
    assert res.returncode == 2 and "unknown exchange 'nope'" in res.stderr
    res = ticktape(
        "replay", "--exchange", "binance", "--input", str(tmp_path / "missing.gz"), "--lake", "x", check=False
    )
    assert res.returncode == 2 and "no such capture file" in res.stderr
    res = ticktape(
        "replay", "--exchange", "binance", "--input", str(sample), "--transport", "local", check=False
    )
    assert res.returncode == 2 and "needs --log DIR" in res.stderr
    res = ticktape(
        "replay",
        "--exchange",
        "binance",
        "--input",
        str(sample),
        "--lake",
        "x",
        "--stream-id",
        "../up",
        check=False,
    )
    assert res.returncode == 2 and "invalid stream id" in res.stderr


def test_progress_line_only_on_a_terminal(
    sample: Path, tmp_path: Path, direct_lake: tuple[Path, str]
) -> None:
    import os
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ticktape.cli",
            "replay",
            "--exchange",
            "binance",
            "--input",
            str(sample),
            "--lake",
            str(tmp_path / "lake"),
        ],
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=300)
    os.close(master)
    assert proc.returncode == 0
    assert b"\rreplay ethusdt_20240808.capture.gz: 8,192 lines" in seen
    assert b"\x1b[K" in seen  # the line is cleared before the summary
    # Not on a terminal (stderr is a pipe): no progress line.
    res = ticktape(
        "replay", "--exchange", "binance", "--input", str(sample), "--lake", str(tmp_path / "lake")
    )
    assert "\r" not in res.stderr and "lines," not in res.stderr


def test_configured_outdated_cutoff_sets_the_flags_written_into_the_lake(
    tmp_path: Path, samples: Path
) -> None:
    """``[thresholds] outdated_cutoff_s`` reaches the normaliser: the lake's OUTDATED flags follow it."""
    from schemas import Flags
    from ticktape.cli import main

    capture = samples / SAMPLE[0] / SAMPLE[1]
    config = tmp_path / "ticktape.toml"
    config.write_text("[thresholds]\noutdated_cutoff_s = 0.0005\n")
    strict, default = tmp_path / "strict", tmp_path / "default"
    base = ["replay", "--exchange", SAMPLE[0], "--input", str(capture)]
    assert main([*base, "--lake", str(strict), "--config", str(config)]) == 0
    assert main([*base, "--lake", str(default)]) == 0
    outdated = int(Flags.OUTDATED)
    sql = f"select count(*), count(*) filter (where flags & {outdated} <> 0) from trades"
    ((total, flagged_strict),) = query(strict, sql)
    ((total_default, flagged_default),) = query(default, sql)
    assert total == total_default > 6000
    assert flagged_strict > total * 0.5, (flagged_strict, total)  # 0.5 ms above the floor: most trades
    assert flagged_default < total * 0.01, (flagged_default, total)  # 2.5 s: almost none


def test_an_in_process_replay_restores_the_garbage_collector(tmp_path: Path, samples: Path) -> None:
    """The replay collects garbage less often (ticktape.commands.replay.batch_gc) and undoes it after,
    also when it fails."""
    import gc

    from ticktape.cli import main
    from ticktape.commands.replay import REPLAY_GC_THRESHOLD, batch_gc

    before = gc.get_threshold(), gc.get_freeze_count()
    capture = samples / SAMPLE[0] / SAMPLE[1]
    assert (
        main(["replay", "--exchange", SAMPLE[0], "--input", str(capture), "--lake", str(tmp_path / "l")]) == 0
    )
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
    with pytest.raises(RuntimeError), batch_gc():
        assert gc.get_threshold()[0] == REPLAY_GC_THRESHOLD and gc.get_freeze_count() > 0
        raise RuntimeError("stop")
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_the_lake_writer_gets_the_gil_quickly_during_a_replay(
    tmp_path: Path, samples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the writer threads encode units, the GIL switch interval is the replay's short one
    (ticktape.commands.replay.quick_gil_handoff); it is restored after, also when the replay fails."""
    import sys

    from storage.sink import UnitWriter
    from ticktape.commands.replay import REPLAY_SWITCH_INTERVAL_S, quick_gil_handoff, replay_to_lake

    before = sys.getswitchinterval()
    assert before != REPLAY_SWITCH_INTERVAL_S
    seen: list[float] = []
    encode_unit = UnitWriter.encode_unit

    def spy(self: UnitWriter, *args: Any, **kwargs: Any) -> Any:
        seen.append(sys.getswitchinterval())
        return encode_unit(self, *args, **kwargs)

    monkeypatch.setattr(UnitWriter, "encode_unit", spy)
    replay_to_lake(samples / SAMPLE[0] / SAMPLE[1], SAMPLE[0], tmp_path / "lake", unit_lines=5_000)
    assert len(seen) > 1 and all(s == pytest.approx(REPLAY_SWITCH_INTERVAL_S) for s in seen)
    assert sys.getswitchinterval() == before
    with pytest.raises(RuntimeError), quick_gil_handoff():
        raise RuntimeError("stop")
    assert sys.getswitchinterval() == before

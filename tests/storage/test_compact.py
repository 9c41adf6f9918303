"""Compaction: same rows before and after, sorted, atomic for concurrent readers, idempotent, crash-safe."""

from __future__ import annotations

import errno
import os
import threading
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from schemas import arrow_schema, arrow_to_rows
from storage import compact
from storage.catalog import open_catalog
from storage.compact import (
    COMPACTED_PREFIX,
    CompactionError,
    compact_lake,
    compact_partition,
    data_files,
    exchange_dirs,
    iter_partitions,
    recover,
)
from ticktape.commands import compact as compact_cmd
from ticktape.commands import query as query_cmd

from .lakegen import (
    partition_dir,
    run_command,
    trade_rows,
    write_orphan,
    write_sink_file,
    write_trade_day,
)

DAY = date(2024, 8, 8)
TODAY = date(2024, 8, 10)


def lake_rows(directory: Path) -> list[tuple]:
    files = data_files(directory)
    return [row for f in files for row in arrow_to_rows(pq.read_table(f))]


def test_rows_equal_sorted_zstd_and_idempotent(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    written = write_trade_day(lake, "binance", DAY, n=12_000, files=12)
    write_trade_day(lake, "okx", DAY, n=5_000, files=3, seed=2, stream="other")
    part = partition_dir(lake, "trades", "binance", DAY)
    before = lake_rows(part)
    assert sorted(before, key=repr) == sorted(written, key=repr)

    results = compact_lake(lake, closed_before=TODAY)
    assert {r.status for r in results} == {"compacted"}
    files = data_files(part)
    assert files and all(f.name.startswith(COMPACTED_PREFIX) for f in files)
    after = lake_rows(part)
    # Row for row: the same multiset of rows ...
    assert sorted(after, key=repr) == sorted(before, key=repr)
    # ... sorted by (symbol, ts_recv), ties in the sink files' order (file name, then row).
    expected_order = sorted(before, key=lambda r: (r[1], r[3]))  # stable sort of the name-ordered input
    assert after == expected_order
    meta = pq.ParquetFile(files[0]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    ts_col = arrow_schema("trades").names.index("ts_recv")
    assert "DELTA_BINARY_PACKED" in meta.row_group(0).column(ts_col).encodings
    assert pq.read_schema(files[0]).equals(arrow_schema("trades"))

    # Idempotent: a second run changes nothing.
    stamps = {f.name: f.stat().st_mtime_ns for f in files}
    again = compact_lake(lake, closed_before=TODAY)
    assert {r.status for r in again} == {"already-compacted"}
    assert {f.name: f.stat().st_mtime_ns for f in data_files(part)} == stamps
    assert not (lake / compact.WORK_SUBDIR / "trades").exists() or not any(
        (lake / compact.WORK_SUBDIR).rglob("*.parquet")
    )


def test_large_partition_row_groups_and_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = tmp_path / "lake"
    monkeypatch.setattr(compact, "ROW_GROUP_ROWS", 4_000)
    monkeypatch.setattr(compact, "FILE_ROWS", 10_000)
    rows = write_trade_day(lake, "binance", DAY, n=25_000, files=5)
    [res] = compact_lake(lake, closed_before=TODAY)
    assert res.status == "compacted" and res.output_rows == 25_000
    files = data_files(partition_dir(lake, "trades", "binance", DAY))
    assert len(files) == 3 == len(res.output_files)
    for f in files:
        md = pq.ParquetFile(f).metadata
        assert all(md.row_group(i).num_rows <= 4_000 for i in range(md.num_row_groups))
    got = lake_rows(partition_dir(lake, "trades", "binance", DAY))
    assert sorted(got, key=repr) == sorted(rows, key=repr)
    assert [(r[1], r[3]) for r in got] == sorted((r[1], r[3]) for r in got)


def test_open_days_are_left_alone(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_trade_day(lake, "binance", DAY, n=100, files=2)
    results = compact_lake(lake, closed_before=DAY)  # DAY is "today": not closed
    assert results == []
    assert all(
        not f.name.startswith(COMPACTED_PREFIX)
        for f in data_files(partition_dir(lake, "trades", "binance", DAY))
    )
    code = run_command(
        compact_cmd,
        ["compact", "--lake", str(lake), "--date", DAY.isoformat(), "--closed-before", DAY.isoformat()],
    )
    assert code == 2
    assert (
        run_command(
            compact_cmd,
            ["compact", "--lake", str(lake), "--date", DAY.isoformat(), "--closed-before", TODAY.isoformat()],
        )
        == 0
    )
    assert run_command(compact_cmd, ["compact", "--lake", str(tmp_path / "missing")]) == 2


def test_late_file_after_compaction_is_merged(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    rows = write_trade_day(lake, "binance", DAY, n=2_000, files=4)
    compact_lake(lake, closed_before=TODAY)
    late = trade_rows("binance", DAY, 300, seed=9, id_base=1_000_000)
    write_sink_file(lake, "trades", late, "local", 5_000, 5_299)
    [res] = compact_lake(lake, closed_before=TODAY)
    assert res.status == "compacted" and res.output_rows == 2_300
    got = lake_rows(partition_dir(lake, "trades", "binance", DAY))
    assert sorted(got, key=repr) == sorted(rows + late, key=repr)


def test_busy_partition_is_skipped(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_trade_day(lake, "binance", DAY, n=100, files=2)
    part = partition_dir(lake, "trades", "binance", DAY)
    (part / ".local-00000000000000000100.parquet.tmp").write_bytes(b"partial")
    code = run_command(compact_cmd, ["compact", "--lake", str(lake), "--closed-before", TODAY.isoformat()])
    assert code == 1
    assert len(data_files(part)) == 2


def test_reader_never_sees_duplicates_or_missing_rows(tmp_path: Path) -> None:
    """A reader queries continuously while the day is recompacted many times (late files keep coming)."""
    lake = tmp_path / "lake"
    rows = write_trade_day(lake, "binance", DAY, n=20_000, files=20)
    totals = [len(rows)]
    stop = threading.Event()
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            with open_catalog(str(lake), threads=1) as cat:
                while not stop.is_set():
                    t = cat.query("SELECT count(*) AS n, count(DISTINCT trade_id) AS d FROM trades")
                    seen.append((t.column("n")[0].as_py(), t.column("d")[0].as_py()))
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        # Let the reader get going on the uncompacted lake first.
        while len(seen) < 3 and thread.is_alive():
            threading.Event().wait(0.01)
        for k in range(12):
            late = trade_rows("binance", DAY, 500, seed=100 + k, id_base=1_000_000 * (k + 1))
            write_sink_file(lake, "trades", late, "local", 100_000 + k * 1000, 100_000 + k * 1000 + 499)
            totals.append(totals[-1] + len(late))
            [res] = compact_lake(lake, closed_before=TODAY)
            assert res.status == "compacted"
        # The reader's query in flight now may have started before the last late file: only a query
        # that started after this point must see the final state. The second result from here on
        # did (the first may be that in-flight one), so wait for it, whatever the load.
        done_at = len(seen)
        while (len(seen) < 40 or len(seen) < done_at + 2) and thread.is_alive():
            threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert len(seen) >= 40
    for n, distinct in seen:
        assert n == distinct, f"duplicates seen: {n} rows, {distinct} distinct"
        assert n in totals, f"a reader saw {n} rows, valid states are {totals}"
    counts = [n for n, _ in seen]
    assert counts == sorted(counts)  # never goes back to an older state
    assert counts[-1] == totals[-1]


def _crash_after_exchange(a: Path, b: Path) -> None:
    exchange_dirs(a, b)
    # the sink published one more file into the (now old) directory just before the swap
    raise KeyboardInterrupt("simulated crash right after the exchange")


def test_crash_after_exchange_is_recovered(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    rows = write_trade_day(lake, "binance", DAY, n=3_000, files=5)
    [part] = list(iter_partitions(lake))
    with pytest.raises(KeyboardInterrupt):
        compact_partition(lake, part, exchange=_crash_after_exchange)
    work = lake / compact.WORK_SUBDIR / part.relative
    assert (work / "next").is_dir()
    # A late sink file that landed in the old directory must survive recovery.
    late = trade_rows("binance", DAY, 50, seed=5, id_base=9_000_000)
    write_orphan(work / "next" / "local-00000000000000090000-00000000000000090049.parquet", "trades", late)
    recover(lake)
    assert not work.exists()
    got = lake_rows(part.path)
    assert sorted(got, key=repr) == sorted(rows + late, key=repr)


def test_crash_before_exchange_leaves_old_files(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    rows = write_trade_day(lake, "binance", DAY, n=1_000, files=3)
    [part] = list(iter_partitions(lake))

    def crash(a: Path, b: Path) -> None:
        raise KeyboardInterrupt("simulated crash before the exchange")

    with pytest.raises(KeyboardInterrupt):
        compact_partition(lake, part, exchange=crash)
    recover(lake)
    assert not (lake / compact.WORK_SUBDIR / part.relative).exists()
    assert sorted(lake_rows(part.path), key=repr) == sorted(rows, key=repr)
    assert all(not f.name.startswith(COMPACTED_PREFIX) for f in data_files(part.path))


def test_without_atomic_exchange_refuses_unless_allowed(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    rows = write_trade_day(lake, "binance", DAY, n=1_000, files=3)
    [part] = list(iter_partitions(lake))

    def unsupported(a: Path, b: Path) -> None:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    with pytest.raises(CompactionError, match="--allow-brief-gap"):
        compact_partition(lake, part, exchange=unsupported)
    assert all(not f.name.startswith(COMPACTED_PREFIX) for f in data_files(part.path))
    res = compact_partition(lake, part, allow_brief_gap=True, exchange=unsupported)
    assert res.status == "compacted"
    assert sorted(lake_rows(part.path), key=repr) == sorted(rows, key=repr)


def test_query_counts_equal_before_and_after(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    write_trade_day(lake, "binance", DAY, n=4_000, files=4)
    sql = "SELECT exchange, date, symbol, count(*) AS n, round(sum(price), 2) AS p, max(ts_recv) AS t FROM trades GROUP BY ALL ORDER BY ALL"
    assert run_command(query_cmd, ["query", "--lake", str(lake), "--format", "csv", sql]) == 0
    before = capsys.readouterr().out
    assert (
        run_command(compact_cmd, ["compact", "--lake", str(lake), "--closed-before", TODAY.isoformat()]) == 0
    )
    capsys.readouterr()
    assert run_command(query_cmd, ["query", "--lake", str(lake), "--format", "csv", sql]) == 0
    assert capsys.readouterr().out == before
    assert "binance,2024-08-08,BTC-USDT," in before


def test_uncommitted_sink_file_blocks_the_partition(tmp_path: Path) -> None:
    """A file beyond the sink's commit may be an orphan the sink rewrites: never merge it."""
    lake = tmp_path / "lake"
    rows = write_trade_day(lake, "binance", DAY, n=600, files=3)
    part = partition_dir(lake, "trades", "binance", DAY)
    orphan = trade_rows("binance", DAY, 10, seed=3, id_base=5_000_000)
    write_orphan(part / "local-00000000000000010000-00000000000000010009.parquet", "trades", orphan)
    [res] = compact_lake(lake, closed_before=TODAY)
    assert res.status == "busy" and "local-00000000000000010000" in res.detail
    assert len(data_files(part)) == 4
    assert len(lake_rows(part)) == len(rows) + 10

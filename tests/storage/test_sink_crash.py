"""Kill the sink with SIGKILL at random moments while it drains a real log: the lake must come out
exactly as an uninterrupted run writes it (same files, same rows, no loss, no duplicates)."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from collectors.capture import read_capture
from collectors.registry import get_dialect
from schemas import RECORD_DATASETS, RecordBuffer, arrow_schema, arrow_to_rows, rows_to_arrow
from storage.lake import dataset_files, parse_sink_file_name
from storage.sink import intent_path, last_committed
from streaming.local import LocalLogWriter
from ticktape.cli import build_parser

FRAMES_PER_CHUNK = 300
KILLS = 12
SINK_FLAGS = ["--flush-entries", "9", "--until-idle", "1"]


def build_log(capture: Path, log_dir: Path) -> int:
    """Normalises the capture and writes one log entry per dataset every FRAMES_PER_CHUNK frames."""
    normaliser = get_dialect("binance").new_normaliser()
    buf = RecordBuffer()
    with LocalLogWriter(log_dir, fsync="never") as w:
        for i, item in enumerate(read_capture(capture), start=1):
            assert isinstance(item, tuple)
            normaliser.on_frame(item[0], item[1], buf)
            if i % FRAMES_PER_CHUNK == 0:
                for ds in RECORD_DATASETS:
                    if buf.rows(ds):
                        w.append(ds, rows_to_arrow(ds, buf.rows(ds)))
                buf.clear()
        for ds in RECORD_DATASETS:
            if buf.rows(ds):
                w.append(ds, rows_to_arrow(ds, buf.rows(ds)))
        w.sync()
        return w.next_entry


def _sink_child(argv: list[str]) -> None:
    from ticktape.cli import main

    os._exit(main(argv))


def start_sink(log_dir: Path, lake: Path) -> multiprocessing.process.BaseProcess:
    # Forked from this (already warmed-up) process: a sink that starts in milliseconds, so that the
    # kills land while it drains rather than while Python imports modules.
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(
        target=_sink_child, args=(["sink", "--log", str(log_dir), "--lake", str(lake), *SINK_FLAGS],)
    )
    proc.start()
    return proc


def lake_snapshot(lake: Path) -> dict[str, list[tuple[str, list[tuple]]]]:
    """Per dataset: (file path within the lake, rows) in file name order."""
    out = {}
    for ds in RECORD_DATASETS:
        out[ds] = [
            (str(f.relative_to(lake)), arrow_to_rows(pq.read_table(f, schema=arrow_schema(ds))))
            for f in dataset_files(lake, ds)
        ]
    return out


def writing(lake: Path) -> bool:
    """True while the sink is between a unit's intent and its commit marker."""
    try:
        intent = json.loads(intent_path(lake, "local").read_bytes())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return int(intent["first"]) > last_committed(lake, "local")


def kill_repeatedly(
    log_dir: Path, lake: Path, entries: int, unit_s: float, rng: random.Random
) -> tuple[int, list[int], list[int]]:
    """Starts and SIGKILLs sinks until KILLS kills landed (or one finished).

    Returns the kills, the commit position after each kill and the orphan files each kill left.

    Each kill waits for a random commit position (spread over the whole log), then a random part of
    a unit's time more, so that kills land in every phase: starting up, reading, writing files,
    writing the commit marker.
    """
    kills = 0
    progress: list[int] = []
    orphans: list[int] = []
    for i, target in enumerate(sorted(rng.sample(range(-1, entries - 20), KILLS))):
        proc = start_sink(log_dir, lake)
        while proc.is_alive() and last_committed(lake, "local") < target:
            time.sleep(0.002)
        if i % 2:
            time.sleep(rng.uniform(0.0, 2 * unit_s))
        else:
            # Every other kill aims at the write itself: between the intent and the commit marker.
            while proc.is_alive() and not writing(lake):
                time.sleep(0.001)
            time.sleep(rng.uniform(0.0, 0.01))
        if not proc.is_alive():
            break  # finished before the kill
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        assert proc.exitcode == -signal.SIGKILL
        kills += 1
        progress.append(last_committed(lake, "local"))
        orphans.append(len(orphan_files(lake, progress[-1])))
    return kills, progress, orphans


def orphan_files(lake: Path, committed: int) -> list[Path]:
    """Files a killed sink left beyond its last commit (renamed or still temporary)."""
    out = []
    for p in lake.rglob("*"):
        name = p.name[1 : -len(".tmp")] if p.name.startswith(".") and p.name.endswith(".tmp") else p.name
        parsed = parse_sink_file_name(name)
        if parsed is not None and parsed[1] > committed:
            out.append(p)
    return out


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(samples: Path, tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    entries = build_log(samples / "binance" / "ethusdt_20240808.capture.gz", log_dir)
    assert entries > 200
    build_parser()  # import every command module in the parent, so that forked sinks start at once

    reference = tmp_path / "reference"
    t0 = time.monotonic()
    proc = start_sink(log_dir, reference)
    proc.join(300)
    drain_s = time.monotonic() - t0 - 1.0  # without the final --until-idle wait
    assert proc.exitcode == 0
    assert last_committed(reference, "local") == entries - 1
    reference_units = len(dataset_files(reference, "book"))

    lake = tmp_path / "crashed"
    rng = random.Random(20240808)
    for _attempt in range(3):
        shutil.rmtree(lake, ignore_errors=True)
        kills, progress, orphans = kill_repeatedly(log_dir, lake, entries, drain_s / reference_units, rng)
        if kills >= KILLS:
            break
    print(
        f"drain {drain_s:.1f} s, {entries} entries, commits after each kill: {progress}, orphans: {orphans}"
    )
    assert kills >= 10, f"the sink finished after only {kills} kills"
    assert progress == sorted(progress)  # commits never go backwards
    assert progress[-1] > entries // 3, "the kills did not spread over the drain"
    assert any(orphans), "no kill landed in the middle of writing a unit"

    proc = start_sink(log_dir, lake)
    proc.join(300)
    assert proc.exitcode == 0
    assert last_committed(lake, "local") == entries - 1
    assert not list(lake.rglob("*.tmp"))

    expected = lake_snapshot(reference)
    got = lake_snapshot(lake)
    assert sum(len(rows) for _, rows in expected["book"]) > 100_000
    for ds in RECORD_DATASETS:
        assert [name for name, _ in got[ds]] == [name for name, _ in expected[ds]], ds
        assert got[ds] == expected[ds], ds
    for name, _ in expected["trades"]:
        assert (lake / name).read_bytes() == (reference / name).read_bytes()  # identical files

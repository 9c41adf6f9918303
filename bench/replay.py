"""Replay throughput, whole process: ``ticktape replay`` of real Binance frames into a lake.

The shared Binance sample (33,618 frames, ~6 minutes of ETHUSDT) is repeated until there are at least
``--frames`` frames. Repetitions are separated by an empty line (a disconnect: the book is rebuilt from
the repetition's own snapshot), and every update id (``U``, ``u``, ``lastUpdateId``) and trade id
(``t``) is shifted per repetition so that nothing is dropped as a repeat or a duplicate: every
repetition yields the same rows as the first. Receive times are left as recorded.

Beside it, in the same run, the same frames are parsed with plain ``orjson.loads`` in this process
(the physical proxy: what reading JSON costs at all); the ratio of the two rates is the figure the
issue targets (>= 0.40). The replay's reading loop alone (decompression, line splitting, ``iter_units``
with a normaliser that does nothing) is measured in this process too: its cost per frame as a share
of ``orjson.loads``'s says how much of the budget reading takes. Both rates are per CPU second (the replay's user + system time, start-up
included; ``process_time`` for orjson): on a shared machine wall time measures the neighbours, CPU
time measures the code on one core. The wall-clock rate is reported beside it. Run: ``python -m bench.replay [--frames N] [--quick] [--no-save]``.
"""

from __future__ import annotations

import argparse
import gzip
import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import BINANCE_SAMPLE, SCRATCH, publish, ticktape_cmd
from collectors.capture import read_capture

NAME = "replay"
TITLE = "Replay throughput, whole process (`bench/replay.py`)"
COLUMNS = (
    "frames",
    "input",
    "wall_s",
    "cpu_s",
    "replay_frames_per_cpu_s",
    "orjson_frames_per_cpu_s",
    "ratio",
    "replay_frames_per_wall_s",
    "read_loop_frames_per_cpu_s",
    "rows",
    "lake_mb",
)
DEFAULT_FRAMES = 500_000
QUICK_FRAMES = 100_000
_IDS = re.compile(rb'"(U|u|t|lastUpdateId)":(\d+)')
#: Exchange times (ms) of the sample's frames, shifted with the receive times by ``--monotonic``.
_TIMES = re.compile(rb'"(E|T)":(\d+)')


def _sample_lines(sample: Path) -> list[bytes]:
    with gzip.open(sample, "rb") as fh:
        return [line.rstrip(b"\n") for line in fh if line.strip()]


def repeated_capture(
    frames: int, *, compress: bool = True, sample: Path = BINANCE_SAMPLE, monotonic: bool = False
) -> Path:
    """A capture of the sample repeated to at least ``frames`` frames (cached: it is deterministic).

    With ``monotonic`` every repetition also starts 1 s after the previous one ended: receive times
    and the frames' exchange times (``E``, ``T``) are shifted alike, so receive times only grow, as in
    a real capture (the lake's sort then finds rows in order; without it each repetition starts
    again at the sample's first receive time)."""
    lines = _sample_lines(sample)
    reps = -(-frames // len(lines))
    ids = [int(m[2]) for line in lines for m in _IDS.finditer(line)]
    # One shift larger than the whole id range keeps every repetition's ids above the previous ones.
    shift = max(ids) - min(ids) + 1
    suffix = ".capture.gz" if compress else ".capture"
    path = SCRATCH / f"binance-x{reps}{'-monotonic' if monotonic else ''}{suffix}"
    stamps = [int(line.partition(b" ")[0]) for line in lines]
    period_ms = (max(stamps) - min(stamps)) // 1_000_000 + 1_000
    if path.exists():
        return path
    SCRATCH.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    opener: Any = gzip.open if compress else open
    with opener(tmp, "wb") as fh:
        for rep in range(reps):
            if rep:
                fh.write(b"\n")  # a disconnect between repetitions
            delta = rep * shift
            if delta == 0:
                fh.write(b"\n".join(lines) + b"\n")
                continue

            def bump(m: re.Match[bytes], delta: int = delta) -> bytes:
                return b'"%s":%d' % (m[1], int(m[2]) + delta)

            shifted = [_IDS.sub(bump, line) for line in lines]
            if monotonic:
                ms = rep * period_ms

                def later(m: re.Match[bytes], ms: int = ms) -> bytes:
                    return b'"%s":%d' % (m[1], int(m[2]) + ms)

                shifted = [
                    b"%d %s" % (int(ts) + ms * 1_000_000, _TIMES.sub(later, frame))
                    for ts, _sp, frame in (line.partition(b" ") for line in shifted)
                ]
            fh.write(b"\n".join(shifted) + b"\n")
    tmp.rename(path)
    return path


def orjson_rate(path: Path) -> tuple[int, float]:
    """``(frames, frames/s)`` of plain ``orjson.loads`` over the capture's frames (held in memory)."""
    frames = [item[1] for item in read_capture(path) if isinstance(item, tuple)]
    loads = orjson.loads
    best = 0.0
    for _ in range(3):  # best of three: the machine is shared
        start = time.process_time()
        for f in frames:
            loads(f)
        best = max(best, len(frames) / (time.process_time() - start))
    return len(frames), best


class _NoOpNormaliser:
    """Takes every item and does nothing: what the replay loop costs without normalising."""

    parse_errors = 0

    def on_frame(self, ts_recv: int, frame: bytes, out: Any) -> None:
        pass

    def on_frames(self, items: list[Any], start: int, stop: int, out: Any) -> None:
        pass

    def on_disconnect(self, ts_recv: int, out: Any) -> None:
        pass

    def subscribe(self, symbols: Any) -> None:
        pass

    def parse_error(self, out: Any, ts_recv: int, frame: Any, reason: str) -> None:
        pass


def read_loop_rate(path: Path) -> float:
    """Frames per CPU second of the replay's reading loop alone: decompression, splitting lines into
    items and ``iter_units`` with units cut as a lake replay cuts them, through a normaliser that does
    nothing (best of three, in this process)."""
    from collectors.capture import ReplayStats, iter_units
    from ticktape.commands.replay import LAKE_UNIT_LINES, LAKE_UNIT_ROWS

    best = 0.0
    for _ in range(3):
        stats = ReplayStats()
        start = time.process_time()
        for _unit in iter_units(
            path,
            _NoOpNormaliser(),  # type: ignore[arg-type]
            stats,
            unit_lines=LAKE_UNIT_LINES,
            unit_rows=LAKE_UNIT_ROWS,
        ):
            pass
        best = max(best, stats.frames / (time.process_time() - start))
    return best


_SUMMARY = re.compile(r"(\d[\d,]*) frames, .* in ([\d.]+) s \(([\d,]+) frames/s\)")


def run_replay(path: Path, lake: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs ``ticktape replay`` in a subprocess (environment ``env``, default this one's); wall time
    covers the whole process (start-up included)."""
    cmd = [*ticktape_cmd(), "replay", "--exchange", "binance", "--input", str(path), "--lake", str(lake)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"ticktape replay failed ({proc.returncode}): {proc.stderr[-2000:]}")
    m = _SUMMARY.search(proc.stdout)
    if m is None:
        raise RuntimeError(f"unexpected replay summary: {proc.stdout[:500]}")
    rows = sum(
        int(parts[1].replace(",", ""))
        for line in proc.stdout.splitlines()
        if len(parts := line.split()) == 2 and parts[0] in ("trades", "book", "bbo", "feed_events")
    )
    size = sum(p.stat().st_size for p in lake.rglob("*.parquet"))
    return {
        "frames": int(m[1].replace(",", "")),
        "wall_s": wall,
        "cpu_s": cpu,
        "internal_s": float(m[2]),
        "rows": rows,
        "lake_bytes": size,
        "summary": proc.stdout,
    }


def measure(frames: int, compress: bool = True, monotonic: bool = False) -> dict[str, Any]:
    """One replay run and the orjson proxy over the same frames."""
    path = repeated_capture(frames, compress=compress, monotonic=monotonic)
    n, proxy = orjson_rate(path)
    lake = Path(tempfile.mkdtemp(prefix="bench-replay-lake-", dir=SCRATCH))
    try:
        r = run_replay(path, lake)
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    if r["frames"] != n:
        raise RuntimeError(f"replay read {r['frames']} frames, the capture holds {n}")
    rate = n / r["cpu_s"]
    loop = read_loop_rate(path)
    return {
        "frames": n,
        "input": path.name,
        "wall_s": r["wall_s"],
        "cpu_s": r["cpu_s"],
        "replay_frames_per_cpu_s": rate,
        "orjson_frames_per_cpu_s": proxy,
        "ratio": rate / proxy,
        "target_ratio": 0.40,
        "replay_frames_per_wall_s": n / r["wall_s"],
        "replay_loop_frames_per_wall_s": n / r["internal_s"],
        "read_loop_frames_per_cpu_s": loop,
        "read_loop_share_of_orjson": proxy / loop,
        "rows": r["rows"],
        "lake_mb": r["lake_bytes"] / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=None, help=f"at least this many frames ({DEFAULT_FRAMES:,})")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_FRAMES:,} frames")
    p.add_argument(
        "--plain", action="store_true", help="uncompressed capture (default gzip, as collectors write)"
    )
    p.add_argument(
        "--monotonic",
        action="store_true",
        help="receive and exchange times shifted per repetition, so they only grow (as in a real capture)",
    )
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    args = p.parse_args(argv)
    frames = args.frames or (QUICK_FRAMES if args.quick else DEFAULT_FRAMES)
    result = measure(frames, compress=not args.plain, monotonic=args.monotonic)
    publish(NAME, TITLE, COLUMNS, result, save=not args.no_save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Issue 18 in one run, on the same real Binance frames: orjson, ticktape replay, normalise-to-Arrow, cryptofeed.

The input is the shared Binance sample repeated to at least ``--frames`` frames (``bench.replay``'s
``repeated_capture``: a disconnect between repetitions, ids shifted so nothing is deduplicated), and
every figure below is measured in this one run, one after the other, on those frames:

(a) ``orjson``: plain ``orjson.loads`` of every frame held in memory (best of 3), per CPU second and per
    wall second: what reading the JSON costs at all, the issue's yardstick.
(b) ``replay``: ``ticktape replay --lake`` of the gzip'd capture in a subprocess, whole process
    (start-up, reading, normalising, Parquet): frames per wall second and per CPU second, and each as a
    ratio to (a) (target 0.40).
(c) ``normalise_arrow``: in this process, the capture's items in memory through the Binance normaliser
    and into Arrow record batches per unit (``iter_units`` + ``streaming.base.arrow_tables``, as the
    replay does before writing), per CPU second.
(d) ``cryptofeed``: its own Binance handler on the same frames, in process, no-op callbacks, no file
    I/O while measuring (``bench/cryptofeed_driver.py``), in a venv of its own that this benchmark
    creates (``bench/.venv-cryptofeed``: ``python -m venv`` + ``pip install cryptofeed`` from PyPI,
    https://pypi.org/project/cryptofeed/, release 2.4.1 checked 2026-12-05;
    never a dependency of ticktape, gitignored). Ratio: ticktape's whole-process replay rate (b) over
    cryptofeed's in-process rate (d), per wall second (the issue's target, 2x) and per CPU second.

cryptofeed subscribes Binance trades as ``@aggTrade``; the sample holds ``@trade`` frames, which its
handler parses and drops as unexpected (no Trade object): that favours cryptofeed, so the ratio is a
conservative one. Run: ``python -m bench.vs_cryptofeed [--frames N] [--quick] [--no-save]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import BENCH_DIR, SCRATCH, publish
from bench.replay import repeated_capture, run_replay
from collectors.capture import CaptureError, ReplayStats, iter_units, read_capture

NAME = "vs_cryptofeed"
TITLE = "Issue 18 side by side: orjson, replay, normalise-to-Arrow, cryptofeed (`bench/vs_cryptofeed.py`)"
COLUMNS = (
    "frames",
    "orjson_per_cpu_s",
    "replay_per_wall_s",
    "replay_per_cpu_s",
    "replay_wall_vs_orjson",
    "replay_cpu_vs_orjson",
    "normalise_arrow_per_cpu_s",
    "cryptofeed_per_wall_s",
    "cryptofeed_per_cpu_s",
    "ticktape_vs_cryptofeed_wall",
    "ticktape_vs_cryptofeed_cpu",
)
DEFAULT_FRAMES = 500_000
QUICK_FRAMES = 100_000
CRYPTOFEED_VENV = BENCH_DIR / ".venv-cryptofeed"
#: The release measured (pinned so that figures compare across runs).
CRYPTOFEED_REQUIREMENT = "cryptofeed==2.4.1"
DRIVER = BENCH_DIR / "cryptofeed_driver.py"


def orjson_rates(items: list[Any]) -> tuple[float, float]:
    """``(frames per CPU second, frames per wall second)`` of ``orjson.loads``, best of three passes."""
    frames = [i[1] for i in items if i is not None]
    loads = orjson.loads
    best_cpu = best_wall = 0.0
    for _ in range(3):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for f in frames:
            loads(f)
        best_cpu = max(best_cpu, len(frames) / (time.process_time() - cpu0))
        best_wall = max(best_wall, len(frames) / (time.perf_counter() - wall0))
    return best_cpu, best_wall


def normalise_to_arrow(items: list[Any]) -> dict[str, Any]:
    """The Binance normaliser and the Arrow conversion over items in memory, as a replay does it."""
    from collectors.base import new_record_buffer
    from collectors.registry import get_dialect
    from streaming.base import arrow_tables
    from ticktape.commands.replay import LAKE_UNIT_LINES, LAKE_UNIT_ROWS

    normaliser = get_dialect("binance").make_normaliser()
    gc.collect()
    rows = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _first, _last, buf in iter_units(
        items,
        normaliser,
        ReplayStats(),
        unit_lines=LAKE_UNIT_LINES,
        unit_rows=LAKE_UNIT_ROWS,
        new_buffer=new_record_buffer,  # rows held as columns, as the replay to the lake holds them
    ):
        rows += sum(t.num_rows for t in arrow_tables(buf).values())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"cpu_s": cpu, "wall_s": wall, "rows": rows, "parse_errors": normaliser.parse_errors}


def cryptofeed_venv() -> Path:
    """The venv's interpreter, creating the venv and installing cryptofeed from PyPI the first time."""
    python = CRYPTOFEED_VENV / "bin" / "python"
    probe = [str(python), "-c", "import cryptofeed.exchanges"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(CRYPTOFEED_VENV)], check=True, capture_output=True)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", CRYPTOFEED_REQUIREMENT],
        capture_output=True,
        text=True,
        check=False,
    )
    if pip.returncode != 0:
        raise RuntimeError(f"pip install {CRYPTOFEED_REQUIREMENT} failed: {pip.stderr.strip()[-1500:]}")
    return python


def run_cryptofeed(plain_capture: Path) -> dict[str, Any]:
    """cryptofeed's handler over the uncompressed capture (the driver's JSON line)."""
    python = cryptofeed_venv()
    proc = subprocess.run(
        [str(python), str(DRIVER), str(plain_capture)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"cryptofeed driver failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure(frames: int) -> dict[str, Any]:
    """Every figure of the module docstring, in one run."""
    gz = repeated_capture(frames)
    plain = repeated_capture(frames, compress=False)
    items: list[Any] = [i for i in read_capture(gz) if not isinstance(i, CaptureError)]
    n = sum(1 for i in items if i is not None)
    orjson_cpu, orjson_wall = orjson_rates(items)
    lake = Path(tempfile.mkdtemp(prefix="bench-vs-cryptofeed-lake-", dir=SCRATCH))
    try:
        replay = run_replay(gz, lake)
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    if replay["frames"] != n:
        raise RuntimeError(f"replay read {replay['frames']} frames, the capture holds {n}")
    arrow = normalise_to_arrow(items)
    del items
    replay_wall, replay_cpu = n / replay["wall_s"], n / replay["cpu_s"]
    result: dict[str, Any] = {
        "frames": n,
        "input": gz.name,
        "orjson_per_cpu_s": orjson_cpu,
        "orjson_per_wall_s": orjson_wall,
        "replay_per_wall_s": replay_wall,
        "replay_per_cpu_s": replay_cpu,
        "replay_wall_vs_orjson": replay_wall / orjson_wall,
        "replay_cpu_vs_orjson": replay_cpu / orjson_cpu,
        "replay_rows": replay["rows"],
        "normalise_arrow_per_cpu_s": n / arrow["cpu_s"],
        "normalise_arrow_per_wall_s": n / arrow["wall_s"],
        "normalise_arrow_rows": arrow["rows"],
    }
    try:
        cf = run_cryptofeed(plain)
    except (OSError, RuntimeError, subprocess.CalledProcessError, ValueError) as exc:
        result["cryptofeed_error"] = f"{type(exc).__name__}: {exc}"
        return result
    if cf["frames"] + cf["snapshots_served"] != n:
        raise RuntimeError(
            f"cryptofeed saw {cf['frames']} frames + {cf['snapshots_served']} snapshots of {n}"
        )
    result.update(
        {
            "cryptofeed_version": cf["cryptofeed"],
            "cryptofeed_callbacks": cf["callbacks"],
            "cryptofeed_per_wall_s": cf["frames_per_wall_s"],
            "cryptofeed_per_cpu_s": cf["frames_per_cpu_s"],
            "ticktape_vs_cryptofeed_wall": replay_wall / cf["frames_per_wall_s"],
            "ticktape_vs_cryptofeed_cpu": replay_cpu / cf["frames_per_cpu_s"],
        }
    )
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=None, help=f"at least this many frames ({DEFAULT_FRAMES:,})")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_FRAMES:,} frames")
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    args = p.parse_args(argv)
    result = measure(args.frames or (QUICK_FRAMES if args.quick else DEFAULT_FRAMES))
    publish(NAME, TITLE, COLUMNS, result, save=not args.no_save)
    return 1 if "cryptofeed_error" in result else 0


if __name__ == "__main__":
    raise SystemExit(main())

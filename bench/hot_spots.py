"""Normalise rates of the checksum venues and the Binance family, and the JSON depth guard's cost.

Written for the compiled checksum and depth guard (issue 18): normalise-to-records frames per CPU
second of the real recordings (okx, binance, binance-futures) and of one kraken simulator capture
(kraken spot has no recording in ``../shared``; the capture is written once under the bench scratch
directory and reused, so every run measures the same frames), and the CPU time per frame of
``collectors.events.json_too_deep`` against ``orjson.loads`` over the Binance recording's frames.
Meant to be run by ``bench/ab.py`` in the tree before and this one, interleaved:
``python -m bench.ab --before DIR --rounds 3 -- hot_spots``.

Run: ``python -m bench.hot_spots [--repeat N] [--no-save]`` (JSON lines on stdout).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from typing import Any

import orjson

from bench.common import SCRATCH
from bench.normalise import RECORDINGS, normalise_rate, simulator_capture
from collectors import events
from collectors.capture import CaptureError, read_capture

#: Seconds of kraken simulator captured once (at the bench's capture rate).
KRAKEN_SECONDS = 6.0


def kraken_capture() -> Any:
    """The reused kraken simulator capture (written on first use)."""
    kept = SCRATCH / "hot-spots-kraken.capture"
    if not kept.exists():
        fresh = simulator_capture("kraken", KRAKEN_SECONDS)
        shutil.copyfile(fresh, kept)
    return kept


def guard_cost(repeat: int) -> dict[str, Any]:
    """CPU µs per Binance frame of the depth guard and of orjson.loads (best of ``repeat``)."""
    frames = [i[1] for i in read_capture(RECORDINGS["binance"]) if isinstance(i, tuple)]
    frames = [f if isinstance(f, bytes) else f.encode() for f in frames if not isinstance(f, CaptureError)]
    too_deep, loads = events.json_too_deep, orjson.loads

    def best(fn: Any) -> float:
        out = float("inf")
        for _ in range(repeat):
            start = time.process_time()
            for f in frames:
                fn(f)
            out = min(out, time.process_time() - start)
        return out

    guard, parse = best(too_deep), best(loads)
    return {
        "exchange": "binance-guard",
        "frames": len(frames),
        "guard_us_per_frame": guard / len(frames) * 1e6,
        "orjson_us_per_frame": parse / len(frames) * 1e6,
        "guard_over_orjson": guard / parse,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="passes per input; the best counts")
    p.add_argument("--no-save", action="store_true", help="accepted for bench/ab.py (nothing is saved)")
    a = p.parse_args(argv)
    inputs = [(ex, RECORDINGS[ex]) for ex in ("okx", "binance", "binance-futures")]
    inputs.append(("kraken", kraken_capture()))
    for exchange, path in inputs:
        print(json.dumps(normalise_rate(exchange, path, a.repeat)), flush=True)
    print(json.dumps(guard_cost(a.repeat)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

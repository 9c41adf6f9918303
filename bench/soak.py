"""Soak (issue 4): collector and sink under a steady 20k messages/s with periodic faults; RSS over time.

The pipeline of ``bench/e2e.py`` (simulator in this process, ``ticktape collect`` and ``ticktape sink``
as processes, local transport) runs for ``--minutes``. Every ``--fault-every`` seconds the simulator
injects the next fault of a cycle: a disconnect of every client, a dropped book update (a gap and a
resync), a silent socket for a few seconds, heartbeats only for a few seconds, a malformed frame, a
duplicated update. The resident set size of the collector and of the sink is sampled every
``--sample-every`` seconds. "Flat" is judged on the second half of the run (after start-up and the
first units): its linear trend in MB per minute, and its peak against the first half's peak.

The issue asks for 30 simulated minutes; ``make bench`` runs a shorter soak (see RESULTS.md for the
duration of each recorded run) and ``python -m bench.soak --minutes 30`` is the full one.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import SCRATCH, cpu_share, publish
from bench.e2e import SYMBOLS, run_pipeline
from collectors.simulator import ExchangeSimulator

NAME = "soak"
TITLE = "Soak: RSS of collector and sink under faults (`bench/soak.py`, issue 4)"
COLUMNS = (
    "minutes",
    "sim_frames_per_s",
    "events_per_s",
    "faults",
    "lost_rows",
    "collector_peak_mb",
    "collector_trend_mb_per_min",
    "sink_peak_mb",
    "sink_trend_mb_per_min",
)
#: Frames per market step of the Binance simulator (a depth update, a bookTicker, 0.35 trades).
FRAMES_PER_STEP = 2.35
FAULT_CYCLE = ("disconnect", "gap", "silent", "heartbeats", "malformed", "duplicate")
#: How long a silent or heartbeats-only period lasts.
QUIET_S = 3.0


async def inject_faults(sim: ExchangeSimulator, seconds: float, every_s: float) -> int:
    """Injects the faults of :data:`FAULT_CYCLE` in turn every ``every_s`` for ``seconds``."""
    injected = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    first = sim.config.symbols[0]
    while loop.time() + every_s < end:
        await asyncio.sleep(every_s)
        kind = FAULT_CYCLE[injected % len(FAULT_CYCLE)]
        faults = sim.faults
        if kind == "disconnect":
            await sim.disconnect_all()
        elif kind == "gap":
            faults.drop_updates[first] = 1
        elif kind == "duplicate":
            faults.duplicate_updates[first] = 1
        elif kind == "malformed":
            faults.malformed_frames = 1
        elif kind in ("silent", "heartbeats"):
            attr = "silent" if kind == "silent" else "heartbeats_only"
            setattr(faults, attr, True)
            await asyncio.sleep(QUIET_S)
            setattr(faults, attr, False)
        injected += 1
    return injected


def rss_figures(samples: list[tuple[float, int, float]]) -> dict[str, float]:
    """Start, peak, end and second-half trend of one process's RSS samples (MB)."""
    if len(samples) < 4:
        return {
            "start_mb": float("nan"),
            "peak_mb": float("nan"),
            "end_mb": float("nan"),
            "trend": float("nan"),
        }
    t = np.array([s[0] for s in samples])
    mb = np.array([s[1] for s in samples]) / 1e6
    half = t >= t[-1] / 2
    slope = float(np.polyfit(t[half] / 60.0, mb[half], 1)[0]) if half.sum() >= 2 else float("nan")
    return {
        "start_mb": float(mb[0]),
        "first_half_peak_mb": float(mb[~half].max()) if (~half).any() else float("nan"),
        "peak_mb": float(mb.max()),
        "end_mb": float(mb[-1]),
        "trend": slope,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=None, help="length of the run (default 5, quick 1.5)")
    p.add_argument("--quick", action="store_true", help="a 1.5-minute run")
    p.add_argument("--rate", type=float, default=20_000, help="simulated messages (frames) per second")
    p.add_argument("--fault-every", type=float, default=20.0, help="seconds between faults (20)")
    p.add_argument("--sample-every", type=float, default=2.0, help="seconds between RSS samples (2)")
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    args = p.parse_args(argv)
    minutes = args.minutes or (1.5 if args.quick else 5.0)
    seconds = minutes * 60
    rate_hz = args.rate / FRAMES_PER_STEP / len(SYMBOLS)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-soak-", dir=SCRATCH))

    async def faults(sim: ExchangeSimulator, run_s: float) -> int:
        return await inject_faults(sim, run_s, args.fault_every)

    try:
        r = asyncio.run(
            run_pipeline(rate_hz, seconds, work=work, rss_interval_s=args.sample_every, faults=faults)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    collector = rss_figures(r.rss.get("collector", []))
    sink = rss_figures(r.rss.get("sink", []))
    result: dict[str, Any] = {
        "minutes": minutes,
        "requested_frames_per_s": args.rate,
        "sim_frames_per_s": r.sim_frames / r.seconds,
        "events_per_s": r.collector["rows"] / r.seconds,
        "faults": r.faults,
        "reconnects": r.collector["connects"] - 1,
        "gaps": r.gaps,
        "lost_rows": r.lost_rows,
        "collector_peak_mb": collector["peak_mb"],
        "collector_trend_mb_per_min": collector["trend"],
        "sink_peak_mb": sink["peak_mb"],
        "sink_trend_mb_per_min": sink["trend"],
        "collector_rss": collector,
        "sink_rss": sink,
        "cpu_share": {name: round(cpu_share(s), 2) for name, s in r.rss.items()},
        "rss_samples_mb": {
            name: [(round(t), round(rss / 1e6, 1)) for t, rss, _ in s[:: max(1, len(s) // 30)]]
            for name, s in r.rss.items()
        },
    }
    publish(NAME, TITLE, COLUMNS, result, save=not args.no_save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

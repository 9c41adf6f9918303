"""Measuring helpers shared by every benchmark: machine facts, JSON output, the RESULTS.md tables.

Each benchmark prints one JSON object per measurement and appends a row to its own table in
``bench/RESULTS.md`` (:func:`record`). A table is found by an HTML comment marker
(``<!-- bench:<name> -->``) so that prose written under it (what a figure means, what limits it) is
kept; a benchmark whose table does not exist yet gets a new section at the end of the file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"
SAMPLES = REPO.parent / "shared" / "samples"
BINANCE_SAMPLE = SAMPLES / "binance" / "ethusdt_20240808.capture.gz"
#: Folders whose uncommitted changes make a figure "+dirty" (the code it measured is not the commit).
CODE_DIRS = ("bench", "collectors", "schemas", "storage", "streaming", "ticktape")
#: Scratch space for generated inputs (cached between runs: they are deterministic).
SCRATCH = Path(os.environ.get("TICKTAPE_BENCH_DIR", "/tmp/ticktape-bench"))


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float:
    """Total RAM in GiB (0.0 when unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def machine() -> str:
    """One-line machine description for the result tables."""
    return f"{cpu_model()}, {os.cpu_count()} cores, {ram_gib():.0f} GiB"


def load_average() -> float:
    """1-minute load average: the machine is shared, so every figure says how busy it was."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def git_commit() -> str:
    """Short commit of the checkout, with ``+dirty`` when tracked files have uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_DIRS],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def python_cmd() -> list[str]:
    """The interpreter running the benchmarks (the project's venv under ``make bench``)."""
    return [sys.executable]


def ticktape_cmd() -> list[str]:
    """How to start the ``ticktape`` command in a subprocess."""
    return [sys.executable, "-m", "ticktape.cli"]


def emit(result: dict[str, Any]) -> None:
    """Prints one result as a JSON line on stdout."""
    print(json.dumps(result, sort_keys=False, default=str), flush=True)


def fmt(value: Any) -> str:
    """A table cell: thousands separators for large numbers, 3 significant digits for small ones."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value).replace("|", "/")


def _marker(name: str) -> str:
    return f"<!-- bench:{name} -->"


def record(name: str, title: str, columns: Sequence[str], row: dict[str, Any], path: Path = RESULTS) -> None:
    """Appends ``row`` (date, commit, machine and load are added) to the table of benchmark ``name``.

    Earlier rows stay; prose under the table stays. ``columns`` are the benchmark's own columns.
    """
    header = ["date (UTC)", "commit", "machine", "load", *columns]
    cells = [
        dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        git_commit(),
        machine(),
        f"{load_average():.1f}",
        *(fmt(row.get(c)) for c in columns),
    ]
    line = "| " + " | ".join(cells) + " |"
    head = "| " + " | ".join(header) + " |"
    sep = "|" + "|".join("---" for _ in header) + "|"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = text.splitlines()
    marker = _marker(name)
    if marker in lines:
        i = lines.index(marker) + 1
        while i < len(lines) and not lines[i].startswith("|"):
            i += 1  # a blank line or a sentence between the marker and the table
        start = i
        while i < len(lines) and lines[i].startswith("|"):
            i += 1
        if start < len(lines) and lines[start] != head:
            # The benchmark's columns changed: the old table stays as it was, a new one follows it.
            old = lines.index(marker)
            lines[i:i] = ["", marker, head, sep, line]
            del lines[old]
        else:
            lines.insert(i, line)
    else:
        lines += ["", f"## {title}", "", marker, head, sep, line]
    path.write_text("\n".join(lines) + "\n")


def publish(name: str, title: str, columns: Sequence[str], result: dict[str, Any], save: bool) -> None:
    """Prints the result as JSON and, when ``save``, appends it to RESULTS.md."""
    emit({"bench": name, **result})
    if save:
        record(name, title, columns, result)


@dataclass
class RssSampler:
    """Samples the resident set size of some processes every ``interval_s`` on a background thread.

    Reads ``/proc/<pid>/status`` (VmRSS), so it measures other processes without touching them.
    """

    pids: dict[str, int]
    interval_s: float = 1.0
    #: per process: ``(seconds since start, RSS bytes, CPU seconds used so far)``
    samples: dict[str, list[tuple[float, int, float]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        """Starts sampling."""
        self.samples = {name: [] for name in self.pids}
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic() - t0
            for name, pid in self.pids.items():
                rss = rss_bytes(pid)
                cpu = cpu_seconds(pid)
                if rss is not None and cpu is not None:
                    self.samples[name].append((now, rss, cpu))
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        """Stops sampling (waits for the thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a process in bytes; None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime and stime are fields 14 and 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share(samples: Sequence[tuple[float, int, float]]) -> float:
    """Average share of one core a sampled process used between its first and last sample."""
    if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
        return float("nan")
    return (samples[-1][2] - samples[0][2]) / (samples[-1][0] - samples[0][0])


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return float(ordered[k])


class Timer:
    """``with Timer() as t: ...`` then ``t.elapsed`` (seconds, perf_counter)."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.elapsed = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.start

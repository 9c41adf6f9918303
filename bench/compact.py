"""Compaction of one day of book rows: rows per second, and bytes before and after.

Input: the day that ``bench/book_at.py`` generates (288 five-minute sink files, ~35 million rows over
three symbols). Compaction sorts it with DuckDB, writes zstd Parquet with delta-encoded timestamps,
publishes it atomically, and (measured separately) builds the day's book index.

Run: ``python -m bench.compact [--rows N] [--no-save]``.
"""

from __future__ import annotations

import shutil
import time
from datetime import date
from typing import Any

from bench.book_at import day_arguments, generated_day
from bench.common import SCRATCH, publish
from storage.compact import compact_lake

COLUMNS = ["rows", "files_in", "files_out", "mb_in", "mb_out", "compact_s", "rows_per_s", "index_s"]


def _size(root: Any) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.parquet") if "_ticktape" not in p.parts)


def main(argv: list[str] | None = None) -> None:
    """Generates (or reuses) the day, compacts a copy, prints JSON and records to RESULTS.md."""
    args = day_arguments(__doc__.splitlines()[0], argv)
    _, lake = generated_day(args.rows)
    work = SCRATCH / "compact-bench"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(lake, work)
    files_in = list((work / "book").rglob("*.parquet"))
    size_in = _size(work)
    t0 = time.perf_counter()
    [res] = compact_lake(work, closed_before=date(2100, 1, 1), book_index=False)
    compact_s = time.perf_counter() - t0
    assert res.status == "compacted", res
    t0 = time.perf_counter()
    [again] = compact_lake(work, closed_before=date(2100, 1, 1))  # already compacted: builds the index
    index_s = time.perf_counter() - t0
    result = {
        "rows": res.output_rows,
        "files_in": len(files_in),
        "files_out": len(res.output_files),
        "mb_in": size_in / 1e6,
        "mb_out": _size(work) / 1e6,
        "compact_s": compact_s,
        "rows_per_s": res.output_rows / compact_s,
        "index_s": index_s,
        "index": again.detail,
    }
    publish(
        "compact", "Compaction of a day of book rows (`bench/compact.py`)", COLUMNS, result, not args.no_save
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

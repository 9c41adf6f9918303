"""The raw archive in the lake (issue 17): reading it back, renormalising a day, retention.

The sink writes ``raw`` rows (``schemas/raw.avsc``, produced by :mod:`collectors.raw`) like every
other dataset, exactly once, to ``<lake>/raw/exchange=<id>/date=<D>/*.parquet``: one row per
compressed batch of capture-format lines, the lake date being that of the batch's first line. A day's
content *is* the capture format: :func:`day_streams` gives each stream (one collector connection,
one normaliser) as capture items in order, which ``ticktape replay --input <that directory>`` and
:func:`renormalise_day` replay like capture files.

Renormalising a day (:func:`renormalise_day`) rebuilds the datasets that normalisers derive from
frames (:data:`REPLAYED_DATASETS`, and the normalisers' feed events) for one exchange and day with
today's parsers:

- every stream that has a batch in the day is replayed from its beginning: its batches of earlier
  days are read first (book state crosses midnight), and only records whose ``ts_recv`` falls in the
  day are kept;
- a day with planned rotations (make-before-break; Binance's 23 h default among them) replays both
  connections over each handover: the overlap's trades and book rows can appear twice (the result
  and the manifest name those streams, and a warning says so);
- feed events that the connection layer recorded live (connect, disconnect, stale, rest errors: their
  detail names the ``connection``) cannot come from frames: they are kept, the normalisers' own
  events are replaced;
- each dataset's new partition is written to a staging directory and swapped in atomically
  (``storage/compact.py``'s ``renameat2(RENAME_EXCHANGE)`` under its publication seqlock and lake
  lock), then :data:`PARSERS_DIR` ``/exchange=<id>/date=<D>.json`` records which parser produced
  the day (ticktape version + hash of the normaliser's source) and what the live collector ran.

Retention (:func:`expire_raw`): raw days older than the exchange's ``raw_retention_days`` (``[lake]``)
are deleted by ``ticktape compact``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from collectors.base import Normaliser
from collectors.capture import CaptureItem, ReplayStats, iter_units, parse_lines
from collectors.raw import RAW_PARSER, RAW_SEQ, RAW_STREAM, iter_batch_lines, parser_version
from schemas import RecordBuffer, arrow_schema, arrow_to_rows, rows_to_arrow
from storage.compact import (
    WORK_SUBDIR,
    CompactionError,
    _publish,
    data_files,
    exchange_dirs,
    lake_lock,
    uncommitted_files,
)
from storage.lake import (
    NS_PER_DAY,
    STATE_DIR,
    fsync_dir,
    partition_dir,
    sort_for_lake,
    write_json_atomic,
    write_parquet_atomic,
)

log = logging.getLogger(__name__)

RAW_DATASET = "raw"
#: Datasets that normalisers derive from frames alone (renormalise replaces them).
REPLAYED_DATASETS: tuple[str, ...] = (
    "trades",
    "book",
    "bbo",
    "funding",
    "mark_price",
    "open_interest",
    "liquidations",
)
#: Where renormalise records which parser produced a day: ``<lake>/_ticktape/parsers/exchange=<id>/date=<D>.json``.
PARSERS_DIR = f"{STATE_DIR}/parsers"
#: Earlier days read at most to warm up a stream that crosses midnight.
MAX_WARMUP_DAYS = 7


def read_raw_day(lake: str | Path, exchange: str, day: date) -> list[tuple[Any, ...]]:
    """Every raw row of one exchange and day (published files only)."""
    files = data_files(partition_dir(lake, RAW_DATASET, exchange, day.isoformat()))
    if not files:
        return []
    schema = arrow_schema(RAW_DATASET)
    tables = [pq.read_table(p, schema=schema) for p in files]
    return arrow_to_rows(pa.concat_tables(tables))


def _by_stream(rows: list[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    streams: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        streams.setdefault(row[RAW_STREAM], []).append(row)
    for batches in streams.values():
        batches.sort(key=lambda r: r[RAW_SEQ])
    return streams


def _stream_order(stream: str) -> tuple[int, str]:
    name, _, session = stream.rpartition("@")
    return (int(session) if session.isdigit() else 0, name)


def day_streams(lake: str | Path, exchange: str, day: date) -> dict[str, list[tuple[Any, ...]]]:
    """The day's raw rows per stream (batches in ``seq`` order), streams in start order."""
    streams = _by_stream(read_raw_day(lake, exchange, day))
    return {s: streams[s] for s in sorted(streams, key=_stream_order)}


def stream_items(rows: list[tuple[Any, ...]]) -> Iterator[CaptureItem]:
    """Capture items (as :func:`collectors.capture.read_capture` yields them) of one stream's rows."""
    return parse_lines(iter_batch_lines(rows))


def raw_day_dir(path: Path) -> tuple[Path, str, date] | None:
    """``(lake, exchange, day)`` when ``path`` is a ``<lake>/raw/exchange=<id>/date=<D>`` directory."""
    path = path.resolve()
    if not path.is_dir() or not path.name.startswith("date=") or not path.parent.name.startswith("exchange="):
        return None
    if path.parent.parent.name != RAW_DATASET:
        return None
    try:
        day = date.fromisoformat(path.name.removeprefix("date="))
    except ValueError:
        return None
    return path.parent.parent.parent, path.parent.name.removeprefix("exchange="), day


def replay_stream(normaliser: Normaliser, rows: list[tuple[Any, ...]]) -> RecordBuffer:
    """Every record a replay of one stream's rows gives."""
    out = RecordBuffer()
    for _f, _l, buf in iter_units(
        stream_items(rows), normaliser, ReplayStats(), unit_lines=1 << 62, unit_rows=1 << 62
    ):
        out.extend(buf)
    return out


def _warm_streams(
    lake: Path, exchange: str, day: date, streams: dict[str, list[tuple[Any, ...]]]
) -> dict[str, list[tuple[Any, ...]]]:
    """Each stream of the day with its batches of earlier days in front (a stream crossing midnight)."""
    full = {s: list(rows) for s, rows in streams.items()}
    wanted = {s for s, rows in streams.items() if rows[0][RAW_SEQ] > 0}
    back = day
    for _ in range(MAX_WARMUP_DAYS):
        if not wanted:
            break
        back -= timedelta(days=1)
        earlier = _by_stream(read_raw_day(lake, exchange, back))
        for s in list(wanted):
            if s in earlier:
                full[s] = earlier[s] + full[s]
                if full[s][0][RAW_SEQ] == 0:
                    wanted.discard(s)
    for s in sorted(wanted):
        log.warning(
            "raw stream %s starts before %d days of warm-up: replayed from what is kept", s, MAX_WARMUP_DAYS
        )
    return full


def rotated_streams(streams: Mapping[str, Any]) -> list[str]:
    """Streams of a successor connection of a planned rotation (named ``<exchange>-<i>-g<n>@...``).

    Live, the collector merged a successor into its predecessor at the handover (trades de-duplicated,
    books continued in the old epoch; ``collectors/connection.py``, ``Collector._handover``); a replay
    runs each stream on its own, so over the overlap of the two connections it gives both.
    """
    return sorted(s for s in streams if re.search(r"-g\d+@", s))


def _is_connection_event(row: tuple[Any, ...]) -> bool:
    """A feed event the connection layer recorded (its detail names the connection), not a normaliser."""
    try:
        detail = orjson.loads(row[5])
    except orjson.JSONDecodeError:
        return False
    return isinstance(detail, dict) and "connection" in detail


@dataclass
class RenormaliseResult:
    """What a renormalisation read and published."""

    exchange: str
    day: date
    streams: int = 0
    raw_batches: int = 0
    frames: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    previous_rows: dict[str, int] = field(default_factory=dict)
    parser: str = ""
    live_parsers: list[str] = field(default_factory=list)
    #: streams of successors of a planned rotation (make-before-break): see :func:`rotated_streams`
    rotated: list[str] = field(default_factory=list)
    manifest: Path | None = None


def rebuild_day(
    lake: str | Path, exchange: str, day: date, new_normaliser: Callable[[], Normaliser]
) -> tuple[RecordBuffer, RenormaliseResult]:
    """The records of ``day`` rebuilt from raw (normaliser feed events only), without publishing."""
    lake = Path(lake)
    streams = day_streams(lake, exchange, day)
    if not streams:
        raise ValueError(f"no raw data for {exchange} on {day.isoformat()} in {lake}")
    result = RenormaliseResult(exchange, day, streams=len(streams))
    result.raw_batches = sum(len(r) for r in streams.values())
    result.frames = sum(r[5] for rows in streams.values() for r in rows)
    result.live_parsers = sorted({r[RAW_PARSER] for rows in streams.values() for r in rows})
    result.rotated = rotated_streams(streams)
    if result.rotated:
        log.warning(
            "%s %s: %d stream(s) began as planned rotations (%s): the handover overlap is replayed from "
            "both connections, so trades and book rows of those seconds can appear twice",
            exchange,
            day,
            len(result.rotated),
            ", ".join(result.rotated[:3]),
        )
    lo = (day - date(1970, 1, 1)).days * NS_PER_DAY
    hi = lo + NS_PER_DAY
    out = RecordBuffer()
    for rows in _warm_streams(lake, exchange, day, streams).values():
        normaliser = new_normaliser()
        result.parser = parser_version(type(normaliser))
        buf = replay_stream(normaliser, rows)
        for ds in (*REPLAYED_DATASETS, "feed_events"):
            out.rows(ds).extend(r for r in buf.rows(ds) if lo <= r[3] < hi)  # index 3: ts_recv
    return out, result


def _live_day(lake: Path, dataset: str, exchange: str, day: date) -> list[tuple[Any, ...]]:
    files = data_files(partition_dir(lake, dataset, exchange, day.isoformat()))
    if not files:
        return []
    schema = arrow_schema(dataset)
    return arrow_to_rows(pa.concat_tables([pq.read_table(p, schema=schema) for p in files]))


def renormalise_day(
    lake: str | Path,
    exchange: str,
    day: date,
    new_normaliser: Callable[[], Normaliser],
    *,
    allow_brief_gap: bool = False,
    exchange_fn: Callable[[Path, Path], None] = exchange_dirs,
) -> RenormaliseResult:
    """Rebuilds one exchange's day from raw and publishes each dataset's partition atomically."""
    lake = Path(lake)
    records, result = rebuild_day(lake, exchange, day, new_normaliser)
    with lake_lock(lake, wait=True):
        datasets = (*REPLAYED_DATASETS, "feed_events")
        for ds in datasets:
            live_dir = partition_dir(lake, ds, exchange, day.isoformat())
            live_files = data_files(live_dir)
            busy = uncommitted_files(lake, live_files)
            if busy:
                raise CompactionError(
                    f"{ds}/exchange={exchange}/date={day}: sink files beyond the last commit "
                    f"(sink crashed or running?): {busy[:5]}"
                )
            rows = records.rows(ds)
            live = _live_day(lake, ds, exchange, day) if live_files else []
            result.previous_rows[ds] = len(live)
            if ds == "feed_events":
                rows = [r for r in live if _is_connection_event(r)] + rows
            result.rows[ds] = len(rows)
            if not rows and not live_files:
                continue
            _publish_partition(lake, ds, exchange, day, rows, live_dir, allow_brief_gap, exchange_fn)
    manifest = lake / PARSERS_DIR / f"exchange={exchange}" / f"date={day.isoformat()}.json"
    write_json_atomic(
        manifest,
        {
            "exchange": exchange,
            "date": day.isoformat(),
            "parser": result.parser,
            "live_parsers": result.live_parsers,
            "rotated_streams": result.rotated,
            "renormalised_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "raw_batches": result.raw_batches,
            "frames": result.frames,
            "rows": result.rows,
            "previous_rows": result.previous_rows,
        },
    )
    result.manifest = manifest
    return result


def _publish_partition(
    lake: Path,
    dataset: str,
    exchange: str,
    day: date,
    rows: list[tuple[Any, ...]],
    live: Path,
    allow_brief_gap: bool,
    exchange_fn: Callable[[Path, Path], None],
) -> None:
    """Writes ``rows`` as the partition's one file in a staging directory and swaps it in."""
    work = lake / WORK_SUBDIR / "renormalise" / dataset / f"exchange={exchange}" / f"date={day.isoformat()}"
    shutil.rmtree(work, ignore_errors=True)
    staged = work / "next"
    staged.mkdir(parents=True)
    if rows:
        table = sort_for_lake(pa.Table.from_batches([rows_to_arrow(dataset, rows)]))
        write_parquet_atomic(table, staged / f"renormalised-{day.isoformat()}.parquet", sync_dir=False)
    fsync_dir(staged)
    if not live.is_dir():
        live.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staged, live)
        fsync_dir(live.parent)
    else:
        os.chmod(staged, stat.S_IMODE(live.stat().st_mode))
        _publish(lake, live, staged, work, allow_brief_gap, exchange_fn)
    shutil.rmtree(work, ignore_errors=True)


def parser_manifest(lake: str | Path, exchange: str, day: date) -> dict[str, Any] | None:
    """The manifest a renormalisation wrote for a day, or None (the live collector's parser)."""
    path = Path(lake) / PARSERS_DIR / f"exchange={exchange}" / f"date={day.isoformat()}.json"
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return loaded


def expire_raw(
    lake: str | Path, default_days: int, per_exchange: Mapping[str, int], today: date | None = None
) -> list[Path]:
    """Deletes raw day partitions older than their exchange's retention (0 keeps raw forever)."""
    today = today or datetime.now(UTC).date()
    removed = []
    root = Path(lake) / RAW_DATASET
    for day_dir in sorted(root.glob("exchange=*/date=*")):
        exchange = day_dir.parent.name.removeprefix("exchange=")
        keep = per_exchange.get(exchange, default_days)
        try:
            day = date.fromisoformat(day_dir.name.removeprefix("date="))
        except ValueError:
            continue
        if keep > 0 and day < today - timedelta(days=keep):
            shutil.rmtree(day_dir)
            removed.append(day_dir)
    return removed

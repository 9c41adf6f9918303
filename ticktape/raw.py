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
- a day with planned rotations (make-before-break; the Binance and Bitget venues and MEXC rotate
  every 23 h by default) has two connections over each handover, and a replay runs both: live, the
  collector merged the successor into its predecessor (``collectors/connection.py``), so that day's
  streams go through the sink's replica arbitration (:func:`arbitrate_streams`,
  ``storage/arbitrate.py``), each stream a replica named by its stream id: trades once by id, bbo
  once by update id, the book taken update by update from whichever connection has it. The result
  and the manifest name the successor streams and count the duplicates dropped. A day without a
  rotation is replayed stream by stream as before (no arbitration, the same bytes);
- feed events that the connection layer recorded live (connect, disconnect, stale, rest errors: their
  detail names the ``connection``) cannot come from frames: they are kept, the normalisers' own
  events are replaced;
- each dataset's new partition is written to a staging directory and swapped in atomically
  (``storage/compact.py``'s ``renameat2(RENAME_EXCHANGE)`` under its publication seqlock and lake
  lock), then :data:`PARSERS_DIR` ``/exchange=<id>/date=<D>.json`` records which parser produced
  the day (ticktape version + hash of the normaliser's source) and what the live collector ran.

A rotation day, arbitrated (:func:`arbitrate_streams`), against the live day:

- rows are interleaved in ``ts_recv`` order, each stream's own order kept, the earlier-started stream
  first on equal times; the ``replica`` column is null again in the output, as it is live: the day
  was captured by one collector, and a non-null ``replica`` means a collector replica everywhere
  else (``collect --replica``; queries grouping by it would take one collector's two connections for
  two replicas). Which connection gave a row is not lost: the stream ids stay in the raw archive,
  and in the ``detail`` of the ``replica_cover``/``merged_gap`` events the arbitration records;
- ``epoch`` is the merged book's: it increases only at a resync of the merged book (a snapshot after
  a range no connection had: a disconnect, a gap), counted from the epoch of the symbol's first
  snapshot in the replay. Live, a rotation keeps the epoch where the venue's update ids are shared by
  every connection (``book_handover_by_seq``: the Binance venues), so the two agree there; on
  other venues the collector hands the book over as a resync (epoch + 1) while the merged book
  continues at the matching sequence without one, so renormalised epochs can be lower than live
  ones. A book's ``ts_recv`` never goes back (the arbiter raises it to the previous merged row's);
- the live ``resync`` events of handovers (reason ``rotation``: venues without
  ``book_handover_by_seq``) are not kept, since the merged book has no resync there; an update whose
  sequence equals the snapshot's it follows (already in it: Binance futures' first update may end at
  the snapshot's ``lastUpdateId``, "U <= lastUpdateId AND u >= lastUpdateId",
  https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly,
  checked 2026-12-05) is not repeated after it;
- book rows flagged ``MAYBE_BAD_BOOK`` (a stream's rows between its gap and its resync) never enter
  the merged book: where no other connection covered the range, the day has the resync instead (a
  ``merged_gap`` feed event records it); live, those rows were kept with their flag;
- the arbiter's held resync rows are released at the end of the replay
  (:meth:`~storage.arbitrate.StreamArbiter.finish`): nothing is lost at the end of the data.

Retention (:func:`expire_raw`): raw days older than the exchange's ``raw_retention_days`` (``[lake]``)
are deleted by ``ticktape compact``.
"""

from __future__ import annotations

import dataclasses
import heapq
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
from schemas import RecordBuffer, arrow_schema, arrow_to_rows, base_width, rows_to_arrow
from storage.arbitrate import MERGED_GAP, ArbitrationOptions, StreamArbiter
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


def _stream_order(stream: str) -> tuple[int, str, int]:
    """Start order: collector session, connection, then rotation generation (``-g2`` before ``-g10``)."""
    name, _, session = stream.rpartition("@")
    rotated = re.fullmatch(r"(.*)-g(\d+)", name)
    base, generation = (rotated.group(1), int(rotated.group(2))) if rotated else (name, 0)
    return (int(session) if session.isdigit() else 0, base, generation)


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
    runs each stream on its own, so over the overlap of the two connections it gives both
    (:func:`rebuild_day` then arbitrates the day's streams: :func:`arbitrate_streams`).
    """
    return sorted(s for s in streams if re.search(r"-g\d+@", s))


def _is_connection_event(row: tuple[Any, ...]) -> bool:
    """A feed event the connection layer recorded (its detail names the connection), not a normaliser."""
    try:
        detail = orjson.loads(row[5])
    except orjson.JSONDecodeError:
        return False
    return isinstance(detail, dict) and "connection" in detail


def _is_rotation_resync(row: tuple[Any, ...]) -> bool:
    """The ``resync`` event of a rotation handed over as a resync (``Collector._handover``)."""
    return row[4] == "resync" and orjson.loads(row[5]).get("reason") == "rotation"


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
    #: a rotation day (arbitrated): rows of the day the arbitration dropped, per dataset (copies of
    #: what another stream gave; for ``book`` also snapshot rows of a stream that joined a book already
    #: past them, and rows flagged MAYBE_BAD_BOOK: see the module docstring)
    dropped: dict[str, int] = field(default_factory=dict)
    #: a rotation day: ranges of a book no stream had (``merged_gap`` events) and gaps of one stream
    #: another covered (``replica_cover`` events)
    merged_gaps: int = 0
    covers: int = 0
    manifest: Path | None = None


def rebuild_day(
    lake: str | Path,
    exchange: str,
    day: date,
    new_normaliser: Callable[[], Normaliser],
    options: ArbitrationOptions | None = None,
) -> tuple[RecordBuffer, RenormaliseResult]:
    """The records of ``day`` rebuilt from raw (normaliser feed events only), without publishing.

    A day with planned rotations is arbitrated (:func:`arbitrate_streams`; ``options``:
    :func:`rotation_arbitration` by default); other days are replayed stream by stream.
    """
    lake = Path(lake)
    streams = day_streams(lake, exchange, day)
    if not streams:
        raise ValueError(f"no raw data for {exchange} on {day.isoformat()} in {lake}")
    result = RenormaliseResult(exchange, day, streams=len(streams))
    result.raw_batches = sum(len(r) for r in streams.values())
    result.frames = sum(r[5] for rows in streams.values() for r in rows)
    result.live_parsers = sorted({r[RAW_PARSER] for rows in streams.values() for r in rows})
    result.rotated = rotated_streams(streams)
    lo = (day - date(1970, 1, 1)).days * NS_PER_DAY
    hi = lo + NS_PER_DAY
    out = RecordBuffer()
    replayed: dict[str, RecordBuffer] = {}
    for stream, rows in _warm_streams(lake, exchange, day, streams).items():
        normaliser = new_normaliser()
        result.parser = parser_version(type(normaliser))
        buf = replay_stream(normaliser, rows)
        if result.rotated:
            replayed[stream] = buf  # arbitrated below, over the whole replay (books need their start)
            continue
        for ds in (*REPLAYED_DATASETS, "feed_events"):
            out.rows(ds).extend(r for r in buf.rows(ds) if lo <= r[3] < hi)  # index 3: ts_recv
    if not result.rotated:
        return out, result
    merged, arbiter = arbitrate_streams(replayed, options or rotation_arbitration())
    for ds in (*REPLAYED_DATASETS, "feed_events"):
        out.rows(ds).extend(r for r in merged.rows(ds) if lo <= r[3] < hi)
    for ds in REPLAYED_DATASETS:
        before = sum(1 for buf in replayed.values() for r in buf.rows(ds) if lo <= r[3] < hi)
        if before != len(out.rows(ds)):
            result.dropped[ds] = before - len(out.rows(ds))
    result.merged_gaps, result.covers = arbiter.stats.merged_gaps, arbiter.stats.covers
    log.warning(
        "%s %s: %d stream(s) began as planned rotations (%s): the handover overlaps were arbitrated "
        "(one copy of each event); rows dropped: %s; book ranges no stream had: %d",
        exchange,
        day,
        len(result.rotated),
        ", ".join(result.rotated[:3]) + (", ..." if len(result.rotated) > 3 else ""),
        ", ".join(f"{ds} {n:,}" for ds, n in result.dropped.items()) or "none",
        result.merged_gaps,
    )
    return out, result


def rotation_arbitration() -> ArbitrationOptions:
    """How a rotation day's streams are arbitrated: as the sink arbitrates replicas
    (:func:`ticktape.runtime.arbitration_options`), keeping at least as many trade ids per symbol
    as the collector remembers for a handover (``ROTATION_TRADE_IDS``): a successor that receives
    the venue's recent trades again when it subscribes (Bitget) repeats, on a quiet symbol, trades
    older than the sink's key window, which the collector did not publish twice live."""
    from collectors.connection import ROTATION_TRADE_IDS
    from ticktape.runtime import arbitration_options

    return dataclasses.replace(arbitration_options(), min_keys=ROTATION_TRADE_IDS)


def arbitrate_streams(
    replayed: Mapping[str, RecordBuffer], options: ArbitrationOptions | None = None
) -> tuple[RecordBuffer, StreamArbiter]:
    """One copy of the events of several replayed streams (connections) that overlap in time.

    Each stream is a replica named by its stream id; each dataset's rows are interleaved in
    ``ts_recv`` order (a stream's own order kept; on equal times the stream given first goes first),
    arbitrated by :class:`~storage.arbitrate.StreamArbiter` as one unit, and what it still held at
    the end is released (:meth:`~storage.arbitrate.StreamArbiter.finish`). The rows come back without
    a replica; book epochs are the merged book's, offset so that it starts at the epoch of each
    symbol's first snapshot (module docstring). Feed events: every stream's own, then those of the
    arbitration (``merged_gap``, ``replica_cover``). Returns the records and the arbiter (its stats).
    """
    arbiter = StreamArbiter(options)
    tables: dict[str, pa.Table] = {}
    first_epoch: dict[tuple[str, str], int] = {}
    for ds in REPLAYED_DATASETS:
        rows = list(
            heapq.merge(
                *([(*r, stream) for r in buf.rows(ds)] for stream, buf in replayed.items()),
                key=lambda r: r[3],  # ts_recv
            )
        )
        if not rows:
            continue
        if ds == "book":
            for r in rows:
                if r[7]:  # is_snapshot: the merged book starts (epoch 0) at the first one it sees
                    first_epoch.setdefault((r[0], r[1]), r[9])
        tables[ds] = pa.Table.from_batches([rows_to_arrow(ds, rows)])
    processed = arbiter.process(tables)
    finished = arbiter.finish()
    out = RecordBuffer()
    for ds in (*REPLAYED_DATASETS, "feed_events"):
        width = base_width(ds)
        rows = out.rows(ds)
        if ds == "feed_events":
            for buf in replayed.values():
                rows.extend(buf.feed_events)
        for part in (processed.get(ds), finished.get(ds)):
            if part is not None:
                rows.extend(r[:width] for r in arrow_to_rows(part))
    out.book = [(*r[:9], r[9] + first_epoch.get((r[0], r[1]), 0), *r[10:]) for r in out.book]
    events = out.feed_events
    for i, e in enumerate(events):
        if e[4] == MERGED_GAP:
            detail = orjson.loads(e[5])
            detail["epoch"] += first_epoch.get((e[0], e[1]), 0)
            events[i] = (*e[:5], orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode(), *e[6:])
    return out, arbiter


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
    options: ArbitrationOptions | None = None,
) -> RenormaliseResult:
    """Rebuilds one exchange's day from raw and publishes each dataset's partition atomically."""
    lake = Path(lake)
    records, result = rebuild_day(lake, exchange, day, new_normaliser, options)
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
                kept = [r for r in live if _is_connection_event(r)]
                if result.rotated:  # the merged book has no resync at a handover: neither has the day
                    kept = [r for r in kept if not _is_rotation_resync(r)]
                rows = kept + rows
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
            # a rotation day's overlaps, arbitrated (null: no rotation, streams replayed one by one)
            "arbitration": {
                "dropped": result.dropped,
                "merged_gaps": result.merged_gaps,
                "replica_covers": result.covers,
            }
            if result.rotated
            else None,
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

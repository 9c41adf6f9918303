"""Sink arbitration of collector replicas: one copy in the lake (issue 17; README, "Replicas").

Several collectors (*replicas*, ``ticktape collect --replica NAME``) capture the same venue and
publish to the same stream; their records carry the replica (``schemas.REPLICA_FIELD``). The sink
passes every stream's rows through a :class:`StreamArbiter`, which keeps, per (exchange, symbol),
one copy of every event and fills one replica's gap from another:

- **trades** by the venue's trade id (a content key ``(ts_exchange, price, size, side)`` where the
  venue has none), **liquidations** by their id (else content), **bbo** by its update id (``seq``;
  ``(ts_exchange, content)`` where there is none or it counts a connection's messages), **funding**,
  **mark_price**, **open_interest** by ``(ts_exchange, content)``. Keys are counted per replica: an
  event is kept when one replica has shown it more times than the lake holds it, so two equal
  trades without ids (same time, price, size and side) stay two. Keys are remembered for
  :attr:`ArbitrationOptions.key_window_s` of receive time (the newest
  :attr:`ArbitrationOptions.min_keys` whatever their age).
- **book** by the venue's sequence: each update is taken from whichever replica has it first, in
  stream order. A replica's update is taken when its own chain (its previous update, validated by
  its collector's gap rules) ends where the merged book ends, so the merged book continues across
  one replica's disconnect or gap without a resync. A replica's rows flagged ``MAYBE_BAD_BOOK``
  never enter the merged book. A replica that resyncs with a snapshot behind the merged book is
  simply followed again; one ahead of it is *held* for :attr:`ArbitrationOptions.hold_s` (of
  receive time in the stream) while another replica may still deliver the updates in between; if
  none does, the snapshot becomes a resync of the merged book (its ``epoch`` + 1) and a
  ``merged_gap`` feed event records the range no replica had. The merged book has its own
  ``epoch`` (the column is rewritten); each row keeps the replica it came from, and its
  ``ts_recv``, raised where needed to the previous merged row's (replicas receive at different
  moments, and the lake orders a book's rows by receive time: the merged book's order is kept). Venues without a
  book sequence, or whose sequence counts a connection's messages (``gap_scope = "connection"``:
  Coinbase, Bitfinex, Coinbase International), cannot be merged update by update: their book
  follows one *leader* replica; the arbiter keeps every replica's levels, and when the leader is
  flagged or another in-sync replica has kept sending for ``hold_s`` after the leader's last row,
  that replica's current levels are written as a snapshot (epoch + 1) and its rows follow.
- ``feed_events``: a ``replica_cover`` event (``detail``: the replica that lost the book and the
  sequence range another replica covered) each time a replica's gap was covered; a replica's own
  events (disconnect, gap, ...) are kept with their replica. Other datasets pass through.

Rows without a replica pass through untouched, and a table without any replica costs one null
count (bench/RESULTS.md, "Replicas").

Exactly once: the arbiter's state (keys seen, each book's merged position and replicas' chains,
held rows) is a function of the stream prefix processed, independent of where units are cut (every
decision depends only on rows of the same dataset and key in stream order and on receive times in
the stream, never on the clock). The sink writes it with each unit's commit marker
(``<stream>.arbitration-<last>.json``, named by the marker), so a restarted sink continues from
exactly the state of its last commit and writes the same rows. Held rows stay in that state until
later rows of the stream arrive; only a stream that ends (``ticktape renormalise`` replaying a day's
raw connections as replicas, ``ticktape/raw.py``) calls :meth:`StreamArbiter.finish` for them.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from schemas import REPLICA_FIELD, Flags, base_width, rows_to_arrow

#: Datasets arbitrated by key; ``book`` is arbitrated by sequence.
KEYED_DATASETS = ("trades", "bbo", "funding", "mark_price", "open_interest", "liquidations")
ARBITRATED_DATASETS = frozenset({*KEYED_DATASETS, "book"})
#: Feed-event kinds the arbiter writes.
REPLICA_COVER = "replica_cover"
MERGED_GAP = "merged_gap"
STATE_VERSION = 1
_BAD = int(Flags.MAYBE_BAD_BOOK)
_NS = 1_000_000_000
#: a receive time after every other (``finish`` releases every held row)
_END_NS = 1 << 63


@dataclass(frozen=True)
class ArbitrationOptions:
    """How the sink arbitrates replicas (defaults live here, the layer that uses them)."""

    #: keys (trade ids, content keys) are remembered this long, in receive time of the stream
    key_window_s: float = 120.0
    #: at most this many keys per (dataset, exchange, symbol): the oldest are forgotten first
    max_keys: int = 50_000
    #: at least this many keys per (dataset, exchange, symbol) are kept whatever their age (0: the
    #: window alone decides). A venue that sends its recent trades again to a connection that
    #: subscribes (Bitget) repeats trades older than the window on a quiet symbol; ``ticktape
    #: renormalise`` keeps as many as the collector does for a rotation (``ticktape/raw.py``)
    min_keys: int = 0
    #: a replica's resync snapshot ahead of the merged book waits this long (receive time in the
    #: stream) for another replica to deliver the updates in between
    hold_s: float = 2.0
    #: exchanges whose book sequence counts a connection's messages (not comparable across replicas)
    connection_sequenced: frozenset[str] = frozenset()


@dataclass
class ArbitrationStats:
    """What arbitration did (counters of one sink run)."""

    duplicates: dict[str, int] = field(default_factory=lambda: collections.Counter())
    covers: int = 0
    merged_gaps: int = 0
    #: leader mode: the book switched to another replica (written as a snapshot of its levels)
    failovers: int = 0
    held_rows: int = 0


def _content_key(dataset: str, row: tuple[Any, ...], width: int, connection_seq: bool) -> tuple[Any, ...]:
    """The identity of a keyed event (see the module docstring)."""
    if dataset in ("trades", "liquidations") and row[4]:
        return ("id", row[4])
    if dataset == "bbo" and row[8] is not None and not connection_seq:
        return ("seq", row[8])
    return ("c", row[2], *row[4 : width - 1])


class _Keys:
    """Counted keys of one (dataset, exchange, symbol): emitted count and per-replica counts."""

    __slots__ = ("entries", "order")

    def __init__(self) -> None:
        #: key -> [first ts_recv, emitted, {replica: seen}]
        self.entries: dict[tuple[Any, ...], list[Any]] = {}
        self.order: collections.deque[tuple[int, tuple[Any, ...]]] = collections.deque()

    def take(self, key: tuple[Any, ...], replica: str, ts: int) -> bool:
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = [ts, 0, {}]
            self.order.append((ts, key))
        seen = entry[2]
        n = seen.get(replica, 0) + 1
        seen[replica] = n
        if n > entry[1]:
            entry[1] += 1
            return True
        return False

    def evict(self, before_ns: int, max_keys: int, min_keys: int = 0) -> None:
        order = self.order
        while order and (len(order) > max_keys or (order[0][0] < before_ns and len(order) > min_keys)):
            _, key = order.popleft()
            self.entries.pop(key, None)

    def dump(self) -> list[Any]:
        return [[list(k), e[0], e[1], e[2]] for k, e in self.entries.items()]

    @classmethod
    def load(cls, items: list[Any]) -> _Keys:
        keys = cls()
        for k, ts, emitted, seen in sorted(items, key=lambda x: x[1]):
            key = tuple(k)
            keys.entries[key] = [ts, emitted, dict(seen)]
            keys.order.append((ts, key))
        return keys


class _Replica:
    """What the merged book knows of one replica's book of one symbol."""

    __slots__ = ("chain", "decision", "epoch", "group", "last", "last_ts")

    def __init__(self) -> None:
        self.group: list[Any] | None = None  # [seq, is_snapshot, epoch] of the current frame's rows
        self.decision = "drop"  # emit | emit_bad (flagged MAYBE_BAD_BOOK) | drop | hold
        self.chain: int | None = None  # seq of its last update in sync (None: not in sync)
        self.last: int | None = None  # seq of its last update before it fell out of sync
        self.last_ts = 0
        self.epoch: int | None = None

    def dump(self) -> list[Any]:
        return [self.group, self.decision, self.chain, self.last, self.last_ts, self.epoch]

    @classmethod
    def load(cls, data: list[Any]) -> _Replica:
        r = cls()
        r.group, r.decision, r.chain, r.last, r.last_ts, r.epoch = data
        return r


class _Book:
    """The merged book of one (exchange, symbol)."""

    __slots__ = ("dirty", "emitted_by", "epoch", "held", "leader", "levels", "replicas", "seq", "ts")

    def __init__(self) -> None:
        self.seq: int | None = None  # merged position (None: no book yet)
        self.epoch = -1
        self.dirty = False  # continued past a range no replica had: resync at the next snapshot
        self.leader: str | None = None  # leader mode (no comparable sequence)
        self.replicas: dict[str, _Replica] = {}
        #: replica -> [first ts_recv, snapshot seq, held rows]
        self.held: dict[str, list[Any]] = {}
        #: replica -> last seq it gave the merged book
        self.emitted_by: dict[str, int] = {}
        #: ts_recv of the last row given to the merged book
        self.ts = 0
        #: leader mode only: each replica's levels (side -> price -> size), for a fail-over snapshot
        self.levels: dict[str, dict[str, dict[float, float]]] = {}

    def dump(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "epoch": self.epoch,
            "dirty": self.dirty,
            "leader": self.leader,
            "replicas": {k: v.dump() for k, v in self.replicas.items()},
            "held": {k: [v[0], v[1], [list(r) for r in v[2]]] for k, v in self.held.items()},
            "emitted_by": self.emitted_by,
            "ts": self.ts,
            "levels": {
                q: {side: sorted(prices.items()) for side, prices in sides.items()}
                for q, sides in self.levels.items()
            },
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> _Book:
        b = cls()
        b.seq, b.epoch, b.dirty, b.leader = data["seq"], data["epoch"], data["dirty"], data["leader"]
        b.replicas = {k: _Replica.load(v) for k, v in data["replicas"].items()}
        b.held = {k: [v[0], v[1], [tuple(r) for r in v[2]]] for k, v in data["held"].items()}
        b.emitted_by = dict(data["emitted_by"])
        b.ts = int(data["ts"])
        b.levels = {
            q: {side: {float(p): float(z) for p, z in prices} for side, prices in sides.items()}
            for q, sides in data.get("levels", {}).items()
        }
        return b


class StreamArbiter:
    """Arbitration state and logic of one stream (see the module docstring)."""

    def __init__(
        self, options: ArbitrationOptions | None = None, state: dict[str, Any] | None = None
    ) -> None:
        self.options = options or ArbitrationOptions()
        self.stats = ArbitrationStats()
        #: dataset -> newest ts_recv seen in the stream (the clock of every window)
        self.watermark: dict[str, int] = {}
        self.keys: dict[tuple[str, str, str], _Keys] = {}
        self.books: dict[tuple[str, str], _Book] = {}
        self._held = 0
        #: the unit's book table while it is arbitrated (full rows of held light rows come from it)
        self._source: pa.Table | None = None
        self._source_rows: list[tuple[Any, ...]] | None = None
        if state is not None:
            self._load(state)

    @property
    def active(self) -> bool:
        """True once the stream carried a replica's row (only then is there state to keep)."""
        return bool(self.watermark)

    # -- state -------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The state as JSON-able data (what the sink commits with a unit)."""
        return {
            "version": STATE_VERSION,
            "watermark": self.watermark,
            "keys": [[ds, ex, sym, k.dump()] for (ds, ex, sym), k in sorted(self.keys.items())],
            "books": [[ex, sym, b.dump()] for (ex, sym), b in sorted(self.books.items())],
        }

    def dumps(self) -> bytes:
        """:meth:`state` serialised (deterministic bytes)."""
        return orjson.dumps(self.state(), option=orjson.OPT_SORT_KEYS)

    def _load(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"arbitration state version {state.get('version')!r} is not {STATE_VERSION}")
        self.watermark = {k: int(v) for k, v in state["watermark"].items()}
        self.keys = {(ds, ex, sym): _Keys.load(items) for ds, ex, sym, items in state["keys"]}
        self.books = {(ex, sym): _Book.load(data) for ex, sym, data in state["books"]}
        self._held = sum(len(b.held) for b in self.books.values())

    # -- processing --------------------------------------------------------------------------------
    def process(self, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        """One unit's tables (per dataset, rows in stream order) -> what the lake gets."""
        out = dict(tables)
        events: list[tuple[Any, ...]] = []
        for dataset in sorted(tables):
            if dataset not in ARBITRATED_DATASETS:
                continue
            table = tables[dataset]
            if REPLICA_FIELD not in table.column_names:
                continue
            replicas = table.column(REPLICA_FIELD)
            if replicas.null_count == table.num_rows and not (dataset == "book" and self._held):
                continue  # no replica in this unit: untouched (the single-collector path)
            if dataset == "book":
                out[dataset] = self._book_table(table, events)
            else:
                kept = self._keyed(dataset, _rows(table))
                out[dataset] = table.take(_int64(kept))
        if events:
            extra = pa.Table.from_batches([rows_to_arrow("feed_events", events)])
            current = out.get("feed_events")
            out["feed_events"] = extra if current is None else pa.concat_tables([current, extra])
        return out

    def finish(self) -> dict[str, pa.Table]:
        """The end of the stream: what :meth:`process` still holds, given to the lake now.

        Only held resync snapshots (and the rows of their replica after them) are kept back; at the
        end of the data no replica can deliver the updates in between any more, so each becomes a
        resync of its merged book (epoch + 1, a ``merged_gap`` event), exactly what :meth:`process`
        gives once ``hold_s`` of receive time has passed. Returns ``book`` and ``feed_events`` tables
        (none when nothing was held). For a stream that has an end: the sink never calls it (its
        streams go on; a held row waits in the committed state), ``ticktape renormalise`` does after
        the last row of a replayed day (``ticktape/raw.py``)."""
        if not self._held:
            return {}
        out = _Out()
        events: list[tuple[Any, ...]] = []
        self._release(_END_NS, out, events)
        tables = {"book": pa.Table.from_batches([rows_to_arrow("book", out.extra)])}
        if events:
            tables["feed_events"] = pa.Table.from_batches([rows_to_arrow("feed_events", events)])
        return tables

    def _keyed(self, dataset: str, rows: list[tuple[Any, ...]]) -> list[int]:
        """Indices of the rows kept (every row without a replica; a replica's first copy of a key)."""
        width = base_width(dataset)
        opts = self.options
        window = int(opts.key_window_s * _NS)
        connection_sequenced = opts.connection_sequenced
        all_keys = self.keys
        kept: list[int] = []
        dups = 0
        mark = self.watermark.get(dataset)
        for i, row in enumerate(rows):
            replica = row[width]
            if replica is None:
                kept.append(i)
                continue
            ts = row[3]
            if mark is None or ts > mark:
                mark = self.watermark[dataset] = ts
            key_of = (dataset, row[0], row[1])
            keys = all_keys.get(key_of)
            if keys is None:
                keys = all_keys[key_of] = _Keys()
            key = _content_key(dataset, row, width, row[0] in connection_sequenced)
            if keys.take(key, replica, ts):
                kept.append(i)
            else:
                dups += 1
            keys.evict(mark - window, opts.max_keys, opts.min_keys)
        if dups:
            self.stats.duplicates[dataset] += dups
        return kept

    # -- book --------------------------------------------------------------------------------------
    def _book_table(self, table: pa.Table, events: list[tuple[Any, ...]]) -> pa.Table:
        """The book rows of a unit arbitrated. Decisions read only the columns they need (*light*
        rows: the book's layout with None in place of ts_exchange, side, price and size, and the row's
        index appended); the output is taken from the table by index, with the merged ts_recv, epoch
        and flags, plus the held rows (full rows, from the state) released in this unit."""
        n = table.num_rows
        needed = {i: table.column(i) for i in (0, 1, 3, 7, 8, 9, 10, 11)}
        cols = {i: (c.cast(pa.int64()) if i == 3 else c).to_pylist() for i, c in needed.items()}
        blank = [None] * n
        light = list(
            zip(
                cols[0], cols[1], blank, cols[3], blank, blank, blank, cols[7], cols[8], cols[9], cols[10],
                cols[11], range(n),
                strict=True,
            )
        )  # fmt: skip
        self._source = table
        self._source_rows = None
        out = _Out()
        try:
            self._book(light, out, events)
        finally:
            self._source = None
            self._source_rows = None
        if out.extra:
            source = pa.concat_tables([table, pa.Table.from_batches([rows_to_arrow("book", out.extra)])])
        else:
            source = table
        taken = source.take(_int64([i if i >= 0 else n - 1 - i for i in out.idx]))
        ts_type = table.schema.field("ts_recv").type
        taken = taken.set_column(3, table.schema.field(3), _int64(out.ts).cast(ts_type))
        taken = taken.set_column(9, table.schema.field(9), _int64(out.epoch))
        return taken.set_column(10, table.schema.field(10), _int64(out.flags).cast(pa.int32()))

    def _full(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """The full book row of a light one (rows held in the state are kept whole)."""
        if len(row) == 12:
            return row
        if self._source_rows is None:
            assert self._source is not None
            self._source_rows = _rows(self._source)
        return self._source_rows[row[12]]

    def _book(self, rows: list[tuple[Any, ...]], out: _Out, events: list[tuple[Any, ...]]) -> None:
        hold_ns = int(self.options.hold_s * _NS)
        connection_sequenced = self.options.connection_sequenced
        books = self.books
        # The rows of one frame (one replica's group: same symbol, seq, snapshot and epoch) follow
        # one another and share the group's decision: those after the first take it directly (the
        # same steps as _seq_row's same-group branch, without its look-ups).
        last_key: tuple[Any, ...] | None = None
        last: tuple[_Book, _Replica] | None = None
        for row in rows:
            replica = row[11]
            if replica is None:
                out.add(row, row[3], row[9], row[10])
                continue
            ts = row[3]
            mark = self.watermark.get("book")
            if mark is None or ts > mark:
                mark = self.watermark["book"] = ts
            key = (replica, row[0], row[1], row[8], row[7], row[9])
            if key == last_key and last is not None and not self._held:
                book, r = last
                if r.decision == "emit":
                    if ts < book.ts:
                        ts = book.ts
                    book.ts = ts
                    out.add(row, ts, book.epoch, row[10])
                    continue
                if r.decision == "drop":
                    continue
            last_key, last = None, None
            found = books.get((row[0], row[1]))
            if found is None:
                found = books[(row[0], row[1])] = _Book()
            book = found
            if row[8] is None or row[0] in connection_sequenced:
                self._leader_row(book, row, out, hold_ns)
            else:
                self._seq_row(book, row, out, events)
                last_key, last = key, (book, book.replicas[replica])
            if self._held:
                self._release(mark - hold_ns, out, events)

    def _emit(self, book: _Book, row: tuple[Any, ...], out: _Out, bad: bool = False) -> None:
        # ts_recv never goes back within a merged book: the lake orders rows by (symbol, ts_recv), and
        # an update cannot be in the merged book before the one it follows
        ts = row[3] if row[3] >= book.ts else book.ts
        book.ts = ts
        out.add(row, ts, book.epoch, row[10] | _BAD if bad else row[10])

    def _seq_row(self, book: _Book, row: tuple[Any, ...], out: _Out, events: list[tuple[Any, ...]]) -> None:
        replica, seq, is_snapshot, epoch = row[11], row[8], row[7], row[9]
        r = book.replicas.get(replica)
        if r is None:
            r = book.replicas[replica] = _Replica()
        group = [seq, is_snapshot, epoch]
        if group == r.group:
            if r.decision in ("emit", "emit_bad"):
                self._emit(book, row, out, r.decision == "emit_bad")
            elif r.decision == "hold":
                book.held[replica][2].append(self._full(row))
                self.stats.held_rows += 1
            return
        r.group = group
        r.last_ts = row[3]
        if is_snapshot:
            if r.chain is not None:
                r.last = r.chain
            r.chain = seq
            r.epoch = epoch
            book.held.pop(replica, None)
            if book.seq is None or book.dirty:
                book.epoch += 1
                book.seq, book.dirty = seq, False
                r.decision = "emit"
                book.emitted_by[replica] = seq
                self._emit(book, row, out)
                self._advanced(book, out, events)
            elif seq <= book.seq:
                r.decision = "drop"
                self._covered(book, replica, r, seq, row, events)
            else:
                r.decision = "hold"
                book.held[replica] = [row[3], seq, [self._full(row)]]
                self._held = sum(len(b.held) for b in self.books.values())
                self.stats.held_rows += 1
            return
        if row[10] & _BAD:
            if r.chain is not None:
                r.last = r.chain
            r.chain = None
            r.decision = "drop"
            if book.held.pop(replica, None) is not None:
                self._held = sum(len(b.held) for b in self.books.values())
            return
        prev, r.chain = r.chain, seq
        if replica in book.held:
            r.decision = "hold"
            book.held[replica][2].append(self._full(row))
            self.stats.held_rows += 1
            return
        if prev is None or book.seq is None or seq <= book.seq:
            r.decision = "drop"
            return
        if prev > book.seq:
            # this replica's chain left the merged book behind (an update no replica delivered):
            # continue as a single collector would after a gap, flagged, until the next snapshot
            if not book.dirty:
                book.dirty = True
                events.append(self._gap_event(book, row, book.seq, prev, replica))
            r.decision = "emit_bad"
        else:
            r.decision = "emit"
        book.seq = seq
        book.emitted_by[replica] = seq
        self._emit(book, row, out, r.decision == "emit_bad")
        self._advanced(book, out, events)

    def _advanced(self, book: _Book, out: _Out, events: list[tuple[Any, ...]]) -> None:
        """After the merged book moved: held replicas it caught up with follow it again."""
        if not book.held:
            return
        for replica, (_ts, snap, held) in sorted(book.held.items()):
            if book.seq is None or snap > book.seq:
                continue
            del book.held[replica]
            r = book.replicas[replica]
            self._covered(book, replica, r, snap, held[0], events)
            r.decision = "drop"
            emitting = None
            for row in held:
                if row[7]:
                    continue  # the held snapshot: the merged book is already past it
                if row[8] != emitting:
                    if row[8] <= book.seq:
                        r.decision = "drop"
                        continue
                    emitting = book.seq = book.emitted_by[replica] = row[8]
                elif r.decision != "emit":
                    continue
                r.decision = "emit"
                self._emit(book, row, out)
        self._held = sum(len(b.held) for b in self.books.values())

    def _release(self, before_ns: int, out: _Out, events: list[tuple[Any, ...]]) -> None:
        """Held snapshots nobody covered within ``hold_s``: a resync of the merged book."""
        for (_ex, _sym), book in sorted(self.books.items()):
            for replica, (ts, snap, held) in sorted(book.held.items()):
                if ts >= before_ns:
                    continue
                del book.held[replica]
                first = held[0]
                events.append(self._gap_event(book, first, book.seq, snap, replica))
                book.epoch += 1
                book.seq, book.dirty = snap, False
                r = book.replicas[replica]
                r.decision = "emit"
                for row in held:  # the snapshot, then this replica's updates after it
                    if not row[7]:
                        book.seq = row[8]
                    book.emitted_by[replica] = row[8]
                    self._emit(book, row, out)
        self._held = sum(len(b.held) for b in self.books.values())

    def _covered(
        self,
        book: _Book,
        replica: str,
        r: _Replica,
        snap: int,
        row: tuple[Any, ...],
        events: list[tuple[Any, ...]],
    ) -> None:
        """A replica resynced at ``snap`` behind the merged book: others covered its gap."""
        after = r.last
        if after is None or snap <= after:
            return
        by = sorted(q for q, s in book.emitted_by.items() if q != replica and s > after)
        if not by:
            return
        self.stats.covers += 1
        for q in by:
            detail = {"gap_replica": replica, "after_seq": after, "to_seq": snap, "replica": q}
            events.append((row[0], row[1], "book", row[3], REPLICA_COVER, _json(detail), q))

    def _gap_event(
        self, book: _Book, row: tuple[Any, ...], after: int | None, to: int | None, replica: str
    ) -> tuple[Any, ...]:
        self.stats.merged_gaps += 1
        detail = {"after_seq": after, "to_seq": to, "resync_replica": replica, "epoch": book.epoch + 1}
        return (row[0], row[1], "book", row[3], MERGED_GAP, _json(detail), None)

    def _leader_row(self, book: _Book, row: tuple[Any, ...], out: _Out, hold_ns: int) -> None:
        """Books without a comparable sequence: follow one *leader* replica. The arbiter keeps each
        replica's levels; when the leader is flagged (``MAYBE_BAD_BOOK``) or another in-sync replica
        kept sending for ``hold_s`` after the leader's last row, that replica becomes the leader: its
        current book is written as a snapshot (a resync of the merged book, epoch + 1) and its rows
        follow."""
        row = self._full(row)  # the levels need price, size and side
        replica, is_snapshot, epoch = row[11], row[7], row[9]
        r = book.replicas.get(replica)
        if r is None:
            r = book.replicas[replica] = _Replica()
        group = [row[8], is_snapshot, epoch]
        new_snapshot = is_snapshot and group != r.group
        r.group = group
        levels = book.levels.setdefault(replica, {"bid": {}, "ask": {}})
        if new_snapshot:
            levels["bid"].clear()
            levels["ask"].clear()
            r.chain, r.epoch = 0, epoch  # in sync from this snapshot
        elif row[10] & _BAD:
            r.chain = None
        leader = book.replicas.get(book.leader) if book.leader is not None else None
        if book.leader is None or leader is None:
            if new_snapshot:
                book.epoch += 1
                book.leader = replica
        elif book.leader == replica:
            if new_snapshot:
                book.epoch += 1  # the leader's own resync
        elif (
            r.chain is not None
            and (new_snapshot or levels["bid"] or levels["ask"])
            and (leader.chain is None or r.last_ts - leader.last_ts > hold_ns)
        ):
            book.epoch += 1
            book.leader = replica
            if not new_snapshot:
                self._synthesize(book, row, levels, out)
        side = levels.get(row[4])
        if side is not None:
            if row[6] == 0:
                side.pop(row[5], None)
            else:
                side[row[5]] = row[6]
        r.last_ts = row[3]
        if book.leader == replica:
            self._emit(book, row, out)

    def _synthesize(
        self, book: _Book, row: tuple[Any, ...], levels: dict[str, dict[float, float]], out: _Out
    ) -> None:
        """The new leader's book as snapshot rows (before ``row``, its first row as the leader)."""
        self.stats.failovers += 1
        for side, reverse in (("bid", True), ("ask", False)):
            for price in sorted(levels[side], reverse=reverse):
                snap = (row[0], row[1], None, row[3], side, price, levels[side][price], True, row[8],
                        book.epoch, int(Flags.SNAPSHOT), row[11])  # fmt: skip
                self._emit(book, snap, out)


class _Out:
    """The book rows a unit gives the lake, in order: an index into the unit's table (or, negative,
    into ``extra``: held rows released) and the merged ts_recv, epoch and flags of each."""

    __slots__ = ("epoch", "extra", "flags", "idx", "ts")

    def __init__(self) -> None:
        self.idx: list[int] = []
        self.ts: list[int] = []
        self.epoch: list[int] = []
        self.flags: list[int] = []
        self.extra: list[tuple[Any, ...]] = []

    def add(self, row: tuple[Any, ...], ts: int, epoch: int, flags: int) -> None:
        if len(row) == 13:  # a light row of the unit's table
            self.idx.append(row[12])
        else:  # a full row (held in the state)
            self.extra.append((*row[:3], ts, *row[4:9], epoch, flags, *row[11:]))
            self.idx.append(-len(self.extra))
        self.ts.append(ts)
        self.epoch.append(epoch)
        self.flags.append(flags)


def _int64(values: list[int]) -> pa.Array:
    """An int64 array from Python ints, through NumPy (``pa.array`` of Python objects would make
    pyarrow import pandas: seconds of a sink's start-up; storage/lake.py does the same)."""
    data = np.fromiter(values, dtype=np.int64, count=len(values))
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(data)])


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """A table's rows as tuples in schema order (timestamps as integer ns)."""
    columns = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        columns.append(col.to_pylist())
        del name
    return list(zip(*columns, strict=True))


def _json(detail: dict[str, Any]) -> str:
    return orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode()

"""The exchange contract: what every registered venue does, checked without venue-specific code.

Each venue runs its own simulator and a real :class:`Collector` over a loopback websocket, on its demo
symbols, through the faults its dialect says it can detect (a lost update where books are sequenced, a
wrong checksum where the venue sends one) and a disconnect; then the live run must equal a replay of
its own capture, carry no trade twice, and keep both symbols flowing. Hostile frames built from the
venue's own frames must be counted, never raised. A venue's own test file holds only what is particular
to it (above all its real recordings).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.base import DERIVATIVE_CHANNELS, ExchangeDialect
from collectors.capture import read_capture, replay_capture
from collectors.connection import Collector
from collectors.events import SYMBOL_RE
from collectors.registry import exchange_ids, get_dialect
from collectors.simulator import SimulatorConfig
from schemas import DATASET_CHANNELS, RecordBuffer
from tests.collectors.test_connection import FAST

EXCHANGES = exchange_ids()


class Live:
    """A venue's simulator and a collector on its demo symbols, recording everything delivered."""

    def __init__(self, dialect: ExchangeDialect, capture: Path) -> None:
        self.dialect = dialect
        self.natives = tuple(dialect.demo_symbols)
        self.sim = dialect.simulator(SimulatorConfig(symbols=self.natives, rate_hz=40.0))
        self.got = RecordBuffer()
        self.capture = capture
        self.collector: Collector | None = None

    @property
    def symbols(self) -> list[str]:
        """The demo symbols' normalised names."""
        return [self.dialect.normalise_symbol(n) for n in self.natives]

    async def start(self) -> None:
        await self.sim.start()

        async def sink(batch: RecordBuffer) -> None:
            self.got.extend(batch)

        self.collector = Collector(
            self.dialect,
            list(self.natives),
            sink,
            ws_url=self.sim.ws_url,
            rest_url=self.sim.rest_url,
            settings=FAST,
            capture_path=self.capture,
        )
        await self.collector.start()
        await self.collector.wait_connected()

    async def stop(self) -> None:
        if self.collector is not None:
            await self.collector.stop()
        await self.sim.stop()

    def events(self, kind: str, symbol: str | None = None) -> list[tuple[Any, ...]]:
        return [e for e in self.got.feed_events if e[4] == kind and (symbol is None or e[1] == symbol)]

    def count(self, dataset: str, symbol: str) -> int:
        return sum(1 for r in self.got.rows(dataset) if r[1] == symbol)

    async def until(self, what: str, predicate: Callable[[], bool], timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.dialect.exchange_id}: {what} not within {timeout_s} s; "
                    f"last events: {self.got.feed_events[-8:]}"
                )
            await asyncio.sleep(0.05)


def _flowing(live: Live, symbol: str, since: dict[str, int]) -> bool:
    return live.count("book", symbol) > since[symbol] + 5


def _rows_by_capture(live: Live) -> RecordBuffer:
    """Replays every capture file the collector wrote (one per connection) and merges the records."""
    files = sorted(live.capture.parent.glob(live.capture.name.split(".")[0] + "*"))
    assert files, "the collector wrote no capture"
    merged = RecordBuffer()
    for path in files:
        merged.extend(replay_capture(live.dialect.new_normaliser(), path))
    return merged


def _same_rows(live_rows: list[tuple[Any, ...]], replayed: list[tuple[Any, ...]], single_file: bool) -> bool:
    if single_file:
        return live_rows == replayed
    # several connections interleave differently live than file by file: compare as multisets
    return Counter(live_rows) == Counter(replayed)


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_live_run_through_faults_equals_its_replay(exchange: str, tmp_path: Path) -> None:
    dialect = get_dialect(exchange)
    live = Live(dialect, tmp_path / "live.capture.gz")
    await live.start()
    try:
        first, second = live.symbols[:2]
        for sym in live.symbols:
            await live.until(
                f"book, bbo and trades of {sym}",
                lambda s=sym: live.count("book", s) > 10 and live.count("trades", s) > 0,
            )
        if "bbo" in dialect.channels:
            await live.until(
                "bbo of every demo symbol", lambda: all(live.count("bbo", s) > 0 for s in live.symbols)
            )
        for channel in set(dialect.channels) & set(DERIVATIVE_CHANNELS):
            dataset = next(d for d, c in DATASET_CHANNELS.items() if c == channel)
            await live.until(
                f"{channel} rows of every demo symbol",
                lambda d=dataset: all(live.count(d, s) > 0 for s in live.symbols),
            )

        if dialect.sequenced_book or dialect.book_checksum:
            # a lost update: a gap where books are sequenced, else the next checksum cannot match
            lost = "gap" if dialect.sequenced_book else "checksum_mismatch"
            live.sim.faults.drop_updates[live.natives[0]] = 1
            await live.until(f"{lost} then resync after a lost update", lambda: live.events("resync", first))
            assert len(live.events(lost, first)) == 1
            since = {s: live.count("book", s) for s in live.symbols}
            await live.until(
                f"{second} flowing after {first}'s {lost}", lambda: _flowing(live, second, since)
            )
            if dialect.gap_scope == "symbol":
                assert live.events(lost, second) == [] and live.events("resync", second) == []

        if dialect.book_checksum:
            resyncs = len(live.events("resync", second))
            live.sim.faults.corrupt_checksums[live.natives[1]] = 1
            await live.until(
                "checksum_mismatch then resync",
                lambda: (
                    live.events("checksum_mismatch", second) and len(live.events("resync", second)) > resyncs
                ),
            )

        assert live.collector is not None
        resyncs_before = {s: len(live.events("resync", s)) for s in live.symbols}
        connects = live.collector.stats.connects
        await live.sim.disconnect_all()
        await live.until(
            "reconnect and a new snapshot of every symbol",
            lambda: (
                live.collector is not None
                and live.collector.stats.connects > connects
                and all(len(live.events("resync", s)) > resyncs_before[s] for s in live.symbols)
            ),
        )
        since = {s: live.count("book", s) for s in live.symbols}
        await live.until(
            "books flowing after the reconnect", lambda: all(_flowing(live, s, since) for s in live.symbols)
        )
    finally:
        await live.stop()

    # every book row after a resync belongs to a later epoch, and epochs never go backwards per symbol
    for sym in live.symbols:
        epochs = [r[9] for r in live.got.book if r[1] == sym]
        assert epochs == sorted(epochs), f"{sym}: book epochs go backwards"
        assert epochs[-1] >= 1, f"{sym}: the reconnect did not start a new epoch"

    # no trade twice across the reconnect
    for sym in live.symbols:
        ids = [r[4] for r in live.got.trades if r[1] == sym and r[4] is not None]
        dupes = [i for i, n in Counter(ids).items() if n > 1]
        assert not dupes, f"{sym}: trade ids delivered twice: {dupes[:5]}"

    # capture then replay gives exactly the live records
    files = list(tmp_path.glob("live*"))
    replayed = _rows_by_capture(live)
    single = len(files) == 1
    for ds in DATASET_CHANNELS:
        assert _same_rows(live.got.rows(ds), replayed.rows(ds), single), f"{ds}: replay differs from live"
    normaliser_events = [e for e in live.got.feed_events if e[2] != "connection"]
    assert _same_rows(normaliser_events, replayed.feed_events, single)


# -- hostile frames ---------------------------------------------------------------------------------

#: Replacements for a scalar value somewhere in a venue's own frame.
HOSTILE_VALUES: tuple[Any, ...] = (
    None,
    True,
    "",
    "NaN",
    "-1",
    "1e308",
    1.7e308,
    -5,
    18446744073709551615,
    "../../etc",
    [],
    {},
)
GARBAGE: tuple[str | bytes, ...] = (
    "",
    "{",
    "null",
    "[]",
    "42",
    '"text"',
    b"\xff\xfe\xfd",
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 5_000 + "1" + "}" * 5_000,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every scalar of a decoded JSON value."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _paths(v, (*prefix, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _paths(v, (*prefix, i))]
    return [prefix]


def _replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy: Any = dict(node) if isinstance(node, dict) else list(node)
    copy[head] = _replace(node[head], rest, value)
    return copy


async def _sample_frames(dialect: ExchangeDialect, tmp_path: Path) -> list[tuple[int, bytes]]:
    """A few seconds of the venue's own frames, as its collector captured them."""
    live = Live(dialect, tmp_path / "frames.capture")
    await live.start()
    try:
        await live.until(
            "trades of every demo symbol",
            lambda: all(
                live.count("trades", s) > 1 and (live.count("bbo", s) > 1 or "bbo" not in dialect.channels)
                for s in live.symbols
            ),
        )
    finally:
        await live.stop()
    frames: list[tuple[int, bytes]] = []
    for path in sorted(tmp_path.glob("frames*")):
        frames.extend(item for item in read_capture(path) if isinstance(item, tuple))
    return frames


def _shape(decoded: Any) -> tuple[Any, ...]:
    """A message's kind: its keys, and the values of short textual fields (channel, type, action)."""
    if not isinstance(decoded, dict):
        return ("list", len(decoded)) if isinstance(decoded, list) else (type(decoded).__name__,)
    return tuple(
        sorted(
            (k, v if isinstance(v, str) and len(v) < 40 and not any(c.isdigit() for c in v) else "")
            for k, v in decoded.items()
        )
    )


def _assert_sane(out: RecordBuffer, exchange: str) -> None:
    for row in out.trades:
        assert SYMBOL_RE.match(row[1]) and ".." not in row[1], row
        assert math.isfinite(row[5]) and row[5] > 0 and math.isfinite(row[6]) and row[6] >= 0, row
    for row in out.book:
        assert SYMBOL_RE.match(row[1]) and ".." not in row[1], row
        assert math.isfinite(row[5]) and row[5] > 0 and math.isfinite(row[6]) and row[6] >= 0, row
    for row in out.bbo:
        assert SYMBOL_RE.match(row[1]) and ".." not in row[1], row
        for value in row[4:8]:
            assert value is None or (math.isfinite(value) and value >= 0), row
    for row in out.feed_events:
        assert row[0] == exchange
        orjson.loads(row[5])


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_hostile_frames_are_counted_never_raised(exchange: str, tmp_path: Path) -> None:
    dialect = get_dialect(exchange)
    frames = await _sample_frames(dialect, tmp_path)
    assert frames, "the simulator sent nothing"
    normaliser = dialect.new_normaliser()
    out = RecordBuffer()
    for ts, frame in frames:  # bring books in sync, so mutations hit the update paths too
        normaliser.on_frame(ts, frame, out)
    ts_next = frames[-1][0] + 1
    errors_before = normaliser.parse_errors
    for garbage in GARBAGE:
        normaliser.on_frame(ts_next, garbage, out)
        ts_next += 1
    assert normaliser.parse_errors - errors_before >= len(GARBAGE) - 1  # "" may count as a keepalive

    # every scalar of a few of the venue's own frames (one per kind of message), replaced in turn
    by_shape: dict[tuple[Any, ...], Any] = {}
    for _, frame in frames:
        try:
            decoded = orjson.loads(frame)
        except orjson.JSONDecodeError:
            continue
        shape = _shape(decoded)
        by_shape.setdefault(shape, decoded)
    mutated = 0
    for decoded in list(by_shape.values())[:12]:
        for path in _paths(decoded)[:40]:
            for value in HOSTILE_VALUES:
                # stdlib json writes what orjson refuses (integers past 64 bits, NaN)
                frame = json.dumps(_replace(decoded, path, value), separators=(",", ":")).encode()
                normaliser.on_frame(ts_next, frame, out)  # must not raise
                ts_next += 1
                mutated += 1
    assert mutated > 100
    _assert_sane(out, exchange)

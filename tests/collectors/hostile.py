"""Hostile frames for every registered exchange (issue 12): real and simulated captures, mutated.

Frames come from the real recordings in ``../shared/samples/<id>/`` (every registered exchange that has
one) and from a capture that a real :class:`collectors.connection.Collector` wrote while connected to
the exchange's simulator over a websocket (so they are exactly what the simulator renders, REST
snapshots included). Mutations are chosen by *value*: a JSON leaf is a price, a sequence number, a
trade id or an exchange time when its value equals that field of a row the clean frame produced, so
the same code mutates every venue's dialect without knowing it.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from collectors.base import Normaliser
from collectors.capture import CaptureError, CaptureSubscription, read_capture
from collectors.connection import Collector, ConnectionSettings
from collectors.events import iso_to_ns
from collectors.registry import exchange_ids, get_dialect
from collectors.simulator import SimulatorConfig
from schemas import Flags, RecordBuffer, field_names

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples"
DAY_NS = 86_400 * 1_000_000_000
MAX_PRICE = 1e12
MAX_SIZE = 1e15
INT64_MAX = (1 << 63) - 1

Item = tuple[int, bytes] | CaptureSubscription | None


@cache
def real_captures(exchange: str) -> list[Path]:
    """The real recordings of a registered exchange (none for most).

    A venue's directory may hold a recording of another of its markets (``bitget/`` holds the futures
    one, ``bitget_cryptofeed_2``): the recordings of the venue family's directories (``bitget`` for
    ``bitget-futures``) that the exchange's own normaliser makes rows from are its recordings, the
    others are not (replay refuses a capture whose frames are not the exchange's).
    """
    own = sorted((SAMPLES / exchange).glob("*.capture.gz")) if (SAMPLES / exchange).is_dir() else []
    family = exchange.split("-")[0]
    theirs: list[Path] = []
    if family != exchange and family in exchange_ids() and (SAMPLES / family).is_dir():
        # a family recording is this exchange's when it is not the family exchange's own data
        theirs = [p for p in (SAMPLES / family).glob("*.capture.gz") if not _makes_rows(family, p)]
    return sorted(p for p in own + theirs if _makes_rows(exchange, p))


@cache
def _makes_rows(exchange: str, path: Path) -> bool:
    buffers = feed(get_dialect(exchange).make_normaliser(), read_items(path, 1500))
    return any(b.trades or b.book or b.bbo for b in buffers)


#: A simulator capture holds at least this many output batches with market rows, and with trades (a batch
#: holds the rows of one frame or more): room for every mutation kind with clean frames between them
#: (tests/collectors/test_hostile.py), however slowly a loaded machine lets the simulator tick. A fixed
#: recording time gave a capture too short for every kind under load.
CAPTURE_ROW_BATCHES = 80
CAPTURE_TRADE_BATCHES = 12
CAPTURE_MAX_SECONDS = 60.0


async def _record(exchange: str, path: Path, seconds: float) -> None:
    dialect = get_dialect(exchange)
    sim = dialect.simulator(SimulatorConfig(symbols=dialect.demo_symbols, rate_hz=60.0))
    await sim.start()
    counts = {"rows": 0, "trades": 0}
    enough = asyncio.Event()

    async def count(batch: RecordBuffer) -> None:
        if batch.trades or batch.book or batch.bbo:
            counts["rows"] += 1
        if batch.trades:
            counts["trades"] += 1
        if counts["rows"] >= CAPTURE_ROW_BATCHES and counts["trades"] >= CAPTURE_TRADE_BATCHES:
            enough.set()

    collector = Collector(
        dialect,
        dialect.demo_symbols,
        count,
        ws_url=sim.ws_url,
        rest_url=sim.rest_url,
        capture_path=path,
        settings=ConnectionSettings(),
    )
    try:
        await collector.start()
        await collector.wait_connected()
        await asyncio.sleep(seconds)
        async with asyncio.timeout(CAPTURE_MAX_SECONDS):
            await enough.wait()
    finally:
        await collector.stop()
        await sim.stop()


@cache
def simulator_capture(exchange: str, directory: Path, seconds: float = 1.5) -> Path:
    """A capture of the exchange's simulator written by a real collector (recorded once per session).

    A venue whose dialect spreads its streams over several connections (htx: the book on connections
    of its own) gets one capture per connection (``<stem>.connN.capture``); they are merged here in
    receive order under one subscription line, so one normaliser sees everything the collector saw,
    as the mutations need trades, book and bbo frames of one capture.
    """
    path = directory / f"sim-{exchange}.capture"
    if not path.exists():
        asyncio.run(_record(exchange, path, seconds))
        if not path.exists():
            parts = sorted(directory.glob(f"sim-{exchange}.conn*.capture"))
            assert parts, f"{exchange}: the collector wrote no capture"
            items = [read_items(p) for p in parts]
            subs = [i for its in items for i in its if isinstance(i, CaptureSubscription)]
            frames = sorted((i for its in items for i in its if isinstance(i, tuple)), key=lambda f: f[0])
            symbols = tuple(sorted({s for sub in subs for s in sub.symbols}))
            write_capture(path, [CaptureSubscription(0, symbols), *frames])
    return path


def read_items(path: Path, limit: int | None = None) -> list[Item]:
    """Frames, subscriptions and disconnects of a capture (at most ``limit`` frames)."""
    items: list[Item] = []
    frames = 0
    for item in read_capture(path, meta=True):
        if isinstance(item, CaptureError):
            continue
        items.append(item)
        if isinstance(item, tuple):
            frames += 1
            if limit is not None and frames >= limit:
                break
    return items


def feed(normaliser: Normaliser, items: list[Item]) -> list[RecordBuffer]:
    """The records of each item, in order (one buffer per item)."""
    out: list[RecordBuffer] = []
    last_ts = 0
    for item in items:
        buf = RecordBuffer()
        if isinstance(item, tuple):
            last_ts = item[0]
            normaliser.on_frame(item[0], item[1], buf)
        elif isinstance(item, CaptureSubscription):
            normaliser.subscribe(item.symbols)
        else:
            normaliser.on_disconnect(last_ts, buf)
        out.append(buf)
    return out


def write_capture(path: Path, items: list[Item]) -> None:
    """Writes items in the capture format (``# subscription`` lines included)."""
    with open(path, "wb") as fh:
        for item in items:
            if isinstance(item, tuple):
                fh.write(b"%d %s\n" % item)
            elif isinstance(item, CaptureSubscription):
                fh.write(b"# subscription " + orjson.dumps({"symbols": list(item.symbols)}) + b"\n")
            else:
                fh.write(b"\n")


# -- what a clean frame's values mean -------------------------------------------------------------


@dataclass
class Meaning:
    """Values of the rows one clean frame produced, by role."""

    prices: set[float] = field(default_factory=set)
    bids: set[float] = field(default_factory=set)
    asks: dict[float, float] = field(default_factory=dict)  # bid -> ask of the same bbo row
    ints: set[int] = field(default_factory=set)  # sequence numbers and integer trade ids
    times: set[int] = field(default_factory=set)  # exchange times (ns)
    symbols: set[str] = field(default_factory=set)  # normalised symbols of the rows


def meaning(buf: RecordBuffer) -> Meaning:
    m = Meaning()
    m.symbols = {r[1] for ds in ("trades", "bbo", "book") for r in buf.rows(ds) if r[1] is not None}
    for r in buf.trades:
        m.prices.add(r[5])
        if r[4] is not None and r[4].isdigit():
            m.ints.add(int(r[4]))
        if r[2] is not None:
            m.times.add(r[2])
    for r in buf.bbo:
        if r[4] is not None and r[6] is not None:
            m.bids.add(r[4])
            m.asks[r[4]] = r[6]
        if r[8] is not None:
            m.ints.add(r[8])
        if r[2] is not None:
            m.times.add(r[2])
    for r in buf.book:
        m.prices.add(r[5])
        if r[8] is not None:
            m.ints.add(r[8])
        if r[2] is not None:
            m.times.add(r[2])
    m.prices |= m.bids | set(m.asks.values())
    return m


def _leaves(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, (*path, i))
    else:
        yield path, obj


def _rename(obj: Any, base: str, new: str) -> Any:
    """``obj`` with ``base`` (either case) renamed ``new`` in every string value and ``base`` in keys."""
    if isinstance(obj, dict):
        return {k.replace(base, new): _rename(v, base, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rename(v, base, new) for v in obj]
    if isinstance(obj, str):
        return obj.replace(base, new).replace(base.lower(), new.lower())
    return obj


def _replace(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        return {k: (_replace(v, rest, value) if k == head else v) for k, v in obj.items()}
    return [(_replace(v, rest, value) if i == head else v) for i, v in enumerate(obj)]


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _time_ns(value: Any) -> int | None:
    """The ns a leaf stands for if it is an exchange time (ms/us/ns integer or RFC 3339 text)."""
    if isinstance(value, str) and len(value) >= 20 and value[4:5] == "-":
        try:
            return iso_to_ns(value)
        except ValueError:
            return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _is_time(value: Any, times: set[int]) -> bool:
    t = _time_ns(value)
    if t is None:
        return False
    return any(t * f in times for f in (1_000_000, 1_000, 1)) or (isinstance(value, str) and t in times)


#: Mutations whose frames no parser may accept: each must be a parse_error keeping the frame.
REJECTED = (
    "int_beyond_64_bits",
    "bool_for_int",
    "nested_100000_deep",
    "price_1_7e308",
    "bid_1e308",
    "dotdot",
)
#: Mutations that a parser accepts with a flag or an event (or drops, counted).
FLAGGED = ("crossed_bbo", "ts_1970", "ts_far_future", "unsubscribed_symbol")
MUTATIONS = REJECTED + FLAGGED


def _time_value(original: Any, ns: int) -> Any:
    if isinstance(original, str) and not original.isdigit():
        return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    t = _time_ns(original)
    assert t is not None
    for unit in (1_000_000, 1_000, 1):  # keep the leaf's own unit (ms, us or ns: a time near now in ns)
        if 10**17 < t * unit < 10**19:
            value = ns // unit
            return str(value) if isinstance(original, str) else value
    return ns


B64 = b"b64:"


def frame_bytes(frame: bytes) -> bytes:
    """What the venue sent: a binary frame is captured as ``b64:`` + base64 (DESIGN.md)."""
    return base64.b64decode(frame[len(B64) :]) if frame.startswith(B64) else frame


#: A same-length stand-in for a price: 1.7e308 spelled with as many characters as the price it replaces.
def _huge_of_length(n: int) -> bytes:
    return b"1.7" + b"0" * (n - 7) + b"e308"


def mutate_binary(kind: str, raw: bytes, m: Meaning, bases: tuple[str, ...]) -> bytes | None:
    """A binary (protobuf) frame with one hostile change, or None when ``kind`` cannot apply.

    A length-prefixed encoding stays well-formed only if no field changes length: names and decimal
    texts are replaced by ones of the same length (``BTC`` -> ``../`` or ``ZZQ``; ``64999.99`` ->
    ``1.70e308``). The integer and JSON-structure kinds do not apply to such frames.
    """
    if kind in ("unsubscribed_symbol", "dotdot"):
        for base in bases:
            if base.encode() in raw:
                stand_in = ("Z" * (len(base) - 1) + "Q") if kind == "unsubscribed_symbol" else ("../" + base)
                return raw.replace(base.encode(), stand_in[: len(base)].encode())
        return None
    if kind == "price_1_7e308":
        new = re.sub(
            rb"\d+\.\d+",
            lambda t: _huge_of_length(len(t[0])) if len(t[0]) >= 7 and float(t[0]) in m.prices else t[0],
            raw,
        )
        return new if new != raw else None
    return None


def mutate(kind: str, frame: bytes, m: Meaning, bases: tuple[str, ...]) -> bytes | None:
    """``frame`` with one hostile change of ``kind``, or None when the frame has nothing to change."""
    # The bases of the frame's own rows come first: a venue that spells a market quote first (Upbit's
    # "BTC-ITAM") must get its base renamed (an unlisted market), not its quote (no market code at all).
    own = tuple(sorted({s.split("-")[0] for s in m.symbols if "-" in s and len(s.split("-")[0]) >= 3}))
    bases = (*own, *bases)
    if frame.startswith(B64):
        new = mutate_binary(kind, frame_bytes(frame), m, bases)
        return None if new is None else B64 + base64.b64encode(new)
    if kind in ("unsubscribed_symbol", "dotdot"):
        for base in bases:
            if base.encode() in frame:
                new = "ZZZQ" if kind == "unsubscribed_symbol" else "../" + base
                try:
                    msg = orjson.loads(frame)
                except orjson.JSONDecodeError:
                    return frame.replace(base.encode(), new.encode()).replace(
                        base.lower().encode(), new.lower().encode()
                    )
                # JSON: in names only (string values, and keys spelled in upper case), so the
                # lower-case base never lands inside a key word ("eth" in "method")
                return orjson.dumps(_rename(msg, base, new))
        return None
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    # Every leaf that plays the role is changed (a venue may repeat a value in a field it ignores).
    targets: list[tuple[tuple[Any, ...], Any]] = []
    for path, v in _leaves(msg):
        value: Any = None
        if kind in ("int_beyond_64_bits", "bool_for_int"):
            # a JSON integer that is a sequence, an integer trade id or a time; digits in a string
            # only when they are a time (a trade id sent as text is text: any digits are fine)
            n = int(v) if isinstance(v, str) and v.isdigit() and len(v) < 30 else v
            role = _is_time(n, m.times) or (n in m.ints and not isinstance(v, str))
            if isinstance(n, int) and not isinstance(n, bool) and role:
                huge: Any = "18446744073709551615" if isinstance(v, str) else 18446744073709551615
                value = True if kind == "bool_for_int" else huge
        elif kind in ("price_1_7e308", "nested_100000_deep"):
            if _as_float(v) in m.prices and _as_float(v) != 0.0:
                value = "1.7e308" if isinstance(v, str) else 1.7e308
        elif kind in ("bid_1e308", "crossed_bbo"):
            x = _as_float(v)
            if x is not None and x in m.asks and m.asks[x] != x:
                crossed = m.asks[x] * 1.01 if kind == "crossed_bbo" else 1e308
                value = repr(crossed) if isinstance(v, str) else crossed
        elif kind in ("ts_1970", "ts_far_future") and _is_time(v, m.times):
            ns = 1_000_000_000 if kind == "ts_1970" else 4_102_444_800 * 1_000_000_000  # 2100-01-01
            value = _time_value(v, ns)
        if value is not None:
            targets.append((path, value))
    if not targets:
        return None
    if kind == "nested_100000_deep":
        text = orjson.dumps(_replace(msg, targets[0][0], "@@DEEP@@"))
        return text.replace(b'"@@DEEP@@"', b"[" * 100_000 + b"]" * 100_000)
    for path, value in targets:
        msg = _replace(msg, path, value)
    return orjson.dumps(msg)


def bases_of(exchange: str) -> tuple[str, ...]:
    """Base assets of the exchange's demo symbols (they appear in its frames)."""
    dialect = get_dialect(exchange)
    return (*(dialect.normalise_symbol(s).split("-")[0] for s in dialect.demo_symbols), "ETH", "BTC")


# -- what may be stored ---------------------------------------------------------------------------


def absurd(dataset: str, row: tuple[Any, ...], subscribed: frozenset[str] | None) -> str | None:
    """Why a stored row is absurd (None when it is not)."""
    symbol = row[1]
    if symbol is not None and (".." in symbol or "/" in symbol):
        return "symbol escapes the lake"
    if dataset in ("trades", "book", "bbo") and subscribed is not None and symbol not in subscribed:
        return f"unsubscribed symbol {symbol}"
    # flags by name: rows read from the lake end with the replica column (null for one collector)
    names = field_names(dataset)
    ts_exchange, ts_recv, flags = row[2], row[3], row[names.index("flags")] if "flags" in names else 0
    if (
        dataset != "feed_events"
        and ts_exchange is not None
        and abs(ts_recv - ts_exchange) >= DAY_NS
        and not flags & Flags.BAD_TS_EXCHANGE
        # history the venue replays on subscribe (SNAPSHOT) may be days old: OUTDATED, not a bad clock
        and not (flags & Flags.SNAPSHOT and flags & Flags.OUTDATED and ts_exchange < ts_recv)
    ):
        return "exchange time a day away, unflagged"
    if dataset == "trades" and not (0 < row[5] < MAX_PRICE and 0 < row[6] < MAX_SIZE):
        return "trade price/size out of bounds"
    if dataset == "book" and not (0 < row[5] < MAX_PRICE and 0 <= row[6] < MAX_SIZE):
        return "book level out of bounds"
    if dataset == "bbo":
        for p, s in ((row[4], row[5]), (row[6], row[7])):
            if p is not None and not (0 < p < MAX_PRICE and (s is None or 0 <= s < MAX_SIZE)):
                return "bbo side out of bounds"
        crossed = row[4] is not None and row[6] is not None and row[4] >= row[6]
        if crossed and not flags & Flags.MAYBE_BAD_BOOK:
            return "crossed bbo unflagged"
    for i in (8,) if dataset in ("book", "bbo") else ():
        if row[i] is not None and not (isinstance(row[i], int) and abs(row[i]) <= INT64_MAX):
            return "sequence beyond int64"
    return None


def registered_with_samples() -> list[tuple[str, Path]]:
    """(exchange, recording) for every registered exchange that has a real recording."""
    return [(ex, p) for ex in exchange_ids() for p in real_captures(ex)]

"""Feed events (the ``feed_events`` dataset) and the validation helpers that produce parse errors.

Hostile input (issue 12): everything a frame carries is validated here or in the shared row builders
before it reaches Arrow or Avro. :func:`decode_json` is the one guarded decode path of every venue
(size and nesting limits, no ``RecursionError`` can escape); :func:`check_int64` rejects integers
that do not fit a ``long`` column and booleans where an integer is expected; :class:`Limits` holds the
sanity bounds of prices, sizes and exchange times (configurable in ``[thresholds]``, passed down
through ``DialectOptions``); :class:`EventThrottle` rate-limits events that a hostile feed could
repeat on every frame, deterministically (by ``ts_recv``), so a replay records the live run's events.
"""

from __future__ import annotations

import calendar as _calendar
import datetime as _dt
import importlib
import os
import re
from typing import Any

import orjson

from schemas import RecordBuffer

#: Longest frame kept verbatim in a parse_error event; longer frames are kept truncated (and say so).
MAX_KEPT_FRAME_BYTES = 256 * 1024

#: Range of an Avro ``long`` / Arrow ``int64`` column.
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
#: JSON frames nested deeper than this are parse errors (no venue nests more than a few levels).
MAX_JSON_DEPTH = 64
#: Default sanity bounds (``[thresholds]`` max_price / max_size / max_ts_skew_s override them).
DEFAULT_MAX_PRICE = 1e12
DEFAULT_MAX_SIZE = 1e15
DEFAULT_MAX_TS_SKEW_NS = 86_400 * 1_000_000_000

# Normalised symbols: letters, digits, '-', '_', '.'; no path separators, no "..".
SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{0,63}$")


class ParseError(ValueError):
    """A frame that cannot be normalised. Becomes a ``parse_error`` feed event, never a crash."""

    def __init__(self, reason: str, symbol: str | None = None, channel: str = "unknown") -> None:
        super().__init__(reason)
        self.reason = reason
        self.symbol = symbol
        self.channel = channel


class Limits:
    """Sanity bounds of one normaliser: prices in ``(0, max_price)``, sizes in ``[0, max_size)``, and
    exchange times within ``max_ts_skew_ns`` of the receive time (beyond it: kept, flagged, evented).

    Mutable on purpose: a normaliser creates one and hands the same object to its books, so that
    :meth:`Normaliser.configure <collectors.base.Normaliser.configure>` reaches all of them.
    """

    __slots__ = ("max_price", "max_size", "max_ts_skew_ns")

    def __init__(
        self,
        max_price: float = DEFAULT_MAX_PRICE,
        max_size: float = DEFAULT_MAX_SIZE,
        max_ts_skew_ns: int = DEFAULT_MAX_TS_SKEW_NS,
    ) -> None:
        self.max_price = max_price
        self.max_size = max_size
        self.max_ts_skew_ns = max_ts_skew_ns

    def update(self, other: Limits) -> None:
        """Takes the bounds of ``other`` (in place: every holder of this object sees them)."""
        self.max_price = other.max_price
        self.max_size = other.max_size
        self.max_ts_skew_ns = other.max_ts_skew_ns

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Limits):
            return NotImplemented
        return (self.max_price, self.max_size, self.max_ts_skew_ns) == (
            other.max_price,
            other.max_size,
            other.max_ts_skew_ns,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Limits(max_price={self.max_price!r}, max_size={self.max_size!r}, max_ts_skew_ns={self.max_ts_skew_ns})"


def check_int64(value: Any, what: str, symbol: str | None = None, channel: str = "unknown") -> int:
    """Returns ``value`` if it is an integer (not a boolean) that fits an int64 column, else :class:`ParseError`."""
    if value.__class__ is not int or not INT64_MIN <= value <= INT64_MAX:
        raise ParseError(f"{what} is not a 64-bit integer: {str(value)[:40]!r}", symbol, channel)
    return value


_PAIR = re.compile(rb"\[\]|\{\}")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
#: A JSON string (escapes included), or its unterminated rest up to the end of the frame.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_OPENS = frozenset(b"[{")

#: The compiled guard (``collectors._booknative.json_too_deep``), or None: the reference below serves.
#: ``collectors.book.use_implementation`` switches it with the book engine; ``TICKTAPE_PURE_PYTHON=1``
#: selects the reference from the start.
_native_too_deep: Any = None
if os.environ.get("TICKTAPE_PURE_PYTHON", "") in ("", "0"):
    try:
        _native_too_deep = importlib.import_module(f"{__package__}._booknative").json_too_deep
    except (ImportError, AttributeError):  # not built: make install says why
        _native_too_deep = None


def json_too_deep(frame: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``frame`` nests JSON containers deeper than ``limit``.

    Brackets inside strings do not count (a backslash escapes the next byte there). For valid JSON this
    is exactly "the decoded value is nested deeper than ``limit``". Any bytes are accepted: a closing
    bracket without an opening one ends the scan with False (the frame is malformed; the decoder says
    so), and a string left open runs to the end. One pass in C when the extension is built
    (``collectors/_booknative.c``), otherwise :func:`json_too_deep_reference`; the two are held
    equal by ``tests/collectors/test_native_checksum.py``.
    """
    native = _native_too_deep
    if native is not None and type(frame) is bytes and type(limit) is int and 0 <= limit < 2**31:
        return bool(native(frame, limit))
    return json_too_deep_reference(frame, limit)


def json_too_deep_reference(frame: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """:func:`json_too_deep` in Python (the reference of the compiled one).

    Fewer than ``limit`` opening brackets cannot nest deeper. Otherwise strings are cut out and the
    brackets left are reduced pass by pass (each pass removes the innermost ``[]``/``{}`` pairs, so
    a sequence gone within ``limit`` passes is balanced and at most ``limit`` deep), in C; anything
    else (deep, or unbalanced) is settled by walking the brackets one by one.
    """
    if frame.count(b"[") + frame.count(b"{") <= limit:
        return False
    brackets = (_STRING.sub(b"", frame) if b'"' in frame else bytes(frame)).translate(None, _NOT_BRACKET)
    rest = brackets
    for _ in range(limit):
        rest, n = _PAIR.subn(b"", rest)
        if not rest:
            return False
        if not n:
            break
    depth = 0
    for byte in brackets:
        if byte in _OPENS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
            if depth < 0:
                return False
    return False


def decode_json(frame: str | bytes, loads: Any = orjson.loads, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The one guarded JSON decode of every venue: :class:`ParseError` for malformed JSON, invalid
    UTF-8 or nesting deeper than ``max_depth``; no ``RecursionError`` escapes (``loads`` may be any
    decoder, e.g. one keeping number text)."""
    data = frame.encode("utf-8", "surrogateescape") if isinstance(frame, str) else frame
    native = _native_too_deep  # called directly: this runs once per frame of every venue
    if (
        native(data, max_depth)
        if native is not None and type(data) is bytes and type(max_depth) is int and 0 <= max_depth < 2**31
        else json_too_deep_reference(data, max_depth)
    ):
        raise ParseError(f"JSON nested deeper than {max_depth} levels")
    try:
        return loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise ParseError("JSON nested too deep") from None
    except (ValueError, UnicodeDecodeError) as exc:  # stdlib json.JSONDecodeError is a ValueError
        raise ParseError(f"malformed JSON: {str(exc)[:200]}") from None


class EventThrottle:
    """At most one event per key per ``interval_ns`` of receive time, counting what it held back.

    Deterministic given the frames (it reads ``ts_recv``, never the wall clock), so a replay emits
    exactly the live run's events. Keys are bounded: beyond ``max_keys`` the oldest are forgotten.
    """

    __slots__ = ("held", "interval_ns", "last", "max_keys")

    def __init__(self, interval_ns: int = 1_000_000_000, max_keys: int = 4096) -> None:
        self.interval_ns = interval_ns
        self.max_keys = max_keys
        self.last: dict[Any, int] = {}
        self.held: dict[Any, int] = {}

    def due(self, key: Any, ts_recv: int) -> int:
        """Notes one occurrence; returns how many it stands for (itself + held back) when an event is
        due now, else 0."""
        last = self.last.get(key)
        if last is not None and 0 <= ts_recv - last < self.interval_ns:
            self.held[key] = self.held.get(key, 0) + 1
            return 0
        if last is None and len(self.last) >= self.max_keys:
            oldest = next(iter(self.last))
            del self.last[oldest]
            self.held.pop(oldest, None)
        self.last.pop(key, None)
        self.last[key] = ts_recv
        return 1 + self.held.pop(key, 0)


def emit_event(
    out: RecordBuffer,
    exchange: str,
    symbol: str | None,
    channel: str,
    ts_recv: int,
    kind: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Appends one ``feed_events`` row; ``detail`` is stored as JSON text (values JSON cannot hold, such
    as integers beyond 64 bits from a hostile frame, are stored as their text)."""
    try:
        text = orjson.dumps(detail or {}, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        text = orjson.dumps(_json_safe(detail or {}), option=orjson.OPT_NON_STR_KEYS).decode()
    out.feed_events.append((exchange, symbol, channel, ts_recv, kind, text))


def _json_safe(value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict):
        return (
            {str(k): _json_safe(v, depth + 1) for k, v in value.items()} if depth < 32 else str(value)[:200]
        )
    if isinstance(value, list | tuple):
        return [_json_safe(v, depth + 1) for v in value] if depth < 32 else str(value)[:200]
    if value is None or isinstance(value, str | bool | float):
        return value
    if isinstance(value, int) and INT64_MIN <= value <= INT64_MAX:
        return value
    return str(value)[:200]


def frame_text_for_event(frame: str | bytes) -> dict[str, Any]:
    """The offending frame as JSON-safe detail fields (invalid UTF-8 shown with replacement chars)."""
    data = frame.encode("utf-8", "surrogateescape") if isinstance(frame, str) else frame
    truncated = len(data) > MAX_KEPT_FRAME_BYTES
    if truncated:
        data = data[:MAX_KEPT_FRAME_BYTES]
    detail: dict[str, Any] = {"frame": data.decode("utf-8", "replace"), "frame_bytes": len(data)}
    if truncated:
        detail["truncated"] = True
    return detail


def check_symbol(symbol: Any) -> str:
    """Returns ``symbol`` if it is a safe normalised symbol, else raises :class:`ParseError`."""
    if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol) or ".." in symbol:
        raise ParseError(f"invalid symbol {str(symbol)[:80]!r}")
    return symbol


def positive_price(value: Any, what: str = "price") -> float:
    """Parses a wire price: a finite number > 0 (not a boolean), else :class:`ParseError`."""
    if value.__class__ is bool:
        raise ParseError(f"{what} is a boolean")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ParseError(f"{what} is not a number: {str(value)[:40]!r}") from None
    if not (x > 0.0 and x < float("inf")):
        raise ParseError(f"{what} out of range: {str(value)[:40]!r}")
    return x


def non_negative_size(value: Any, what: str = "size") -> float:
    """Parses a wire size: a finite number >= 0 (not a boolean), else :class:`ParseError`."""
    if value.__class__ is bool:
        raise ParseError(f"{what} is a boolean")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ParseError(f"{what} is not a number: {str(value)[:40]!r}") from None
    if not (x >= 0.0 and x < float("inf")):
        raise ParseError(f"{what} out of range: {str(value)[:40]!r}")
    return x


#: A funding rate is a fraction per interval; venues cap it far below this (bitmex, deribit, ...: 1 %).
MAX_ABS_FUNDING_RATE = 1.0


def funding_rate(value: Any, symbol: str | None, what: str = "funding rate") -> float:
    """Parses a funding rate (a fraction, negative allowed): finite and within
    :data:`MAX_ABS_FUNDING_RATE`, else :class:`ParseError` on the ``funding`` channel."""
    if isinstance(value, bool):
        raise ParseError(f"{what} is not a number: {value!r}", symbol, "funding")
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ParseError(f"{what} is not a number: {str(value)[:40]!r}", symbol, "funding") from None
    if not -MAX_ABS_FUNDING_RATE < rate < MAX_ABS_FUNDING_RATE:
        raise ParseError(f"{what} out of range: {str(value)[:40]!r}", symbol, "funding")
    return rate


def bbo_side(price: Any, size: Any, what: str) -> tuple[float | None, float | None]:
    """One side of a best bid/offer; an empty side (price 0, size 0) becomes nulls."""
    p = non_negative_size(price, f"{what} price")
    s = non_negative_size(size, f"{what} size")
    if p == 0.0:
        if s != 0.0:
            raise ParseError(f"{what} price 0 with size {size!r}", channel="bbo")
        return None, None
    return p, s


#: Largest millisecond timestamp whose nanoseconds fit int64 (year 2262).
_MAX_MS = INT64_MAX // 1_000_000


def ms_to_ns(value: Any) -> int:
    """Exchange millisecond timestamp to integer ns; :class:`ParseError` when absent or absurd."""
    if isinstance(value, str):
        value = int(value) if value.isdigit() else None
    if value.__class__ is not int or not (0 < value <= _MAX_MS):
        raise ParseError(f"bad millisecond timestamp {str(value)[:40]!r}")
    return value * 1_000_000


# RFC 3339 timestamps ("2023-02-09T20:32:50.714964855Z"): the seconds part repeats across many frames,
# so its epoch value is cached; the fraction is read as digits (nanosecond precision kept, which
# datetime cannot hold).
_ISO_SECONDS: dict[str, int] = {}
_ISO_SECONDS_MAX = 4096


def _iso_seconds(head: str) -> int:
    secs = _ISO_SECONDS.get(head)
    if secs is None:
        try:
            dt = _dt.datetime.fromisoformat(head)
        except ValueError:
            raise ParseError(f"bad RFC 3339 timestamp {head[:40]!r}") from None
        if dt.tzinfo is not None or len(head) != 19:
            raise ParseError(f"bad RFC 3339 timestamp {head[:40]!r}")
        secs = _calendar.timegm(dt.timetuple())
        if len(_ISO_SECONDS) >= _ISO_SECONDS_MAX:
            _ISO_SECONDS.clear()
        _ISO_SECONDS[head] = secs
    return secs


def iso_to_ns(value: Any) -> int:
    """RFC 3339 timestamp (``Z`` or ``±HH:MM``, any number of fraction digits) to integer ns since the epoch.

    Digits beyond nanoseconds are truncated. :class:`ParseError` when absent or malformed.
    """
    if not isinstance(value, str) or len(value) < 20:
        raise ParseError(f"bad RFC 3339 timestamp {str(value)[:40]!r}")
    secs = _iso_seconds(value[:19])
    rest = value[19:]
    offset_s = 0
    last = rest[-1]
    if last in "Zz":
        frac = rest[:-1]
    elif len(rest) >= 6 and rest[-6] in "+-" and rest[-3] == ":" and rest[-5:].replace(":", "").isdigit():
        offset_s = (int(rest[-5:-3]) * 3600 + int(rest[-2:]) * 60) * (1 if rest[-6] == "+" else -1)
        frac = rest[:-6]
    else:
        raise ParseError(f"RFC 3339 timestamp without a time zone: {value[:40]!r}")
    nanos = 0
    if frac:
        digits = frac[1:]
        if frac[0] != "." or not digits.isdigit() or not digits.isascii():
            raise ParseError(f"bad RFC 3339 fraction in {value[:40]!r}")
        nanos = int(digits[:9].ljust(9, "0"))
    ts = (secs - offset_s) * 1_000_000_000 + nanos
    if not INT64_MIN <= ts <= INT64_MAX:
        raise ParseError(f"RFC 3339 timestamp beyond the 64-bit ns range: {value[:40]!r}")
    return ts


def ns_to_iso(ts_ns: int, digits: int = 9) -> str:
    """Integer ns since the epoch to an RFC 3339 UTC string with ``digits`` fraction digits (simulators)."""
    secs, nanos = divmod(ts_ns, 1_000_000_000)
    head = _dt.datetime.fromtimestamp(secs, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if digits <= 0:
        return head + "Z"
    return f"{head}.{str(nanos).rjust(9, '0')[:digits]}Z"

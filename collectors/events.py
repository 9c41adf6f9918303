"""Feed events (the ``feed_events`` dataset) and the validation helpers that produce parse errors."""

from __future__ import annotations

import calendar as _calendar
import datetime as _dt
import re
from typing import Any

import orjson

from schemas import RecordBuffer

#: Longest frame kept verbatim in a parse_error event; longer frames are kept truncated (and say so).
MAX_KEPT_FRAME_BYTES = 256 * 1024

# Normalised symbols: letters, digits, '-', '_', '.'; no path separators, no "..".
SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{0,63}$")


class ParseError(ValueError):
    """A frame that cannot be normalised. Becomes a ``parse_error`` feed event, never a crash."""

    def __init__(self, reason: str, symbol: str | None = None, channel: str = "unknown") -> None:
        super().__init__(reason)
        self.reason = reason
        self.symbol = symbol
        self.channel = channel


def emit_event(
    out: RecordBuffer,
    exchange: str,
    symbol: str | None,
    channel: str,
    ts_recv: int,
    kind: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Appends one ``feed_events`` row; ``detail`` is stored as JSON text."""
    text = orjson.dumps(detail or {}, option=orjson.OPT_NON_STR_KEYS).decode()
    out.feed_events.append((exchange, symbol, channel, ts_recv, kind, text))


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
    """Parses a wire price: a finite number > 0, else :class:`ParseError`."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ParseError(f"{what} is not a number: {str(value)[:40]!r}") from None
    if not (x > 0.0 and x < float("inf")):
        raise ParseError(f"{what} out of range: {str(value)[:40]!r}")
    return x


def non_negative_size(value: Any, what: str = "size") -> float:
    """Parses a wire size: a finite number >= 0, else :class:`ParseError`."""
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


def ms_to_ns(value: Any) -> int:
    """Exchange millisecond timestamp to integer ns; :class:`ParseError` when absent or absurd."""
    if isinstance(value, str):
        value = int(value) if value.isdigit() else None
    if not isinstance(value, int) or isinstance(value, bool) or not (0 < value < 10**14):
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
    return (secs - offset_s) * 1_000_000_000 + nanos


def ns_to_iso(ts_ns: int, digits: int = 9) -> str:
    """Integer ns since the epoch to an RFC 3339 UTC string with ``digits`` fraction digits (simulators)."""
    secs, nanos = divmod(ts_ns, 1_000_000_000)
    head = _dt.datetime.fromtimestamp(secs, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if digits <= 0:
        return head + "Z"
    return f"{head}.{str(nanos).rjust(9, '0')[:digits]}Z"

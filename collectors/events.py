"""Feed events (the ``feed_events`` dataset) and the validation helpers that produce parse errors."""

from __future__ import annotations

import re
from typing import Any

import orjson

from schemas import RecordBuffer

#: Longest frame kept verbatim in a parse_error event; longer frames are kept truncated (and say so).
MAX_KEPT_FRAME_BYTES = 256 * 1024

EXCHANGE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
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


def check_exchange_id(exchange: str) -> str:
    """Returns ``exchange`` if it is a valid exchange id (safe as a lake path element)."""
    if not EXCHANGE_ID_RE.match(exchange):
        raise ValueError(f"invalid exchange id {exchange!r}")
    return exchange


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


def ms_to_ns(value: Any) -> int:
    """Exchange millisecond timestamp to integer ns; :class:`ParseError` when absent or absurd."""
    if isinstance(value, str):
        value = int(value) if value.isdigit() else None
    if not isinstance(value, int) or isinstance(value, bool) or not (0 < value < 10**14):
        raise ParseError(f"bad millisecond timestamp {str(value)[:40]!r}")
    return value * 1_000_000

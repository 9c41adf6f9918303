"""CRC32 book checksums over the exact wire strings that :class:`~collectors.book.L2Book` keeps.

Several exchanges publish a CRC32 of the top N levels of their book with every update (Kraken, OKX,
Bitfinex, ...). They differ only in how a level is rendered (``price:size``, digits only, ...), in the
order of the levels (all asks then all bids, or bid/ask interleaved) and in whether the result is read
as a signed or unsigned 32-bit integer. :func:`book_crc32` covers those variants; each exchange module
passes its own level renderer. Prices and sizes are never re-formatted from floats: the checksum is
only right over the strings the exchange sent.

The renderers the venues share are named here (:func:`colon_level`, :func:`digits_level`,
:class:`PaddedDigits`, :func:`colon_negated_level` for asks). For those, when the book's sides are the
compiled ``Levels`` (``collectors._booknative``, see :mod:`collectors.book`), the CRC is computed in C
straight from the stored strings without building the text; any other renderer, a pure-Python book,
or a level the C code does not take (not a tuple of exact ``str``) runs the Python code below, which
is the reference (``tests/collectors/test_native_checksum.py`` holds them equal). CRC-32 as
``zlib.crc32``: https://docs.python.org/3/library/zlib.html#zlib.crc32 (checked 2026-12-05).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from itertools import islice, zip_longest
from typing import Any

from . import book as _book
from .book import ASK, BID, L2Book

#: Renders one level ``(price_str, size_str)`` as it enters the checksummed text.
LevelText = Callable[[str, str], str]


def colon_level(price: str, size: str) -> str:
    """``price:size`` (OKX, Bitget, Bitfinex bids)."""
    return f"{price}:{size}"


def colon_negated_level(price: str, size: str) -> str:
    """``price:-size`` (Bitfinex asks: amounts are negative on the ask side)."""
    return f"{price}:-{size}"


def digits_level(price: str, size: str) -> str:
    """Digits of price then size, without '.' or leading zeros (Kraken)."""
    return price.replace(".", "").lstrip("0") + size.replace(".", "").lstrip("0")


def decimals_of(text: str) -> int:
    """Characters after the first '.' (0 without one)."""
    dot = text.find(".")
    return 0 if dot < 0 else len(text) - dot - 1


def pad_decimals(text: str, decimals: int) -> str:
    """``text`` with zeros appended up to ``decimals`` decimals (and a '.' when it has none)."""
    have = decimals_of(text)
    if have >= decimals:
        return text
    return text + ("0" * (decimals - have) if have else "." + "0" * decimals)


class PaddedDigits:
    """:func:`digits_level` of price and size padded to a pair's precision (Kraken, see kraken.py)."""

    __slots__ = ("price_decimals", "size_decimals")

    def __init__(self, price_decimals: int, size_decimals: int) -> None:
        self.price_decimals = price_decimals
        self.size_decimals = size_decimals

    def __call__(self, price: str, size: str) -> str:
        return digits_level(pad_decimals(price, self.price_decimals), pad_decimals(size, self.size_decimals))


#: The compiled renderings (collectors/_booknative.c, ``ST_*``) of (bid renderer, ask renderer).
_STYLES: dict[tuple[Any, Any], int] = {
    (colon_level, colon_level): 0,
    (digits_level, digits_level): 1,
    (colon_level, colon_negated_level): 3,
}
_PADDED_STYLE = 2


def book_crc32(
    book: L2Book,
    depth: int,
    level_text: LevelText,
    *,
    interleave: bool = False,
    separator: str = "",
    asks_first: bool = True,
    ask_text: LevelText | None = None,
) -> int:
    """Unsigned CRC32 of the best ``depth`` levels of each side, rendered by ``level_text`` (asks by
    ``ask_text`` when given).

    ``interleave=False``: all asks (best first) then all bids (best first), or bids first when
    ``asks_first`` is False. ``interleave=True``: bid 1, ask 1, bid 2, ask 2, ... (a side that runs
    out simply stops contributing). Rendered levels are joined with ``separator``.
    """
    native = _book._native
    if native is not None:
        bid_levels, ask_levels = book.side(BID), book.side(ASK)
        if (
            type(bid_levels) is native.Levels
            and type(ask_levels) is native.Levels
            and type(separator) is str
            and type(depth) is int
            and depth >= 0
        ):
            if type(level_text) is PaddedDigits and ask_text is None:
                style, pd, qd = _PADDED_STYLE, level_text.price_decimals, level_text.size_decimals
            else:
                style, pd, qd = _STYLES.get((level_text, ask_text or level_text), -1), 0, 0
            if (
                style >= 0
                and type(pd) is int
                and type(qd) is int
                and -(2**31) < pd < 2**31
                and -(2**31) < qd < 2**31
            ):
                crc = native.book_crc32(
                    bid_levels, ask_levels, depth, style, interleave, separator, asks_first, pd, qd
                )
                if crc is not None:
                    return int(crc)
    return book_crc32_reference(
        book,
        depth,
        level_text,
        interleave=interleave,
        separator=separator,
        asks_first=asks_first,
        ask_text=ask_text,
    )


def book_crc32_reference(
    book: L2Book,
    depth: int,
    level_text: LevelText,
    *,
    interleave: bool = False,
    separator: str = "",
    asks_first: bool = True,
    ask_text: LevelText | None = None,
) -> int:
    """:func:`book_crc32` in Python (the reference of the compiled one)."""
    ask_render = ask_text or level_text
    # The level maps hold (size, price_str, size_str), best first; reading values() directly is the
    # cheapest way through a SortedDict (this runs once per book message).
    bids = islice(book.side(BID).values(), depth)
    asks = islice(book.side(ASK).values(), depth)
    parts: list[str]
    if interleave:
        parts = []
        for bid, ask in zip_longest(bids, asks):
            if bid is not None:
                parts.append(level_text(bid[1], bid[2]))
            if ask is not None:
                parts.append(ask_render(ask[1], ask[2]))
    else:
        asks_text = [ask_render(lv[1], lv[2]) for lv in asks]
        bids_text = [level_text(lv[1], lv[2]) for lv in bids]
        parts = asks_text + bids_text if asks_first else bids_text + asks_text
    return zlib.crc32(separator.join(parts).encode())


def to_signed32(value: int) -> int:
    """An unsigned 32-bit value read as a signed one (OKX and Bitfinex publish signed checksums)."""
    value &= 0xFFFFFFFF
    return value - 0x1_0000_0000 if value >= 0x8000_0000 else value

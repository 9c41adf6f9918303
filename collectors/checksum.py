"""CRC32 book checksums over the exact wire strings that :class:`~collectors.book.L2Book` keeps.

Several exchanges publish a CRC32 of the top N levels of their book with every update (Kraken, OKX,
Bitfinex, ...). They differ only in how a level is rendered (``price:size``, digits only, ...), in the
order of the levels (all asks then all bids, or bid/ask interleaved) and in whether the result is read
as a signed or unsigned 32-bit integer. :func:`book_crc32` covers those variants; each exchange module
passes its own level renderer. Prices and sizes are never re-formatted from floats: the checksum is
only right over the strings the exchange sent.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from itertools import islice, zip_longest

from .book import ASK, BID, L2Book

#: Renders one level ``(price_str, size_str)`` as it enters the checksummed text.
LevelText = Callable[[str, str], str]


def book_crc32(
    book: L2Book,
    depth: int,
    level_text: LevelText,
    *,
    interleave: bool = False,
    separator: str = "",
    asks_first: bool = True,
) -> int:
    """Unsigned CRC32 of the best ``depth`` levels of each side, rendered by ``level_text``.

    ``interleave=False``: all asks (best first) then all bids (best first), or bids first when
    ``asks_first`` is False. ``interleave=True``: bid 1, ask 1, bid 2, ask 2, ... (a side that runs
    out simply stops contributing). Rendered levels are joined with ``separator``.
    """
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
                parts.append(level_text(ask[1], ask[2]))
    else:
        first, second = (asks, bids) if asks_first else (bids, asks)
        parts = [level_text(lv[1], lv[2]) for lv in first]
        parts.extend([level_text(lv[1], lv[2]) for lv in second])
    return zlib.crc32(separator.join(parts).encode())


def to_signed32(value: int) -> int:
    """An unsigned 32-bit value read as a signed one (OKX and Bitfinex publish signed checksums)."""
    value &= 0xFFFFFFFF
    return value - 0x1_0000_0000 if value >= 0x8000_0000 else value

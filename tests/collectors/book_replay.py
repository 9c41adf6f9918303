"""Test helpers: rebuild books from ``book`` rows and compare them with the venue's bbo."""

from __future__ import annotations

from typing import Any

from collectors.book import L2Book


def tops_by_seq(book_rows: list[tuple[Any, ...]]) -> dict[tuple[str, int], tuple[Any, Any]]:
    """Rebuilds every symbol's book from ``book`` rows; returns its (best bid, best ask) after each seq.

    A run of ``is_snapshot`` rows resets the book before its first level.
    """
    books: dict[str, L2Book] = {}
    tops: dict[tuple[str, int], tuple[Any, Any]] = {}
    prev_key: tuple[str, int, bool] | None = None
    for i, row in enumerate(book_rows):
        symbol, side, price, size, is_snapshot, seq = row[1], row[4], row[5], row[6], row[7], row[8]
        book = books.setdefault(symbol, L2Book())
        key = (symbol, seq, is_snapshot)
        if is_snapshot and key != prev_key:
            book.clear()
        book.set_level(side, price, size)
        prev_key = key
        nxt = book_rows[i + 1] if i + 1 < len(book_rows) else None
        if nxt is None or (nxt[1], nxt[8], nxt[7]) != key:
            tops[(symbol, seq)] = (book.best_bid(), book.best_ask())
    return tops


def assert_tops_match_bbo(book_rows: list[tuple[Any, ...]], bbo_rows: list[tuple[Any, ...]]) -> int:
    """Asserts that the book rebuilt from ``book_rows`` has the best bid/ask of every ``bbo`` row at an
    equal ``seq``; returns how many rows were compared (bbo rows whose seq the book never had are skipped).
    """
    tops = tops_by_seq(book_rows)
    compared = 0
    for row in bbo_rows:
        top = tops.get((row[1], row[8]))
        if top is None:
            continue
        (bid_p, bid_s), (ask_p, ask_s) = top
        assert (bid_p, bid_s, ask_p, ask_s) == row[4:8], (
            f"{row[1]}: book top differs from bbo at seq {row[8]}"
        )
        compared += 1
    return compared

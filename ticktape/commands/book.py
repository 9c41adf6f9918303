"""``ticktape book``: the L2 book of a symbol at an instant, rebuilt from the lake."""

from __future__ import annotations

import argparse
import json
import sys

import duckdb

from storage.book_at import BookAt, book_at, parse_instant
from storage.catalog import LakeBusyError, open_catalog
from ticktape.config import enable_config
from ticktape.lake import Lake, days_text

from .query import format_ns


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``book`` subcommand."""
    p = subparsers.add_parser(
        "book",
        help="the L2 book of a symbol at an instant, rebuilt from the lake",
        description=(
            "Rebuilds the order book that the collector held at an instant (by receive time): the last "
            "snapshot of the book's epoch plus every delta up to the instant, from the lake's book "
            "dataset. Reports an unsynced book (after a gap, before the first snapshot) as such."
        ),
    )
    p.add_argument("--lake", required=True, help="lake directory or s3://BUCKET/PREFIX")
    p.add_argument("--endpoint-url", help="S3 endpoint (S3-compatible stores, moto, MinIO)")
    p.add_argument("--exchange", required=True, help="exchange id, e.g. binance")
    p.add_argument("--symbol", required=True, help="normalised symbol, e.g. ETH-USDT")
    p.add_argument(
        "--at",
        required=True,
        help="instant (receive time): ISO 8601 such as 2024-08-08T23:55:01.123456789Z, or integer ns",
    )
    p.add_argument("--depth", type=int, default=10, help="levels per side to print (default 10; 0: all)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p.set_defaults(func=run)
    enable_config(p, "book")


def write_book(book: BookAt, out: object) -> None:
    """Prints a book side by side: bids (best first) on the left, asks on the right."""
    w = out.write  # type: ignore[attr-defined]
    w(f"{book.exchange} {book.symbol} at {format_ns(book.at_ns)}\n")
    if not book.synced:
        w(f"no book: {book.reason}\n")
        return
    assert book.snapshot_ns is not None
    last = format_ns(book.last_update_ns) if book.last_update_ns is not None else "-"
    w(
        f"epoch {book.epoch}, snapshot {format_ns(book.snapshot_ns)}, last update {last} "
        f"(seq {book.last_seq}), {book.rows_applied} rows applied\n"
    )
    w(f"{'bid size':>16} {'bid':>14} | {'ask':<14} {'ask size':<16}\n")
    for i in range(max(len(book.bids), len(book.asks))):
        bid = book.bids[i] if i < len(book.bids) else None
        ask = book.asks[i] if i < len(book.asks) else None
        left = f"{bid[1]:>16.8g} {bid[0]:>14.8g}" if bid else " " * 31
        right = f"{ask[0]:<14.8g} {ask[1]:<16.8g}" if ask else ""
        w(f"{left} | {right}".rstrip() + "\n")


def run(args: argparse.Namespace) -> int:
    """Prints the book; exit 0 when it was synced at the instant, 1 when not (or on errors), 2 on bad usage."""
    try:
        at_ns = parse_instant(args.at)
        if args.depth < 0:
            raise ValueError("--depth must be >= 0")
        catalog = open_catalog(args.lake, endpoint_url=args.endpoint_url)
    except (ValueError, FileNotFoundError) as exc:
        print(f"ticktape book: {exc}", file=sys.stderr)
        return 2
    with catalog:
        try:
            lake = Lake(catalog)
            lake.check_symbol(args.exchange, args.symbol, "book")
            book = book_at(catalog, args.exchange, args.symbol, at_ns, depth=args.depth or None)
            if book.snapshot_ns is None:
                days = lake.inventory().symbols(args.exchange, "book").get(args.symbol, set())
                book.reason += f"; book data of {args.symbol} on {args.exchange}: {days_text(sorted(days))}"
        except ValueError as exc:
            print(f"ticktape book: {exc}", file=sys.stderr)
            return 2
        except (duckdb.Error, LakeBusyError) as exc:
            print(f"ticktape book: {exc}", file=sys.stderr)
            return 1
    if args.format == "json":
        json.dump(book.to_json(), sys.stdout)
        sys.stdout.write("\n")
    else:
        write_book(book, sys.stdout)
    return 0 if book.synced else 1

"""``ticktape ls``: what a lake holds, from Parquet footers (no data scan; see :mod:`ticktape.lake`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO

from ticktape.config import enable_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``ls`` subcommand."""
    p = subparsers.add_parser(
        "ls",
        help="what the lake holds: exchanges, datasets, rows, days, symbols",
        description=(
            "Lists the lake's exchanges with, per dataset, rows, files, symbols and first and last day, "
            "then each exchange's symbols with their days. Reads only Parquet footers (row counts and "
            "statistics), so it stays fast on a big lake."
        ),
    )
    p.add_argument("--lake", required=True, help="lake directory or s3://BUCKET/PREFIX")
    p.add_argument("--endpoint-url", help="S3 endpoint (S3-compatible stores, moto, MinIO)")
    p.add_argument("--exchange", help="only this exchange id")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)
    enable_config(p, "ls")


def _days_span(days: list[str]) -> str:
    if not days:
        return "-"
    if len(days) == 1:
        return days[0]
    return f"{days[0]} .. {days[-1]} ({len(days)} days)"


def write_text(data: dict[str, object], lake: str, registered: list[str], out: IO[str]) -> None:
    """The inventory as two tables: datasets per exchange, then symbols per exchange with their days."""
    exchanges: dict[str, dict[str, object]] = data["exchanges"]  # type: ignore[assignment]
    header = ("exchange", "dataset", "rows", "files", "symbols", "first day", "last day")
    lines = [header]
    for ex, info in exchanges.items():
        for ds, s in info["datasets"].items():  # type: ignore[attr-defined]
            lines.append(
                (ex, ds, f"{s['rows']:,}", str(s["files"]), str(s["symbols"]), s["first_day"] or "-",
                 s["last_day"] or "-")
            )  # fmt: skip
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out.write(f"lake {lake}: {len(exchanges)} exchange(s)\n\n")
    for row in lines:
        cells = [
            c.rjust(w) if i in (2, 3, 4) else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.write("  ".join(cells).rstrip() + "\n")
    out.write("\nsymbols (days with data):\n")
    for ex, info in exchanges.items():
        symbols: dict[str, list[str]] = info["symbols"]  # type: ignore[assignment]
        out.write(f"  {ex}: {len(symbols)} symbol(s)\n")
        width = max((len(s) for s in symbols), default=0)
        for sym, days in symbols.items():
            out.write(f"    {sym.ljust(width)}  {_days_span(days)}\n")
    missing = [x for x in registered if x not in exchanges]
    if missing and len(exchanges) > 1:
        out.write(f"\nregistered exchanges without data here: {', '.join(missing)}\n")


def run(args: argparse.Namespace) -> int:
    """Prints the inventory; 2 when the lake or the exchange does not exist."""
    import duckdb

    from collectors.registry import exchange_ids
    from ticktape.lake import LakeLookupError, open_lake

    try:
        lake = open_lake(args.lake, endpoint_url=args.endpoint_url)
    except (FileNotFoundError, ValueError) as exc:
        print(f"ticktape ls: {exc}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:
        print(f"ticktape ls: cannot open the lake {args.lake}: {exc}", file=sys.stderr)
        return 1
    with lake:
        try:
            if args.exchange:
                lake.check_exchange(args.exchange)
            data = lake.inventory().to_json()
        except LakeLookupError as exc:
            print(f"ticktape ls: {exc}", file=sys.stderr)
            return 2
        except duckdb.Error as exc:
            print(f"ticktape ls: cannot read the lake {args.lake}: {exc}", file=sys.stderr)
            return 1
    if args.exchange:
        data["exchanges"] = {args.exchange: data["exchanges"][args.exchange]}
    if args.json:
        json.dump(data, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        write_text(data, args.lake, [] if args.exchange else exchange_ids(), sys.stdout)
    if not data["exchanges"]:
        print(f"ticktape ls: the lake {args.lake} holds no data yet", file=sys.stderr)
    return 0

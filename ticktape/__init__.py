"""ticktape: crypto exchange market-data capture with freshness and trust metrics.

The Python API (README, "Using it"): ``lake = ticktape.open_lake("demo-lake")`` then
``lake.trades(exchange="binance", symbol="BTC-USDT")`` and so on (:mod:`ticktape.lake`).
``import ticktape`` stays light: DuckDB and pyarrow load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schemas import Flags
    from ticktape.lake import Lake, LakeLookupError

__all__ = ["Flags", "Lake", "LakeLookupError", "open_lake"]


def open_lake(lake: str, endpoint_url: str | None = None, threads: int | None = None) -> Lake:
    """Opens a lake directory or an ``s3://bucket/prefix`` lake for reading (see :mod:`ticktape.lake`)."""
    from ticktape.lake import open_lake as _open

    return _open(lake, endpoint_url=endpoint_url, threads=threads)


def __getattr__(name: str) -> Any:
    if name in ("Lake", "LakeLookupError"):
        from ticktape import lake

        return getattr(lake, name)
    if name == "Flags":
        from schemas import Flags

        return Flags
    raise AttributeError(f"module 'ticktape' has no attribute {name!r}")

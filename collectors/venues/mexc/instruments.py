"""Instruments of MEXC spot: ``GET /api/v3/exchangeInfo``, parsed and served.

Endpoint (checked 2026-12-05, a stored copy of
https://www.mexc.com/api-docs/spot-v3/market-data-endpoints#exchange-information; weight 10 per IP):
``{"timezone", "serverTime", "symbols": [{"symbol": "METALUSDT", "status": "1", "baseAsset": "METAL",
"baseAssetPrecision": 2, "quoteAsset": "USDT", "quotePrecision": 5, "quoteAssetPrecision": 5,
"baseSizePrecision": "0.1", "isSpotTradingAllowed": true, "filters": [...], ...}]}``.

- tick ``10**-quotePrecision`` (the price's decimals), lot ``10**-baseAssetPrecision`` (the quantity's
  decimals). ``baseSizePrecision`` is not the lot: the documented example pairs ``"0.1"`` with two
  quantity decimals, and answers for small-priced coins send ``"0"``; it is left out.
- ``status``: ``"1"`` online (trading), ``"2"`` paused, ``"3"`` offline; older answers said ``ENABLED``
  for online (the example of the previous documentation); any other value is written lower-case.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ...instruments import TRADING, Instrument, build_all, decimals_increment

if TYPE_CHECKING:
    from ...base import ExchangeDialect
    from ...simulator import MarketModel

PATH = "/api/v3/exchangeInfo"
WEIGHT = 10
_STATUS = {"1": TRADING, "ENABLED": TRADING, "2": "paused", "3": "offline"}


def parse_exchange_info(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of an ``exchangeInfo`` answer."""
    data = orjson.loads(body)
    symbols = data.get("symbols") if isinstance(data, dict) else None
    if not isinstance(symbols, list):
        raise ValueError(f"exchangeInfo: 'symbols' is not a list: {str(data)[:120]}")

    def build(item: dict[str, Any]) -> Instrument:
        native = item["symbol"]
        if not isinstance(native, str):
            raise TypeError("symbol is not a string")
        status = str(item["status"])
        return Instrument(
            exchange=dialect.exchange_id,
            symbol=dialect.normalise_symbol(native),
            native_symbol=native,
            kind="spot",
            base=str(item["baseAsset"]),
            quote=str(item["quoteAsset"]),
            settle=None,
            tick_size=decimals_increment(item["quotePrecision"]),
            lot_size=decimals_increment(item["baseAssetPrecision"]),
            contract_size=None,
            expiry=None,
            strike=None,
            option_type=None,
            status=_STATUS.get(status, status.lower()),
            ts_recv=ts_recv,
        )

    return build_all(symbols, build)


def exchange_info_body(markets: dict[str, MarketModel], server_ms: int) -> dict[str, Any]:
    """A simulator's ``exchangeInfo`` for its markets."""
    from ..binance import split_binance_symbol

    symbols = []
    for native, m in markets.items():
        base, quote = split_binance_symbol(native)
        symbols.append(
            {
                "symbol": native,
                "status": "1",
                "baseAsset": base,
                "baseAssetPrecision": m.size_decimals,
                "quoteAsset": quote,
                "quotePrecision": m.price_decimals,
                "quoteAssetPrecision": m.price_decimals,
                "orderTypes": ["LIMIT", "MARKET", "LIMIT_MAKER"],
                "isSpotTradingAllowed": True,
                "baseSizePrecision": "0",
                "permissions": ["SPOT"],
                "filters": [],
                "makerCommission": "0",
                "takerCommission": "0.0005",
            }
        )
    return {
        "timezone": "CST",
        "serverTime": server_ms,
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": symbols,
    }

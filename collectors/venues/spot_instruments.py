"""Instruments of three spot venues whose lists the shared recordings hold (real answers, 2021-2022):

- bitstamp ``GET /api/v2/trading-pairs-info/`` (https://www.bitstamp.net/api/#tag/Market-info/operation/GetTradingPairsInfo,
  checked 2026-12-05): a list of ``{"name": "BTC/USD", "url_symbol": "btcusd", "base_decimals": 8,
  "counter_decimals": 2, "trading": "Enabled", ...}``; tick ``10**-counter_decimals``, lot
  ``10**-base_decimals``; ``trading`` ``Enabled`` is trading, anything else (``Disabled``) is not.
- kucoin ``GET /api/v2/symbols`` (https://www.kucoin.com/docs-new/rest/spot-trading/market-data/get-all-symbols,
  checked 2026-12-05; the recording used ``/api/v1/symbols``, the same items): ``{"code": "200000",
  "data": [{"symbol": "BTC-USDT", "baseCurrency", "quoteCurrency", "baseIncrement", "priceIncrement",
  "enableTrading": true, ...}]}``; tick ``priceIncrement``, lot ``baseIncrement``.
- gate ``GET /api/v4/spot/currency_pairs`` (https://www.gate.io/docs/developers/apiv4/en/#list-all-currency-pairs-supported,
  checked 2026-12-05): a list of ``{"id": "BTC_USDT", "base", "quote", "precision": 2,
  "amount_precision": 4, "trade_status": "tradable"|"untradable"|"buyable"|"sellable", ...}``; tick
  ``10**-precision``, lot ``10**-amount_precision``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..instruments import TRADING, Instrument, build_all, decimals_increment, listed, positive

if TYPE_CHECKING:
    from ..base import ExchangeDialect
    from ..simulator import MarketModel

BITSTAMP_PATH = "/api/v2/trading-pairs-info/"
KUCOIN_PATH = "/api/v2/symbols"
GATE_PATH = "/api/v4/spot/currency_pairs"


def _spot(
    dialect: ExchangeDialect,
    native: str,
    base: str,
    quote: str,
    tick: float,
    lot: float,
    status: str,
    ts: int,
) -> Instrument:
    return listed(dialect, native, "spot", base, quote, tick, lot, status, ts)


def parse_bitstamp(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of a ``trading-pairs-info`` answer."""
    pairs = orjson.loads(body)
    if not isinstance(pairs, list):
        raise ValueError("trading-pairs-info: not a list")

    def build(item: dict[str, Any]) -> Instrument:
        base, quote = str(item["name"]).split("/")
        trading = str(item["trading"])
        status = TRADING if trading == "Enabled" else trading.lower()
        tick = decimals_increment(item["counter_decimals"])
        lot = decimals_increment(item["base_decimals"])
        return _spot(dialect, str(item["url_symbol"]).lower(), base, quote, tick, lot, status, ts_recv)

    return build_all(pairs, build)


def parse_kucoin(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of a ``symbols`` answer."""
    data = orjson.loads(body)
    if str(data.get("code")) != "200000":
        raise ValueError(f"symbols: code {data.get('code')} {str(data.get('msg'))[:80]}")

    def build(item: dict[str, Any]) -> Instrument:
        status = TRADING if item["enableTrading"] is True else "disabled"
        tick, lot = positive(item["priceIncrement"]), positive(item["baseIncrement"])
        base, quote = str(item["baseCurrency"]), str(item["quoteCurrency"])
        return _spot(dialect, str(item["symbol"]).upper(), base, quote, tick, lot, status, ts_recv)

    return build_all(data["data"], build)


def parse_gate(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of a ``currency_pairs`` answer."""
    pairs = orjson.loads(body)
    if not isinstance(pairs, list):
        raise ValueError(f"currency_pairs: {str(pairs)[:120]}")

    def build(item: dict[str, Any]) -> Instrument:
        trade_status = str(item["trade_status"])
        status = TRADING if trade_status == "tradable" else trade_status
        tick = decimals_increment(item["precision"])
        lot = decimals_increment(item["amount_precision"])
        base, quote = str(item["base"]), str(item["quote"])
        return _spot(dialect, str(item["id"]).upper(), base, quote, tick, lot, status, ts_recv)

    return build_all(pairs, build)


def bitstamp_body(markets: dict[str, MarketModel]) -> list[dict[str, Any]]:
    """A simulator's ``trading-pairs-info`` for its markets (``btcusd``: three-letter quotes)."""
    return [
        {
            "name": f"{native[:-3].upper()}/{native[-3:].upper()}",
            "url_symbol": native,
            "base_decimals": m.size_decimals,
            "counter_decimals": m.price_decimals,
            "trading": "Enabled",
            "instant_and_market_orders": "Enabled",
            "minimum_order": "10.0 " + native[-3:].upper(),
            "description": native,
        }
        for native, m in markets.items()
    ]


def kucoin_body(markets: dict[str, MarketModel]) -> dict[str, Any]:
    """A simulator's ``symbols`` answer for its markets."""
    data = []
    for native, m in markets.items():
        base, quote = native.split("-")
        data.append(
            {
                "symbol": native,
                "name": native,
                "baseCurrency": base,
                "quoteCurrency": quote,
                "baseIncrement": m.size_str(1),
                "priceIncrement": f"{m.tick:.{m.price_decimals}f}",
                "enableTrading": True,
            }
        )
    return {"code": "200000", "data": data}


def gate_body(markets: dict[str, MarketModel]) -> list[dict[str, Any]]:
    """A simulator's ``currency_pairs`` answer for its markets."""
    out = []
    for native, m in markets.items():
        base, quote = native.split("_")
        out.append(
            {
                "id": native,
                "base": base,
                "quote": quote,
                "precision": m.price_decimals,
                "amount_precision": m.size_decimals,
                "trade_status": "tradable",
            }
        )
    return out

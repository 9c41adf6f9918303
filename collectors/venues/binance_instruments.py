"""Instruments of the Binance family: ``exchangeInfo`` of spot, USD-M and COIN-M, parsed and served.

Endpoints (checked 2026-12-05):
- spot ``GET /api/v3/exchangeInfo`` (weight 20):
  https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-endpoints
- USD-M ``GET /fapi/v1/exchangeInfo`` (weight 1):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information
- COIN-M ``GET /dapi/v1/exchangeInfo`` (weight 1):
  https://developers.binance.com/docs/derivatives/coin-margined-futures/market-data/Exchange-Information
  (field lists also cross-checked against the typings of tardis-dev's exchange details,
  https://app.unpkg.com/@hackape/tardis-dev@12.4.2/files/src/exchangedetails/typings/binance-spot.d.ts
  and ``binance-futures.d.ts``, 2026-12-05).

``symbols[]``: ``symbol``, ``status`` (spot: ``TRADING``, ``BREAK``, ``HALT``...; USD-M: ``TRADING``,
``PENDING_TRADING``, ``SETTLING``, ``CLOSE``...; COIN-M says it in ``contractStatus``), ``baseAsset``,
``quoteAsset``, and ``filters``: ``PRICE_FILTER.tickSize`` is the tick, ``LOT_SIZE.stepSize`` the lot.
Futures add ``contractType`` (``PERPETUAL``, ``CURRENT_QUARTER``, ``NEXT_QUARTER``...), ``deliveryDate``
(ms; perpetuals carry a far-future date, not an expiry) and ``marginAsset`` (the settlement asset).
USD-M quantities are in the base asset (contract size 1 base unit); COIN-M quantities are contracts
of ``contractSize`` USD (quote units).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..instruments import TRADING, Instrument, build_all, ms_to_ns, positive

if TYPE_CHECKING:
    from ..base import ExchangeDialect
    from ..simulator import MarketModel


def _filter(item: dict[str, Any], kind: str, field: str) -> float:
    for f in item["filters"]:
        if f.get("filterType") == kind:
            return positive(f[field])
    raise KeyError(f"no {kind} filter")


def _status(item: dict[str, Any]) -> str:
    raw = str(item.get("contractStatus") or item["status"])
    return TRADING if raw == "TRADING" else raw.lower()


def parse_exchange_info(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of an ``exchangeInfo`` body (spot, USD-M or COIN-M alike)."""
    data = orjson.loads(body)
    symbols = data["symbols"]
    if not isinstance(symbols, list):
        raise ValueError("exchangeInfo: 'symbols' is not a list")

    def build(item: dict[str, Any]) -> Instrument:
        native = str(item["symbol"]).upper()
        contract_type = item.get("contractType")
        if contract_type is None:  # spot
            kind, settle, contract_size, expiry = "spot", None, None, None
        else:
            perpetual = "PERPETUAL" in str(contract_type) or (not contract_type and "_" not in native)
            kind = "perpetual" if perpetual else "future"
            settle = str(item["marginAsset"])
            contract_size = float(item.get("contractSize") or 1.0)
            expiry = None if perpetual else ms_to_ns(item.get("deliveryDate"))
        return Instrument(
            exchange=dialect.exchange_id,
            symbol=dialect.normalise_symbol(native),
            native_symbol=native,
            kind=kind,
            base=str(item["baseAsset"]),
            quote=str(item["quoteAsset"]),
            settle=settle,
            tick_size=_filter(item, "PRICE_FILTER", "tickSize"),
            lot_size=_filter(item, "LOT_SIZE", "stepSize"),
            contract_size=contract_size,
            expiry=expiry,
            strike=None,
            option_type=None,
            status=_status(item),
            ts_recv=ts_recv,
        )

    return build_all(symbols, build)


#: Far-future delivery date Binance gives perpetuals (2100-12-25), in ms
PERPETUAL_DELIVERY_MS = 4133404800000


def exchange_info_body(exchange: str, markets: dict[str, MarketModel]) -> dict[str, Any]:
    """A simulator's ``exchangeInfo`` for its markets, in the venue's shape (spot, USD-M or COIN-M)."""
    from .binance import split_binance_symbol

    symbols = []
    for native, m in markets.items():
        pair = native.split("_")[0]
        base, quote = split_binance_symbol(pair)
        filters = [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": m.price_str(1),
                "maxPrice": "1000000",
                "tickSize": f"{m.tick:.{m.price_decimals}f}",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": m.size_str(1),
                "maxQty": "9000000",
                "stepSize": m.size_str(1),
            },
        ]
        item: dict[str, Any] = {"symbol": native, "status": "TRADING", "baseAsset": base, "quoteAsset": quote}
        if exchange == "binance-futures":
            item.update(contractType="PERPETUAL", deliveryDate=PERPETUAL_DELIVERY_MS, marginAsset=quote)
        elif exchange == "binance-delivery":
            perpetual = native.endswith("_PERP")
            item.update(
                pair=pair,
                contractType="PERPETUAL" if perpetual else "CURRENT_QUARTER",
                deliveryDate=PERPETUAL_DELIVERY_MS if perpetual else 1_790_000_000_000,
                marginAsset=base,
                contractSize=100 if base == "BTC" else 10,
                contractStatus="TRADING",
            )
            del item["status"]
        item["filters"] = filters
        symbols.append(item)
    return {"timezone": "UTC", "serverTime": 0, "rateLimits": [], "exchangeFilters": [], "symbols": symbols}

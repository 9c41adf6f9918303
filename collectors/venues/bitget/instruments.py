"""Instruments of Bitget spot and USDT-M futures (v2 REST), parsed and served.

Endpoints (checked 2026-12-05; the response examples as Bitget's documentation gives them, read in a
stored copy of the API docs):
- spot ``GET /api/v2/spot/public/symbols`` (20 requests/s per IP):
  https://www.bitget.com/api-doc/spot/market/Get-Symbols. ``{"code": "00000", "data": [{"symbol":
  "BTCUSDT", "baseCoin", "quoteCoin", "pricePrecision": "2", "quantityPrecision": "6", "status":
  "online", ...}]}``: tick ``10**-pricePrecision``, lot ``10**-quantityPrecision``; ``status``
  ``online`` is trading, the others (``gray``: not yet open, ``halt``, ``offline``) are written as sent.
- futures ``GET /api/v2/mix/market/contracts?productType=USDT-FUTURES`` (20 requests/s per IP):
  https://www.bitget.com/api-doc/contract/market/Get-All-Symbols-Contracts. ``data[]``: ``symbol``,
  ``baseCoin``, ``quoteCoin``, ``supportMarginCoins``, ``pricePlace`` (price decimals) and
  ``priceEndStep`` (the step of the last decimal): tick ``priceEndStep * 10**-pricePlace`` (``pricePlace``
  1, ``priceEndStep`` 5: 0.5); ``sizeMultiplier`` (quantities are whole multiples of it: the lot);
  ``symbolType`` ``perpetual`` or ``delivery`` (with ``deliveryTime``, ms: the expiry);
  ``symbolStatus`` ``normal`` is trading, others (``listed``, ``maintain``, ``limit_open``,
  ``restrictedAPI``, ``off``) are written as sent. USDT-M quantities are in the base coin (contract
  size 1), settled in USDT.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from ...instruments import TRADING, Instrument, build_all, decimals_increment, ms_to_ns, positive

if TYPE_CHECKING:
    from ...base import ExchangeDialect
    from ...simulator import MarketModel

SPOT_PATH = "/api/v2/spot/public/symbols"
CONTRACTS_PATH = "/api/v2/mix/market/contracts"
PRODUCT_TYPE = "USDT-FUTURES"


def _data(body: str | bytes) -> list[Any]:
    answer = orjson.loads(body)
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        raise ValueError(f"bitget: not a symbol list: {str(answer)[:120]}")
    return data


def _status(raw: Any, trading_word: str) -> str:
    text = str(raw)
    return TRADING if text == trading_word else text.lower()


def contract_tick(price_place: Any, end_step: Any) -> float:
    """``priceEndStep * 10**-pricePlace``, exactly (decimal arithmetic)."""
    return positive(Decimal(str(end_step)) * Decimal(str(decimals_increment(price_place))))


def parse_spot(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of a ``spot/public/symbols`` answer."""

    def build(item: dict[str, Any]) -> Instrument:
        native = str(item["symbol"])
        return Instrument(
            exchange=dialect.exchange_id,
            symbol=dialect.normalise_symbol(native),
            native_symbol=native,
            kind="spot",
            base=str(item["baseCoin"]),
            quote=str(item["quoteCoin"]),
            settle=None,
            tick_size=decimals_increment(item["pricePrecision"]),
            lot_size=decimals_increment(item["quantityPrecision"]),
            contract_size=None,
            expiry=None,
            strike=None,
            option_type=None,
            status=_status(item["status"], "online"),
            ts_recv=ts_recv,
        )

    return build_all(_data(body), build)


def parse_contracts(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of a ``mix/market/contracts`` answer."""

    def build(item: dict[str, Any]) -> Instrument:
        native = str(item["symbol"])
        delivery = item.get("symbolType") == "delivery"
        margin = item.get("supportMarginCoins") or [item["quoteCoin"]]
        return Instrument(
            exchange=dialect.exchange_id,
            symbol=dialect.normalise_symbol(native) if not delivery else native,
            native_symbol=native,
            kind="future" if delivery else "perpetual",
            base=str(item["baseCoin"]),
            quote=str(item["quoteCoin"]),
            settle=str(margin[0]),
            tick_size=contract_tick(item["pricePlace"], item.get("priceEndStep") or 1),
            lot_size=positive(item["sizeMultiplier"]),
            contract_size=1.0,
            expiry=ms_to_ns(item.get("deliveryTime")) if delivery else None,
            strike=None,
            option_type=None,
            status=_status(item["symbolStatus"], "normal"),
            ts_recv=ts_recv,
        )

    return build_all(_data(body), build)


def symbols_body(inst_type: str, markets: dict[str, MarketModel]) -> dict[str, Any]:
    """A simulator's answer of the spot or contracts endpoint for its markets."""
    from ..binance import split_binance_symbol

    data: list[dict[str, Any]] = []
    for native, m in markets.items():
        base, quote = split_binance_symbol(native)
        if inst_type == "SPOT":
            item: dict[str, Any] = {
                "symbol": native, "baseCoin": base, "quoteCoin": quote, "minTradeAmount": "0",
                "pricePrecision": str(m.price_decimals), "quantityPrecision": str(m.size_decimals),
                "quotePrecision": "8", "status": "online", "minTradeUSDT": "1",
            }  # fmt: skip
        else:
            item = {
                "symbol": native, "baseCoin": base, "quoteCoin": quote, "supportMarginCoins": [quote],
                "pricePlace": str(m.price_decimals), "priceEndStep": "1", "volumePlace": str(m.size_decimals),
                "sizeMultiplier": m.size_str(1), "minTradeNum": m.size_str(1), "symbolType": "perpetual",
                "symbolStatus": "normal", "deliveryTime": "", "fundInterval": "8", "maxLever": "125",
            }  # fmt: skip
        data.append(item)
    return {"code": "00000", "msg": "success", "requestTime": 0, "data": data}

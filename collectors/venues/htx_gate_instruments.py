"""Instruments of HTX spot and Gate USDT perpetuals, whose lists the shared recordings hold.

- htx ``GET https://api.huobi.pro/v1/common/symbols`` (https://www.htx.com/en-us/opend/newApiPages/?id=7ec51cb5-7773-11ed-9966-0242ac110003,
  checked 2026-12-05): ``{"status": "ok", "data": [{"symbol": "btcusdt", "base-currency": "btc",
  "quote-currency": "usdt", "price-precision": 2, "amount-precision": 6, "state": "online", ...}]}``;
  tick ``10**-price-precision``, lot ``10**-amount-precision``; ``state`` ``online`` is trading
  (``offline``, ``suspend``, ``pre-online`` are not).
- gate-futures ``GET /api/v4/futures/usdt/contracts`` (https://www.gate.io/docs/developers/apiv4/en/#list-all-futures-contracts,
  checked 2026-12-05): a list of ``{"name": "BTC_USDT", "type": "direct"|"inverse",
  "quanto_multiplier": "0.0001" (base units per contract), "order_price_round": "0.1" (the tick),
  "order_size_min": 1, "in_delisting": false, ...}``; sizes are whole contracts (lot 1) unless the
  contract states ``order_size_round``; settlement in USDT (the path's settle currency).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..instruments import TRADING, Instrument, build_all, decimals_increment, positive

if TYPE_CHECKING:
    from ..base import ExchangeDialect
    from ..simulator import MarketModel

HTX_PATH = "/v1/common/symbols"
GATE_FUTURES_PATH = "/api/v4/futures/usdt/contracts"


def parse_htx_symbols(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of a ``v1/common/symbols`` answer."""
    data = orjson.loads(body)
    if data.get("status") != "ok":
        raise ValueError(f"common/symbols: {str(data.get('err-msg') or data)[:120]}")

    def build(item: dict[str, Any]) -> Instrument:
        native = str(item["symbol"]).lower()
        state = str(item["state"])
        return Instrument(
            exchange=dialect.exchange_id,
            symbol=dialect.normalise_symbol(native),
            native_symbol=native,
            kind="spot",
            base=str(item["base-currency"]).upper(),
            quote=str(item["quote-currency"]).upper(),
            settle=None,
            tick_size=decimals_increment(item["price-precision"]),
            lot_size=decimals_increment(item["amount-precision"]),
            contract_size=None,
            expiry=None,
            strike=None,
            option_type=None,
            status=TRADING if state == "online" else state,
            ts_recv=ts_recv,
        )

    return build_all(data["data"], build)


def parse_gate_contracts(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of a ``futures/usdt/contracts`` answer."""
    contracts = orjson.loads(body)
    if not isinstance(contracts, list):
        raise ValueError(f"futures contracts: {str(contracts)[:120]}")

    def build(item: dict[str, Any]) -> Instrument:
        native = str(item["name"]).upper()
        base, quote = native.split("_")
        return Instrument(
            exchange=dialect.exchange_id,
            symbol=dialect.normalise_symbol(native),
            native_symbol=native,
            kind="perpetual",
            base=base,
            quote=quote,
            settle="USDT",
            tick_size=positive(item["order_price_round"]),
            lot_size=positive(item.get("order_size_round") or 1),
            contract_size=positive(item["quanto_multiplier"]),
            expiry=None,
            strike=None,
            option_type=None,
            status="delisting" if item.get("in_delisting") else TRADING,
            ts_recv=ts_recv,
        )

    return build_all(contracts, build)


def htx_symbols_body(markets: dict[str, MarketModel], quotes: tuple[str, ...]) -> dict[str, Any]:
    """A simulator's ``v1/common/symbols`` answer for its markets."""
    data = []
    for native, m in markets.items():
        quote = next(q for q in quotes if native.endswith(q))
        data.append(
            {
                "symbol": native,
                "base-currency": native[: -len(quote)],
                "quote-currency": quote,
                "price-precision": m.price_decimals,
                "amount-precision": m.size_decimals,
                "state": "online",
            }
        )
    return {"status": "ok", "data": data}


def gate_contracts_body(markets: dict[str, MarketModel]) -> list[dict[str, Any]]:
    """A simulator's ``futures/usdt/contracts`` answer (decimal sizes: ``order_size_round`` is the lot)."""
    return [
        {
            "name": native,
            "type": "direct",
            "quanto_multiplier": "1",
            "order_price_round": f"{m.tick:.{m.price_decimals}f}",
            "order_size_min": 1,
            "order_size_round": m.size_str(1),
            "in_delisting": False,
        }
        for native, m in markets.items()
    ]

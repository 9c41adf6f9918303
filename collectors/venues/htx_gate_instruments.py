"""Instruments of HTX spot, HTX USDT-margined swaps and Gate USDT perpetuals.

- htx ``GET https://api.huobi.pro/v1/common/symbols`` (https://www.htx.com/en-us/opend/newApiPages/?id=7ec51cb5-7773-11ed-9966-0242ac110003,
  checked 2026-12-05): ``{"status": "ok", "data": [{"symbol": "btcusdt", "base-currency": "btc",
  "quote-currency": "usdt", "price-precision": 2, "amount-precision": 6, "state": "online", ...}]}``;
  tick ``10**-price-precision``, lot ``10**-amount-precision``; ``state`` ``online`` is trading
  (``offline``, ``suspend``, ``pre-online`` are not).
- htx-swap ``GET https://api.hbdm.com/linear-swap-api/v1/swap_contract_info?business_type=all``
  ("[General] Query Swap Info", https://www.htx.com/en-us/opend/newApiPages/?id=8cb72f34-77b5-11ed-9966-0242ac110003,
  checked 2026-12-05 through the docs' own markdown, huobiapi's USDT-margined swap docs, and HTX's Go SDK
  ``GetContractInfoAsync`` for the request parameters; ``business_type`` ``futures``/``swap``/``all``, the
  default listing swaps only, so ``all`` also lists the dated USDT futures served on the same websocket):
  ``{"status": "ok", "data": [{"symbol": "BTC", "contract_code": "BTC-USDT", "contract_size": 0.001,
  "price_tick": 0.1, "delivery_time": "", "create_date": "20201110", "contract_status": 1,
  "settlement_date": "1609782000000", "support_margin_mode": "all", "business_type": "swap", "pair":
  "BTC-USDT", "contract_type": "swap", "trade_partition": "USDT"}], "ts": ..}``. ``contract_size`` is
  the base coin per contract (the unit of every size and of open interest in contracts); sizes are whole
  contracts (lot 1); ``delivery_time`` (ms) is a dated future's expiry, empty on swaps; the settlement
  currency is ``trade_partition`` (USDT). ``contract_status``: 0 delisted, 1 listed (trading), 2 pending
  listing, 3 suspended, 4 pending open (the Chinese page's 待开盘; the English one says "Suspending of
  Listing"), 5 in settlement, 6 delivering, 7 settlement completed, 8 delivered, 9 trading suspended
  (listed for coin-margined futures). 5 and 7 are the periodic (funding) settlement of a listed contract,
  which keeps its streams and trades again once it is done: they are written ``trading`` too, so a
  refresh that meets a settlement does not drop the contract as delisted; the others are written as the
  words above (an unknown code as ``status_<n>``). An error answer (``{"status": "error", "err_code":
  .., "err_msg": ..}``) is a ValueError.
- gate-futures ``GET /api/v4/futures/usdt/contracts`` (https://www.gate.io/docs/developers/apiv4/en/#list-all-futures-contracts,
  checked 2026-12-05): a list of ``{"name": "BTC_USDT", "type": "direct"|"inverse",
  "quanto_multiplier": "0.0001" (base units per contract), "order_price_round": "0.1" (the tick),
  "order_size_min": 1, "in_delisting": false, ...}``; sizes are whole contracts (lot 1) unless the
  contract states ``order_size_round``; settlement in USDT (the path's settle currency).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..instruments import (
    TRADING,
    Instrument,
    answer_list,
    build_all,
    decimals_increment,
    ms_to_ns,
    positive,
)

if TYPE_CHECKING:
    from ..base import ExchangeDialect
    from ..simulator import MarketModel

HTX_PATH = "/v1/common/symbols"
HTX_SWAP_PATH = "/linear-swap-api/v1/swap_contract_info"
HTX_SWAP_QUERY = "?business_type=all"
#: ``contract_status`` -> our status (module docstring)
HTX_CONTRACT_STATUS = {
    0: "delisted",
    1: TRADING,
    2: "pending_listing",
    3: "suspended",
    4: "pending_open",
    5: TRADING,
    6: "delivering",
    7: TRADING,
    8: "delivered",
    9: "trading_suspended",
}
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


def _htx_swap_error(answer: dict[str, Any]) -> str | None:
    if answer.get("status") == "ok":
        return None
    return f"error {answer.get('err_code')} {str(answer.get('err_msg'))[:80]}"


def parse_htx_swap_contracts(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of a ``linear-swap-api/v1/swap_contract_info`` answer."""
    items = answer_list(body, "swap_contract_info", "data", _htx_swap_error)

    def build(item: dict[str, Any]) -> Instrument:
        native = item["contract_code"]
        if not isinstance(native, str):
            raise TypeError("contract_code is not a string")
        native = native.upper()
        base, quote = str(item.get("pair") or native).split("-")[:2]
        if not base or not quote:
            raise ValueError(f"{native}: no base/quote")
        code = item["contract_status"]
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError("contract_status is not an integer")
        delivery = item.get("delivery_time")
        dated = item.get("business_type") == "futures" or bool(delivery)
        return Instrument(
            exchange=dialect.exchange_id,
            symbol=dialect.normalise_symbol(native),
            native_symbol=native,
            kind="future" if dated else "perpetual",
            base=base,
            quote=quote,
            settle=str(item.get("trade_partition") or quote).upper(),
            tick_size=positive(item["price_tick"]),
            lot_size=1.0,
            contract_size=positive(item["contract_size"]),
            expiry=ms_to_ns(delivery) if dated else None,
            strike=None,
            option_type=None,
            status=HTX_CONTRACT_STATUS.get(code, f"status_{code}"),
            ts_recv=ts_recv,
        )

    return build_all(items, build)


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


def htx_swap_contracts_body(markets: dict[str, MarketModel]) -> dict[str, Any]:
    """A simulator's ``swap_contract_info`` answer: its markets as listed swaps whose contract is one
    model lot (``10**-size_decimals`` coins), as its streams count sizes in whole lots."""
    data = []
    for native, m in markets.items():
        base, _, quote = native.partition("-")
        data.append(
            {
                "symbol": base,
                "contract_code": native,
                "contract_size": 10**-m.size_decimals,
                "price_tick": m.tick,
                "delivery_date": "",
                "delivery_time": "",
                "create_date": "20201021",
                "contract_status": 1,
                "settlement_date": "1764979200000",
                "support_margin_mode": "all",
                "business_type": "swap",
                "pair": native,
                "contract_type": "swap",
                "trade_partition": quote,
            }
        )
    return {"status": "ok", "data": data, "ts": 1764979200000}


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

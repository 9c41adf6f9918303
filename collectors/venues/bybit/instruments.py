"""Instruments of Bybit v5 (``bybit`` linear, ``bybit-spot``): ``GET /v5/market/instruments-info``.

Source (checked 2026-12-05): https://bybit-exchange.github.io/docs/v5/market/instrument (field lists
cross-checked with the bybit-api SDK typings, https://app.unpkg.com/bybit-api@4.5.0/files/lib/types/response/v5-market.d.ts).

Request ``?category=linear|spot&limit=1000`` (``limit`` only for linear/inverse; spot answers every
symbol at once), paged with ``cursor`` = the previous ``result.nextPageCursor`` until it is empty.
Answer ``{"retCode":0,"result":{"category":..,"list":[..],"nextPageCursor":..}}``; each item has
``symbol``, ``status`` (``Trading``, ``PreLaunch``, ``Delivering``, ``Closed``), ``baseCoin``,
``quoteCoin``, ``priceFilter.tickSize`` (the tick) and ``lotSizeFilter``: ``qtyStep`` on linear,
``basePrecision`` on spot (the size increment). Linear adds ``contractType`` (``LinearPerpetual``,
``LinearFutures``), ``settleCoin`` and ``deliveryTime`` (ms, ``"0"`` for perpetuals). Linear sizes are
in the base coin: contract size 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from ...instruments import TRADING, Instrument, build_all, ms_to_ns, positive

if TYPE_CHECKING:
    from ...base import ExchangeDialect
    from ...simulator import MarketModel

PATH = "/v5/market/instruments-info"
#: pages fetched at most in one refresh (1000 instruments per page)
MAX_PAGES = 20


def first_path(category: str) -> str:
    """The first page's path of a category."""
    limit = "" if category == "spot" else "&limit=1000"
    return f"{PATH}?category={category}{limit}"


def next_path(category: str, body: str | bytes) -> str | None:
    """The next page's path, or None when ``body`` was the last page."""
    cursor = orjson.loads(body).get("result", {}).get("nextPageCursor") or ""
    return f"{first_path(category)}&cursor={quote(cursor)}" if cursor else None


def parse_instruments_info(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of one ``instruments-info`` page."""
    data = orjson.loads(body)
    if data.get("retCode") != 0:
        raise ValueError(f"instruments-info: retCode {data.get('retCode')} {str(data.get('retMsg'))[:80]}")
    result = data["result"]
    spot = result.get("category") == "spot"

    def build(item: dict[str, Any]) -> Instrument:
        native = str(item["symbol"]).upper()
        lot = item["lotSizeFilter"]
        status = str(item["status"])
        if spot:
            kind, settle, contract_size, expiry = "spot", None, None, None
        else:
            perpetual = "Perpetual" in str(item.get("contractType", ""))
            kind = "perpetual" if perpetual else "future"
            settle, contract_size = str(item["settleCoin"]), 1.0
            expiry = None if perpetual else ms_to_ns(item.get("deliveryTime"))
        return Instrument(
            exchange=dialect.exchange_id,
            symbol=dialect.normalise_symbol(native),
            native_symbol=native,
            kind=kind,
            base=str(item["baseCoin"]),
            quote=str(item["quoteCoin"]),
            settle=settle,
            tick_size=positive(item["priceFilter"]["tickSize"]),
            lot_size=positive(lot["basePrecision"] if spot else lot["qtyStep"]),
            contract_size=contract_size,
            expiry=expiry,
            strike=None,
            option_type=None,
            status=TRADING if status == "Trading" else status.lower(),
            ts_recv=ts_recv,
        )

    return build_all(result["list"], build)


def instruments_info_body(
    category: str, markets: dict[str, MarketModel], quotes: tuple[str, ...], cursor: str, page_size: int
) -> dict[str, Any]:
    """A simulator's ``instruments-info`` page for its markets (``page_size`` per page, as Bybit pages)."""
    from .common import split_quote

    natives = sorted(markets)
    start = int(cursor) if cursor.isdigit() else 0
    page = natives[start : start + page_size] if category != "spot" else natives
    items = []
    for native in page:
        m = markets[native]
        if native.endswith("PERP") and category != "spot":
            base, quote_coin = native[: -len("PERP")], "USDC"  # USDC perpetuals are named <BASE>PERP
        else:
            base, quote_coin = split_quote(native, quotes)
        item: dict[str, Any] = {
            "symbol": native,
            "status": "Trading",
            "baseCoin": base,
            "quoteCoin": quote_coin,
            "priceFilter": {"tickSize": f"{m.tick:.{m.price_decimals}f}", "minPrice": m.price_str(1)},
        }
        if category == "spot":
            item["lotSizeFilter"] = {"basePrecision": m.size_str(1), "minOrderQty": m.size_str(1)}
        else:
            item.update(contractType="LinearPerpetual", settleCoin=quote_coin, deliveryTime="0")
            item["lotSizeFilter"] = {"qtyStep": m.size_str(1), "minOrderQty": m.size_str(1)}
        items.append(item)
    more = category != "spot" and start + page_size < len(natives)
    return {
        "retCode": 0,
        "retMsg": "OK",
        "result": {
            "category": category,
            "list": items,
            "nextPageCursor": str(start + page_size) if more else "",
        },
        "retExtInfo": {},
        "time": 0,
    }

"""Instruments of Coinbase Advanced Trade: ``GET /api/v3/brokerage/market/products`` (public, no key).

Sources (checked 2026-12-05): https://docs.cdp.coinbase.com/advanced-trade/reference/retailbrokerageapi_getpublicproducts
(field names cross-checked with https://docs.rs/crate/coinbase-advanced/latest/source/src/models/product.rs).
Public endpoints allow 10 requests per second per IP.

Answer ``{"products": [..], "num_products": n}``; each product: ``product_id`` (``BTC-USD``; perpetuals
``BTC-PERP-INTX``), ``base_currency_id``, ``quote_currency_id``, ``price_increment`` (the tick; older
answers only carry ``quote_increment``), ``base_increment`` (the lot), ``status`` (``online``,
``offline``, ``delisted``...), ``trading_disabled``, ``product_type`` (``SPOT``, ``FUTURE``) and, for
futures, ``future_product_details`` with ``contract_size`` and ``contract_expiry_type``
(``PERPETUAL``/``EXPIRING``) and ``contract_expiry`` (RFC 3339).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..events import iso_to_ns
from ..instruments import TRADING, Instrument, build_all, listed, positive

if TYPE_CHECKING:
    from ..base import ExchangeDialect
    from ..simulator import MarketModel

PATH = "/api/v3/brokerage/market/products"


def parse_products(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of one public products answer."""
    products = orjson.loads(body)["products"]
    if not isinstance(products, list):
        raise ValueError("market/products: 'products' is not a list")

    def build(item: dict[str, Any]) -> Instrument | None:
        native = str(item["product_id"]).upper()
        pair = native.split("-")
        base = str(item.get("base_currency_id") or pair[0])
        quote = str(item.get("quote_currency_id") or pair[1])
        status = str(item.get("status") or "").lower()
        if item.get("trading_disabled") or item.get("is_disabled"):
            status = "disabled" if status == "online" else status
        kind, settle, contract_size, expiry = "spot", None, None, None
        if str(item.get("product_type", "SPOT")).upper() == "FUTURE":
            details = item["future_product_details"]
            perpetual = str(details.get("contract_expiry_type", "")).upper() == "PERPETUAL"
            kind = "perpetual" if perpetual else "future"
            settle = quote
            contract_size = positive(details["contract_size"])
            expiry = None if perpetual else iso_to_ns(details["contract_expiry"])
        return listed(
            dialect,
            native,
            kind,
            base,
            quote,
            positive(item.get("price_increment") or item["quote_increment"]),
            positive(item["base_increment"]),
            TRADING if status == "online" else status,
            ts_recv,
            settle=settle,
            contract_size=contract_size,
            expiry=expiry,
        )

    return build_all(products, build)


def products_body(markets: dict[str, MarketModel]) -> dict[str, Any]:
    """A simulator's public products answer for its markets."""
    products = []
    for native, m in markets.items():
        base, quote = native.split("-")[:2]
        products.append(
            {
                "product_id": native,
                "price": m.price_str(m.mid),
                "base_increment": m.size_str(1),
                "quote_increment": f"{m.tick:.{m.price_decimals}f}",
                "price_increment": f"{m.tick:.{m.price_decimals}f}",
                "base_min_size": m.size_str(1),
                "base_currency_id": base,
                "quote_currency_id": quote,
                "status": "online",
                "trading_disabled": False,
                "product_type": "SPOT",
            }
        )
    return {"products": products, "num_products": len(products)}

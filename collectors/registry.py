"""Exchange ids (DESIGN.md, "Exchanges") and the module holding each one's dialect."""

from __future__ import annotations

import importlib

from .base import DialectOptions, ExchangeDialect

#: exchange id -> module in ``collectors`` defining ``DIALECT_CLASS``
EXCHANGE_MODULES: dict[str, str] = {
    "binance": "collectors.venues.binance",
    "binance-futures": "collectors.venues.binance_futures",
    "binance-delivery": "collectors.venues.binance_delivery",
    "coinbase": "collectors.venues.coinbase",
    "coinbase-international": "collectors.venues.coinbase_international",
    "kraken": "collectors.venues.kraken",
    "okx": "collectors.venues.okx",
    "bybit": "collectors.venues.bybit",
    "bybit-spot": "collectors.venues.bybit_spot",
    "bitget": "collectors.venues.bitget.spot",
    "bitget-futures": "collectors.venues.bitget.futures",
    "bitstamp": "collectors.venues.bitstamp",
    "gate": "collectors.venues.gate.spot",
    "gate-futures": "collectors.venues.gate.futures",
    "gemini": "collectors.venues.gemini",
    "hyperliquid": "collectors.venues.hyperliquid",
    "htx": "collectors.venues.htx",
    "htx-swap": "collectors.venues.htx.swap",
    "kucoin": "collectors.venues.kucoin",
    "kucoin-futures": "collectors.venues.kucoin.futures",
    "mexc": "collectors.venues.mexc",
}


def exchange_ids() -> list[str]:
    """Every supported exchange id."""
    return list(EXCHANGE_MODULES)


def get_dialect(exchange_id: str, options: DialectOptions | None = None) -> ExchangeDialect:
    """The dialect of an exchange id; ``ValueError`` naming the known ids otherwise."""
    module_name = EXCHANGE_MODULES.get(exchange_id)
    if module_name is None:
        raise ValueError(f"unknown exchange {exchange_id!r}; known: {', '.join(EXCHANGE_MODULES)}")
    module = importlib.import_module(module_name)
    dialect: ExchangeDialect = module.DIALECT_CLASS(options)
    return dialect

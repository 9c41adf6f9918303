"""Exchange ids (DESIGN.md, "Exchanges") and the module holding each one's dialect."""

from __future__ import annotations

import difflib
import importlib

from .base import DialectOptions, ExchangeDialect

#: exchange id -> module in ``collectors`` defining ``DIALECT_CLASS``
EXCHANGE_MODULES: dict[str, str] = {
    "binance": "collectors.venues.binance",
    "binance-delivery": "collectors.venues.binance_delivery",
    "binance-futures": "collectors.venues.binance_futures",
    "bitfinex": "collectors.venues.bitfinex",
    "bitget": "collectors.venues.bitget.spot",
    "bitget-futures": "collectors.venues.bitget.futures",
    "bitmex": "collectors.venues.bitmex",
    "bitstamp": "collectors.venues.bitstamp",
    "bybit": "collectors.venues.bybit.linear",
    "bybit-spot": "collectors.venues.bybit.spot",
    "coinbase": "collectors.venues.coinbase",
    "coinbase-international": "collectors.venues.coinbase_international",
    "crypto-com": "collectors.venues.crypto_com",
    "deribit": "collectors.venues.deribit",
    "gate": "collectors.venues.gate.spot",
    "gate-futures": "collectors.venues.gate.futures",
    "gemini": "collectors.venues.gemini",
    "htx": "collectors.venues.htx",
    "htx-swap": "collectors.venues.htx.swap",
    "hyperliquid": "collectors.venues.hyperliquid",
    "kraken": "collectors.venues.kraken",
    "kraken-futures": "collectors.venues.kraken_futures",
    "kucoin": "collectors.venues.kucoin",
    "kucoin-futures": "collectors.venues.kucoin.futures",
    "mexc": "collectors.venues.mexc",
    "okx": "collectors.venues.okx",
    "upbit": "collectors.venues.upbit",
}


def exchange_ids() -> list[str]:
    """Every supported exchange id."""
    return list(EXCHANGE_MODULES)


def get_dialect(exchange_id: str, options: DialectOptions | None = None) -> ExchangeDialect:
    """The dialect of an exchange id; ``ValueError`` naming the known ids (closest first) otherwise."""
    module_name = EXCHANGE_MODULES.get(exchange_id)
    if module_name is None:
        given = str(exchange_id).lower()
        known = sorted(EXCHANGE_MODULES, key=lambda x: -difflib.SequenceMatcher(None, given, x).ratio())
        raise ValueError(f"unknown exchange {exchange_id!r}; known (closest first): {', '.join(known)}")
    module = importlib.import_module(module_name)
    dialect: ExchangeDialect = module.DIALECT_CLASS(options)
    return dialect

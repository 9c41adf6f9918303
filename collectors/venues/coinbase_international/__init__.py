"""Coinbase International Exchange (exchange id ``coinbase-international``): INTX market data websocket.

- :mod:`.client`: dialect (authenticated subscriptions, LEVEL2 resubscription) and normaliser;
- :mod:`.simulator`: the loopback venue (signature check, session-wide sequence).
"""

from .client import (
    CoinbaseInternationalDialect,
    CoinbaseInternationalNormaliser,
    Credentials,
    normalise_product,
    sign,
)

DIALECT_CLASS = CoinbaseInternationalDialect

__all__ = [
    "DIALECT_CLASS",
    "CoinbaseInternationalDialect",
    "CoinbaseInternationalNormaliser",
    "Credentials",
    "normalise_product",
    "sign",
]

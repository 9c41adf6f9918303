"""Crypto.com Exchange (exchange id ``crypto-com``): the client side in :mod:`.client`, the simulator in
:mod:`.simulator`."""

from .client import DIALECT_CLASS, CryptoComDialect, CryptoComNormaliser

__all__ = ["DIALECT_CLASS", "CryptoComDialect", "CryptoComNormaliser"]
